//! The README's quick start, run as written against a fresh sandbox server.
use crate::harness::{TestServer, tools};

/// The ```sh block of README.md that starts with `# quickstart`.
fn quickstart() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split("\n```").next())
        .find(|b| b.starts_with("# quickstart"))
        .expect("a quickstart block in README.md")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_quick_start_works_as_written() {
    let buf = tools::buf();
    let s = TestServer::start().await;
    let script = format!("set -euo pipefail\n{}", quickstart());
    let path = format!(
        "{}:{}",
        buf.parent().expect("buf dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("BASE", &s.base)
        .env("PATH", path)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .await
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "quick start failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // Step by step, what a reader sees.
    assert!(stdout.contains(r#""email":"you@example.com""#), "{stdout}");
    assert!(stdout.contains(r#""ok":true"#), "verify passes: {stdout}");
    assert!(stdout.contains(r#""canSendMessages":true"#), "{stdout}");
    assert!(
        stdout.contains(r#""status":"read""#),
        "the message reached read: {stdout}"
    );
    assert!(
        stdout.contains(r#""contactIdentifier":"5491155551234""#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#""contactName":"Ana""#),
        "the inbound reached the conversation: {stdout}"
    );
    assert!(
        stdout.contains(r#""url":"https://yourapp.com/webhooks/whatsapp""#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#""plan": "PLAN_BASIC""#) || stdout.contains("PLAN_BASIC"),
        "buf curl over gRPC: {stdout}"
    );
    assert!(
        stdout.contains("canReceiveMessages"),
        "buf curl over grpc-web: {stdout}"
    );
    s.stop().await;
}
