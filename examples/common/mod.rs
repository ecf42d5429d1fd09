//! What every benchmark sets up the same way: logging to stderr (stdout is
//! the report), a durable PostgreSQL (the embedded cluster, or DATABASE_URL),
//! and a sandbox-mode server's options.
#![allow(dead_code)] // each benchmark uses part of it

use wagate::config::DbArgs;
use wagate::database::Database;
use wagate::server::{MetaOptions, ServerOptions};

/// Logs at `warn` (or RUST_LOG) to stderr.
pub fn init_logging() {
    wagate::install_crypto_provider();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// The database a run uses, and the directory holding the embedded cluster
/// (removed when dropped).
pub struct BenchDb {
    pub db: Database,
    pub dir: tempfile::TempDir,
}

/// DATABASE_URL when set, else a fresh durable embedded cluster under /tmp.
pub async fn open_database(prefix: &str, pool_size: usize) -> anyhow::Result<BenchDb> {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir_in("/tmp")?;
    let db = Database::open(&DbArgs {
        data_dir: dir.path().to_path_buf(),
        database_url: std::env::var("DATABASE_URL").ok(),
        pool_size,
    })
    .await?;
    if std::env::var_os("DATABASE_URL").is_none() {
        let _ = CLUSTER.set(dir.path().to_path_buf());
    }
    Ok(BenchDb { db, dir })
}

/// A sandbox-mode server on a free port with a fresh master key.
pub fn server_options(
    database_url: &str,
    pool_size: usize,
    max_body_bytes: usize,
) -> ServerOptions {
    ServerOptions {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: database_url.to_owned(),
        pool_size,
        max_body_bytes,
        cors_origins: Vec::new(),
        meta: MetaOptions::sandbox_defaults(),
        master_key: wagate::crypto::SecretBox::generate_key(),
        dispatch: Default::default(),
        webhooks: Default::default(),
    }
}

/// The data directory of the embedded cluster this run started, when it
/// started one: CPU is counted for that cluster alone.
static CLUSTER: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// CPU time used so far by this process (server and load generator), by
/// its ended child processes (pgbench), and by the run's PostgreSQL, ended
/// processes included, in seconds: the postmaster of the run's embedded
/// cluster and its children (every local cluster's, when the run uses
/// DATABASE_URL). Read from /proc (Linux), whose counters are in USER_HZ
/// ticks, 100 a second.
#[derive(Debug, Clone, Copy)]
pub struct CpuTimes {
    pub process: f64,
    pub children: f64,
    pub postgres: f64,
}

impl CpuTimes {
    pub fn now() -> Self {
        let mut procs = Vec::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let path = entry.path();
                let is_pg = std::fs::read_to_string(path.join("comm"))
                    .is_ok_and(|comm| comm.trim_end() == "postgres");
                let pid = entry
                    .file_name()
                    .to_str()
                    .and_then(|p| p.parse::<u32>().ok());
                if let (true, Some(pid)) = (is_pg, pid) {
                    procs.push((pid, path.clone(), stat_fields(&path.join("stat"))));
                }
            }
        }
        let is_pg = |pid: u32| procs.iter().any(|(p, _, _)| *p == pid);
        let postmasters: Vec<u32> = procs
            .iter()
            .filter(|(_, path, t)| match CLUSTER.get() {
                Some(data) => std::fs::read(path.join("cmdline")).is_ok_and(|cmd| {
                    String::from_utf8_lossy(&cmd).contains(&*data.to_string_lossy())
                }),
                None => !is_pg(t.ppid),
            })
            .map(|(pid, _, _)| *pid)
            .collect();
        let mut postgres = 0.0;
        for (pid, _, t) in &procs {
            if postmasters.contains(pid) {
                // Backends and workers that ended (pgbench's connections,
                // autovacuum's workers) are in its children times once reaped.
                postgres += t.utime + t.stime + t.cutime + t.cstime;
            } else if postmasters.contains(&t.ppid) {
                postgres += t.utime + t.stime;
            }
        }
        let own = stat_fields(std::path::Path::new("/proc/self/stat"));
        CpuTimes {
            process: own.utime + own.stime,
            children: own.cutime + own.cstime,
            postgres,
        }
    }

    /// What was used between `self` and `later`.
    pub fn until(self, later: CpuTimes) -> CpuTimes {
        CpuTimes {
            process: later.process - self.process,
            children: later.children - self.children,
            postgres: later.postgres - self.postgres,
        }
    }
}

struct StatTimes {
    ppid: u32,
    utime: f64,
    stime: f64,
    cutime: f64,
    cstime: f64,
}

/// The CPU times of one /proc/<pid>/stat, in seconds (zeros when
/// unreadable: a process that ended meanwhile).
fn stat_fields(stat: &std::path::Path) -> StatTimes {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // utime, stime, cutime and cstime are fields 14 to 17 of the line; what
    // follows the name starts at field 3.
    let secs = |field: usize| {
        fields
            .get(field - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0
    };
    StatTimes {
        // The parent's pid is field 4.
        ppid: fields.get(4 - 3).and_then(|v| v.parse().ok()).unwrap_or(0),
        utime: secs(14),
        stime: secs(15),
        cutime: secs(16),
        cstime: secs(17),
    }
}
