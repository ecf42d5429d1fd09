//! The two hand-written routes (DESIGN principle 1: the signature needs the
//! raw body, which the REST transcoder does not keep).
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;

use super::MAX_BODY_BYTES;
use crate::app::App;

pub const PATH: &str = "/webhooks/whatsapp";

/// `GET` and `POST /webhooks/whatsapp`, with a 3 MB body limit.
pub fn routes(app: &App) -> Router {
    Router::new()
        .route(PATH, get(verify).post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app.clone())
}

/// Meta's verification: `hub.mode=subscribe` with the configured
/// `hub.verify_token` gets the bare `hub.challenge` back; anything else 403.
async fn verify(State(app): State<App>, Query(q): Query<HashMap<String, String>>) -> Response {
    let expected = app.inbound.options.verify_token.as_deref();
    let mode = q.get("hub.mode").map(String::as_str);
    let token = q.get("hub.verify_token").map(String::as_str);
    let ok = match (expected, mode, token) {
        (Some(want), Some("subscribe"), Some(got)) => constant_time_eq(want, got),
        _ => false,
    };
    if !ok {
        return (StatusCode::FORBIDDEN, "verification failed").into_response();
    }
    let challenge = q.get("hub.challenge").cloned().unwrap_or_default();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        challenge,
    )
        .into_response()
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A delivery: signature over the raw bytes, then stored durably, then 200.
async fn receive(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = app.inbound.options.app_secret.as_deref() else {
        return (
            StatusCode::UNAUTHORIZED,
            "webhook app secret not configured",
        )
            .into_response();
    };
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !wagate_meta::signature::verify(secret.as_bytes(), &body, signature) {
        tracing::warn!(
            has_signature = !signature.is_empty(),
            bytes = body.len(),
            "webhook refused: missing or invalid X-Hub-Signature-256"
        );
        return (StatusCode::UNAUTHORIZED, "invalid signature").into_response();
    }
    match app.inbound.store(body).await {
        Ok(id) => {
            tracing::debug!(inbound_id = id, "webhook stored");
            (StatusCode::OK, "EVENT_RECEIVED").into_response()
        }
        Err(e) => {
            // Not stored: Meta retries a non-200.
            tracing::error!(error = %e, "webhook not stored");
            (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response()
        }
    }
}
