//! The real `wagate` binary with no DATABASE_URL: it runs its own PostgreSQL
//! in `--data-dir`, from the machine's binaries. Start-up from nothing, a
//! clean stop on SIGTERM that takes PostgreSQL down too, a restart that keeps
//! the data, refusal of a data directory another wagate holds, and a clear
//! error without PostgreSQL binaries.
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::Rest;

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const REFUSE_TIMEOUT: Duration = Duration::from_secs(15);

/// A short directory under /tmp (the PostgreSQL socket path must be short).
fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("wgemb")
        .tempdir_in("/tmp")
        .expect("tempdir")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// The postmaster pid recorded in `<data>/postgres/pgdata/postmaster.pid`.
fn postmaster_pid(data: &Path) -> Option<i32> {
    std::fs::read_to_string(data.join("postgres/pgdata/postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// One `wagate` process. Dropping it (a failed test included) SIGKILLs and
/// reaps it, and takes down a PostgreSQL it left behind.
struct Wagate {
    child: Option<Child>,
    pid: i32,
    port: u16,
    data: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Wagate {
    /// `wagate --data-dir <data> --listen 127.0.0.1:<free port> --log-format json`,
    /// with no database configured in its environment; output goes to
    /// `<logs>/<name>.{stdout,stderr}`.
    fn spawn(data: &Path, logs: &Path, name: &str, env: &[(&str, &str)]) -> Wagate {
        let port = free_port();
        let stdout = logs.join(format!("{name}.stdout"));
        let stderr = logs.join(format!("{name}.stderr"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wagate"));
        cmd.arg("--data-dir")
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--log-format", "json"]);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if ["WAGATE_", "META_", "WHATSAPP_", "PG"]
                .iter()
                .any(|p| k.starts_with(p))
                || k == "DATABASE_URL"
                || k == "TEST_DATABASE_URL"
            {
                cmd.env_remove(&key);
            }
        }
        cmd.env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"));
        let child = cmd.spawn().expect("spawn wagate");
        Wagate {
            pid: i32::try_from(child.id()).expect("pid"),
            child: Some(child),
            port,
            data: data.to_path_buf(),
            stdout,
            stderr,
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout(),
            self.stderr()
        )
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().expect("try_wait")?;
        self.child = None;
        Some(status)
    }

    /// Polls `/health` until it answers 200; panics (with the logs) if
    /// wagate exits first or `timeout` passes.
    async fn wait_serving(&mut self, timeout: Duration) {
        wagate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let url = format!("{}/health", self.base());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                panic!("wagate exited ({status}) before serving:\n{}", self.logs());
            }
            if let Ok(r) = http.get(&url).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "wagate did not serve /health within {timeout:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the process to exit; panics (with the logs) after `timeout`.
    async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "wagate did not exit within {timeout:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then a clean exit (status 0) within the bound.
    async fn terminate(&mut self) {
        // SAFETY: signalling our own child, not yet reaped (so its pid is ours).
        assert_eq!(unsafe { libc::kill(self.pid, libc::SIGTERM) }, 0);
        let status = self.wait_exit(STOP_TIMEOUT).await;
        assert_eq!(
            status.code(),
            Some(0),
            "wagate exit after SIGTERM: {status}\n{}",
            self.logs()
        );
    }
}

impl Drop for Wagate {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A postmaster outliving its wagate (it should not) is stopped too,
        // so no failed test leaves a PostgreSQL running on the machine.
        if let Some(pid) = postmaster_pid(&self.data)
            && alive(pid)
        {
            // SAFETY: the pid is the postmaster of this test's own data dir.
            unsafe { libc::kill(pid, libc::SIGQUIT) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// After a clean stop no PostgreSQL serves the data dir: `postmaster.pid` is
/// gone (or names a dead process).
async fn assert_postgres_gone(data: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(pid) = postmaster_pid(data) {
        if !alive(pid) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "postmaster {pid} for {} still runs after wagate exited",
            data.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn starts_from_an_empty_data_dir_stops_on_sigterm_and_restarts_with_its_data() {
    let tmp = tempdir();
    let data = tmp.path().join("data");

    let started = Instant::now();
    let mut first = Wagate::spawn(&data, tmp.path(), "first", &[]);
    first.wait_serving(START_TIMEOUT).await;
    eprintln!("first start (initdb included): {:.1?}", started.elapsed());
    assert!(
        data.join("postgres/pgdata/PG_VERSION").is_file(),
        "no cluster in {}",
        data.display()
    );
    let rest = Rest::new(&first.base());
    let (status, reg) = rest
        .post(
            "/auth/register",
            None,
            serde_json::json!({"email": "embedded@example.com", "password": "correct horse battery", "name": "Embedded"}),
        )
        .await;
    assert_eq!(status, 201, "{reg}");
    let key = reg["data"]["apiKey"].as_str().expect("apiKey").to_owned();
    let org_id = reg["data"]["organization"]["id"].clone();
    assert!(
        postmaster_pid(&data).is_some_and(alive),
        "no live postmaster"
    );
    first.terminate().await;
    assert_postgres_gone(&data).await;
    // --log-format json: every log line is a JSON object.
    let logs = first.stdout();
    assert!(!logs.trim().is_empty(), "no logs: {}", first.logs());
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v.is_object(), "{line}");
    }
    drop(first);

    let started = Instant::now();
    let mut second = Wagate::spawn(&data, tmp.path(), "second", &[]);
    second.wait_serving(START_TIMEOUT).await;
    eprintln!("restart: {:.1?}", started.elapsed());
    let (status, me) = Rest::new(&second.base()).get("/auth/me", Some(&key)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["organization"]["id"], org_id);
    assert_eq!(me["data"]["user"]["email"], "embedded@example.com");
    second.terminate().await;
    assert_postgres_gone(&data).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_wagate_on_a_busy_data_dir_is_refused_and_the_first_keeps_serving() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    let mut first = Wagate::spawn(&data, tmp.path(), "first", &[]);
    first.wait_serving(START_TIMEOUT).await;

    let started = Instant::now();
    let mut second = Wagate::spawn(&data, tmp.path(), "second", &[]);
    let status = second.wait_exit(REFUSE_TIMEOUT).await;
    assert!(
        !status.success(),
        "second wagate: {status}\n{}",
        second.logs()
    );
    let stderr = second.stderr();
    assert!(
        stderr.contains("in use by another wagate"),
        "{}",
        second.logs()
    );
    assert!(
        stderr.contains(&format!("pid {}", first.pid)),
        "the message names the holder: {stderr}"
    );
    eprintln!("refused in {:.1?}", started.elapsed());

    // The first still serves, database included.
    assert!(
        first.try_exit().is_none(),
        "first exited:\n{}",
        first.logs()
    );
    let (status, reg) = Rest::new(&first.base())
        .post(
            "/auth/register",
            None,
            serde_json::json!({"email": "busy@example.com", "password": "correct horse battery", "name": "Busy"}),
        )
        .await;
    assert_eq!(status, 201, "{reg}");
    first.terminate().await;
    assert_postgres_gone(&data).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_postgresql_binaries_it_says_to_install_them_or_set_database_url() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    let mut w = Wagate::spawn(
        &data,
        tmp.path(),
        "nobins",
        &[("PG_BIN_DIR", "/nonexistent")],
    );
    let status = w.wait_exit(REFUSE_TIMEOUT).await;
    assert!(!status.success(), "{status}\n{}", w.logs());
    let stderr = w.stderr();
    assert!(stderr.contains("Install PostgreSQL"), "{}", w.logs());
    assert!(stderr.contains("DATABASE_URL"), "{}", w.logs());
    assert!(stderr.contains("/nonexistent"), "{}", w.logs());
    assert!(!data.join("postgres/pgdata").exists());
}
