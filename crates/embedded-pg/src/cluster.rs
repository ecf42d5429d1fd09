//! Starting, adopting and stopping the cluster.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::Error;
use crate::bins::{self, Bins};
use crate::sys::{self, RunAs};

/// Crash recovery of a durable cluster can take a while; a hung start should still end.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Fast shutdown still writes a checkpoint; give it time before escalating.
const FAST_STOP_TIMEOUT: Duration = Duration::from_secs(60);
const IMMEDIATE_STOP_TIMEOUT: Duration = Duration::from_secs(10);
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// `sun_path` is 108 bytes including the NUL; PostgreSQL rejects longer socket paths.
const MAX_SOCKET_PATH: usize = 107;
/// The server log is appended to across restarts; keep it bounded without a log collector.
const LOG_ROTATE_BYTES: u64 = 10 << 20;
const LOG_TAIL_LINES: usize = 30;
const SUPERUSER: &str = "postgres";

/// How to run the cluster. `dir` holds everything; see the crate docs for its layout.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Directory that holds the cluster (`<dir>/pgdata`) and, when the path is short enough, its socket dir.
    pub dir: PathBuf,
    /// Persistent cluster for the server (fsync on) vs throwaway for tests (fsync=off, synchronous_commit=off, full_page_writes=off).
    pub durable: bool,
    pub max_connections: u32,
    /// Explicit binary dir; None = search: env PG_BIN_DIR, then `pg_config --bindir`, then PATH, then /usr/lib/postgresql/*/bin (highest version).
    pub bin_dir: Option<PathBuf>,
    /// Extra `-c name=value` settings, applied after ours so they win. Leave
    /// `unix_socket_directories` and `listen_addresses` alone: the URL is built from them.
    pub settings: Vec<(String, String)>,
}

impl ClusterOptions {
    /// The server's persistent cluster: fsync on, 100 connections.
    pub fn durable(dir: impl Into<PathBuf>) -> Self {
        ClusterOptions {
            dir: dir.into(),
            durable: true,
            max_connections: 100,
            bin_dir: None,
            settings: Vec::new(),
        }
    }

    /// A test cluster: no fsync, 200 connections (parallel tests each hold a pool).
    pub fn throwaway(dir: impl Into<PathBuf>) -> Self {
        ClusterOptions {
            dir: dir.into(),
            durable: false,
            max_connections: 200,
            bin_dir: None,
            settings: Vec::new(),
        }
    }
}

/// A running PostgreSQL cluster; stopped on [`Cluster::stop`] or drop.
///
/// Dropping blocks until the server has exited (a fast shutdown usually takes well under a
/// second), so in async code drop it from a blocking context.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    bins: Bins,
    log_path: PathBuf,
    pid: u32,
    /// `None` for an adopted postmaster, which is not our child.
    keeper: Option<Keeper>,
    running: bool,
}

impl Cluster {
    /// Blocking. initdb when `<dir>/pgdata/PG_VERSION` is missing (superuser "postgres", trust auth on the unix socket only, UTF8, --no-locale), then start postgres with listen_addresses='' on a unix socket, wait until it accepts connections (use pg_isready from the bin dir), and return.
    /// Reuse across restarts: an existing cluster is started again, not re-initialised. If a postmaster for this pgdata is already running (live pid in postmaster.pid, e.g. left by a crashed wagate), adopt it rather than failing or corrupting anything.
    pub fn start(opts: ClusterOptions) -> Result<Cluster, Error> {
        let run_as = sys::run_as()?;
        fs::create_dir_all(&opts.dir).map_err(io_err("create the cluster directory", &opts.dir))?;
        let dir = fs::canonicalize(&opts.dir).map_err(io_err("resolve", &opts.dir))?;
        if let Some(who) = run_as {
            sys::allow_traverse(&dir, who).map_err(io_err(
                "make the cluster directory traversable for the postgres user:",
                &dir,
            ))?;
        }
        let data_dir = dir.join("pgdata");
        let data_version = read_pg_version(&data_dir)?;
        let bins = bins::find(opts.bin_dir.as_deref(), data_version.as_deref())?;
        if let Some(v) = &data_version
            && *v != bins.version
        {
            return Err(Error::VersionMismatch {
                data_dir,
                data_version: v.clone(),
                bin_dir: bins.dir,
                bin_version: bins.version,
            });
        }
        if let Some(who) = run_as {
            check_reachable(&bins, &dir, who)?;
        }
        let log_path = dir.join("postgres.log");

        if data_version.is_some() {
            if let Some(cluster) = Self::try_adopt(&dir, &data_dir, &bins, &log_path)? {
                return Ok(cluster);
            }
        } else {
            init(&dir, &data_dir, &bins, run_as, opts.durable)?;
        }

        let socket_dir = socket_dir_for(&dir);
        prepare_socket_dir(&socket_dir, run_as)?;
        let (log, log_start) = open_log(&log_path)?;
        let cmd = postgres_command(&opts, &dir, &data_dir, &socket_dir, &bins, run_as, log)
            .map_err(io_err("open", &log_path))?;
        let program = bins.tool("postgres");
        let (pid, keeper) = Keeper::spawn(cmd).map_err(|source| Error::Spawn {
            program: program.clone(),
            source,
        })?;
        tracing::info!(pid, data_dir = %data_dir.display(), durable = opts.durable, version = %bins.version, "starting embedded PostgreSQL");

        let deadline = Instant::now() + START_TIMEOUT;
        match wait_ready(&data_dir, &bins, pid, Some(&keeper), deadline) {
            Ok(pm) => Ok(Cluster {
                dir,
                data_dir,
                socket_dir: pm.socket_dir,
                port: pm.port,
                bins,
                log_path,
                pid,
                keeper: Some(keeper),
                running: true,
            }),
            Err(reason) => {
                // Don't leave a half-started server behind; its log says why it failed.
                let mut half = Cluster {
                    dir,
                    data_dir: data_dir.clone(),
                    socket_dir,
                    port: 5432,
                    bins,
                    log_path: log_path.clone(),
                    pid,
                    keeper: Some(keeper),
                    running: true,
                };
                if let Err(e) = half.stop() {
                    tracing::warn!(error = %e, "could not stop PostgreSQL after a failed start");
                }
                Err(Error::StartFailed {
                    data_dir,
                    reason,
                    log_tail: log_tail(&log_path, log_start),
                    log: log_path,
                })
            }
        }
    }

    /// Adopts a postmaster that is already running on `data_dir` (e.g. left by a crashed wagate)
    /// instead of starting a second one, which PostgreSQL would refuse anyway.
    fn try_adopt(
        dir: &Path,
        data_dir: &Path,
        bins: &Bins,
        log_path: &Path,
    ) -> Result<Option<Cluster>, Error> {
        let Some(pm) = read_postmaster_pid(data_dir) else {
            return Ok(None);
        };
        if !sys::pid_alive(pm.pid) {
            // PostgreSQL itself discards a postmaster.pid whose pid is dead.
            return Ok(None);
        }
        if sys::is_postgres_process(pm.pid) == Some(false) {
            // After a reboot the pid can belong to an unrelated process; PostgreSQL would then
            // refuse to start ("lock file already exists"), so clear the stale file ourselves.
            tracing::warn!(
                pid = pm.pid,
                "removing stale postmaster.pid: its pid now belongs to another program"
            );
            let pid_file = data_dir.join("postmaster.pid");
            fs::remove_file(&pid_file).map_err(io_err("remove the stale", &pid_file))?;
            return Ok(None);
        }
        if pm.status == "stopping" {
            // Adopting a server that is shutting down would hand out a dead URL: wait it out.
            tracing::info!(
                pid = pm.pid,
                "an earlier PostgreSQL is shutting down; waiting for it"
            );
            let deadline = Instant::now() + FAST_STOP_TIMEOUT;
            while sys::pid_alive(pm.pid) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
            if !sys::pid_alive(pm.pid) {
                return Ok(None);
            }
        }
        tracing::info!(pid = pm.pid, data_dir = %data_dir.display(), "adopting the PostgreSQL that is already running on this data directory");
        let deadline = Instant::now() + START_TIMEOUT;
        match wait_ready(data_dir, bins, pm.pid, None, deadline) {
            Ok(ready) => Ok(Some(Cluster {
                dir: dir.to_path_buf(),
                data_dir: data_dir.to_path_buf(),
                socket_dir: ready.socket_dir,
                port: ready.port,
                bins: bins.clone(),
                log_path: log_path.to_path_buf(),
                pid: pm.pid,
                keeper: None,
                running: true,
            })),
            Err(reason) => Err(Error::StartFailed {
                data_dir: data_dir.to_path_buf(),
                reason: format!(
                    "a PostgreSQL (pid {}) is already running on it but {reason}",
                    pm.pid
                ),
                log_tail: log_tail(log_path, 0),
                log: log_path.to_path_buf(),
            }),
        }
    }

    /// A URL for tokio-postgres, diesel-async and libpq (psql, diesel CLI):
    /// `postgresql://postgres@%2Fsocket%2Fdir:5432/database`.
    ///
    /// The socket dir is percent-encoded into the host: tokio-postgres decodes it and treats a
    /// host starting with `/` as a socket dir. The often-seen `postgres://postgres@localhost/db?host=/dir`
    /// is wrong for tokio-postgres, which adds *both* hosts and tries TCP localhost first.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}@{}:{}/{}",
            percent_encode(self.socket_dir.as_os_str().as_bytes()),
            self.port,
            percent_encode(database.as_bytes())
        )
    }

    /// Directory holding the unix socket `.s.PGSQL.<port>`.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The PostgreSQL bin dir in use; callers run psql, pgbench, pg_dump from here.
    pub fn bin_dir(&self) -> &Path {
        &self.bins.dir
    }

    /// The cluster directory (`ClusterOptions::dir`, canonicalised).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The PostgreSQL data directory, `<dir>/pgdata`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Major version of the binaries, e.g. "15".
    pub fn version(&self) -> &str {
        &self.bins.version
    }

    /// The postmaster's pid while running, `None` once stopped.
    pub fn pid(&self) -> Option<u32> {
        self.running.then_some(self.pid)
    }

    /// True when [`Cluster::start`] found this server already running and adopted it.
    pub fn is_adopted(&self) -> bool {
        self.keeper.is_none()
    }

    /// Fast shutdown (SIGINT to the postmaster / `pg_ctl stop -m fast`), waiting until it has exited. Idempotent.
    ///
    /// Escalates to an immediate shutdown (SIGQUIT) and then SIGKILL if the server does not exit
    /// in time, so a wedged server cannot hang wagate's shutdown forever.
    pub fn stop(&mut self) -> Result<(), Error> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        let pid = self.pid;
        tracing::info!(pid, data_dir = %self.data_dir.display(), "stopping embedded PostgreSQL (fast shutdown)");
        let steps = [
            (libc::SIGINT, FAST_STOP_TIMEOUT, "fast shutdown"),
            (libc::SIGQUIT, IMMEDIATE_STOP_TIMEOUT, "immediate shutdown"),
            (libc::SIGKILL, KILL_TIMEOUT, "SIGKILL"),
        ];
        for (sig, timeout, what) in steps {
            if let Err(e) = sys::signal(pid, sig) {
                tracing::warn!(pid, error = %e, "could not signal PostgreSQL ({what})");
            }
            if self.wait_gone(timeout) {
                if let Some(thread) = self.keeper.as_mut().and_then(|k| k.thread.take()) {
                    let _ = thread.join();
                }
                return Ok(());
            }
            tracing::warn!(
                pid,
                "PostgreSQL did not exit after {what} within {timeout:?}"
            );
        }
        Err(Error::StopFailed {
            pid,
            log: self.log_path.clone(),
        })
    }

    fn wait_gone(&self, timeout: Duration) -> bool {
        match &self.keeper {
            Some(keeper) => keeper.wait_exit(timeout).is_some(),
            None => {
                let deadline = Instant::now() + timeout;
                loop {
                    if !sys::pid_alive(self.pid) {
                        return true;
                    }
                    if Instant::now() >= deadline {
                        return false;
                    }
                    thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "could not stop embedded PostgreSQL");
        }
    }
}

/// Owns the `postgres` child from a dedicated thread. PR_SET_PDEATHSIG fires when the *thread*
/// that forked the child exits, not the process, so the forking thread must live exactly as long
/// as the server: this one spawns it and then blocks in `wait()` until it exits.
#[derive(Debug)]
struct Keeper {
    /// Mutex only so `Cluster` is `Sync` (a `Receiver` is not).
    exit: Mutex<Receiver<io::Result<ExitStatus>>>,
    thread: Option<JoinHandle<()>>,
}

impl Keeper {
    fn spawn(mut cmd: Command) -> io::Result<(u32, Keeper)> {
        let (pid_tx, pid_rx) = mpsc::channel();
        let (exit_tx, exit_rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("embedded-pg-keeper".into())
            .spawn(move || match cmd.spawn() {
                Err(e) => {
                    let _ = pid_tx.send(Err(e));
                }
                Ok(mut child) => {
                    let _ = pid_tx.send(Ok(child.id()));
                    let _ = exit_tx.send(child.wait());
                }
            })?;
        let pid = match pid_rx.recv() {
            Ok(result) => result?,
            Err(_) => return Err(io::Error::other("the keeper thread died before spawning")),
        };
        Ok((
            pid,
            Keeper {
                exit: Mutex::new(exit_rx),
                thread: Some(thread),
            },
        ))
    }

    /// `Some(description)` once the child has exited.
    fn try_exit(&self) -> Option<String> {
        let rx = self.exit.lock().unwrap_or_else(|p| p.into_inner());
        match rx.try_recv() {
            Ok(r) => Some(describe_exit(r)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some("exited".into()),
        }
    }

    fn wait_exit(&self, timeout: Duration) -> Option<String> {
        let rx = self.exit.lock().unwrap_or_else(|p| p.into_inner());
        match rx.recv_timeout(timeout) {
            Ok(r) => Some(describe_exit(r)),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some("exited".into()),
        }
    }
}

fn describe_exit(r: io::Result<ExitStatus>) -> String {
    match r {
        Ok(status) => status.to_string(),
        Err(e) => format!("wait failed: {e}"),
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

/// `Some(major)` for an initialised cluster; an existing non-empty dir without it is refused
/// rather than handed to initdb, which would fail on it anyway.
fn read_pg_version(data_dir: &Path) -> Result<Option<String>, Error> {
    let file = data_dir.join("PG_VERSION");
    match fs::read_to_string(&file) {
        Ok(v) => Ok(Some(v.trim().to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let non_empty = fs::read_dir(data_dir).is_ok_and(|mut e| e.next().is_some());
            if non_empty {
                Err(Error::NotADataDir {
                    path: data_dir.to_path_buf(),
                })
            } else {
                Ok(None)
            }
        }
        Err(e) => Err(io_err("read", &file)(e)),
    }
}

/// Fails early, with advice, when the postgres user cannot run the binaries or reach `dir`:
/// otherwise initdb or postgres would fail later with a bare "Permission denied".
fn check_reachable(bins: &Bins, dir: &Path, who: RunAs) -> Result<(), Error> {
    let program = bins.tool("postgres");
    for (cwd, unreachable) in [(Path::new("/"), &bins.dir), (dir, &dir.to_path_buf())] {
        let result = Command::new(&program)
            .arg("-V")
            .uid(who.uid)
            .gid(who.gid)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match result {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(Error::Unreachable {
                    path: unreachable.clone(),
                });
            }
            Err(source) => return Err(Error::Spawn { program, source }),
        }
    }
    Ok(())
}

/// initdb into `pgdata.init` and rename it into place, so an interrupted initdb never leaves a
/// half-made `pgdata` that the next start would mistake for a cluster.
fn init(
    dir: &Path,
    data_dir: &Path,
    bins: &Bins,
    run_as: Option<RunAs>,
    durable: bool,
) -> Result<(), Error> {
    let tmp = dir.join("pgdata.init");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io_err("remove the leftover", &tmp))?;
    }
    DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(io_err("create", &tmp))?;
    sys::chown_to(&tmp, run_as).map_err(io_err("hand to the postgres user:", &tmp))?;
    let log_path = dir.join("initdb.log");
    let log = File::create(&log_path).map_err(io_err("create", &log_path))?;
    let log2 = log.try_clone().map_err(io_err("open", &log_path))?;

    let program = bins.tool("initdb");
    let mut cmd = Command::new(&program);
    cmd.arg("-D")
        .arg(&tmp)
        .args(["-U", SUPERUSER, "--auth-local=trust", "--auth-host=reject"])
        .args(["-E", "UTF8", "--no-locale"])
        .env_remove("PGDATA")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    if !durable {
        cmd.arg("--no-sync");
    }
    if let Some(who) = run_as {
        cmd.uid(who.uid).gid(who.gid);
    }
    tracing::info!(data_dir = %data_dir.display(), "initialising a new PostgreSQL cluster");
    let status = cmd.status().map_err(|source| Error::Spawn {
        program: program.clone(),
        source,
    })?;
    if !status.success() {
        return Err(Error::InitDb {
            data_dir: data_dir.to_path_buf(),
            status: status.to_string(),
            output: log_tail(&log_path, 0),
            log: log_path,
        });
    }
    fs::rename(&tmp, data_dir).map_err(io_err("move the new cluster into place at", data_dir))?;
    if durable {
        // Make the rename itself durable before anything is stored in the cluster.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync", dir))?;
    }
    Ok(())
}

/// `<dir>/run` when the socket path fits in `sun_path`, else a short dir under /tmp named by a
/// stable hash of `dir` (stable so the same data dir always gets the same socket dir).
pub(crate) fn socket_dir_for(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    if run.join(".s.PGSQL.65535").as_os_str().len() <= MAX_SOCKET_PATH {
        return run;
    }
    // FNV-1a: tiny, and unlike std's DefaultHasher guaranteed not to change between Rust releases.
    let hash = dir
        .as_os_str()
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    PathBuf::from(format!("/tmp/wagate-pg-{hash:016x}"))
}

/// Creates the socket dir (mode 700, owned by the server's user). A pre-existing one must be a
/// real directory owned by us or the postgres user: in /tmp anyone could have planted it.
fn prepare_socket_dir(path: &Path, run_as: Option<RunAs>) -> Result<(), Error> {
    let unsafe_dir = |reason: String| Error::SocketDir {
        path: path.to_path_buf(),
        reason,
    };
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::symlink_metadata(path).map_err(io_err("inspect", path))?;
            if !meta.is_dir() {
                return Err(unsafe_dir(
                    "it is not a directory (a symlink or a file); remove it".into(),
                ));
            }
            // SAFETY: geteuid has no preconditions.
            let me = unsafe { libc::geteuid() };
            if meta.uid() != me && Some(meta.uid()) != run_as.map(|w| w.uid) {
                return Err(unsafe_dir(format!(
                    "it is owned by uid {}, not by us or the postgres user; remove it",
                    meta.uid()
                )));
            }
        }
        Err(e) => return Err(io_err("create the socket directory", path)(e)),
    }
    sys::chown_to(path, run_as).map_err(io_err("hand to the postgres user:", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
        .map_err(io_err("set permissions on", path))
}

/// Opens the server log for appending (rotating it first when large) and returns it with its
/// current length, so a startup failure can show just this run's lines.
fn open_log(log_path: &Path) -> Result<(File, u64), Error> {
    if fs::metadata(log_path).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
        let old = log_path.with_extension("log.1");
        fs::rename(log_path, &old).map_err(io_err("rotate", log_path))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(log_path)
        .map_err(io_err("open", log_path))?;
    let start = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((file, start))
}

fn postgres_command(
    opts: &ClusterOptions,
    dir: &Path,
    data_dir: &Path,
    socket_dir: &Path,
    bins: &Bins,
    run_as: Option<RunAs>,
    log: File,
) -> io::Result<Command> {
    let mut cmd = Command::new(bins.tool("postgres"));
    // unix_socket_directories is a list: quote the path so commas or spaces in it survive.
    let mut sockets = OsString::from("unix_socket_directories=\"");
    sockets.push(std::ffi::OsStr::from_bytes(
        &socket_dir
            .as_os_str()
            .as_bytes()
            .iter()
            .flat_map(|&b| if b == b'"' { vec![b'"', b'"'] } else { vec![b] })
            .collect::<Vec<u8>>(),
    ));
    sockets.push("\"");
    cmd.arg("-D")
        .arg(data_dir)
        .args(["-c", "listen_addresses="])
        .arg("-c")
        .arg(sockets)
        .arg("-c")
        .arg(format!("max_connections={}", opts.max_connections));
    if !opts.durable {
        for s in [
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
        ] {
            cmd.args(["-c", s]);
        }
    }
    for (name, value) in &opts.settings {
        cmd.arg("-c").arg(format!("{name}={value}"));
    }
    // PGPORT would silently change the server's default port.
    cmd.env_remove("PGPORT")
        .env_remove("PGDATA")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if let Some(who) = run_as {
        cmd.uid(who.uid).gid(who.gid);
    }
    if opts.durable {
        // Own session: a Ctrl-C at the terminal goes to wagate, which then stops us in order.
        // SAFETY: setsid is async-signal-safe; the closure allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    } else {
        // Die with the test process, even on SIGKILL. Runs after setuid, which would clear it.
        let parent = libc::pid_t::try_from(sys::getpid()).map_err(io::Error::other)?;
        // SAFETY: prctl and getppid are async-signal-safe; the closure allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGQUIT as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl: then nobody will signal us.
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    Ok(cmd)
}

/// The fields of `postmaster.pid` we use (lines 1, 4, 5 and 8).
#[derive(Debug)]
struct PostmasterPid {
    pid: u32,
    port: u16,
    socket_dir: Option<PathBuf>,
    /// "starting", "stopping", "ready" or "standby".
    status: String,
}

fn read_postmaster_pid(data_dir: &Path) -> Option<PostmasterPid> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let pid = lines.first()?.trim().parse().ok()?;
    let port = lines
        .get(3)
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(5432);
    let socket_dir = lines
        .get(4)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    let status = lines
        .get(7)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    Some(PostmasterPid {
        pid,
        port,
        socket_dir,
        status,
    })
}

struct Ready {
    socket_dir: PathBuf,
    port: u16,
}

/// Waits until postmaster.pid says "ready" for `pid` and pg_isready agrees. The socket dir and
/// port are taken from postmaster.pid, so an adopted server's URL is right whatever it was
/// started with. `Err` carries the reason for the error message.
fn wait_ready(
    data_dir: &Path,
    bins: &Bins,
    pid: u32,
    keeper: Option<&Keeper>,
    deadline: Instant,
) -> Result<Ready, String> {
    let pg_isready = bins.pg_isready();
    let mut poll = Duration::from_millis(10);
    loop {
        match keeper {
            Some(k) => {
                if let Some(status) = k.try_exit() {
                    return Err(format!("postgres exited during startup ({status})"));
                }
            }
            None => {
                if !sys::pid_alive(pid) {
                    return Err("it exited while we waited for it".into());
                }
            }
        }
        if let Some(pm) = read_postmaster_pid(data_dir)
            && pm.pid == pid
            && (pm.status == "ready" || pm.status == "standby")
        {
            let Some(socket_dir) = pm.socket_dir else {
                return Err(
                    "it has no unix socket (was unix_socket_directories overridden to empty?)"
                        .into(),
                );
            };
            let accepting = match &pg_isready {
                None => true,
                Some(tool) => Command::new(tool)
                    .arg("-q")
                    .arg("-h")
                    .arg(&socket_dir)
                    .arg("-p")
                    .arg(pm.port.to_string())
                    .args(["-U", SUPERUSER, "-d", "postgres", "-t", "5"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()),
            };
            if accepting {
                return Ok(Ready {
                    socket_dir,
                    port: pm.port,
                });
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "it was not accepting connections after {}s",
                START_TIMEOUT.as_secs()
            ));
        }
        thread::sleep(poll);
        poll = (poll * 2).min(Duration::from_millis(200));
    }
}

/// The last lines of `path` written after byte `from`, for error messages.
fn log_tail(path: &Path, from: u64) -> String {
    let read = || -> io::Result<String> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        let start = from.max(len.saturating_sub(16 * 1024)).min(len);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
            if tail.trim().is_empty() {
                "(empty)".into()
            } else {
                tail
            }
        }
        Err(e) => format!("(could not read it: {e})"),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters; both tokio-postgres and libpq
/// decode it in the host and database parts of a URL.
pub(crate) fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
