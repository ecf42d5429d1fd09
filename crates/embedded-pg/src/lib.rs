//! # wagate-embedded-pg
//!
//! Starts a private PostgreSQL cluster from the machine's own PostgreSQL binaries, so that
//! `wagate serve` works without a `DATABASE_URL` and tests get a real database without Docker
//! or downloads.
//!
//! ```no_run
//! use wagate_embedded_pg::{Cluster, ClusterOptions, DataDirLock};
//!
//! # fn main() -> Result<(), wagate_embedded_pg::Error> {
//! let dir = std::path::Path::new("/var/lib/wagate");
//! let _lock = DataDirLock::acquire(dir)?; // a second wagate on `dir` now gets Error::Busy
//! let mut pg = Cluster::start(ClusterOptions::durable(dir.join("pg")))?;
//! let url = pg.url("wagate"); // postgresql://postgres@%2Fvar%2Flib%2Fwagate%2Fpg%2Frun:5432/wagate
//! # let _ = url;
//! pg.stop()?; // also done on drop
//! # Ok(()) }
//! ```
//!
//! ## Layout of `dir`
//!
//! | path | what |
//! | --- | --- |
//! | `pgdata/` | the data directory (`initdb` runs once, when `pgdata/PG_VERSION` is missing) |
//! | `run/` | the unix socket directory, unless that path is too long for a socket (then `/tmp/wagate-pg-<hash>`) |
//! | `postgres.log` | the server's log (rotated to `postgres.log.1` at start when over 10 MiB) |
//! | `initdb.log` | the output of the last `initdb` |
//!
//! ## Behaviour worth knowing
//!
//! - **Binaries:** `ClusterOptions::bin_dir`, else `PG_BIN_DIR`, else `pg_config --bindir`, else
//!   `PATH` (symlinks resolved to the real bin dir), else the highest `/usr/lib/postgresql/*/bin`.
//!   When an existing cluster was made by another major version and that version's Debian bin dir
//!   exists, it is used instead.
//! - **Root:** PostgreSQL refuses to run as root, so as root `initdb` and `postgres` run as the
//!   `postgres` OS user; `pgdata/` and the socket dir are chowned to it and `dir` gets `o+x`.
//!   Parents of `dir` are never changed: if `postgres` cannot reach `dir`, start fails with
//!   [`Error::Unreachable`].
//! - **Network:** `listen_addresses=''`: unix socket only, trust auth for local connections,
//!   `reject` for TCP, so nothing outside this machine's filesystem permissions can connect.
//! - **Throwaway clusters** (`durable: false`) run with `fsync=off` and friends, and `postgres`
//!   gets `PR_SET_PDEATHSIG=SIGQUIT` from a keeper thread that lives as long as the [`Cluster`]:
//!   a SIGKILLed test process takes its server with it.
//! - **Durable clusters** run in their own session (`setsid`), so a Ctrl-C at the terminal reaches
//!   wagate, which then stops PostgreSQL in order; if wagate crashes the server keeps running and
//!   the next [`Cluster::start`] adopts it (live pid in `postmaster.pid`) instead of failing.
//! - [`Cluster::start`] takes no lock of its own; the server should hold a [`DataDirLock`] on its
//!   data directory for as long as it runs.

mod bins;
mod cluster;
mod lock;
mod sys;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use cluster::{Cluster, ClusterOptions};
pub use lock::DataDirLock;

/// Everything that can go wrong. Each message says what to do about it, because these reach an
/// operator running `wagate serve`, not just developers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) were not found in {looked_in}. Install PostgreSQL (Debian: apt-get install postgresql) or set DATABASE_URL to use an existing server."
    )]
    NoBinaries {
        /// Where we looked, e.g. `PG_BIN_DIR=/x` or the search order.
        looked_in: String,
    },

    #[error(
        "running as root, but there is no `postgres` OS user to run PostgreSQL as (PostgreSQL refuses to run as root). Create it (Debian: apt-get install postgresql, or adduser --system --group postgres), run wagate as an unprivileged user, or set DATABASE_URL to use an existing server."
    )]
    NoPostgresUser,

    #[error(
        "the `postgres` OS user cannot reach {path}: wagate runs as root, PostgreSQL refuses root, so the cluster runs as `postgres`, and a parent directory is not traversable by it (e.g. /root is mode 700). Choose a --data-dir outside it (e.g. /var/lib/wagate) or allow traversal with `chmod o+x` on each parent directory."
    )]
    Unreachable { path: PathBuf },

    #[error(
        "data directory {} is in use by another wagate ({}); stop it or choose another --data-dir",
        dir.display(),
        pid.map_or_else(|| "pid unknown".to_owned(), |p| format!("pid {p}"))
    )]
    Busy { dir: PathBuf, pid: Option<u32> },

    #[error("could not {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("could not run {}: {source}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{} exists and is not empty but is not a PostgreSQL data directory (it has no PG_VERSION); move it away or choose another --data-dir",
        path.display()
    )]
    NotADataDir { path: PathBuf },

    #[error(
        "the cluster in {} was created by PostgreSQL {data_version}, but the binaries in {} are PostgreSQL {bin_version}; set PG_BIN_DIR to PostgreSQL {data_version} binaries, or upgrade the cluster with pg_upgrade",
        data_dir.display(),
        bin_dir.display()
    )]
    VersionMismatch {
        data_dir: PathBuf,
        data_version: String,
        bin_dir: PathBuf,
        bin_version: String,
    },

    #[error("unsafe socket directory {}: {reason}", path.display())]
    SocketDir { path: PathBuf, reason: String },

    #[error("initdb failed for {} ({status}); its output ({}):\n{output}", data_dir.display(), log.display())]
    InitDb {
        data_dir: PathBuf,
        status: String,
        log: PathBuf,
        output: String,
    },

    #[error("PostgreSQL in {} did not start: {reason}. Last lines of {}:\n{log_tail}", data_dir.display(), log.display())]
    StartFailed {
        data_dir: PathBuf,
        reason: String,
        log: PathBuf,
        log_tail: String,
    },

    #[error(
        "PostgreSQL (pid {pid}) did not exit after a fast shutdown, an immediate shutdown and SIGKILL; check the process (ps -p {pid}) and {}",
        log.display()
    )]
    StopFailed { pid: u32, log: PathBuf },
}
