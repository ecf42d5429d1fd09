//! Test harness: a simulator on 127.0.0.1:0 and a small axum receiver for its webhooks.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::Value;
use wagate_simulator::{RunningSimulator, Simulator, SimulatorConfig, StatusDelays};

pub const SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "vt";

#[derive(Clone, Debug)]
pub struct Hook {
    pub signature: Option<String>,
    pub raw: Vec<u8>,
    pub json: Value,
}

impl Hook {
    pub fn signed_ok(&self) -> bool {
        self.signature
            .as_deref()
            .is_some_and(|s| wagate_meta::signature::verify(SECRET.as_bytes(), &self.raw, s))
    }
}

#[derive(Clone, Default)]
pub struct Receiver {
    pub hooks: Arc<Mutex<Vec<Hook>>>,
    /// Answer 500 to this many posts first.
    pub fail_next: Arc<AtomicU32>,
}

impl Receiver {
    pub fn all(&self) -> Vec<Hook> {
        self.hooks.lock().clone()
    }

    /// Every status object received: (hook index, status object).
    pub fn statuses(&self) -> Vec<(usize, Value)> {
        let mut out = Vec::new();
        for (i, h) in self.hooks.lock().iter().enumerate() {
            for e in h.json["entry"].as_array().into_iter().flatten() {
                for c in e["changes"].as_array().into_iter().flatten() {
                    for s in c["value"]["statuses"].as_array().into_iter().flatten() {
                        out.push((i, s.clone()));
                    }
                }
            }
        }
        out
    }

    pub fn statuses_of(&self, wamid: &str) -> Vec<Value> {
        self.statuses()
            .into_iter()
            .filter(|(_, s)| s["id"] == wamid)
            .map(|(_, s)| s)
            .collect()
    }

    pub fn hooks_with_field(&self, field: &str) -> Vec<Hook> {
        self.all()
            .into_iter()
            .filter(|h| h.json["entry"][0]["changes"][0]["field"] == field)
            .collect()
    }

    pub async fn wait(&self, what: &str, pred: impl Fn(&Receiver) -> bool) {
        for _ in 0..1000 {
            if pred(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "timed out waiting for {what}; got {} hooks",
            self.hooks.lock().len()
        );
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if r.fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    r.hooks.lock().push(Hook {
        signature,
        raw: body.to_vec(),
        json,
    });
    StatusCode::OK
}

async fn verify(
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> (StatusCode, String) {
    if q.get("hub.mode").map(String::as_str) == Some("subscribe")
        && q.get("hub.verify_token").map(String::as_str) == Some(VERIFY_TOKEN)
    {
        (
            StatusCode::OK,
            q.get("hub.challenge").cloned().unwrap_or_default(),
        )
    } else {
        (StatusCode::FORBIDDEN, "no".into())
    }
}

pub struct Env {
    pub sim: Simulator,
    pub running: RunningSimulator,
    pub base: String,
    pub graph: String,
    pub recv: Receiver,
    pub hook_url: String,
    pub http: reqwest::Client,
    _recv_task: tokio::task::JoinHandle<()>,
}

pub fn config() -> SimulatorConfig {
    let mut cfg = SimulatorConfig::new(SECRET);
    cfg.status_delays = StatusDelays::immediate();
    cfg.template_review_delay = Duration::from_millis(50);
    cfg.max_hold = Duration::from_secs(3);
    cfg.webhook_retry_base = Duration::from_millis(20);
    // Tests send in tight loops; the throughput test sets the default burst back.
    cfg.throughput_burst = Some(50);
    cfg
}

pub async fn start() -> Env {
    start_with(config()).await
}

pub async fn start_with(mut cfg: SimulatorConfig) -> Env {
    let recv = Receiver::default();
    let app = Router::new()
        .route("/webhooks/whatsapp", post(receive).get(verify))
        .with_state(recv.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!(
        "http://{}/webhooks/whatsapp",
        listener.local_addr().unwrap()
    );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    cfg.webhook_url = Some(hook_url.clone());
    let sim = Simulator::new(cfg);
    let running = sim.spawn("127.0.0.1:0").await.unwrap();
    let base = running.base_url.clone();
    Env {
        sim,
        graph: format!("{base}/v21.0"),
        base,
        running,
        recv,
        hook_url,
        http: reqwest::Client::new(),
        _recv_task: task,
    }
}

impl Env {
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.graph))
            .bearer_auth("any-token")
            .json(body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.graph))
            .bearer_auth("any-token")
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .delete(format!("{}{path}", self.graph))
            .bearer_auth("any-token")
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// A control-API call (`/_sim/...`).
    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn send_text(&self, phone: &str, to: &str, cb: Option<&str>) -> (u16, Value) {
        let mut body = serde_json::json!({
            "messaging_product": "whatsapp", "recipient_type": "individual",
            "to": to, "type": "text", "text": {"body": "hello"}
        });
        if let Some(cb) = cb {
            body["biz_opaque_callback_data"] = cb.into();
        }
        self.post(&format!("/{phone}/messages"), &body).await
    }
}

pub fn fixture(rel: &str) -> Value {
    let path = format!(
        "{}/../../tests/fixtures/meta/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Same shape: same key sets (recursively), same JSON types; arrays compared on their first
/// elements. Returns the first difference.
pub fn shape_diff(ours: &Value, sample: &Value, path: &str) -> Option<String> {
    if kind(ours) != kind(sample) {
        return Some(format!("{path}: {} vs sample {}", kind(ours), kind(sample)));
    }
    match (ours, sample) {
        (Value::Object(a), Value::Object(b)) => {
            let ka: Vec<_> = a.keys().collect();
            let mut kb: Vec<_> = b.keys().collect();
            kb.sort();
            if ka != kb {
                return Some(format!("{path}: keys {ka:?} vs sample {kb:?}"));
            }
            a.iter()
                .find_map(|(k, v)| shape_diff(v, &b[k], &format!("{path}.{k}")))
        }
        (Value::Array(a), Value::Array(b)) => match (a.first(), b.first()) {
            (Some(x), Some(y)) => shape_diff(x, y, &format!("{path}[0]")),
            _ => None,
        },
        _ => None,
    }
}

#[track_caller]
pub fn assert_shape(ours: &Value, sample: &Value) {
    if let Some(d) = shape_diff(ours, sample, "$") {
        panic!("shape differs: {d}\nours:   {ours}\nsample: {sample}");
    }
}
