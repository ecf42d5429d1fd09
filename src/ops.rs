//! Operational routes that are not RPC-shaped: /health, /ready, /metrics,
//! /openapi.json.
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::app::App;
use crate::error_code::ErrorCode;
use crate::rest::envelope::{error_response, json_response};

#[derive(Clone)]
pub struct OpsState {
    pub app: App,
    pub openapi: Arc<serde_json::Value>,
}

/// Uptime; no auth, no database.
pub async fn health(State(s): State<OpsState>) -> Response {
    let uptime = s.app.started.elapsed().as_secs_f64();
    json_response(
        StatusCode::OK,
        &json!({"data": {"status": "ok", "uptimeSeconds": (uptime * 1000.0).round() / 1000.0, "version": env!("CARGO_PKG_VERSION")}}),
    )
}

/// 200 when PostgreSQL answers and every background worker beats; else 503.
pub async fn ready(State(s): State<OpsState>) -> Response {
    let db_ok = tokio::time::timeout(std::time::Duration::from_secs(2), s.app.store.ping())
        .await
        .is_ok_and(|r| r.is_ok());
    let workers = s.app.workers.status();
    let workers_ok = s.app.workers.all_alive();
    let checks = json!({
        "database": if db_ok { "ok" } else { "down" },
        "workers": workers.iter().map(|(n, alive)| (n.to_string(), json!(if *alive { "ok" } else { "stalled" }))).collect::<serde_json::Map<_, _>>(),
    });
    if db_ok && workers_ok {
        json_response(
            StatusCode::OK,
            &json!({"data": {"ready": true, "checks": checks}}),
        )
    } else {
        error_response(
            ErrorCode::Unavailable,
            "not ready",
            Some(json!({"checks": checks})),
        )
    }
}

pub async fn metrics(State(s): State<OpsState>) -> Response {
    let (size, available, max) = s.app.store.pool_status();
    s.app.metrics.set_pool(size, available, max);
    let mut resp = s.app.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

pub async fn openapi(State(s): State<OpsState>) -> Response {
    json_response(StatusCode::OK, &s.openapi)
}
