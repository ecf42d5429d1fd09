//! Helpers of the outbound-messaging tests: a connected organization, sends
//! over REST, bounded waits on a message's status, the simulator's request
//! log keyed by our message id (`biz_opaque_callback_data`), the Graph
//! request samples, and external wagate instances (the real binary, or an
//! in-process server) against a simulator of the test's own.
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use wagate::server::{MetaOptions, ServerOptions};
use wagate_simulator::{LoggedRequest, RunningSimulator, Simulator, SimulatorConfig};

use super::TestServer;
use super::clients::RestReply;
use super::sandbox::{poll, token};

/// Meta's phone number id the tests connect (any numeric id is a phone in
/// the simulator) and the simulator's default WABA.
pub const PHONE: &str = "106540352242922";
pub const WABA: &str = "102290129340398";

/// The WABA an organization connects with `meta_phone`: the samples' WABA
/// with the samples' phone, and one of its own with any other (a WABA id
/// belongs to one organization).
pub fn waba_for(meta_phone: &str) -> String {
    if meta_phone == PHONE {
        WABA.to_owned()
    } else {
        format!("2{meta_phone}")
    }
}

/// An organization with a connected phone.
#[derive(Clone, Debug)]
pub struct Org {
    pub key: String,
    pub org_id: uuid::Uuid,
    /// wagate's id of the connected phone.
    pub phone_id: String,
    /// Meta's phone number id.
    pub meta_phone: String,
}

/// Registers `email` and connects Meta's phone `meta_phone` with a fresh token.
pub async fn connect_at(base: &str, email: &str, meta_phone: &str) -> Org {
    let rest = super::Rest::new(base);
    let (st, body) = rest
        .post(
            "/auth/register",
            None,
            json!({"email": email, "password": "correct horse battery", "name": "Acme Corp"}),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let key = body["data"]["apiKey"].as_str().expect("apiKey").to_owned();
    let org_id = body["data"]["organization"]["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("organization id: {body}"));
    let r = rest
        .send(
            "PUT",
            "/auth/me/credentials",
            Some(&key),
            Some(json!({"accessToken": token("out"), "phoneNumberId": meta_phone, "wabaId": waba_for(meta_phone)})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let phone_id = r.body["data"]["phoneId"]
        .as_str()
        .unwrap_or_else(|| panic!("phoneId: {}", r.text))
        .to_owned();
    Org {
        key,
        org_id,
        phone_id,
        meta_phone: meta_phone.to_owned(),
    }
}

pub async fn connect(s: &TestServer, email: &str) -> Org {
    connect_at(&s.base, email, PHONE).await
}

/// Sets the organization's plan directly in the store (operators use the CLI).
pub async fn set_plan(s: &TestServer, org: &Org, plan: wagate::domain::plans::Plan) {
    let store = &s.running.as_ref().expect("running").app.store;
    wagate::domain::accounts::set_plan(store, org.org_id, plan)
        .await
        .expect("set plan");
}

/// `POST path` with `body` and extra headers.
pub async fn post(
    s: &TestServer,
    key: &str,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> RestReply {
    s.rest()
        .send("POST", path, Some(key), Some(body), headers)
        .await
}

/// `POST /messages/{id}/{action}` (`retry`, `cancel`) with an empty body.
pub async fn act(s: &TestServer, key: &str, id: &str, action: &str) -> RestReply {
    post(s, key, &format!("/messages/{id}/{action}"), json!({}), &[]).await
}

/// `POST /v1/phones/{phoneId}/messages`; asserts 202; returns `data`.
pub async fn send_ok(s: &TestServer, org: &Org, body: Value) -> Value {
    let r = post(
        s,
        &org.key,
        &format!("/v1/phones/{}/messages", org.phone_id),
        body,
        &[],
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    r.body["data"].clone()
}

/// `GET /messages/{id}` → `data` (with the timeline).
pub async fn get_message(base: &str, key: &str, id: &str) -> Value {
    let (st, body) = super::Rest::new(base)
        .get(&format!("/messages/{id}"), Some(key))
        .await;
    assert_eq!(st, 200, "{body}");
    body["data"].clone()
}

/// Polls `GET /messages/{id}` (≤ `timeout`) until `pred` holds; returns it.
pub async fn wait_message(
    base: &str,
    key: &str,
    id: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    poll(what, timeout, || async {
        let m = get_message(base, key, id).await;
        if pred(&m) { Ok(m) } else { Err(m.to_string()) }
    })
    .await
}

/// Waits until the message has status `status`.
pub async fn wait_status(s: &TestServer, org: &Org, id: &str, status: &str) -> Value {
    wait_message(
        &s.base,
        &org.key,
        id,
        &format!("message {id} to be {status}"),
        Duration::from_secs(20),
        |m| m["status"] == status,
    )
    .await
}

/// `GET /messages{query}` → (total, data).
pub async fn list(base: &str, key: &str, query: &str) -> (i64, Vec<Value>) {
    let (st, body) = super::Rest::new(base)
        .get(&format!("/messages{query}"), Some(key))
        .await;
    assert_eq!(st, 200, "{body}");
    (
        body["meta"]["pagination"]["total"]
            .as_i64()
            .unwrap_or_else(|| panic!("total: {body}")),
        body["data"].as_array().cloned().unwrap_or_default(),
    )
}

/// Every `POST /{phone}/messages` the simulator logged for our message `id`,
/// matched on the body's `biz_opaque_callback_data` (requests answered by an
/// injected fault are logged without the parsed field, but with the body).
pub fn sends_of(sim: &Simulator, id: &str) -> Vec<LoggedRequest> {
    sim.requests()
        .into_iter()
        .filter(|r| {
            r.method == "POST"
                && r.path.ends_with("/messages")
                && r.body
                    .as_ref()
                    .and_then(|b| b.get("biz_opaque_callback_data"))
                    .and_then(Value::as_str)
                    == Some(id)
        })
        .collect()
}

/// Waits until the simulator accepted a send for `id`; returns its request.
pub async fn accepted_send(sim: &Simulator, id: &str) -> LoggedRequest {
    poll(
        &format!("the simulator to accept message {id}"),
        Duration::from_secs(20),
        || async {
            sends_of(sim, id)
                .into_iter()
                .find(|r| r.wamid.is_some())
                .ok_or_else(|| format!("{:?}", sends_of(sim, id)))
        },
    )
    .await
}

/// How many accepted sends the simulator logged per message id.
pub fn accepted_counts(sim: &Simulator) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in sim.accepted_sends() {
        if let Some(id) = r.biz_opaque_callback_data {
            *counts.entry(id).or_insert(0) += 1;
        }
    }
    counts
}

/// A sample of Meta's Graph API under tests/fixtures/meta/graph.
pub fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/meta/graph")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A simulator on its own port (Meta for wagate instances that are not in
/// sandbox mode), with webhook delivery retried for long enough to outlive
/// an instance's restart, as Meta's does (it retries for days).
pub async fn external_simulator() -> RunningSimulator {
    let mut cfg = SimulatorConfig::new(format!("sim-secret-{}", uuid::Uuid::new_v4().simple()));
    cfg.webhook_max_attempts = 40;
    Simulator::new(cfg)
        .spawn("127.0.0.1:0")
        .await
        .expect("simulator listens")
}

/// Server options for an in-process instance on `database_url` whose Meta
/// is `sim` (not sandbox mode).
pub fn options_for(database_url: &str, master_key: &str, sim: &RunningSimulator) -> ServerOptions {
    let mut opts = TestServer::options(database_url.to_owned());
    opts.master_key = master_key.to_owned();
    opts.meta = MetaOptions {
        graph_url: Some(format!("{}/", sim.base_url)),
        webhook_secret: Some(sim.simulator.config().app_secret),
        verify_token: Some("outbound-verify".into()),
        ..MetaOptions::sandbox_defaults()
    };
    opts
}

/// A free local port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A child process SIGKILLed (and reaped) when dropped or asked to.
pub struct Proc(Option<Child>);

impl Proc {
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.0.as_mut()?.try_wait().expect("try_wait")
    }

    /// SIGKILL: the process gets no chance to release anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            c.kill().expect("SIGKILL delivered");
            c.wait().expect("reaped");
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `wagate` binary serving on `port` against `database_url`, with `sim`
/// as Meta and the given extra flags; returns once `/health` answers.
pub async fn spawn_binary(
    database_url: &str,
    master_key: &str,
    sim: &RunningSimulator,
    port: u16,
    extra: &[&str],
    log: &std::path::Path,
    data_dir: &std::path::Path,
) -> Proc {
    let out = std::fs::File::create(log).expect("log file");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_wagate"))
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--meta-graph-url", &format!("{}/", sim.base_url)])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("DATABASE_URL", database_url)
        .env("WHATSAPP_APP_SECRET", sim.simulator.config().app_secret)
        .env("WHATSAPP_VERIFY_TOKEN", "outbound-verify")
        .env("WAGATE_MASTER_KEY", master_key)
        .env("RUST_LOG", "warn")
        .env_remove("META_APP_ID")
        .env_remove("META_APP_SECRET")
        .env_remove("META_API_VERSION")
        .env_remove("WAGATE_LISTEN")
        .env_remove("WAGATE_PUBLIC_URL")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .expect("wagate starts");
    let mut proc = Proc(Some(child));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = proc.try_wait() {
            panic!(
                "wagate exited early ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if let Ok(r) = http.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            return proc;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "wagate never answered /health: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Injects an inbound text message from `from` through the sandbox
/// simulator's control API; waits until wagate stored it (its wamid).
pub async fn inject_inbound(s: &TestServer, org: &Org, from: &str, text: &str) -> String {
    let r = s
        .rest()
        .send(
            "POST",
            "/sandbox/_sim/inbound",
            None,
            Some(json!({"phoneNumberId": org.meta_phone, "from": from, "type": "text", "text": text})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let wamid = r.body["wamid"].as_str().expect("wamid").to_owned();
    poll(
        "the inbound message to be stored",
        Duration::from_secs(15),
        || async {
            let (_, data) = list(&s.base, &org.key, "?direction=inbound&limit=100").await;
            if data.iter().any(|m| m["wamid"] == wamid.as_str()) {
                Ok(())
            } else {
                Err(format!("{data:?}"))
            }
        },
    )
    .await;
    wamid
}

#[derive(diesel::QueryableByName)]
struct StatusCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Outbound messages per status, read straight from the database.
pub async fn status_counts(database_url: &str) -> std::collections::BTreeMap<String, i64> {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let mut conn = AsyncPgConnection::establish(database_url)
        .await
        .expect("test database connects");
    diesel::sql_query(
        "SELECT status, count(*) AS n FROM messages WHERE direction = 'outbound' GROUP BY status",
    )
    .load::<StatusCount>(&mut conn)
    .await
    .expect("count messages")
    .into_iter()
    .map(|c| (c.status, c.n))
    .collect()
}

/// How many timeline entries have a note containing `text`.
pub async fn notes_containing(database_url: &str, text: &str) -> i64 {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = AsyncPgConnection::establish(database_url)
        .await
        .expect("test database connects");
    diesel::sql_query("SELECT count(*) AS n FROM message_events WHERE strpos(note, $1) > 0")
        .bind::<diesel::sql_types::Text, _>(text)
        .get_result::<N>(&mut conn)
        .await
        .expect("count notes")
        .n
}

/// Waits (≤ `timeout`) until `n` outbound messages are sent or beyond
/// (sent, delivered, read) and none is queued, processing or retrying.
pub async fn wait_all_sent(database_url: &str, n: i64, timeout: Duration) {
    poll("every message to be sent", timeout, || async {
        let counts = status_counts(database_url).await;
        let done: i64 = ["sent", "delivered", "read"]
            .iter()
            .filter_map(|s| counts.get(*s))
            .sum();
        if done == n {
            Ok(())
        } else {
            Err(format!("{counts:?}"))
        }
    })
    .await
}
