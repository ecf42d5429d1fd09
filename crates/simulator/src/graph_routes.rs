//! The Graph API front door: parses the request, logs it, checks the token, applies injected
//! faults and routes `/{version}/{id}[/{edge}]` to the handlers.
use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Map, Value};

use crate::errors::GraphError;
use crate::faults::FaultKind;
use crate::log::{LoggedRequest, Outcome};
use crate::{Simulator, ids, management, media, messages, signup, templates};

/// Largest request body read (media uploads up to Meta's 100 MB documents).
const MAX_BODY: usize = 110 * 1024 * 1024;

/// A parsed Graph request.
pub(crate) struct Ctx {
    pub method: Method,
    pub version: String,
    /// Path segments after the version.
    pub segs: Vec<String>,
    pub query: BTreeMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// JSON body, or a form body as an object of strings.
    pub json: Option<Value>,
    /// `http://host[:port]` of this server as the client sees it.
    pub base_url: String,
    pub token: Option<String>,
}

impl Ctx {
    /// A parameter from the JSON/form body or, failing that, the query string.
    pub fn param(&self, name: &str) -> Option<String> {
        self.json
            .as_ref()
            .and_then(|j| j.get(name))
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .or_else(|| self.query.get(name).cloned())
    }
}

/// What the handlers record about a request, copied into its log entry.
#[derive(Default, Debug)]
pub(crate) struct Note {
    pub kind: String,
    pub phone_number_id: Option<String>,
    pub waba_id: Option<String>,
    pub recipient: Option<String>,
    pub message_type: Option<String>,
    pub callback: Option<String>,
    pub wamid: Option<String>,
}

/// A successful answer.
pub(crate) enum Reply {
    Json(Value),
    Bytes { mime: String, data: Bytes },
}

pub(crate) type GraphResult = Result<Reply, GraphError>;

pub(crate) fn ok_json(v: Value) -> GraphResult {
    Ok(Reply::Json(v))
}

pub(crate) fn success() -> GraphResult {
    ok_json(serde_json::json!({"success": true}))
}

fn is_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    !rest.is_empty()
        && rest
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn parse_query(q: Option<&str>) -> BTreeMap<String, String> {
    q.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn parse_body(headers: &HeaderMap, body: &[u8]) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.starts_with("application/x-www-form-urlencoded") {
        let m: Map<String, Value> = form_urlencoded::parse(body)
            .into_owned()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        return Some(Value::Object(m));
    }
    if ct.starts_with("multipart/") {
        return None;
    }
    serde_json::from_slice(body).ok()
}

fn bearer(headers: &HeaderMap, query: &BTreeMap<String, String>) -> Option<String> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let v = v.trim();
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .or_else(|| v.strip_prefix("OAuth "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    from_header.or_else(|| query.get("access_token").filter(|t| !t.is_empty()).cloned())
}

fn headers_of_interest(headers: &HeaderMap) -> BTreeMap<String, String> {
    ["authorization", "content-type", "user-agent"]
        .iter()
        .filter_map(|h| {
            headers
                .get(*h)
                .and_then(|v| v.to_str().ok())
                .map(|v| (h.to_string(), v.to_string()))
        })
        .collect()
}

/// A response whose body fails at once: the client sees the connection end without a
/// (complete) answer.
fn broken_response() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("simulated disconnect"))
    });
    Response::new(Body::from_stream(stream))
}

fn error_response(e: &GraphError, version: &str, empty: bool) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = if empty {
        status.into_response()
    } else {
        (status, axum::Json(e.body.clone())).into_response()
    };
    if e.status == 401 || e.status == 400 {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("OAuth \"Facebook Platform\" \"invalid_request\""),
        );
    }
    decorate(&mut resp, version);
    resp
}

fn decorate(resp: &mut Response, version: &str) {
    if let Ok(v) = HeaderValue::from_str(if version.is_empty() { "v25.0" } else { version }) {
        resp.headers_mut().insert("facebook-api-version", v);
    }
    if let Ok(v) = HeaderValue::from_str(&ids::fbtrace_id()) {
        resp.headers_mut().insert("x-fb-trace-id", v);
    }
}

/// Marks the log entry when the request future is dropped before it finished (client gone).
struct LogGuard {
    sim: Simulator,
    seq: u64,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(e) = self.sim.shared.log.lock().get_mut(self.seq)
            && e.outcome == Outcome::Pending
        {
            e.outcome = Outcome::ClientGone;
        }
    }
}

impl Simulator {
    fn log_update(&self, seq: u64, f: impl FnOnce(&mut LoggedRequest)) {
        if let Some(e) = self.shared.log.lock().get_mut(seq) {
            f(e);
        }
    }

    fn log_note(&self, seq: u64, note: Note) {
        self.log_update(seq, |e| {
            if !note.kind.is_empty() {
                e.kind = note.kind;
            }
            e.phone_number_id = note.phone_number_id.or(e.phone_number_id.take());
            e.waba_id = note.waba_id.or(e.waba_id.take());
            e.recipient = note.recipient;
            e.message_type = note.message_type;
            e.biz_opaque_callback_data = note.callback;
            e.wamid = note.wamid;
        });
    }

    async fn hold(&self, ms: Option<u64>) -> Response {
        let d = ms
            .map(Duration::from_millis)
            .unwrap_or_else(|| self.shared.cfg.read().max_hold);
        tokio::time::sleep(d).await;
        broken_response()
    }
}

/// The axum fallback handler: every non-`/_sim` request.
pub(crate) async fn handle(State(sim): State<Simulator>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return error_response(&GraphError::param("Request body too large"), "", false);
        }
    };
    let path = parts.uri.path().to_string();
    let query = parse_query(parts.uri.query());
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let base_url = sim
        .shared
        .cfg
        .read()
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{host}"));
    let all: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let is_download = all.first().map(String::as_str) == Some("whatsapp_business");
    let (version, segs) = match all.split_first() {
        Some((v, rest)) if is_version(v) => (v.clone(), rest.to_vec()),
        _ => (String::new(), all.clone()),
    };
    let json = parse_body(&parts.headers, &body);
    let first_id = segs.first().cloned();
    let entry = LoggedRequest {
        seq: 0,
        at: Utc::now(),
        method: parts.method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: json
            .clone()
            .or_else(|| media::multipart_summary(&parts.headers, &body)),
        headers: headers_of_interest(&parts.headers),
        kind: "unknown".into(),
        phone_number_id: None,
        waba_id: None,
        recipient: None,
        message_type: None,
        biz_opaque_callback_data: None,
        wamid: None,
        http_status: None,
        error_code: None,
        fault: None,
        outcome: Outcome::Pending,
    };
    let cap = sim.shared.cfg.read().max_logged_requests;
    let seq = sim.shared.log.lock().push(entry, cap);
    let _guard = LogGuard {
        sim: sim.clone(),
        seq,
    };
    let token = bearer(&parts.headers, &query);
    let ctx = Ctx {
        method: parts.method.clone(),
        version: version.clone(),
        segs,
        query,
        headers: parts.headers,
        body,
        json,
        base_url,
        token,
    };
    let finish = |result: GraphResult, note: Note| -> Response {
        sim.log_note(seq, note);
        match result {
            Ok(Reply::Json(v)) => {
                sim.log_update(seq, |e| {
                    e.http_status = Some(200);
                    e.outcome = Outcome::Answered;
                });
                let mut resp = axum::Json(v).into_response();
                decorate(&mut resp, &ctx.version);
                resp
            }
            Ok(Reply::Bytes { mime, data }) => {
                sim.log_update(seq, |e| {
                    e.http_status = Some(200);
                    e.outcome = Outcome::Answered;
                });
                let mut resp = data.into_response();
                if let Ok(v) = HeaderValue::from_str(&mime) {
                    resp.headers_mut().insert(header::CONTENT_TYPE, v);
                }
                resp
            }
            Err(e) => {
                sim.log_update(seq, |l| {
                    l.http_status = Some(e.status);
                    l.error_code = e.code();
                    l.outcome = Outcome::Answered;
                });
                error_response(&e, &ctx.version, false)
            }
        }
    };

    // Downloads of media URLs (no version; bearer required, any token).
    if is_download {
        let mut note = Note {
            kind: "media.download".into(),
            ..Default::default()
        };
        let result = media::download(&sim, &ctx, &mut note);
        return finish(result, note);
    }
    if version.is_empty() {
        let id = first_id.unwrap_or_default();
        return finish(
            Err(GraphError::unknown_object(ctx.method.as_str(), &id)),
            Note::default(),
        );
    }

    let is_oauth = matches!(
        ctx.segs
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["oauth", "access_token"] | ["debug_token"]
    );
    if !is_oauth {
        match &ctx.token {
            None => return finish(Err(GraphError::token_missing()), Note::default()),
            Some(t) if sim.shared.world.lock().revoked_tokens.contains(t) => {
                return finish(Err(GraphError::token_expired()), Note::default());
            }
            Some(_) => {}
        }
    }

    // Faults.
    let is_messages = ctx.method == Method::POST
        && ctx.segs.len() == 2
        && ctx.segs.get(1).map(String::as_str) == Some("messages");
    let fault = if is_oauth {
        None
    } else {
        sim.shared
            .faults
            .lock()
            .take(ctx.segs.first().map(String::as_str), is_messages)
    };
    if let Some(f) = &fault {
        let name = serde_json::to_value(f)
            .ok()
            .and_then(|v| v.get("kind").and_then(Value::as_str).map(str::to_string));
        let phone = if is_messages { first_id.clone() } else { None };
        sim.log_update(seq, |e| {
            e.fault = name;
            e.phone_number_id = phone;
        });
    }
    match &fault {
        Some(FaultKind::ServerError { status, empty_body }) => {
            let e = GraphError::server_error(*status);
            sim.log_update(seq, |l| {
                l.http_status = Some(e.status);
                l.error_code = if *empty_body { None } else { e.code() };
                l.outcome = Outcome::Answered;
                l.kind = if is_messages {
                    "messages.send".into()
                } else {
                    l.kind.clone()
                };
            });
            return error_response(&e, &ctx.version, *empty_body);
        }
        Some(FaultKind::MetaError {
            code,
            subcode,
            http_status,
            details,
        }) => {
            let e = GraphError::custom(*code, *subcode, *http_status, details.as_deref());
            let note = Note {
                kind: if is_messages {
                    "messages.send".into()
                } else {
                    String::new()
                },
                phone_number_id: first_id.clone().filter(|_| is_messages),
                ..Default::default()
            };
            return finish(Err(e), note);
        }
        Some(FaultKind::Timeout { ms }) => {
            sim.log_update(seq, |e| e.outcome = Outcome::Unanswered);
            return sim.hold(*ms).await;
        }
        Some(FaultKind::Disconnect) => {
            sim.log_update(seq, |e| e.outcome = Outcome::Unanswered);
            return broken_response();
        }
        Some(FaultKind::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(*ms)).await;
        }
        _ => {}
    }

    let mut note = Note::default();
    let result = route(&sim, &ctx, &mut note).await;
    match fault {
        Some(FaultKind::AcceptThenTimeout { ms }) => {
            let status = match &result {
                Ok(_) => 200,
                Err(e) => e.status,
            };
            let code = result.as_ref().err().and_then(GraphError::code);
            sim.log_note(seq, note);
            sim.log_update(seq, |e| {
                e.http_status = Some(status);
                e.error_code = code;
                e.outcome = Outcome::AcceptedUnanswered;
            });
            sim.hold(ms).await
        }
        Some(FaultKind::AcceptThenDisconnect) => {
            sim.log_note(seq, note);
            sim.log_update(seq, |e| e.outcome = Outcome::AcceptedUnanswered);
            broken_response()
        }
        _ => finish(result, note),
    }
}

async fn route(sim: &Simulator, ctx: &Ctx, note: &mut Note) -> GraphResult {
    let segs: Vec<&str> = ctx.segs.iter().map(String::as_str).collect();
    let m = &ctx.method;
    match segs.as_slice() {
        ["oauth", "access_token"] if m == Method::GET => signup::oauth(sim, ctx, note),
        ["debug_token"] if m == Method::GET => signup::debug_token(sim, ctx, note),
        [id, "messages"] if m == Method::POST => messages::handle(sim, ctx, id, note),
        [id, "media"] if m == Method::POST => media::upload(sim, ctx, id, note),
        [id, edge @ ("register" | "deregister")] if m == Method::POST => {
            management::register(sim, ctx, id, edge == &"register", note)
        }
        [id, "whatsapp_business_profile"] => management::business_profile(sim, ctx, id, note),
        [id, "subscribed_apps"] => management::subscribed_apps(sim, ctx, id, note).await,
        [id, "phone_numbers"] if m == Method::GET => management::phone_numbers(sim, ctx, id, note),
        [id, "message_templates"] => templates::waba_templates(sim, ctx, id, note).await,
        [id] if m == Method::GET => get_object(sim, ctx, id, note),
        [id] if m == Method::POST => {
            if sim.shared.world.lock().templates.contains_key(*id) {
                templates::edit(sim, ctx, id, note).await
            } else {
                management::update_phone_settings(sim, ctx, id, note)
            }
        }
        [id] if m == Method::DELETE => media::delete(sim, id, note),
        [id, ..] => Err(GraphError::unknown_object(m.as_str(), id)),
        [] => Err(GraphError::unknown_object(m.as_str(), "")),
    }
}

/// `GET /{id}`: a template, media, WABA or phone number (created on first sight).
fn get_object(sim: &Simulator, ctx: &Ctx, id: &str, note: &mut Note) -> GraphResult {
    let (is_template, is_media, is_waba) = {
        let w = sim.shared.world.lock();
        (
            w.templates.contains_key(id),
            w.media.contains_key(id),
            w.wabas.contains_key(id),
        )
    };
    if is_template {
        return templates::get(sim, ctx, id, note);
    }
    if is_media {
        return media::get_url(sim, ctx, id, note);
    }
    if is_waba {
        return management::get_waba(sim, ctx, id, note);
    }
    management::get_phone(sim, ctx, id, note)
}

/// The `fields` parameter as top-level names (`throughput{level},health_status` ->
/// `[throughput, health_status]`).
pub(crate) fn requested_fields(ctx: &Ctx) -> Option<Vec<String>> {
    let raw = ctx.query.get("fields")?;
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut cur = String::new();
    for c in raw.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
            }
            _ if depth == 0 => cur.push(c),
            _ => {}
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    Some(out)
}

/// Keeps the requested fields of `full` (+ `id`), or the `defaults` without `fields`.
/// A field the node does not have is Graph's `(#100) Tried accessing nonexisting field`.
pub(crate) fn select_fields(
    ctx: &Ctx,
    full: &Map<String, Value>,
    defaults: &[&str],
    node_type: &str,
) -> Result<Value, GraphError> {
    let wanted: Vec<String> = match requested_fields(ctx) {
        Some(f) => f,
        None => defaults.iter().map(|s| s.to_string()).collect(),
    };
    let mut out = Map::new();
    for f in &wanted {
        match full.get(f) {
            Some(v) => {
                out.insert(f.clone(), v.clone());
            }
            None => return Err(GraphError::nonexisting_field(f, node_type)),
        }
    }
    if let Some(id) = full.get("id") {
        out.insert("id".into(), id.clone());
    }
    Ok(Value::Object(out))
}
