use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{percent_encode, socket_dir_for};
use crate::{Cluster, ClusterOptions, DataDirLock, Error, bins, sys};

/// Short paths under /tmp: socket paths are limited to ~107 bytes. Mode 700 like a private
/// directory, so `start` has to open it up (o+x) for the postgres user when we are root.
fn tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix("epg")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in("/tmp")
        .expect("create a tempdir in /tmp")
}

/// Runs SQL through psql with the cluster's own URL, so the URL format is checked by libpq.
fn psql(cluster: &Cluster, db: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(cluster.bin_dir().join("psql"))
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(cluster.url(db))
        .args(["-c", sql])
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn wait_dead(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !sys::pid_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn am_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn starts_from_an_empty_dir_and_answers_psql() {
    let tmp = tempdir();
    let cluster = Cluster::start(ClusterOptions::throwaway(tmp.path())).expect("start");
    let url = cluster.url("postgres");
    assert!(
        url.starts_with("postgresql://postgres@%2Ftmp%2Fepg"),
        "unexpected url {url}"
    );
    assert!(url.ends_with(":5432/postgres"), "unexpected url {url}");
    assert_eq!(psql(&cluster, "postgres", "select 1").as_deref(), Ok("1"));
    assert_eq!(cluster.socket_dir(), tmp.path().join("run"));
    assert!(cluster.socket_dir().join(".s.PGSQL.5432").exists());
    assert!(cluster.bin_dir().join("pg_isready").exists());
    assert!(!cluster.is_adopted());
    // Throwaway settings, unix socket only, UTF8, superuser postgres.
    assert_eq!(
        psql(&cluster, "postgres", "show fsync").as_deref(),
        Ok("off")
    );
    assert_eq!(
        psql(&cluster, "postgres", "show listen_addresses").as_deref(),
        Ok("")
    );
    assert_eq!(
        psql(&cluster, "postgres", "show server_encoding").as_deref(),
        Ok("UTF8")
    );
    assert_eq!(
        psql(&cluster, "postgres", "select current_user").as_deref(),
        Ok("postgres")
    );
    // Trust on the unix socket only; TCP (were it ever enabled) is rejected.
    assert_eq!(
        psql(
            &cluster,
            "postgres",
            "select string_agg(distinct type || ':' || auth_method, ',') from pg_hba_file_rules"
        )
        .as_deref(),
        Ok("host:reject,local:trust")
    );
    // A database name that needs percent-encoding round-trips through the URL.
    psql(&cluster, "postgres", r#"create database "odd name/ü""#).expect("createdb");
    assert_eq!(
        psql(&cluster, "odd name/ü", "select current_database()").as_deref(),
        Ok("odd name/ü")
    );
}

#[test]
fn restart_reuses_the_cluster() {
    let tmp = tempdir();
    let mut first = Cluster::start(ClusterOptions::durable(tmp.path())).expect("first start");
    assert_eq!(psql(&first, "postgres", "show fsync").as_deref(), Ok("on"));
    psql(
        &first,
        "postgres",
        "create table kept (v int); insert into kept values (42)",
    )
    .expect("create table");
    let first_pid = first.pid().expect("running");
    first.stop().expect("stop");
    first.stop().expect("stop is idempotent");
    assert_eq!(first.pid(), None);
    assert!(!sys::pid_alive(first_pid));
    let initdb_log = std::fs::metadata(tmp.path().join("initdb.log"))
        .and_then(|m| m.modified())
        .expect("initdb.log");
    drop(first);

    let second = Cluster::start(ClusterOptions::durable(tmp.path())).expect("second start");
    assert_eq!(
        psql(&second, "postgres", "select v from kept").as_deref(),
        Ok("42")
    );
    assert!(!second.is_adopted());
    let again = std::fs::metadata(tmp.path().join("initdb.log"))
        .and_then(|m| m.modified())
        .expect("initdb.log");
    assert_eq!(initdb_log, again, "initdb ran again on an existing cluster");
}

#[test]
fn adopts_a_server_left_running() {
    let tmp = tempdir();
    let crashed = Cluster::start(ClusterOptions::durable(tmp.path())).expect("start");
    let pid = crashed.pid().expect("running");
    // Simulate a wagate that died without stopping its cluster.
    std::mem::forget(crashed);

    let mut adopted = Cluster::start(ClusterOptions::durable(tmp.path())).expect("adopt");
    assert!(adopted.is_adopted());
    assert_eq!(adopted.pid(), Some(pid));
    assert_eq!(psql(&adopted, "postgres", "select 1").as_deref(), Ok("1"));
    adopted.stop().expect("stop the adopted server");
    assert!(
        wait_dead(pid, Duration::from_secs(10)),
        "adopted server still alive"
    );
}

#[test]
fn drop_stops_the_server() {
    let tmp = tempdir();
    let cluster = Cluster::start(ClusterOptions::throwaway(tmp.path())).expect("start");
    let pid = cluster.pid().expect("running");
    let socket = cluster.socket_dir().join(".s.PGSQL.5432");
    assert!(socket.exists());
    drop(cluster);
    assert!(
        !sys::pid_alive(pid),
        "postmaster {pid} still alive after drop"
    );
    assert!(!socket.exists(), "socket left behind after drop");
}

#[test]
fn survives_the_starting_thread_exiting() {
    // PR_SET_PDEATHSIG fires when the forking *thread* exits: the keeper thread must own it.
    let tmp = tempdir();
    let dir = tmp.path().to_path_buf();
    let cluster = std::thread::spawn(move || Cluster::start(ClusterOptions::throwaway(dir)))
        .join()
        .expect("thread")
        .expect("start");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(psql(&cluster, "postgres", "select 1").as_deref(), Ok("1"));
}

#[test]
fn long_dir_gets_a_short_socket_dir() {
    let tmp = tempdir();
    // Only `dir` itself is opened up for the postgres user, never its parents.
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .expect("chmod");
    let dir = tmp.path().join("a".repeat(60)).join("b".repeat(60));
    let cluster = Cluster::start(ClusterOptions::throwaway(&dir)).expect("start");
    assert!(
        cluster
            .socket_dir()
            .to_string_lossy()
            .starts_with("/tmp/wagate-pg-"),
        "{}",
        cluster.socket_dir().display()
    );
    assert_eq!(psql(&cluster, "postgres", "select 1").as_deref(), Ok("1"));
    let socket_dir = cluster.socket_dir().to_path_buf();
    drop(cluster);
    let _ = std::fs::remove_dir(socket_dir);
}

#[test]
fn second_lock_is_busy_with_a_clear_message() {
    let tmp = tempdir();
    let lock = DataDirLock::acquire(tmp.path()).expect("first lock");
    assert_eq!(lock.path(), tmp.path().join("wagate.lock"));
    let err = DataDirLock::acquire(tmp.path()).expect_err("second lock must fail");
    let me = std::process::id();
    assert!(
        matches!(err, Error::Busy { pid: Some(p), .. } if p == me),
        "{err:?}"
    );
    let msg = err.to_string();
    assert_eq!(
        msg,
        format!(
            "data directory {} is in use by another wagate (pid {me}); stop it or choose another --data-dir",
            tmp.path().display()
        )
    );
    drop(lock);
    DataDirLock::acquire(tmp.path()).expect("lock is free again after drop");
}

#[test]
fn empty_bin_dir_is_a_clear_error() {
    let tmp = tempdir();
    let bin = tempdir();
    let opts = ClusterOptions {
        bin_dir: Some(bin.path().to_path_buf()),
        ..ClusterOptions::throwaway(tmp.path())
    };
    let err = Cluster::start(opts).expect_err("no binaries");
    assert!(matches!(err, Error::NoBinaries { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("PostgreSQL server binaries (initdb, postgres) were not found in "),
        "{msg}"
    );
    assert!(msg.contains(&bin.path().display().to_string()), "{msg}");
    assert!(msg.contains("apt-get install postgresql"), "{msg}");
    assert!(msg.contains("DATABASE_URL"), "{msg}");
}

#[test]
fn unreachable_dir_is_a_clear_error_when_root() {
    if !am_root() {
        return;
    }
    // Like /root: mode 700, owned by root, so the postgres user cannot traverse it.
    let tmp = tempdir();
    let inner = tmp.path().join("data");
    let err = Cluster::start(ClusterOptions::throwaway(&inner)).expect_err("unreachable");
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("--data-dir"), "{msg}");
    assert!(msg.contains(&inner.display().to_string()), "{msg}");
}

#[test]
fn startup_failure_shows_the_server_log() {
    let tmp = tempdir();
    let opts = ClusterOptions {
        settings: vec![("no_such_setting".into(), "1".into())],
        ..ClusterOptions::throwaway(tmp.path())
    };
    let err = Cluster::start(opts).expect_err("bad setting");
    let msg = err.to_string();
    assert!(matches!(err, Error::StartFailed { .. }), "{err:?}");
    assert!(msg.contains("no_such_setting"), "{msg}");
}

#[test]
fn garbage_data_dir_is_refused() {
    let tmp = tempdir();
    std::fs::create_dir(tmp.path().join("pgdata")).expect("mkdir");
    std::fs::write(tmp.path().join("pgdata/notes.txt"), "mine").expect("write");
    let err = Cluster::start(ClusterOptions::throwaway(tmp.path())).expect_err("not a cluster");
    assert!(matches!(err, Error::NotADataDir { .. }), "{err:?}");
}

/// Runs itself as a child process (the env var tells the two apart) that
/// starts a cluster and is then SIGKILLed: the cluster must die with it.
#[test]
fn sigkill_takes_the_server_down() {
    if let Some(dir) = std::env::var_os("EPG_SIGKILL_CHILD_DIR") {
        let cluster = Cluster::start(ClusterOptions::throwaway(PathBuf::from(dir))).expect("start");
        println!("PGPID {}", cluster.pid().expect("running"));
        std::thread::sleep(Duration::from_secs(120));
        return;
    }
    let tmp = tempdir();
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "tests::sigkill_takes_the_server_down",
            "--nocapture",
        ])
        .env("EPG_SIGKILL_CHILD_DIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn helper");
    let stdout = child.stdout.take().expect("stdout");
    let pid: u32 = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("PGPID ").and_then(|p| p.trim().parse().ok()))
        .expect("helper printed the postmaster pid");
    assert!(sys::pid_alive(pid));
    child.kill().expect("SIGKILL the helper");
    child.wait().expect("reap the helper");
    assert!(
        wait_dead(pid, Duration::from_secs(15)),
        "postmaster {pid} survived its SIGKILLed parent"
    );
}

#[test]
fn parses_major_versions() {
    assert_eq!(
        bins::major_version("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n").as_deref(),
        Some("15")
    );
    assert_eq!(
        bins::major_version("postgres (PostgreSQL) 17beta1").as_deref(),
        Some("17")
    );
    assert_eq!(
        bins::major_version("postgres (PostgreSQL) 9.6.24").as_deref(),
        Some("9.6")
    );
    assert_eq!(bins::major_version("garbage"), None);
}

#[test]
fn percent_encodes_socket_dirs() {
    assert_eq!(percent_encode(b"/tmp/a b"), "%2Ftmp%2Fa%20b");
    assert_eq!(percent_encode(b"db_1-x.y~"), "db_1-x.y~");
}

#[test]
fn socket_dir_is_short_and_stable() {
    let short = Path::new("/tmp/x");
    assert_eq!(socket_dir_for(short), Path::new("/tmp/x/run"));
    let long = PathBuf::from(format!("/tmp/{}", "d".repeat(100)));
    let a = socket_dir_for(&long);
    assert_eq!(a, socket_dir_for(&long));
    assert!(a.as_os_str().len() < 40, "{}", a.display());
    assert_ne!(a, socket_dir_for(&long.join("other")));
}

#[test]
fn cluster_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Cluster>();
    check::<DataDirLock>();
}
