//! The error envelope `{"error": {"message", "code", "details"?}}`, shared by
//! the transcoder, the fallbacks and the hand-written routes.
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use tonic::Status;

use crate::api::status::contract_code;
use crate::error_code::ErrorCode;

pub fn error_response(code: ErrorCode, message: &str, details: Option<Value>) -> Response {
    let mut error = json!({ "message": message, "code": code.as_str() });
    if let Some(d) = details {
        error["details"] = d;
    }
    json_response(code.http_status(), &json!({ "error": error }))
}

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Renders a gRPC status as the contract's REST error.
pub fn status_response(s: &Status) -> Response {
    let (code, field) = contract_code(s);
    let message = match code {
        // Never let a tonic-internal message leak through on a 500.
        ErrorCode::InternalError => "internal error",
        _ if s.message().is_empty() => code.as_str(),
        _ => s.message(),
    };
    let details = field.map(|f| json!({ "field": f }));
    let mut resp = error_response(code, message, details);
    if let Some(v) = s
        .metadata()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        && let Ok(v) = HeaderValue::from_str(v)
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}
