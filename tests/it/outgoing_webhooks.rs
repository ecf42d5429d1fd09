//! Outgoing webhooks end to end: endpoints over REST, gRPC and grpc-web, a
//! real local receiver, Standard Webhooks signatures checked by an
//! independent implementation (Python's hmac), retries and finality, 410,
//! the SSRF guard, rotation, replay, WABA scope, the forward URL, isolation
//! between endpoints, and the transactional outbox.
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde_json::{Value, json};
use uuid::Uuid;
use wagate::delivery::WebhookOptions;
use wagate::domain::webhooks::schedule::RetrySchedule;
use wagate::store::events::{self, NewEvent, record_event};

use crate::harness::{TestServer, authed, grpc_reason, pg};

// ------------------------------------------------------------------ receiver

#[derive(Clone, Debug)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

fn reply(status: u16) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: String::new(),
        delay: Duration::ZERO,
    }
}

#[derive(Default)]
struct ReceiverState {
    got: HashMap<String, Vec<Received>>,
    script: HashMap<String, VecDeque<Reply>>,
    in_flight: HashMap<String, usize>,
    max_in_flight: HashMap<String, usize>,
    /// Every request to this path sleeps this long (after the script).
    slow: HashMap<String, Duration>,
}

/// A local HTTP receiver: records every request per path and answers as
/// scripted (200 when nothing is scripted).
struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn script(&self, path: &str, replies: Vec<Reply>) {
        self.state
            .lock()
            .expect("lock")
            .script
            .insert(path.to_owned(), replies.into());
    }

    fn slow(&self, path: &str, delay: Duration) {
        self.state
            .lock()
            .expect("lock")
            .slow
            .insert(path.to_owned(), delay);
    }

    fn received(&self, path: &str) -> Vec<Received> {
        self.state
            .lock()
            .expect("lock")
            .got
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    fn max_in_flight(&self, path: &str) -> usize {
        self.state
            .lock()
            .expect("lock")
            .max_in_flight
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until `path` received at least `n` requests.
    async fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received(path);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{path}: {} of {n} requests after {timeout:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn handle(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let (answer, slow) = {
        let mut st = state.lock().expect("lock");
        st.got.entry(path.clone()).or_default().push(Received {
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body: body.to_vec(),
            at: Instant::now(),
        });
        let n = {
            let n = st.in_flight.entry(path.clone()).or_default();
            *n += 1;
            *n
        };
        let max = st.max_in_flight.entry(path.clone()).or_default();
        *max = (*max).max(n);
        let answer = st
            .script
            .get_mut(&path)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| Reply {
                body: "ok".into(),
                ..reply(200)
            });
        (answer, st.slow.get(&path).copied())
    };
    tokio::time::sleep(answer.delay + slow.unwrap_or_default()).await;
    if let Some(n) = state.lock().expect("lock").in_flight.get_mut(&path) {
        *n -= 1;
    }
    let mut resp = (
        StatusCode::from_u16(answer.status).expect("status"),
        answer.body,
    )
        .into_response();
    for (k, v) in answer.headers {
        resp.headers_mut()
            .insert(k, v.parse().expect("header value"));
    }
    resp
}

// ------------------------------------------------------------------ servers

/// Tiny retry delays so tests never wait real minutes; private targets allowed.
fn fast() -> WebhookOptions {
    WebhookOptions {
        allow_private: true,
        schedule: RetrySchedule {
            delays: vec![Duration::from_millis(150); 4],
            retry_after_max: Duration::from_secs(2),
            jitter: 0.1,
        },
        timeout: Duration::from_secs(3),
        concurrency: 64,
        endpoint_concurrency: 4,
        poll_interval: Duration::from_millis(200),
    }
}

async fn start(opts: WebhookOptions) -> (TestServer, String) {
    let key = wagate::crypto::SecretBox::generate_key();
    let s = start_on(pg::fresh_database().await, opts, &key).await;
    (s, key)
}

async fn start_on(database_url: String, webhooks: WebhookOptions, master_key: &str) -> TestServer {
    let mut opts = TestServer::options(database_url);
    opts.master_key = master_key.to_owned();
    opts.webhooks = webhooks;
    TestServer::start_with(opts).await
}

/// Registers an organization: (API key, organization id).
async fn org(s: &TestServer, email: &str) -> (String, Uuid) {
    let (key, body) = s.register(email).await;
    let id = body["data"]["organization"]["id"]
        .as_str()
        .expect("org id")
        .parse()
        .expect("uuid");
    (key, id)
}

async fn create(s: &TestServer, key: &str, body: Value) -> Value {
    let (status, created) = s
        .rest()
        .post("/v1/outgoing-webhooks", Some(key), body)
        .await;
    assert_eq!(status, 201, "{created}");
    created["data"].clone()
}

async fn patch(s: &TestServer, key: &str, id: &str, body: Value) -> (u16, Value) {
    let r = s
        .rest()
        .send(
            "PATCH",
            &format!("/v1/outgoing-webhooks/{id}"),
            Some(key),
            Some(body),
            &[],
        )
        .await;
    (r.status, r.body)
}

/// Records an event the way producers do: on a connection, in a transaction.
async fn record(
    s: &TestServer,
    org: Uuid,
    waba: Option<Uuid>,
    event: &'static str,
    data: Value,
) -> Uuid {
    let app = &s.running.as_ref().expect("running").app;
    let mut conn = app.store.conn().await.expect("conn");
    let ev = NewEvent {
        org_id: org,
        waba_id: waba,
        event,
        data,
    };
    conn.transaction::<_, wagate::store::StoreError, _>(async |c| record_event(c, ev).await)
        .await
        .expect("record event")
}

async fn logs(s: &TestServer, key: &str, id: &str) -> Vec<Value> {
    let (status, body) = s
        .rest()
        .get(
            &format!("/v1/outgoing-webhooks/{id}/logs?limit=100"),
            Some(key),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().expect("array").clone()
}

/// The endpoint's delivery log once it has at least `n` attempts (the
/// receiver can see a request before its attempt is recorded).
async fn logs_at_least(s: &TestServer, key: &str, id: &str, n: usize) -> Vec<Value> {
    crate::harness::sandbox::poll("attempts to be logged", Duration::from_secs(15), || async {
        let log = logs(s, key, id).await;
        if log.len() >= n {
            Ok(log)
        } else {
            Err(format!("{} of {n} attempts logged", log.len()))
        }
    })
    .await
}

/// Waits until the endpoint's deliveries are all final; returns them.
async fn settled(s: &TestServer, key: &str, id: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = s
            .rest()
            .get(
                &format!("/v1/outgoing-webhooks/{id}/deliveries?limit=100"),
                Some(key),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let all = body["data"].as_array().expect("array").clone();
        if all.len() >= n && all.iter().all(|d| d["status"] != "pending") {
            return all;
        }
        assert!(Instant::now() < deadline, "deliveries not settled: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Verifies a delivery with Python's standard library: an implementation
/// that shares no code with wagate.
/// Verifies a delivery with the Python code the README shows (standard
/// library only), so the README's code is the code tested.
fn python_verifies(secret: &str, got: &Received) -> bool {
    let readme = include_str!("../../README.md");
    let code = readme
        .split("```python\n")
        .find(|block| block.contains("def verify("))
        .and_then(|block| block.split("```").next())
        .expect("the README shows Python verification code");
    let script = format!(
        "{code}\nimport sys\nsecret, msg_id, ts, header = sys.argv[1:5]\nbody = sys.stdin.buffer.read()\n\
         headers = {{'webhook-id': msg_id, 'webhook-timestamp': ts, 'webhook-signature': header}}\n\
         sys.exit(0 if verify(secret, headers, body) else 1)\n"
    );
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            &script,
            secret,
            got.header("webhook-id"),
            got.header("webhook-timestamp"),
            got.header("webhook-signature"),
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&got.body)
        .expect("write body");
    child.wait().expect("python3 exits").success()
}

fn message_data(contact_phone: Option<&str>) -> Value {
    json!({
        "messageId": Uuid::new_v4(),
        "conversationId": Uuid::new_v4(),
        "phoneNumberId": Uuid::new_v4(),
        "wamid": "wamid.HBgLMTU1NTAxMjM0NTY3FQIAEhgg",
        "direction": "inbound",
        "type": "text",
        "content": {"body": "Hello!"},
        "status": "delivered",
        "timestamp": "2026-03-03T15:30:00.000Z",
        "contactId": Uuid::new_v4(),
        "contactIdentifier": "US.13491208655302741918",
        "contactIdentifierType": "bsuid",
        "contactReplyTo": "US.13491208655302741918",
        "contactPhone": contact_phone,
        "contactName": "Ann",
        "businessScopedUserId": "US.13491208655302741918",
        "parentBusinessScopedUserId": null,
        "username": "ann",
    })
}

async fn insert_waba(s: &TestServer, org: Uuid) -> Uuid {
    let id = Uuid::new_v4();
    let mut conn = diesel_async::AsyncPgConnection::establish(&s.database_url)
        .await
        .expect("db");
    diesel::sql_query(
        "INSERT INTO wabas (id, org_id, meta_waba_id, source) VALUES ($1, $2, $3, 'embedded_signup')",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<diesel::sql_types::Uuid, _>(org)
    .bind::<diesel::sql_types::Text, _>(format!("{}", 100_000 + (id.as_u128() % 900_000)))
    .execute(&mut conn)
    .await
    .expect("insert waba");
    id
}

async fn sql(s: &TestServer, q: &str) -> usize {
    let mut conn = diesel_async::AsyncPgConnection::establish(&s.database_url)
        .await
        .expect("db");
    diesel::sql_query(q).execute(&mut conn).await.expect(q)
}

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread")]
async fn quick_start_registration_works_verbatim() {
    let s = TestServer::start().await;
    let (key, _) = org(&s, "quick@example.com").await;
    // The platform guide's quick start, byte for byte.
    let r = s
        .rest()
        .raw(
            "POST",
            "/v1/outgoing-webhooks",
            Some(&key),
            br#"{
"url": "https://yourapp.com/webhooks/whatsapp",
"events": ["message.received", "message.sent"],
"secret": "whsec_your_secret_key"
}"#
            .to_vec(),
            "application/json",
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let d = &r.body["data"];
    assert_eq!(d["url"], "https://yourapp.com/webhooks/whatsapp");
    assert_eq!(d["events"], json!(["message.received", "message.sent"]));
    assert_eq!(d["isActive"], true);
    assert_eq!(d["secret"], "whsec_your_secret_key");
    assert_eq!(d["kind"], "endpoint");
    assert_eq!(d["wabaId"], Value::Null);
    assert!(d["id"].as_str().expect("id").parse::<Uuid>().is_ok());
    assert!(d["createdAt"].as_str().expect("createdAt").ends_with('Z'));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_are_managed_over_rest_grpc_and_grpc_web() {
    let s = TestServer::start().await;
    let (key, _) = org(&s, "crud@example.com").await;
    let rest = s.rest();

    // A generated secret: whsec_ + base64 of 32 bytes.
    let a = create(
        &s,
        &key,
        json!({"url": "https://a.example.com/hook", "events": ["*"], "description": "all events"}),
    )
    .await;
    let secret = a["secret"].as_str().expect("secret");
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 44,
        "{secret}"
    );
    assert_eq!(a["events"], json!(["*"]));
    assert_eq!(a["description"], "all events");
    let id = a["id"].as_str().expect("id").to_owned();

    let b = create(
        &s,
        &key,
        json!({"url": "https://b.example.com/hook", "events": ["message.status_updated"], "isActive": false}),
    )
    .await;
    assert_eq!(b["isActive"], false);

    // List: newest first, paginated, secrets never shown.
    let (status, list) = rest.get("/v1/outgoing-webhooks?limit=1", Some(&key)).await;
    assert_eq!(status, 200);
    assert_eq!(
        list["meta"]["pagination"],
        json!({"page": 1, "limit": 1, "total": 2, "hasMore": true})
    );
    assert_eq!(list["data"][0]["id"], b["id"]);
    assert_eq!(list["data"][0]["secret"], Value::Null);
    let (_, got) = rest
        .get(&format!("/v1/outgoing-webhooks/{id}"), Some(&key))
        .await;
    assert_eq!(got["data"]["url"], "https://a.example.com/hook");
    assert_eq!(got["data"]["secret"], Value::Null);
    // Explicit reveal.
    let (_, revealed) = rest
        .get(&format!("/v1/outgoing-webhooks/{id}/secret"), Some(&key))
        .await;
    assert_eq!(revealed["data"]["secret"], secret);

    // PATCH changes only what is given.
    let (status, patched) = patch(
        &s,
        &key,
        &id,
        json!({"url": "https://a2.example.com/hook", "events": ["message.received", "phone_number.connected"], "description": ""}),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let p = &patched["data"];
    assert_eq!(p["url"], "https://a2.example.com/hook");
    assert_eq!(
        p["events"],
        json!(["message.received", "phone_number.connected"])
    );
    assert_eq!(p["description"], Value::Null);
    assert_eq!(p["isActive"], true);
    let (_, p2) = patch(&s, &key, &id, json!({"isActive": false})).await;
    assert_eq!(p2["data"]["isActive"], false);
    assert_eq!(p2["data"]["url"], "https://a2.example.com/hook");

    // gRPC: the same resources, typed.
    use wagate::pb::outgoing_webhook_service_client::OutgoingWebhookServiceClient;
    let mut grpc = OutgoingWebhookServiceClient::new(s.channel().await);
    let created = grpc
        .create_outgoing_webhook(authed(
            wagate::pb::CreateOutgoingWebhookRequest {
                url: "https://grpc.example.com/hook".into(),
                events: vec![wagate::pb::WebhookEvent::MessageReceived as i32],
                secret: Some("a-secret-of-16-chars".into()),
                ..Default::default()
            },
            &key,
        ))
        .await
        .expect("gRPC create")
        .into_inner()
        .data
        .expect("data");
    assert_eq!(created.secret.as_deref(), Some("a-secret-of-16-chars"));
    assert_eq!(
        created.kind,
        wagate::pb::OutgoingWebhookKind::Endpoint as i32
    );
    let listed = grpc
        .list_outgoing_webhooks(authed(
            wagate::pb::ListOutgoingWebhooksRequest::default(),
            &key,
        ))
        .await
        .expect("gRPC list")
        .into_inner();
    assert_eq!(listed.data.len(), 3);
    assert_eq!(
        listed.meta.and_then(|m| m.pagination).map(|p| p.total),
        Some(3)
    );
    let err = grpc
        .create_outgoing_webhook(authed(
            wagate::pb::CreateOutgoingWebhookRequest {
                url: "https://grpc.example.com/hook".into(),
                events: vec![],
                ..Default::default()
            },
            &key,
        ))
        .await
        .expect_err("no events");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(grpc_reason(&err), "VALIDATION_ERROR");

    // grpc-web, as a browser dashboard calls it.
    let web: wagate::pb::GetOutgoingWebhookResponse = s
        .grpc_web()
        .call(
            "/wagate.v1.OutgoingWebhookService/GetOutgoingWebhook",
            Some(&key),
            &wagate::pb::GetOutgoingWebhookRequest {
                webhook_id: created.id.clone(),
            },
        )
        .await
        .expect("grpc-web get");
    assert_eq!(web.data.expect("data").url, "https://grpc.example.com/hook");

    // DELETE returns the endpoint; then it is gone.
    let (status, deleted) = rest
        .delete(&format!("/v1/outgoing-webhooks/{id}"), Some(&key))
        .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["data"]["id"], id.as_str());
    let (status, err) = rest
        .get(&format!("/v1/outgoing-webhooks/{id}"), Some(&key))
        .await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["code"], "NOT_FOUND");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_names_the_field_and_changes_nothing() {
    let s = TestServer::start().await;
    let (key, _) = org(&s, "bad@example.com").await;
    let rest = s.rest();
    let ok = json!({"url": "https://ok.example.com/h", "events": ["message.received"]});
    let cases = [
        (json!({"events": ["*"]}), "url"),
        (json!({"url": "/relative", "events": ["*"]}), "url"),
        (
            json!({"url": "ftp://example.com/h", "events": ["*"]}),
            "url",
        ),
        (
            json!({"url": "https://user:pw@example.com/h", "events": ["*"]}),
            "url",
        ),
        (json!({"url": "https://example.com/h"}), "events"),
        (
            json!({"url": "https://example.com/h", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://example.com/h", "events": ["message.deleted"]}),
            "events",
        ),
        (
            json!({"url": "https://example.com/h", "events": ["webhook.test"]}),
            "events",
        ),
        (
            json!({"url": "https://example.com/h", "events": ["*"], "secret": "short"}),
            "secret",
        ),
        (
            json!({"url": "https://example.com/h", "events": ["*"], "secret": "x".repeat(257)}),
            "secret",
        ),
        (
            json!({"url": "https://example.com/h", "events": ["*"], "wabaId": "nope"}),
            "wabaId",
        ),
        (
            json!({"url": "https://example.com/h", "events": ["*"], "description": "d".repeat(501)}),
            "description",
        ),
        (
            json!({"url": "https://example.com/h", "events": ["*"], "colour": "red"}),
            "colour",
        ),
    ];
    for (body, field) in cases {
        let (status, err) = rest
            .post("/v1/outgoing-webhooks", Some(&key), body.clone())
            .await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["code"], "VALIDATION_ERROR", "{body}");
        let message = err["error"]["message"].as_str().expect("message");
        assert!(message.contains(field), "{body}: {message}");
    }
    // Another organization's WABA is not found.
    let (status, err) = rest
        .post(
            "/v1/outgoing-webhooks",
            Some(&key),
            json!({"url": "https://example.com/h", "events": ["*"], "wabaId": Uuid::new_v4()}),
        )
        .await;
    assert_eq!(status, 404, "{err}");
    let (_, list) = rest.get("/v1/outgoing-webhooks", Some(&key)).await;
    assert_eq!(
        list["meta"]["pagination"]["total"], 0,
        "nothing was created"
    );

    // A bad PATCH changes nothing, even the valid fields beside it.
    let w = create(&s, &key, ok).await;
    let id = w["id"].as_str().expect("id");
    let (status, err) = patch(
        &s,
        &key,
        id,
        json!({"url": "https://changed.example.com/h", "events": ["nope"]}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"].as_str().unwrap().contains("events"));
    let (status, err) = patch(&s, &key, id, json!({"url": "mailto:x@example.com"})).await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"].as_str().unwrap().contains("url"));
    let (_, got) = rest
        .get(&format!("/v1/outgoing-webhooks/{id}"), Some(&key))
        .await;
    assert_eq!(got["data"]["url"], "https://ok.example.com/h");
    assert_eq!(got["data"]["events"], json!(["message.received"]));
    let (status, err) = rest
        .get("/v1/outgoing-webhooks/not-a-uuid", Some(&key))
        .await;
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("webhookId")
    );

    // Another organization sees none of it: every call is 404.
    let (other, _) = org(&s, "other@example.com").await;
    let base = format!("/v1/outgoing-webhooks/{id}");
    for (method, path, body) in [
        ("GET", base.clone(), None),
        ("PATCH", base.clone(), Some(json!({"isActive": false}))),
        ("DELETE", base.clone(), None),
        ("POST", format!("{base}/test"), Some(json!({}))),
        ("GET", format!("{base}/logs"), None),
        ("GET", format!("{base}/deliveries"), None),
        ("GET", format!("{base}/secret"), None),
        ("POST", format!("{base}/rotate-secret"), Some(json!({}))),
        (
            "POST",
            format!("{base}/replay"),
            Some(json!({"since": "2026-01-01T00:00:00Z"})),
        ),
    ] {
        let r = rest.send(method, &path, Some(&other), body, &[]).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "NOT_FOUND");
    }
    let (_, got) = rest.get(&base, Some(&key)).await;
    assert_eq!(got["data"]["isActive"], true, "untouched by the other org");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn event_catalog_lists_the_documented_names() {
    let s = TestServer::start().await;
    let (key, _) = org(&s, "catalog@example.com").await;
    let (status, body) = s.rest().get("/v1/webhook-events", Some(&key)).await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["data"]
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "message.received",
            "message.sent",
            "message.status_updated",
            "phone_number.connected",
            "phone_number.health_updated",
            "template.status_updated",
            "webhook.test"
        ]
    );
    let documented: Vec<&str> = body["data"]
        .as_array()
        .expect("array")
        .iter()
        .filter(|e| e["documented"] == true)
        .map(|e| e["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        documented,
        [
            "message.received",
            "message.sent",
            "message.status_updated",
            "phone_number.connected"
        ]
    );
    assert_eq!(body["data"][6]["subscribable"], false);
    let (status, _) = s.rest().get("/v1/webhook-events", None).await;
    assert_eq!(status, 401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn message_received_arrives_signed_and_verifies_independently() {
    let (s, _) = start(fast()).await;
    let rx = Receiver::start().await;
    let (key, org_id) = org(&s, "signed@example.com").await;
    // One endpoint with a generated (base64) secret, one with a UTF-8 secret.
    let gen_hook = create(
        &s,
        &key,
        json!({"url": rx.url("/gen"), "events": ["message.received"]}),
    )
    .await;
    let utf8_secret = "whsec_your_secret_key";
    create(
        &s,
        &key,
        json!({"url": rx.url("/utf8"), "events": ["*"], "secret": utf8_secret}),
    )
    .await;
    // Not subscribed: gets nothing.
    create(
        &s,
        &key,
        json!({"url": rx.url("/statuses"), "events": ["message.status_updated"]}),
    )
    .await;

    let data = message_data(None);
    let event_id = record(&s, org_id, None, events::MESSAGE_RECEIVED, data.clone()).await;
    let generated = rx.wait_for("/gen", 1, Duration::from_secs(10)).await;
    let utf8 = rx.wait_for("/utf8", 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.received("/statuses").is_empty());

    for (got, secret) in [
        (&generated[0], gen_hook["secret"].as_str().expect("secret")),
        (&utf8[0], utf8_secret),
    ] {
        assert_eq!(got.header("content-type"), "application/json");
        assert_eq!(got.header("webhook-id"), event_id.to_string());
        let ts: i64 = got
            .header("webhook-timestamp")
            .parse()
            .expect("unix seconds");
        assert!((chrono::Utc::now().timestamp() - ts).abs() < 30);
        let sig = got.header("webhook-signature");
        assert!(sig.starts_with("v1,") && !sig.contains(' '), "{sig}");
        assert!(python_verifies(secret, got), "Python's hmac verifies");
        assert!(!python_verifies(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            got
        ));
        assert!(wagate::domain::webhooks::signing::verify(
            secret,
            got.header("webhook-id"),
            ts,
            &got.body,
            sig
        ));

        // The documented envelope, keys in order, the id added.
        let text = String::from_utf8(got.body.clone()).expect("utf8");
        assert!(text.starts_with(r#"{"id":""#), "{text}");
        let body = got.json();
        let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
        assert_eq!(keys.len(), 5);
        assert_eq!(body["id"], event_id.to_string());
        assert_eq!(body["event"], "message.received");
        assert_eq!(body["organizationId"], org_id.to_string());
        let ts = body["timestamp"].as_str().expect("timestamp");
        assert!(
            ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[19] == b'.',
            "ISO 8601 with milliseconds: {ts}"
        );
        assert_eq!(body["data"], data);
        assert_eq!(body["data"]["contactPhone"], Value::Null);
        assert_eq!(body["data"]["contactIdentifier"], "US.13491208655302741918");
        assert_eq!(body["data"]["contactReplyTo"], "US.13491208655302741918");
    }
    // Every attempt is logged, with the start of the response.
    let hook_id = gen_hook["id"].as_str().expect("id");
    let log = logs_at_least(&s, &key, hook_id, 1).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["event"], "message.received");
    assert_eq!(log[0]["eventId"], event_id.to_string());
    assert_eq!(log[0]["statusCode"], 200);
    assert_eq!(log[0]["outcome"], "succeeded");
    assert_eq!(log[0]["trigger"], "event");
    assert_eq!(log[0]["attempt"], 1);
    assert_eq!(log[0]["response"], "ok");
    assert_eq!(log[0]["error"], Value::Null);
    assert!(log[0]["durationMs"].as_i64().expect("duration") >= 0);
    s.stop().await;
}

/// An endpoint deleted while one of its deliveries is in flight: the
/// attempt's log row has nowhere to go (the endpoint's log went with it),
/// and it holds up no other endpoint's log. It once failed its batch's
/// statement on the foreign key, again and again for half a minute, with
/// every other attempt recorded after it.
#[tokio::test(flavor = "multi_thread")]
async fn deleting_an_endpoint_mid_delivery_holds_up_no_other_log() {
    let (s, _) = start(fast()).await;
    let rx = Receiver::start().await;
    let (key, org_id) = org(&s, "mid-delivery@example.com").await;
    rx.slow("/doomed", Duration::from_millis(1500));
    let doomed = create(&s, &key, json!({"url": rx.url("/doomed"), "events": ["*"]})).await;
    let kept = create(&s, &key, json!({"url": rx.url("/kept"), "events": ["*"]})).await;
    let kept_id = kept["id"].as_str().expect("id");
    record(
        &s,
        org_id,
        None,
        events::MESSAGE_SENT,
        json!({"messageId": "m1"}),
    )
    .await;
    rx.wait_for("/doomed", 1, Duration::from_secs(10)).await;
    let (status, body) = s
        .rest()
        .delete(
            &format!(
                "/v1/outgoing-webhooks/{}",
                doomed["id"].as_str().expect("id")
            ),
            Some(&key),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The doomed attempt ends after the delete; then another event.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    record(
        &s,
        org_id,
        None,
        events::MESSAGE_SENT,
        json!({"messageId": "m2"}),
    )
    .await;
    let log = logs_at_least(&s, &key, kept_id, 2).await;
    assert!(log.iter().all(|a| a["outcome"] == "succeeded"), "{log:?}");
    rx.wait_for("/kept", 2, Duration::from_secs(5)).await;
    assert_eq!(rx.received("/kept").len(), 2, "each event once");
    assert_eq!(rx.received("/doomed").len(), 1, "not sent again");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retryable_answers_are_retried_on_the_schedule_then_fail() {
    let (s, _) = start(fast()).await;
    let rx = Receiver::start().await;
    let (key, org_id) = org(&s, "retry@example.com").await;
    // 500, 503, 408, 425, then 200: delivered on the fifth attempt.
    rx.script(
        "/flaky",
        vec![reply(500), reply(503), reply(408), reply(425), reply(200)],
    );
    // Five failures: failed after the fifth.
    rx.script("/down", vec![reply(502); 6]);
    let flaky = create(&s, &key, json!({"url": rx.url("/flaky"), "events": ["*"]})).await;
    let down = create(&s, &key, json!({"url": rx.url("/down"), "events": ["*"]})).await;
    let event_id = record(
        &s,
        org_id,
        None,
        events::MESSAGE_SENT,
        json!({"messageId": "m1"}),
    )
    .await;

    let flaky_id = flaky["id"].as_str().expect("id");
    let down_id = down["id"].as_str().expect("id");
    let d = settled(&s, &key, flaky_id, 1).await;
    assert_eq!(d[0]["status"], "succeeded");
    assert_eq!(d[0]["attempts"], 5);
    let d = settled(&s, &key, down_id, 1).await;
    assert_eq!(d[0]["status"], "failed");
    assert_eq!(d[0]["attempts"], 5, "failed after the fifth attempt");
    assert_eq!(d[0]["lastStatusCode"], 502);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.received("/down").len(), 5, "no sixth attempt");

    // The same bytes and webhook-id on every attempt; timestamps re-signed.
    let got = rx.received("/flaky");
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|g| g.body == got[0].body));
    assert!(
        got.iter()
            .all(|g| g.header("webhook-id") == event_id.to_string())
    );
    // Delays follow the (test) schedule: 150 ms ± 10 %.
    for pair in got.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(130), "{gap:?}");
    }

    let log = logs(&s, &key, down_id).await;
    assert_eq!(log.len(), 5);
    let outcomes: Vec<&str> = log
        .iter()
        .rev()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["retrying", "retrying", "retrying", "retrying", "failed"]
    );
    let attempts: Vec<i64> = log
        .iter()
        .rev()
        .map(|a| a["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2, 3, 4, 5]);
    assert!(
        log.iter()
            .all(|a| a["statusCode"] == 502 && a["error"] == "HTTP 502")
    );
    assert!(
        log[1]["nextAttemptAt"].is_string(),
        "a retrying attempt says when"
    );
    assert_eq!(log[0]["nextAttemptAt"], Value::Null);
    let log = logs(&s, &key, flaky_id).await;
    let codes: Vec<i64> = log
        .iter()
        .rev()
        .map(|a| a["statusCode"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 503, 408, 425, 200]);

    // Deliveries can be listed by status.
    let (_, failed) = s
        .rest()
        .get(
            &format!("/v1/outgoing-webhooks/{down_id}/deliveries?status=failed"),
            Some(&key),
        )
        .await;
    assert_eq!(failed["meta"]["pagination"]["total"], 1);
    let (_, ok) = s
        .rest()
        .get(
            &format!("/v1/outgoing-webhooks/{down_id}/deliveries?status=succeeded"),
            Some(&key),
        )
        .await;
    assert_eq!(ok["meta"]["pagination"]["total"], 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_is_honoured_within_bounds() {
    let (s, _) = start(fast()).await;
    let rx = Receiver::start().await;
    let (key, org_id) = org(&s, "retryafter@example.com").await;
    let mut r429 = reply(429);
    r429.headers.push(("retry-after", "1".into()));
    let mut r503 = reply(503);
    r503.headers.push(("retry-after", "86400".into()));
    rx.script("/slowdown", vec![r429, r503, reply(200)]);
    let hook = create(
        &s,
        &key,
        json!({"url": rx.url("/slowdown"), "events": ["*"]}),
    )
    .await;
    record(&s, org_id, None, events::MESSAGE_SENT, json!({})).await;
    let got = rx.wait_for("/slowdown", 3, Duration::from_secs(10)).await;
    let first = got[1].at - got[0].at;
    assert!(
        first >= Duration::from_millis(950),
        "Retry-After: 1 waited {first:?}"
    );
    let second = got[2].at - got[1].at;
    // A day is capped at retry_after_max (2 s in this test).
    assert!(
        second >= Duration::from_millis(1900) && second < Duration::from_secs(4),
        "Retry-After: 86400 capped, waited {second:?}"
    );
    let d = settled(&s, &key, hook["id"].as_str().unwrap(), 1).await;
    assert_eq!(d[0]["status"], "succeeded");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn final_answers_are_not_retried_and_redirects_not_followed() {
    let (s, _) = start(fast()).await;
    let rx = Receiver::start().await;
    let (key, org_id) = org(&s, "final@example.com").await;
    let mut redirect = reply(307);
    redirect.headers.push(("location", rx.url("/elsewhere")));
    let mut ids = Vec::new();
    for (path, r) in [
        ("/r400", reply(400)),
        ("/r401", reply(401)),
        ("/r404", reply(404)),
        ("/r422", reply(422)),
        ("/r301", {
            let mut r = reply(301);
            r.headers.push(("location", rx.url("/elsewhere")));
            r
        }),
        ("/r307", redirect.clone()),
    ] {
        rx.script(path, vec![r]);
        let w = create(&s, &key, json!({"url": rx.url(path), "events": ["*"]})).await;
        ids.push((path, w["id"].as_str().unwrap().to_owned()));
    }
    record(
        &s,
        org_id,
        None,
        events::MESSAGE_STATUS_UPDATED,
        json!({"status": "read"}),
    )
    .await;
    for (path, id) in &ids {
        let d = settled(&s, &key, id, 1).await;
        assert_eq!(d[0]["status"], "failed", "{path}");
        assert_eq!(d[0]["attempts"], 1, "{path}");
        let log = logs(&s, &key, id).await;
        assert_eq!(log.len(), 1);
        assert_eq!(log[0]["outcome"], "failed");
        if path.starts_with("/r3") {
            assert!(
                log[0]["error"]
                    .as_str()
                    .unwrap()
                    .contains("redirects are not followed"),
                "{}",
                log[0]
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    for (path, _) in &ids {
        assert_eq!(rx.received(path).len(), 1, "{path}: one attempt");
    }
    assert!(
        rx.received("/elsewhere").is_empty(),
        "redirect not followed"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gone_is_final_and_deactivates_the_endpoint() {
    let (s, _) = start(fast()).await;
    let rx = Receiver::start().await;
    let (key, org_id) = org(&s, "gone@example.com").await;
    rx.script("/gone", vec![reply(410)]);
    let hook = create(&s, &key, json!({"url": rx.url("/gone"), "events": ["*"]})).await;
    let id = hook["id"].as_str().unwrap();
    record(
        &s,
        org_id,
        None,
        events::MESSAGE_RECEIVED,
        message_data(Some("+15551234567")),
    )
    .await;
    let d = settled(&s, &key, id, 1).await;
    assert_eq!(d[0]["status"], "failed");
    assert_eq!(d[0]["lastStatusCode"], 410);
    let (_, got) = s
        .rest()
        .get(&format!("/v1/outgoing-webhooks/{id}"), Some(&key))
        .await;
    assert_eq!(got["data"]["isActive"], false, "{got}");
    assert!(
        got["data"]["disabledReason"]
            .as_str()
            .unwrap()
            .contains("410")
    );
    // No more deliveries to it.
    record(
        &s,
        org_id,
        None,
        events::MESSAGE_RECEIVED,
        message_data(None),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.received("/gone").len(), 1);
    let (_, deliveries) = s
        .rest()
        .get(
            &format!("/v1/outgoing-webhooks/{id}/deliveries"),
            Some(&key),
        )
        .await;
    assert_eq!(deliveries["meta"]["pagination"]["total"], 1);
    // Reactivating clears the reason.
    let (_, again) = patch(&s, &key, id, json!({"isActive": true})).await;
    assert_eq!(again["data"]["isActive"], true);
    assert_eq!(again["data"]["disabledReason"], Value::Null);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn timeouts_and_network_errors_are_retried() {
    let mut opts = fast();
    opts.timeout = Duration::from_millis(400);
    let (s, _) = start(opts).await;
    let rx = Receiver::start().await;
    let (key, org_id) = org(&s, "timeout@example.com").await;
    let mut slow = reply(200);
    slow.delay = Duration::from_millis(1500);
    rx.script("/slow", vec![slow, reply(200)]);
    let slow_hook = create(&s, &key, json!({"url": rx.url("/slow"), "events": ["*"]})).await;
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let dead = create(
        &s,
        &key,
        json!({"url": format!("http://127.0.0.1:{closed}/nobody"), "events": ["*"]}),
    )
    .await;
    record(&s, org_id, None, events::MESSAGE_SENT, json!({})).await;

    let d = settled(&s, &key, slow_hook["id"].as_str().unwrap(), 1).await;
    assert_eq!(d[0]["status"], "succeeded");
    assert_eq!(d[0]["attempts"], 2);
    let log = logs(&s, &key, slow_hook["id"].as_str().unwrap()).await;
    assert_eq!(log[1]["statusCode"], Value::Null);
    assert_eq!(log[1]["outcome"], "retrying");
    assert!(
        log[1]["error"].as_str().unwrap().contains("timed out"),
        "{}",
        log[1]
    );
    assert!(log[1]["durationMs"].as_i64().unwrap() >= 390);

    let d = settled(&s, &key, dead["id"].as_str().unwrap(), 1).await;
    assert_eq!(d[0]["status"], "failed");
    assert_eq!(d[0]["attempts"], 5);
    let log = logs(&s, &key, dead["id"].as_str().unwrap()).await;
    assert!(
        log.iter().all(|a| a["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("connect")),
        "{log:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_test_call_sends_one_signed_attempt_and_logs_it() {
    let (s, _) = start(fast()).await;
    let rx = Receiver::start().await;
    let (key, _) = org(&s, "test@example.com").await;
    let long_body = "é".repeat(3000);
    rx.script(
        "/t",
        vec![
            Reply {
                body: long_body.clone(),
                ..reply(200)
            },
            reply(500),
        ],
    );
    let hook = create(
        &s,
        &key,
        json!({"url": rx.url("/t"), "events": ["message.received"]}),
    )
    .await;
    let id = hook["id"].as_str().unwrap();
    let (status, body) = s
        .rest()
        .post(
            &format!("/v1/outgoing-webhooks/{id}/test"),
            Some(&key),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let a = &body["data"];
    assert_eq!(a["outcome"], "succeeded");
    assert_eq!(a["statusCode"], 200);
    assert_eq!(a["trigger"], "test");
    assert_eq!(a["event"], "webhook.test");
    // The start of the response: 2 KiB, whole characters.
    let start = a["response"].as_str().unwrap();
    assert!(
        start.len() <= 2048 && start.len() >= 2046,
        "{}",
        start.len()
    );
    assert!(long_body.starts_with(start));
    let got = rx.received("/t");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["event"], "webhook.test");
    assert!(python_verifies(hook["secret"].as_str().unwrap(), &got[0]));

    // A failing test is reported and not retried.
    let (_, body) = s
        .rest()
        .post(
            &format!("/v1/outgoing-webhooks/{id}/test"),
            Some(&key),
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["outcome"], "failed");
    assert_eq!(body["data"]["statusCode"], 500);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rx.received("/t").len(), 2);
    let log = logs(&s, &key, id).await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["statusCode"], 500);
    // Filter the log by event.
    let event_id = log[0]["eventId"].as_str().unwrap();
    let (_, one) = s
        .rest()
        .get(
            &format!("/v1/outgoing-webhooks/{id}/logs?eventId={event_id}"),
            Some(&key),
        )
        .await;
    assert_eq!(one["meta"]["pagination"]["total"], 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_signs_with_both_secrets_for_24_hours() {
    let (s, _) = start(fast()).await;
    let rx = Receiver::start().await;
    let (key, org_id) = org(&s, "rotate@example.com").await;
    let hook = create(&s, &key, json!({"url": rx.url("/rot"), "events": ["*"]})).await;
    let id = hook["id"].as_str().unwrap();
    let old = hook["secret"].as_str().unwrap().to_owned();

    let (status, rotated) = s
        .rest()
        .post(
            &format!("/v1/outgoing-webhooks/{id}/rotate-secret"),
            Some(&key),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["data"]["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let expires: chrono::DateTime<chrono::Utc> = rotated["data"]["previousSecretExpiresAt"]
        .as_str()
        .expect("expiry")
        .parse()
        .expect("time");
    let hours = (expires - chrono::Utc::now()).num_minutes();
    assert!((23 * 60..=24 * 60).contains(&hours), "{hours} minutes");

    record(&s, org_id, None, events::MESSAGE_SENT, json!({"n": 1})).await;
    let got = rx.wait_for("/rot", 1, Duration::from_secs(10)).await;
    let sigs: Vec<&str> = got[0].header("webhook-signature").split(' ').collect();
    assert_eq!(sigs.len(), 2, "both signatures during the grace period");
    assert!(python_verifies(&new, &got[0]));
    assert!(python_verifies(&old, &got[0]));

    // PATCH with a secret is a rotation too; a third secret signs beside the two.
    let (status, p) = patch(&s, &key, id, json!({"secret": "my-own-secret-of-24-chars"})).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["data"]["secret"], "my-own-secret-of-24-chars");
    record(&s, org_id, None, events::MESSAGE_SENT, json!({"n": 2})).await;
    let got = rx.wait_for("/rot", 2, Duration::from_secs(10)).await;
    assert_eq!(got[1].header("webhook-signature").split(' ').count(), 3);
    for secret in [&old, &new, &"my-own-secret-of-24-chars".to_owned()] {
        assert!(python_verifies(secret, &got[1]));
    }

    // After 24 hours only the current secret signs.
    sql(
        &s,
        "UPDATE webhook_old_secrets SET expires_at = now() - interval '1 second'",
    )
    .await;
    record(&s, org_id, None, events::MESSAGE_SENT, json!({"n": 3})).await;
    let got = rx.wait_for("/rot", 3, Duration::from_secs(10)).await;
    assert_eq!(got[2].header("webhook-signature").split(' ').count(), 1);
    assert!(python_verifies("my-own-secret-of-24-chars", &got[2]));
    assert!(!python_verifies(&new, &got[2]));
    let (_, now) = s
        .rest()
        .get(&format!("/v1/outgoing-webhooks/{id}"), Some(&key))
        .await;
    assert_eq!(now["data"]["previousSecretExpiresAt"], Value::Null);

    // At most ten old secrets in force.
    for i in 0..10 {
        let (status, body) = s
            .rest()
            .post(
                &format!("/v1/outgoing-webhooks/{id}/rotate-secret"),
                Some(&key),
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "rotation {i}: {body}");
    }
    let (status, err) = s
        .rest()
        .post(
            &format!("/v1/outgoing-webhooks/{id}/rotate-secret"),
            Some(&key),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["code"], "CONFLICT");
    let (status, err) = s
        .rest()
        .post(
            &format!("/v1/outgoing-webhooks/{id}/rotate-secret"),
            Some(&key),
            json!({"secret": "short"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"].as_str().unwrap().contains("secret"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_one_event_or_a_time_range_to_one_endpoint() {
    let (s, _) = start(fast()).await;
    let rx = Receiver::start().await;
    let (key, org_id) = org(&s, "replay@example.com").await;
    rx.script("/a", vec![reply(200), reply(400)]);
    let a = create(
        &s,
        &key,
        json!({"url": rx.url("/a"), "events": ["message.sent", "message.received"]}),
    )
    .await;
    let b = create(&s, &key, json!({"url": rx.url("/b"), "events": ["*"]})).await;
    let a_id = a["id"].as_str().unwrap();
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    // e1 is delivered (200), then e2 fails for good (400).
    let e1 = record(&s, org_id, None, events::MESSAGE_SENT, json!({"n": 1})).await;
    settled(&s, &key, a_id, 1).await;
    let e2 = record(
        &s,
        org_id,
        None,
        events::MESSAGE_RECEIVED,
        message_data(None),
    )
    .await;
    let _e3 = record(
        &s,
        org_id,
        None,
        events::PHONE_NUMBER_CONNECTED,
        json!({"n": 3}),
    )
    .await;
    settled(&s, &key, a_id, 2).await;
    rx.wait_for("/b", 3, Duration::from_secs(10)).await;
    let first = rx.received("/a");
    assert_eq!(first.len(), 2);

    // One event: the same id and bytes, to this endpoint only.
    let (status, body) = s
        .rest()
        .post(
            &format!("/v1/outgoing-webhooks/{a_id}/replay"),
            Some(&key),
            json!({"eventId": e1}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"], json!({"webhookId": a_id, "queued": 1}));
    let got = rx.wait_for("/a", 3, Duration::from_secs(10)).await;
    assert_eq!(got[2].header("webhook-id"), e1.to_string());
    let original = first
        .iter()
        .find(|g| g.header("webhook-id") == e1.to_string())
        .expect("original");
    assert_eq!(got[2].body, original.body);
    let log = logs_at_least(&s, &key, a_id, 3).await;
    assert_eq!(log[0]["trigger"], "replay");

    // Only the failed ones of a range: e2 failed (400).
    let (_, deliveries) = s
        .rest()
        .get(
            &format!("/v1/outgoing-webhooks/{a_id}/deliveries?status=failed"),
            Some(&key),
        )
        .await;
    let failed_ids: Vec<&str> = deliveries["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(failed_ids, [e2.to_string()]);
    let (status, body) = s
        .rest()
        .post(
            &format!("/v1/outgoing-webhooks/{a_id}/replay"),
            Some(&key),
            json!({"since": since.to_rfc3339(), "onlyFailed": true}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["queued"], failed_ids.len() as i64);

    // The whole range: the two events it subscribes to, not phone_number.connected.
    let (_, body) = s
        .rest()
        .post(
            &format!("/v1/outgoing-webhooks/{a_id}/replay"),
            Some(&key),
            json!({"since": since.to_rfc3339(), "until": (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339()}),
        )
        .await;
    assert_eq!(body["data"]["queued"], 2);
    rx.wait_for("/a", 3 + failed_ids.len() + 2, Duration::from_secs(10))
        .await;
    assert_eq!(rx.received("/b").len(), 3, "other endpoints get nothing");

    // Bad requests.
    let bad = [
        (json!({}), "since"),
        (
            json!({"since": since.to_rfc3339(), "until": (since - chrono::Duration::seconds(5)).to_rfc3339()}),
            "until",
        ),
        (
            json!({"since": (since - chrono::Duration::days(15)).to_rfc3339()}),
            "until",
        ),
        (
            json!({"eventId": e1, "since": since.to_rfc3339()}),
            "eventId",
        ),
        (json!({"eventId": "nope"}), "eventId"),
    ];
    for (body, field) in bad {
        let (status, err) = s
            .rest()
            .post(
                &format!("/v1/outgoing-webhooks/{a_id}/replay"),
                Some(&key),
                body.clone(),
            )
            .await;
        assert_eq!(status, 400, "{body}: {err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(field),
            "{body}: {err}"
        );
    }
    // Another organization's event is not found.
    let (_, other_org) = org(&s, "replay-other@example.com").await;
    let foreign = record(&s, other_org, None, events::MESSAGE_SENT, json!({})).await;
    let (status, _) = s
        .rest()
        .post(
            &format!("/v1/outgoing-webhooks/{a_id}/replay"),
            Some(&key),
            json!({"eventId": foreign}),
        )
        .await;
    assert_eq!(status, 404);
    let _ = b;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn waba_scoped_endpoints_get_only_their_wabas_events() {
    let (s, _) = start(fast()).await;
    let rx = Receiver::start().await;
    let (key, org_id) = org(&s, "scope@example.com").await;
    let waba_a = insert_waba(&s, org_id).await;
    let waba_b = insert_waba(&s, org_id).await;
    let scoped = create(
        &s,
        &key,
        json!({"url": rx.url("/scoped"), "events": ["*"], "wabaId": waba_a}),
    )
    .await;
    assert_eq!(scoped["wabaId"], waba_a.to_string());
    create(&s, &key, json!({"url": rx.url("/all"), "events": ["*"]})).await;
    let in_a = record(
        &s,
        org_id,
        Some(waba_a),
        events::MESSAGE_RECEIVED,
        message_data(None),
    )
    .await;
    record(
        &s,
        org_id,
        Some(waba_b),
        events::MESSAGE_RECEIVED,
        message_data(None),
    )
    .await;
    record(
        &s,
        org_id,
        None,
        events::TEMPLATE_STATUS_UPDATED,
        json!({"name": "hello"}),
    )
    .await;
    rx.wait_for("/all", 3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let got = rx.received("/scoped");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("webhook-id"), in_a.to_string());

    // Another organization's WABA cannot be used.
    let (other_key, other_org) = org(&s, "scope-other@example.com").await;
    let (status, _) = s
        .rest()
        .post(
            "/v1/outgoing-webhooks",
            Some(&other_key),
            json!({"url": rx.url("/x"), "events": ["*"], "wabaId": waba_a}),
        )
        .await;
    assert_eq!(status, 404);
    let _ = other_org;
    // Unscoping with an empty wabaId.
    let (_, p) = patch(
        &s,
        &key,
        scoped["id"].as_str().unwrap(),
        json!({"wabaId": ""}),
    )
    .await;
    assert_eq!(p["data"]["wabaId"], Value::Null);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_forward_url_receives_delivery_statuses() {
    let (s, _) = start(fast()).await;
    let rx = Receiver::start().await;
    let (key, org_id) = org(&s, "forward@example.com").await;
    let (_, me) = s.rest().get("/auth/me", Some(&key)).await;
    assert_eq!(me["data"]["config"]["webhookUrl"], Value::Null);

    let r = s
        .rest()
        .send(
            "PUT",
            "/auth/me/webhook",
            Some(&key),
            Some(json!({"url": rx.url("/fwd")})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let fwd = r.body["data"].clone();
    assert_eq!(fwd["kind"], "forward_url");
    assert_eq!(
        fwd["events"],
        json!(["message.sent", "message.status_updated"])
    );
    let secret = fwd["secret"].as_str().unwrap().to_owned();
    let (_, me) = s.rest().get("/auth/me", Some(&key)).await;
    assert_eq!(me["data"]["config"]["webhookUrl"], rx.url("/fwd"));

    record(
        &s,
        org_id,
        None,
        events::MESSAGE_RECEIVED,
        message_data(None),
    )
    .await;
    let status_event = record(
        &s,
        org_id,
        None,
        events::MESSAGE_STATUS_UPDATED,
        json!({"messageId": "m", "status": "delivered"}),
    )
    .await;
    let got = rx.wait_for("/fwd", 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received("/fwd").len(), 1, "only delivery statuses");
    assert_eq!(got[0].header("webhook-id"), status_event.to_string());
    assert!(python_verifies(&secret, &got[0]));
    // The same engine: its log is there.
    let fwd_id = fwd["id"].as_str().unwrap();
    assert_eq!(logs(&s, &key, fwd_id).await.len(), 1);

    // Changing the URL keeps the secret and the endpoint.
    let r = s
        .rest()
        .send(
            "PUT",
            "/auth/me/webhook",
            Some(&key),
            Some(json!({"url": rx.url("/fwd2")})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["id"], fwd["id"]);
    assert_eq!(r.body["data"]["secret"], secret.as_str());
    // Its events narrowed by a PATCH: setting the forward URL again gives
    // it back the forwarded events.
    let (st, patched) = patch(&s, &key, fwd_id, json!({"events": ["message.received"]})).await;
    assert_eq!(st, 200, "{patched}");
    let r = s
        .rest()
        .send(
            "PUT",
            "/auth/me/webhook",
            Some(&key),
            Some(json!({"url": rx.url("/fwd2")})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["data"]["events"],
        json!(["message.sent", "message.status_updated"]),
        "{}",
        r.text
    );
    let r = s
        .rest()
        .send(
            "PUT",
            "/auth/me/webhook",
            Some(&key),
            Some(json!({"url": "http://10.0.0.1/x"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "private allowed on this test server");
    let r = s
        .rest()
        .send(
            "PUT",
            "/auth/me/webhook",
            Some(&key),
            Some(json!({"url": "not a url"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("url"));
    let r = s
        .rest()
        .send(
            "PUT",
            "/auth/me/webhook",
            Some(&key),
            Some(json!({"url": "http://169.254.169.254/"})),
            &[],
        )
        .await;
    assert_eq!(
        r.status, 400,
        "metadata address refused even with private allowed"
    );

    let r = s
        .rest()
        .send("DELETE", "/auth/me/webhook", Some(&key), None, &[])
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let (_, me) = s.rest().get("/auth/me", Some(&key)).await;
    assert_eq!(me["data"]["config"]["webhookUrl"], Value::Null);
    record(&s, org_id, None, events::MESSAGE_SENT, json!({})).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rx.received("/fwd").len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ssrf_guard_refuses_private_and_special_addresses() {
    let strict = WebhookOptions {
        allow_private: false,
        ..fast()
    };
    let (s, master) = start(strict).await;
    let (key, _) = org(&s, "ssrf@example.com").await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://2130706433/hook",
        "http://0x7f000001/hook",
        "http://0177.0.0.1/hook",
        "http://127.1/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://10.0.0.5/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
    ] {
        let (status, err) = s
            .rest()
            .post(
                "/v1/outgoing-webhooks",
                Some(&key),
                json!({"url": url, "events": ["*"]}),
            )
            .await;
        assert_eq!(status, 400, "{url}: {err}");
        let msg = err["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("url") && msg.contains("address"),
            "{url}: {msg}"
        );
    }
    let r = s
        .rest()
        .send(
            "PUT",
            "/auth/me/webhook",
            Some(&key),
            Some(json!({"url": "http://127.0.0.1/x"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 400, "the forward URL is guarded too");

    // At delivery: an endpoint registered while private targets were allowed
    // is refused by an instance that does not allow them, and nothing
    // reaches the receiver.
    let database_url = s.database_url.clone();
    let rx = Receiver::start().await;
    let lenient = start_on(database_url.clone(), fast(), &master).await;
    let (key2, org2) = org(&lenient, "ssrf2@example.com").await;
    let by_ip = create(
        &lenient,
        &key2,
        json!({"url": rx.url("/ip"), "events": ["*"]}),
    )
    .await;
    let by_name = create(
        &lenient,
        &key2,
        json!({"url": format!("http://localhost:{}/name", rx.addr.port()), "events": ["*"]}),
    )
    .await;
    lenient.stop().await;
    record(&s, org2, None, events::MESSAGE_SENT, json!({})).await;
    let d = settled(&s, &key2, by_ip["id"].as_str().unwrap(), 1).await;
    assert_eq!(d[0]["status"], "failed");
    assert_eq!(d[0]["attempts"], 1, "a refused literal address is final");
    let log = logs(&s, &key2, by_ip["id"].as_str().unwrap()).await;
    assert!(
        log[0]["error"].as_str().unwrap().contains("loopback"),
        "{}",
        log[0]
    );
    let d = settled(&s, &key2, by_name["id"].as_str().unwrap(), 1).await;
    assert_eq!(d[0]["status"], "failed");
    let log = logs(&s, &key2, by_name["id"].as_str().unwrap()).await;
    assert!(
        log.iter()
            .all(|a| a["error"].as_str().unwrap().contains("refused")),
        "{log:?}"
    );
    assert!(rx.received("/ip").is_empty() && rx.received("/name").is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_endpoint_does_not_starve_the_others() {
    let mut opts = fast();
    opts.endpoint_concurrency = 2;
    opts.concurrency = 16;
    let (s, _) = start(opts).await;
    let rx = Receiver::start().await;
    rx.slow("/slow", Duration::from_millis(1000));
    let (key, org_id) = org(&s, "isolation@example.com").await;
    let slow = create(
        &s,
        &key,
        json!({"url": rx.url("/slow"), "events": ["message.sent"]}),
    )
    .await;
    create(
        &s,
        &key,
        json!({"url": rx.url("/fast"), "events": ["message.received"]}),
    )
    .await;
    for i in 0..20 {
        record(&s, org_id, None, events::MESSAGE_SENT, json!({"i": i})).await;
    }
    let t0 = Instant::now();
    for i in 0..20 {
        record(&s, org_id, None, events::MESSAGE_RECEIVED, json!({"i": i})).await;
    }
    rx.wait_for("/fast", 20, Duration::from_secs(10)).await;
    let fast_done = t0.elapsed();
    assert!(
        fast_done < Duration::from_secs(3),
        "fast endpoint took {fast_done:?}"
    );
    assert!(
        rx.received("/slow").len() <= 8,
        "the slow endpoint is still working through its queue"
    );
    assert!(
        rx.max_in_flight("/slow") <= 2,
        "at most 2 in flight per endpoint"
    );
    let d = settled(&s, &key, slow["id"].as_str().unwrap(), 20).await;
    assert!(d.iter().all(|d| d["status"] == "succeeded"));
    assert_eq!(rx.max_in_flight("/slow"), 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_commit_or_roll_back_with_their_cause() {
    let (s, _) = start(fast()).await;
    let rx = Receiver::start().await;
    let (key, org_id) = org(&s, "outbox@example.com").await;
    let hook = create(&s, &key, json!({"url": rx.url("/tx"), "events": ["*"]})).await;
    let app = &s.running.as_ref().unwrap().app;
    let mut conn = app.store.conn().await.expect("conn");
    // A transaction that fails after recording: no event, no delivery.
    let r: Result<(), wagate::store::StoreError> = conn
        .transaction(async |c| {
            record_event(
                c,
                NewEvent {
                    org_id,
                    waba_id: None,
                    event: events::MESSAGE_SENT,
                    data: json!({"rolled": "back"}),
                },
            )
            .await?;
            Err(wagate::store::StoreError::Unavailable(
                "the cause failed".into(),
            ))
        })
        .await;
    assert!(r.is_err());
    // Two events in one transaction: both delivered, after the commit.
    conn.transaction::<_, wagate::store::StoreError, _>(async |c| {
        for n in 0..2 {
            record_event(
                c,
                NewEvent {
                    org_id,
                    waba_id: None,
                    event: events::MESSAGE_SENT,
                    data: json!({"n": n}),
                },
            )
            .await?;
        }
        Ok(())
    })
    .await
    .expect("commit");
    // The outbox statement is prepared once per connection, not re-planned per event.
    #[derive(diesel::QueryableByName)]
    struct Prepared {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let prepared: Prepared = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE '%INSERT INTO webhook_' || 'events%'",
    )
    .get_result(&mut *conn)
    .await
    .expect("pg_prepared_statements");
    assert_eq!(prepared.n, 1, "one prepared statement for three calls");
    drop(conn);
    let got = rx.wait_for("/tx", 2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rx.received("/tx").len(), 2);
    assert!(got.iter().all(|g| g.json()["data"]["rolled"].is_null()));
    let (_, d) = s
        .rest()
        .get(
            &format!(
                "/v1/outgoing-webhooks/{}/deliveries",
                hook["id"].as_str().unwrap()
            ),
            Some(&key),
        )
        .await;
    assert_eq!(d["meta"]["pagination"]["total"], 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_lease_is_claimed_again() {
    let (s, _) = start(fast()).await;
    let rx = Receiver::start().await;
    let (key, org_id) = org(&s, "lease@example.com").await;
    // Deactivated while we plant a delivery "held" by a worker that died.
    let hook = create(&s, &key, json!({"url": rx.url("/lease"), "events": ["*"]})).await;
    let id = hook["id"].as_str().unwrap();
    let event = record(&s, org_id, None, events::MESSAGE_SENT, json!({})).await;
    rx.wait_for("/lease", 1, Duration::from_secs(10)).await;
    // A crashed worker: attempts counted, lease taken, never completed.
    sql(
        &s,
        &format!(
            "INSERT INTO webhook_deliveries (id, org_id, endpoint_id, event_id, event, trigger, status, attempts, lease_token, next_attempt_at)
             VALUES (gen_random_uuid(), '{org_id}', '{id}', '{event}', 'message.sent', 'replay', 'pending', 1, gen_random_uuid(), now() + interval '1 second')"
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rx.received("/lease").len(),
        1,
        "not before the lease expires"
    );
    let got = rx.wait_for("/lease", 2, Duration::from_secs(10)).await;
    assert_eq!(got[1].header("webhook-id"), event.to_string());
    let d = settled(&s, &key, id, 2).await;
    assert!(d.iter().all(|d| d["status"] == "succeeded"));
    assert!(
        d.iter().any(|d| d["attempts"] == 2),
        "the lost attempt still counts"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_schedule_waits_a_minute_before_the_first_retry() {
    let opts = WebhookOptions {
        allow_private: true,
        ..WebhookOptions::default()
    };
    let (s, _) = start(opts).await;
    let rx = Receiver::start().await;
    rx.script("/later", vec![reply(503)]);
    let (key, org_id) = org(&s, "default@example.com").await;
    let hook = create(&s, &key, json!({"url": rx.url("/later"), "events": ["*"]})).await;
    record(&s, org_id, None, events::MESSAGE_SENT, json!({})).await;
    rx.wait_for("/later", 1, Duration::from_secs(10)).await;
    let id = hook["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = logs(&s, &key, id).await;
        if !log.is_empty() {
            break log;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(log[0]["outcome"], "retrying");
    let at: chrono::DateTime<chrono::Utc> = log[0]["createdAt"].as_str().unwrap().parse().unwrap();
    let next: chrono::DateTime<chrono::Utc> =
        log[0]["nextAttemptAt"].as_str().unwrap().parse().unwrap();
    let secs = (next - at).num_milliseconds() as f64 / 1000.0;
    assert!(
        (53.0..=67.0).contains(&secs),
        "first retry after ~1 min: {secs}"
    );
    s.stop().await;
}

/// The issue's acceptance path: an inbound message injected through the
/// sandbox simulator reaches a local receiver as a signed `message.received`
/// that Python's hmac verifies, with the contact identity fields.
#[tokio::test(flavor = "multi_thread")]
async fn an_inbound_message_from_the_simulator_arrives_signed() {
    let (s, _) = start(fast()).await;
    let rx = Receiver::start().await;
    let (key, phone_id, waba_id) = crate::inbound::connect(&s, "e2e@example.com").await;
    let (_, me) = s.rest().get("/auth/me", Some(&key)).await;
    let org_id = me["data"]["organization"]["id"]
        .as_str()
        .expect("org")
        .to_owned();
    let hook = create(
        &s,
        &key,
        json!({"url": rx.url("/inbound"), "events": ["message.received"]}),
    )
    .await;
    // Scoped to the phone's WABA: it gets the message too.
    create(
        &s,
        &key,
        json!({"url": rx.url("/scoped"), "events": ["*"], "wabaId": waba_id}),
    )
    .await;
    for body in [
        // A username user whose phone Meta withholds: BSUID only.
        json!({"phoneNumberId": crate::inbound::PHONE, "fromUserId": "AR.ABC123", "username": "@customer.name",
               "name": "Customer", "type": "text", "text": "no phone here"}),
        json!({"phoneNumberId": crate::inbound::PHONE, "from": "16505551234", "fromUserId": "US.13491208655302741918",
               "name": "Sheena Nelson", "type": "text", "text": "Hello from the sandbox"}),
    ] {
        let r = s
            .rest()
            .send("POST", "/sandbox/_sim/inbound", None, Some(body), &[])
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let got = rx.wait_for("/inbound", 2, Duration::from_secs(20)).await;
    rx.wait_for("/scoped", 2, Duration::from_secs(20)).await;
    let secret = hook["secret"].as_str().expect("secret");
    let mut by_text = HashMap::new();
    for g in &got {
        assert!(python_verifies(secret, g), "Python's hmac verifies");
        let body = g.json();
        assert_eq!(body["event"], "message.received");
        assert_eq!(body["organizationId"], org_id.as_str());
        assert_eq!(body["id"], g.header("webhook-id"));
        let data = &body["data"];
        for field in ["contactIdentifier", "contactReplyTo", "contactPhone"] {
            assert!(data.get(field).is_some(), "{field} in {data}");
        }
        by_text.insert(
            data["content"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            data.clone(),
        );
    }
    let no_phone = &by_text["no phone here"];
    assert_eq!(no_phone["contactIdentifier"], "AR.ABC123");
    assert_eq!(no_phone["contactReplyTo"], "AR.ABC123");
    assert_eq!(no_phone["contactPhone"], Value::Null);
    let with_phone = &by_text["Hello from the sandbox"];
    assert_eq!(with_phone["contactIdentifier"], "US.13491208655302741918");
    assert_eq!(with_phone["contactReplyTo"], "16505551234");
    assert_eq!(with_phone["contactPhone"], "16505551234");
    let _ = phone_id;
    s.stop().await;
}

/// The operator settings, as `wagate serve` parses them: the documented
/// schedule by default, lengthened over days on request, private targets off.
#[test]
fn operator_settings_parse() {
    use clap::Parser;
    use wagate::config::{Cli, Command};

    let cli = Cli::try_parse_from(["wagate"]).expect("defaults parse");
    let o = cli.serve.webhooks.options().expect("default options");
    assert!(!o.allow_private, "private targets are refused by default");
    assert_eq!(
        o.schedule.delays,
        [60, 300, 900, 3600].map(Duration::from_secs).to_vec()
    );
    assert_eq!(o.schedule.max_attempts(), 5);
    assert_eq!(o.timeout, Duration::from_secs(15));
    assert_eq!(o.endpoint_concurrency, 16);

    let cli = Cli::try_parse_from([
        "wagate",
        "serve",
        "--webhooks-allow-private",
        "--webhooks-retry-schedule",
        "1m,5m,15m,1h,6h,12h,1d,1d",
        "--webhooks-timeout",
        "30s",
        "--webhooks-retry-after-max",
        "2h",
        "--webhooks-endpoint-concurrency",
        "4",
    ])
    .expect("flags parse");
    let Some(Command::Serve(args)) = cli.command else {
        panic!("serve");
    };
    let o = args.webhooks.options().expect("options");
    assert!(o.allow_private);
    assert_eq!(o.schedule.max_attempts(), 9);
    assert_eq!(o.schedule.delays[7], Duration::from_secs(86_400));
    assert_eq!(o.schedule.retry_after_max, Duration::from_secs(7200));
    assert_eq!(o.timeout, Duration::from_secs(30));
    assert_eq!(o.endpoint_concurrency, 4);

    let cli = Cli::try_parse_from(["wagate", "--webhooks-retry-schedule", "soon"]).expect("parses");
    let err = cli.serve.webhooks.options().expect_err("bad schedule");
    assert!(
        err.to_string().contains("WAGATE_WEBHOOKS_RETRY_SCHEDULE"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_events_fans_out_like_single_ones() {
    let (s, _) = start(fast()).await;
    let rx = Receiver::start().await;
    let (key, org_id) = org(&s, "batch@example.com").await;
    let (_, other_org) = org(&s, "batch-other@example.com").await;
    let waba = insert_waba(&s, org_id).await;
    create(&s, &key, json!({"url": rx.url("/all"), "events": ["*"]})).await;
    create(
        &s,
        &key,
        json!({"url": rx.url("/sent"), "events": ["message.sent"], "wabaId": waba}),
    )
    .await;
    let app = &s.running.as_ref().unwrap().app;
    let mut conn = app.store.conn().await.expect("conn");
    let ev = |org_id, waba_id, event, n: i32| NewEvent {
        org_id,
        waba_id,
        event,
        data: json!({"n": n}),
    };
    let ids = conn
        .transaction::<_, wagate::store::StoreError, _>(async |c| {
            events::record_events(
                c,
                vec![
                    ev(org_id, Some(waba), events::MESSAGE_SENT, 1),
                    ev(org_id, None, events::MESSAGE_SENT, 2),
                    ev(org_id, Some(waba), events::MESSAGE_RECEIVED, 3),
                    ev(other_org, None, events::MESSAGE_SENT, 4),
                ],
            )
            .await
        })
        .await
        .expect("batch");
    drop(conn);
    assert_eq!(ids.len(), 4);
    let all = rx.wait_for("/all", 3, Duration::from_secs(10)).await;
    let sent = rx.wait_for("/sent", 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut got: Vec<i64> = rx
        .received("/all")
        .iter()
        .map(|g| g.json()["data"]["n"].as_i64().unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!(got, [1, 2, 3], "not the other organization's event");
    assert_eq!(all.len(), 3);
    assert_eq!(rx.received("/sent").len(), 1);
    assert_eq!(sent[0].header("webhook-id"), ids[0].to_string());
    s.stop().await;
}
