//! The `/_sim` control API: request log, webhooks, faults, config, phones, inbound injection,
//! raw webhooks, signup, templates, tokens, reset. JSON in and out (camelCase).
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::ConfigPatch;
use crate::faults::Fault;
use crate::inbound::InboundMessage;
use crate::log::RequestFilter;
use crate::management::PhonePatch;
use crate::signup::SignupRequest;
use crate::webhooks_out::Signature;
use crate::{SimError, Simulator};

pub(crate) fn router(_sim: Simulator) -> Router<Simulator> {
    Router::new()
        .route("/_sim/health", get(|| async { Json(json!({"ok": true})) }))
        .route("/_sim/requests", get(list_requests).delete(clear_requests))
        .route("/_sim/webhooks", get(list_webhooks).delete(clear_webhooks))
        .route("/_sim/webhooks/raw", post(raw_webhook))
        .route("/_sim/messages", get(list_messages))
        .route("/_sim/messages/{wamid}/status", post(emit_status))
        .route(
            "/_sim/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/_sim/faults/{id}", delete(remove_fault))
        .route("/_sim/config", get(get_config).put(put_config))
        .route("/_sim/throughput/{phone}", put(put_throughput))
        .route("/_sim/phones", get(list_phones))
        .route("/_sim/phones/{id}", put(put_phone).get(get_phone))
        .route("/_sim/wabas", get(list_wabas))
        .route("/_sim/inbound", post(inbound))
        .route("/_sim/signup", post(signup))
        .route("/_sim/templates", get(list_templates))
        .route("/_sim/templates/{id}/status", post(template_status))
        .route("/_sim/tokens/revoke", post(revoke_token))
        .route("/_sim/reset", post(reset))
}

fn sim_error(e: SimError) -> Response {
    let (status, extra) = match &e {
        SimError::NotFound(_) => (StatusCode::NOT_FOUND, Value::Null),
        SimError::NoWebhookUrl => (StatusCode::CONFLICT, Value::Null),
        SimError::WebhookFailed { wamid, last_status } => (
            StatusCode::BAD_GATEWAY,
            json!({"wamid": wamid, "lastStatus": last_status}),
        ),
        _ => (StatusCode::BAD_REQUEST, Value::Null),
    };
    let mut body = json!({"error": e.to_string()});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            body[k] = v;
        }
    }
    (status, Json(body)).into_response()
}

fn bad_request(msg: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": msg.to_string()})),
    )
        .into_response()
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, String> {
    let src: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(src).map_err(|e| format!("invalid JSON: {e}"))
}

async fn list_requests(State(sim): State<Simulator>, Query(f): Query<RequestFilter>) -> Response {
    let data = sim.requests_matching(&f);
    Json(json!({"count": data.len(), "data": data})).into_response()
}

async fn clear_requests(State(sim): State<Simulator>) -> Response {
    sim.clear_requests();
    Json(json!({"success": true})).into_response()
}

async fn list_webhooks(State(sim): State<Simulator>) -> Response {
    let data = sim.webhook_deliveries();
    Json(json!({"count": data.len(), "data": data})).into_response()
}

async fn clear_webhooks(State(sim): State<Simulator>) -> Response {
    sim.clear_webhook_deliveries();
    Json(json!({"success": true})).into_response()
}

#[derive(Deserialize)]
struct SignatureQuery {
    #[serde(default)]
    signature: Signature,
}

async fn raw_webhook(
    State(sim): State<Simulator>,
    Query(q): Query<SignatureQuery>,
    body: Bytes,
) -> Response {
    match sim.post_raw_webhook(body.to_vec(), q.signature).await {
        Ok(d) => Json(
            json!({"delivered": d.delivered, "attempts": d.attempts, "lastStatus": d.last_status}),
        )
        .into_response(),
        Err(e) => sim_error(e),
    }
}

async fn list_messages(State(sim): State<Simulator>) -> Response {
    let data = sim.sent_messages();
    Json(json!({"count": data.len(), "data": data})).into_response()
}

#[derive(Deserialize)]
struct StatusBody {
    status: String,
    #[serde(default)]
    code: Option<i64>,
}

async fn emit_status(
    State(sim): State<Simulator>,
    Path(wamid): Path<String>,
    body: Bytes,
) -> Response {
    let b: StatusBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return bad_request(e),
    };
    match sim.emit_status(&wamid, &b.status, b.code).await {
        Ok(d) => Json(json!({"delivered": d.delivered, "attempts": d.attempts})).into_response(),
        Err(e) => sim_error(e),
    }
}

async fn add_fault(State(sim): State<Simulator>, body: Bytes) -> Response {
    let f: Fault = match parse(&body) {
        Ok(f) => f,
        Err(e) => return bad_request(e),
    };
    let id = sim.inject_fault(f);
    Json(json!({"id": id})).into_response()
}

async fn list_faults(State(sim): State<Simulator>) -> Response {
    Json(json!({"data": sim.faults()})).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhoneQuery {
    phone_number_id: Option<String>,
}

async fn clear_faults(State(sim): State<Simulator>, Query(q): Query<PhoneQuery>) -> Response {
    match q.phone_number_id {
        Some(p) => sim.clear_phone_faults(&p),
        None => sim.clear_faults(),
    }
    Json(json!({"success": true})).into_response()
}

async fn remove_fault(State(sim): State<Simulator>, Path(id): Path<u64>) -> Response {
    Json(json!({"success": sim.remove_fault(id)})).into_response()
}

async fn get_config(State(sim): State<Simulator>) -> Response {
    Json(ConfigPatch::snapshot(&sim.config())).into_response()
}

async fn put_config(State(sim): State<Simulator>, body: Bytes) -> Response {
    let p: ConfigPatch = match parse(&body) {
        Ok(p) => p,
        Err(e) => return bad_request(e),
    };
    sim.update_config(p);
    Json(ConfigPatch::snapshot(&sim.config())).into_response()
}

#[derive(Deserialize)]
struct Mps {
    mps: u32,
}

async fn put_throughput(
    State(sim): State<Simulator>,
    Path(phone): Path<String>,
    body: Bytes,
) -> Response {
    let m: Mps = match parse(&body) {
        Ok(m) => m,
        Err(e) => return bad_request(e),
    };
    sim.set_throughput(&phone, m.mps);
    Json(json!({"success": true, "mps": m.mps})).into_response()
}

async fn list_phones(State(sim): State<Simulator>) -> Response {
    Json(json!({"data": sim.phones()})).into_response()
}

async fn get_phone(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    match sim.phone(&id) {
        Some(p) => Json(p).into_response(),
        None => sim_error(SimError::NotFound(format!("phone {id}"))),
    }
}

async fn put_phone(State(sim): State<Simulator>, Path(id): Path<String>, body: Bytes) -> Response {
    let p: PhonePatch = match parse(&body) {
        Ok(p) => p,
        Err(e) => return bad_request(e),
    };
    Json(sim.update_phone(&id, p)).into_response()
}

async fn list_wabas(State(sim): State<Simulator>) -> Response {
    Json(json!({"data": sim.wabas()})).into_response()
}

async fn inbound(State(sim): State<Simulator>, body: Bytes) -> Response {
    let m: InboundMessage = match parse(&body) {
        Ok(m) => m,
        Err(e) => return bad_request(e),
    };
    match sim.inject_inbound(m).await {
        Ok(wamid) => Json(json!({"wamid": wamid})).into_response(),
        Err(e) => sim_error(e),
    }
}

async fn signup(State(sim): State<Simulator>, body: Bytes) -> Response {
    let r: SignupRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    Json(sim.create_signup(r)).into_response()
}

async fn list_templates(State(sim): State<Simulator>) -> Response {
    Json(json!({"data": sim.templates()})).into_response()
}

#[derive(Deserialize)]
struct TemplateStatus {
    status: String,
    #[serde(default)]
    reason: Option<String>,
}

async fn template_status(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let t: TemplateStatus = match parse(&body) {
        Ok(t) => t,
        Err(e) => return bad_request(e),
    };
    match sim
        .set_template_status(&id, &t.status, t.reason.as_deref())
        .await
    {
        Ok(d) => Json(json!({"delivered": d.delivered})).into_response(),
        Err(e) => sim_error(e),
    }
}

#[derive(Deserialize)]
struct Token {
    token: String,
}

async fn revoke_token(State(sim): State<Simulator>, body: Bytes) -> Response {
    let t: Token = match parse(&body) {
        Ok(t) => t,
        Err(e) => return bad_request(e),
    };
    sim.revoke_token(&t.token);
    Json(json!({"success": true})).into_response()
}

async fn reset(State(sim): State<Simulator>) -> Response {
    sim.reset();
    Json(json!({"success": true})).into_response()
}
