//! Error answers the frameworks write before any of our code runs, given the
//! contract's envelope instead of a bare text or empty body, so a client can
//! branch on `error.code` whatever refused its request.
//!
//! - [`too_large`]: axum's body-limit rejection on the hand-written routes
//!   (Meta's webhook receiver): `413 Failed to buffer the request body…`.
//! - [`grpc_transport`]: tonic-web refuses what is neither grpc-web nor
//!   HTTP/2 gRPC (gRPC over HTTP/1.1, `application/grpc-web+json`, a grpc-web
//!   GET) with an empty 400 or 405.
//!
//! 414 and 431 are written by hyper while it parses the request line and
//! headers, before the router exists for that request: they stay bare.
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};

use super::envelope::error_response;
use crate::error_code::ErrorCode;

/// Middleware: a 413 that is not already JSON becomes `PAYLOAD_TOO_LARGE`
/// naming the route's limit (the state).
pub async fn too_large(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if resp.status() != StatusCode::PAYLOAD_TOO_LARGE || is_json(&resp) {
        return resp;
    }
    error_response(
        ErrorCode::PayloadTooLarge,
        &format!("request body exceeds {limit} bytes"),
        None,
    )
}

/// Middleware over the grpc-web translation: its bodiless refusals (no
/// `grpc-status`, so no gRPC answer at all) get an envelope saying what to
/// use instead.
pub async fn grpc_transport(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let bare = resp.headers().get("grpc-status").is_none()
        && resp.headers().get(header::CONTENT_TYPE).is_none()
        && http_body::Body::size_hint(resp.body()).exact() == Some(0);
    if !bare {
        return resp;
    }
    match resp.status() {
        StatusCode::BAD_REQUEST => error_response(
            ErrorCode::ValidationError,
            "gRPC needs HTTP/2 (application/grpc); over HTTP/1.1 use grpc-web \
             (application/grpc-web+proto or application/grpc-web-text)",
            None,
        ),
        StatusCode::METHOD_NOT_ALLOWED => {
            let mut out =
                error_response(ErrorCode::MethodNotAllowed, "grpc-web calls use POST", None);
            out.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static(Method::POST.as_str()),
            );
            out
        }
        _ => resp,
    }
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}
