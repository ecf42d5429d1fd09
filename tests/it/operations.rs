//! /health, /ready, /metrics, request ids, graceful shutdown, reflection and
//! the standard health service.
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread")]
async fn health_ready_and_metrics() {
    let s = TestServer::start().await;
    let (status, health) = s.rest().get("/health", None).await;
    assert_eq!(status, 200);
    assert_eq!(health["data"]["status"], "ok");
    assert!(health["data"]["uptimeSeconds"].as_f64().is_some());

    let (status, ready) = s.rest().get("/ready", None).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["data"]["ready"], true);
    assert_eq!(ready["data"]["checks"]["database"], "ok");

    s.register("metrics@example.com").await;
    s.rest().get("/nope", None).await;
    let r = s.rest().send("GET", "/metrics", None, None, &[]).await;
    assert_eq!(r.status, 200);
    assert!(
        r.text
            .contains(r#"wagate_http_requests_total{route="POST /auth/register",code="201"} 1"#),
        "{}",
        r.text
    );
    assert!(r.text.contains(r#"route="not_found",code="404""#));
    assert!(
        r.text
            .contains("wagate_http_request_duration_seconds_bucket")
    );
    assert!(
        r.text
            .contains(r#"wagate_db_pool_connections{state="max"} 8"#)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn request_ids_are_echoed_or_generated() {
    let s = TestServer::start().await;
    let r = s
        .rest()
        .send("GET", "/health", None, None, &[("x-request-id", "req-123")])
        .await;
    assert_eq!(
        r.headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        Some("req-123")
    );
    let r = s.rest().send("GET", "/health", None, None, &[]).await;
    let id = r
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("generated id");
    assert!(uuid::Uuid::parse_str(id).is_ok());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_health_and_reflection_are_on() {
    let s = TestServer::start().await;
    let mut health = HealthClient::new(s.channel().await);
    let resp = health
        .check(HealthCheckRequest {
            service: "wagate.v1.AccountService".into(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(resp.status, ServingStatus::Serving as i32);
    let overall = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("overall")
        .into_inner();
    assert_eq!(overall.status, ServingStatus::Serving as i32);

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(s.channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .expect("reflection")
        .into_inner();
    let msg = stream.message().await.expect("reply").expect("one reply");
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"wagate.v1.AccountService"), "{names:?}");
    assert!(names.contains(&"wagate.v1.ApiKeyService"), "{names:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_lets_in_flight_requests_finish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await;
    let body = r#"{"email":"late@example.com","password":"correct horse battery","name":"Late"}"#;
    let mut conn = tokio::net::TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .expect("connect");
    let head = format!(
        "POST /auth/register HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    // Everything but the body's last byte: the request is in flight.
    conn.write_all(head.as_bytes()).await.expect("write");
    conn.write_all(&body.as_bytes()[..body.len() - 1])
        .await
        .expect("write");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let stopping = tokio::spawn(s.stop());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !stopping.is_finished(),
        "shutdown waits for the in-flight request"
    );
    conn.write_all(&body.as_bytes()[body.len() - 1..])
        .await
        .expect("write last byte");
    let mut reply = String::new();
    conn.read_to_string(&mut reply).await.expect("read reply");
    assert!(reply.starts_with("HTTP/1.1 201"), "{reply}");
    tokio::time::timeout(std::time::Duration::from_secs(10), stopping)
        .await
        .expect("shutdown completes")
        .expect("task");
}
