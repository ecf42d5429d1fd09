//! wagate from other people's clients: `buf curl` (Go's connect-go, over gRPC
//! with server reflection and over grpc-web on HTTP/1.1), `buf lint` on our
//! protos, and Python's grpcio with stubs generated from `proto/`. The tools
//! install themselves on first use (see `harness::tools`).
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::TestServer;
use crate::harness::tools::{self, describe};

const CALL_TIMEOUT: Duration = Duration::from_secs(60);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command off the async runtime (the server under test shares it).
async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || tools::run(&mut cmd, CALL_TIMEOUT))
        .await
        .expect("command thread")
}

async fn buf() -> PathBuf {
    tokio::task::spawn_blocking(tools::buf)
        .await
        .expect("buf installs")
}

async fn python() -> PathBuf {
    tokio::task::spawn_blocking(tools::python)
        .await
        .expect("python installs")
}

fn buf_command(buf: &Path) -> Command {
    let mut cmd = Command::new(buf);
    cmd.env("BUF_CACHE_DIR", tools::root().join("buf-cache"))
        .current_dir(repo());
    cmd
}

fn json_out(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(out)))
}

#[tokio::test(flavor = "multi_thread")]
async fn buf_curl_speaks_grpc_with_reflection_and_grpc_web_over_http1() {
    let buf = buf().await;
    let s = TestServer::start().await;
    let url = |method: &str| format!("{}/wagate.v1.AccountService/{method}", s.base);

    // Register over gRPC (h2c); the schema comes from server reflection.
    let mut register = buf_command(&buf);
    register
        .args(["curl", "--protocol", "grpc", "--http2-prior-knowledge", "-d"])
        .arg(
            json!({"email": "curl@example.com", "password": "correct horse battery", "name": "Curl Co"})
                .to_string(),
        )
        .arg(url("Register"));
    let out = run(register).await;
    assert!(out.status.success(), "Register: {}", describe(&out));
    let registered = json_out(&out);
    let key = registered["data"]["apiKey"]
        .as_str()
        .unwrap_or_else(|| panic!("apiKey in {registered}"))
        .to_owned();
    assert!(key.starts_with("sk_org_"), "{key}");

    let (status, me) = s.rest().get("/auth/me", Some(&key)).await;
    assert_eq!(status, 200, "{me}");
    let org_id = me["data"]["organization"]["id"].clone();
    assert_eq!(registered["data"]["organization"]["id"], org_id);
    assert_eq!(me["data"]["user"]["email"], "curl@example.com");

    // GetMe over gRPC with the key, then over grpc-web. Reflection needs
    // HTTP/2, so the grpc-web call reads the schema from our buf module
    // instead, and buf curl then speaks HTTP/1.1 to an http:// URL.
    let bearer = format!("Authorization: Bearer {key}");
    let mut grpc = buf_command(&buf);
    grpc.args([
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "-H",
    ])
    .arg(&bearer)
    .arg(url("GetMe"));
    let mut grpc_web = buf_command(&buf);
    grpc_web
        .args(["curl", "--protocol", "grpcweb", "--schema", ".", "-v", "-H"])
        .arg(&bearer)
        .arg(url("GetMe"));
    for (name, cmd) in [("grpc", grpc), ("grpc-web", grpc_web)] {
        let out = run(cmd).await;
        assert!(
            out.status.success(),
            "GetMe over {name}: {}",
            describe(&out)
        );
        let got = json_out(&out);
        assert_eq!(got["data"]["organization"]["id"], org_id, "{name}: {got}");
        assert_eq!(
            got["data"]["user"]["email"], me["data"]["user"]["email"],
            "{name}: {got}"
        );
        if name == "grpc-web" {
            let verbose = String::from_utf8_lossy(&out.stderr);
            assert!(
                verbose.contains("< (#1) HTTP/1.1 200"),
                "not over HTTP/1.1: {verbose}"
            );
        }
    }

    // No key: a non-zero exit naming the gRPC code.
    let mut anonymous = buf_command(&buf);
    anonymous
        .args(["curl", "--protocol", "grpc", "--http2-prior-knowledge"])
        .arg(url("GetMe"));
    let out = run(anonymous).await;
    assert!(
        !out.status.success(),
        "GetMe without a key: {}",
        describe(&out)
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("unauthenticated"), "{text}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn buf_lint_passes_on_our_protos() {
    let buf = buf().await;
    let mut lint = buf_command(&buf);
    lint.arg("lint");
    let out = run(lint).await;
    assert!(out.status.success(), "buf lint: {}", describe(&out));
}

/// Every `.proto` under `proto/<sub>`, relative to `proto/`.
fn protos(sub: &str) -> Vec<String> {
    let dir = repo().join("proto").join(sub);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".proto"))
        .map(|n| format!("{sub}/{n}"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .proto files in {}", dir.display());
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn python_grpcio_registers_and_reads_the_account_back() {
    let python = python().await;
    let stubs = tempfile::tempdir().expect("tempdir");
    let mut protoc = Command::new(&python);
    protoc
        .current_dir(repo())
        .args(["-m", "grpc_tools.protoc", "-I", "proto"])
        .arg(format!("--python_out={}", stubs.path().display()))
        .arg(format!("--grpc_python_out={}", stubs.path().display()))
        .args(protos("wagate/v1"))
        .args(protos("google/api"));
    let out = run(protoc).await;
    assert!(out.status.success(), "protoc: {}", describe(&out));

    let s = TestServer::start().await;
    let addr = s.running.as_ref().expect("running").addr;
    let mut client = Command::new(&python);
    client
        .arg(repo().join("tests/python/wagate_client.py"))
        .arg(addr.to_string())
        .arg(stubs.path());
    let out = run(client).await;
    assert!(out.status.success(), "wagate_client.py: {}", describe(&out));
    let line = String::from_utf8_lossy(&out.stdout);
    let got: Value = serde_json::from_str(line.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("last line is not JSON ({e}): {}", describe(&out)));

    let key = got["key"].as_str().expect("key").to_owned();
    let (status, me) = s.rest().get("/auth/me", Some(&key)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(got["orgId"], me["data"]["organization"]["id"], "{got} {me}");
    assert_eq!(got["email"], me["data"]["user"]["email"], "{got} {me}");
    let plan = me["data"]["organization"]["plan"]
        .as_str()
        .expect("plan")
        .to_uppercase();
    assert_eq!(got["plan"], format!("PLAN_{plan}"), "{got} {me}");
    s.stop().await;
}
