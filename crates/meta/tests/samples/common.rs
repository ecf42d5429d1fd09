//! Fixture loading and a capturing mock Graph server.
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use url::Url;
use wagate_meta::{GraphClient, GraphConfig};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/meta");

pub const TOKEN: &str = "EAAtest-token";

/// `(file name, parsed JSON)` of every `*.json` under `fixtures/meta/<dir>`, sorted.
pub fn fixtures(dir: &str) -> Vec<(String, Value)> {
    let path = PathBuf::from(FIXTURES).join(dir);
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, json)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub fn fixture(dir: &str, name: &str) -> Value {
    let path = PathBuf::from(FIXTURES).join(dir).join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// JSON pointers present in `full` but missing or different in `part`, to
/// explain a failed comparison.
pub fn diff(full: &Value, part: &Value) -> Vec<String> {
    fn walk(path: &str, a: &Value, b: Option<&Value>, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(ma), Some(Value::Object(mb))) => {
                for (k, va) in ma {
                    walk(&format!("{path}/{k}"), va, mb.get(k), out);
                }
                for k in mb.keys().filter(|k| !ma.contains_key(*k)) {
                    out.push(format!("{path}/{k} (added)"));
                }
            }
            (Value::Array(xa), Some(Value::Array(xb))) if xa.len() == xb.len() => {
                for (i, va) in xa.iter().enumerate() {
                    walk(&format!("{path}/{i}"), va, xb.get(i), out);
                }
            }
            (a, Some(b)) if a == b => {}
            (_, None) => out.push(format!("{path} (missing)")),
            (a, Some(b)) => out.push(format!("{path}: {a} != {b}")),
        }
    }
    let mut out = Vec::new();
    walk("", full, Some(part), &mut out);
    out
}

/// What the mock saw of one request.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Captured {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Decoded query pairs (so `a,b` and `a%2Cb`, `+` and `%20` compare equal).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        query_pairs(self.query.as_deref().unwrap_or(""))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

struct MockState {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
    captured: Mutex<Vec<Captured>>,
}

/// A local server on 127.0.0.1:0 that records every request and answers
/// each with the same status, headers and body.
pub struct Mock {
    pub base: Url,
    state: Arc<MockState>,
}

impl Mock {
    pub async fn start(status: u16, body: impl Into<Vec<u8>>) -> Mock {
        Self::with_headers(status, body, &[("content-type", "application/json")]).await
    }

    pub async fn json(status: u16, body: &Value) -> Mock {
        Self::start(status, serde_json::to_vec(body).unwrap()).await
    }

    pub async fn with_headers(
        status: u16,
        body: impl Into<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Mock {
        let state = Arc::new(MockState {
            status,
            body: body.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            captured: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Mock {
            base: Url::parse(&format!("http://{addr}/")).unwrap(),
            state,
        }
    }

    /// A client for this mock, on API version v19.0 like the recordings.
    pub fn client(&self) -> GraphClient {
        GraphClient::new(GraphConfig::new(self.base.clone(), "v19.0")).unwrap()
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.state.captured.lock().unwrap().clone()
    }

    /// The single request the mock received.
    pub fn only(&self) -> Captured {
        let reqs = self.requests();
        assert_eq!(reqs.len(), 1, "expected exactly one request, got {reqs:?}");
        reqs.into_iter().next().unwrap()
    }
}

async fn handle(State(state): State<Arc<MockState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    state.captured.lock().unwrap().push(Captured {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body: body.to_vec(),
    });
    let mut resp = (
        StatusCode::from_u16(state.status).unwrap(),
        state.body.clone(),
    )
        .into_response();
    for (k, v) in &state.headers {
        resp.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    resp
}
