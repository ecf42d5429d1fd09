//! Programs the cross-language tests drive — `buf` and a Python with grpcio —
//! installed on first use from the package registries (npm, PyPI) into
//! `target/test-tools/` and reused afterwards. An exclusive file lock per tool
//! makes parallel tests, and parallel test processes, wait for one install
//! instead of racing; a stamp written last marks an install as complete, so an
//! interrupted one is redone.
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `@bufbuild/buf` from npm.
pub const BUF_VERSION: &str = "1.75.0";

/// Pinned for Python 3.11 (cp311 manylinux wheels exist for each); protobuf
/// is the version grpcio-tools 1.68.1 resolves to (it needs >=5.26.1,<6).
pub const PYTHON_REQUIREMENTS: &[&str] =
    &["grpcio==1.68.1", "grpcio-tools==1.68.1", "protobuf==5.29.6"];

/// An install that takes longer than this is reported as a failure.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// `<target>/test-tools`.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent (the target directory)")
        .join("test-tools")
}

/// The `buf` CLI (a node launcher for the platform binary npm installs).
pub fn buf() -> PathBuf {
    static BUF: OnceLock<PathBuf> = OnceLock::new();
    BUF.get_or_init(|| {
        let bin = |home: &Path| home.join("node_modules/.bin/buf");
        let home = installed(
            &format!("buf-{BUF_VERSION}"),
            BUF_VERSION,
            |home| {
                let out = run(
                    Command::new(bin(home)).arg("--version"),
                    Duration::from_secs(60),
                );
                out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == BUF_VERSION
            },
            |home| {
                run_ok(
                    Command::new("npm")
                        .args(["install", "--no-fund", "--no-audit", "--prefix"])
                        .arg(home)
                        .arg(format!("@bufbuild/buf@{BUF_VERSION}")),
                    INSTALL_TIMEOUT,
                );
            },
        );
        bin(&home)
    })
    .clone()
}

/// A Python interpreter (in its own venv) that can `import grpc, grpc_tools`.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let bin = |home: &Path| home.join("venv/bin/python");
            let stamp = PYTHON_REQUIREMENTS.join(" ");
            let home = installed(
                "python-grpcio",
                &stamp,
                |home| {
                    run(
                        Command::new(bin(home)).args(["-c", "import grpc, grpc_tools.protoc"]),
                        Duration::from_secs(60),
                    )
                    .status
                    .success()
                },
                |home| {
                    let venv = home.join("venv");
                    let python = bin(home);
                    let with_pip = run(
                        Command::new("python3").args(["-m", "venv"]).arg(&venv),
                        INSTALL_TIMEOUT,
                    );
                    let mut pip = if with_pip.status.success() {
                        let mut c = Command::new(&python);
                        c.args(["-m", "pip"]);
                        c
                    } else {
                        // A Python without ensurepip (Debian without python3-venv):
                        // a bare venv, filled by the system pip from outside.
                        let _ = fs::remove_dir_all(&venv);
                        run_ok(
                            Command::new("python3")
                                .args(["-m", "venv", "--without-pip"])
                                .arg(&venv),
                            INSTALL_TIMEOUT,
                        );
                        let mut c = Command::new("python3");
                        c.args(["-m", "pip", "--python"]).arg(&python);
                        c
                    };
                    run_ok(
                        pip.args([
                            "install",
                            "--disable-pip-version-check",
                            "--no-input",
                            // Never build grpcio from source (that takes most of an hour).
                            "--only-binary=:all:",
                        ])
                        .args(PYTHON_REQUIREMENTS),
                        INSTALL_TIMEOUT,
                    );
                },
            );
            bin(&home)
        })
        .clone()
}

/// `<root>/<name>`, installed by `install` unless a complete install with the
/// same `stamp` is there and `works`. Holds `<root>/<name>.lock` throughout.
fn installed(
    name: &str,
    stamp: &str,
    works: impl Fn(&Path) -> bool,
    install: impl FnOnce(&Path),
) -> PathBuf {
    let root = root();
    fs::create_dir_all(&root).expect("create target/test-tools");
    let _lock = Flock::exclusive(&root.join(format!("{name}.lock")));
    let home = root.join(name);
    let stamp_file = home.join(".installed");
    if fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp) && works(&home) {
        return home;
    }
    if home.exists() {
        fs::remove_dir_all(&home).expect("remove an incomplete or outdated install");
    }
    fs::create_dir_all(&home).expect("create the tool directory");
    let started = Instant::now();
    install(&home);
    assert!(
        works(&home),
        "{name} was installed into {} but does not work",
        home.display()
    );
    fs::write(&stamp_file, stamp).expect("write the install stamp");
    eprintln!(
        "installed {name} ({stamp}) into {} in {:.1?}",
        home.display(),
        started.elapsed()
    );
    home
}

/// An exclusive `flock` held until dropped. (libc rather than
/// `File::lock`, which needs Rust 1.89 while the crate's MSRV is 1.88.)
struct Flock(File);

impl Flock {
    fn exclusive(path: &Path) -> Flock {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        loop {
            // SAFETY: the fd belongs to `file`, alive for the call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Flock(file);
            }
            let err = std::io::Error::last_os_error();
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::Interrupted,
                "lock {}: {err}",
                path.display()
            );
        }
    }
}

impl Drop for Flock {
    fn drop(&mut self) {
        // SAFETY: as above; closing the file would release it too.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Runs `cmd` to completion with no input, capturing its output; kills it
/// and panics if it takes longer than `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {desc}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{desc} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// [`run`], panicking with the output unless the command succeeded.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let out = run(cmd, timeout);
    assert!(out.status.success(), "{desc} failed: {}", describe(&out));
    out
}

/// Exit status, stdout and stderr, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
