//! Transport failures say which phase failed: not sent (safe to retry) or
//! ambiguous (the request may have reached Meta).
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use url::Url;
use wagate_meta::graph::messages::{MessagePayload, SendMessage};
use wagate_meta::{ErrorClass, GraphClient, GraphConfig, GraphError};

fn client(base: &str, request_timeout: Duration) -> GraphClient {
    let mut config = GraphConfig::new(Url::parse(base).unwrap(), "v23.0");
    config.connect_timeout = Duration::from_millis(500);
    config.request_timeout = request_timeout;
    GraphClient::new(config).unwrap()
}

fn message() -> SendMessage {
    SendMessage::to("+16505551234", MessagePayload::text("hi")).callback_data("outbox-1")
}

#[test]
fn building_clients_repeatedly_does_not_panic() {
    // The ring provider may already be installed (by us or the host).
    let _ = rustls::crypto::ring::default_provider().install_default();
    for _ in 0..3 {
        GraphClient::new(GraphConfig::meta().unwrap()).unwrap();
    }
}

#[tokio::test]
async fn closed_port_is_not_sent() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = client(&format!("http://{addr}/"), Duration::from_secs(5));
    let err = c.send_message("t", "1", &message()).await.unwrap_err();
    assert!(matches!(err, GraphError::NotSent(_)), "{err:?}");
    assert_eq!(err.class(), ErrorClass::RetrySameMessage);
    assert!(err.is_retryable());
    assert!(err.to_string().contains("not sent"), "{err}");
}

#[tokio::test]
async fn unroutable_address_is_not_sent() {
    // TEST-NET-1: either unreachable at once or silent until the connect
    // timeout; both are connect-phase failures.
    let c = client("http://192.0.2.1:81/", Duration::from_secs(10));
    let started = Instant::now();
    let err = c.send_message("t", "1", &message()).await.unwrap_err();
    assert!(matches!(err, GraphError::NotSent(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "connect timeout not applied"
    );
}

/// Accepts connections, reports how many request bytes arrived, then either
/// keeps the socket open without answering or drops it.
async fn black_hole(drop_after_read: bool) -> (String, mpsc::UnboundedReceiver<usize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = vec![0u8; 64 * 1024];
            let n = sock.read(&mut buf).await.unwrap_or(0);
            let _ = tx.send(n);
            if !drop_after_read {
                held.push(sock);
            }
        }
    });
    (format!("http://{addr}/"), rx)
}

#[tokio::test]
async fn silence_after_request_is_ambiguous() {
    let (base, mut seen) = black_hole(false).await;
    let c = client(&base, Duration::from_millis(400));
    let started = Instant::now();
    let err = c.send_message("t", "1", &message()).await.unwrap_err();
    assert!(matches!(err, GraphError::Ambiguous(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        seen.recv().await.unwrap() > 0,
        "the request reached the server"
    );
    assert_eq!(err.class(), ErrorClass::Ambiguous);
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("do not resend"), "{err}");
}

#[tokio::test]
async fn reset_after_request_is_ambiguous() {
    let (base, mut seen) = black_hole(true).await;
    let c = client(&base, Duration::from_secs(5));
    let err = c.send_message("t", "1", &message()).await.unwrap_err();
    assert!(seen.recv().await.unwrap() > 0);
    assert!(matches!(err, GraphError::Ambiguous(_)), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn errors_never_show_secrets_from_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = client(&format!("http://{addr}/"), Duration::from_secs(5));
    let err = c
        .exchange_code("123", "s3cret-app-secret", "code")
        .await
        .unwrap_err();
    let shown = format!("{err} / {err:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
}
