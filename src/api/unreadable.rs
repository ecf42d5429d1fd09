//! Statuses tonic produces by itself while reading a request, before any
//! handler runs: bytes that are not a gRPC frame (`invalid compression
//! flag`), a grpc-web-text body that is not base64, a body that ends inside
//! a frame, no message at all. tonic answers them INTERNAL (or UNKNOWN)
//! with its own diagnostic text. They are the caller's mistake and the text
//! is an internal, so this layer answers INVALID_ARGUMENT with the
//! contract's VALIDATION_ERROR instead; and a message over the size limit
//! (tonic's OUT_OF_RANGE) RESOURCE_EXHAUSTED with PAYLOAD_TOO_LARGE.
//!
//! Told apart by what our own statuses always have: every status a handler
//! or the auth layer returns is built by `status::status` and carries an
//! ErrorInfo in `grpc-status-details-bin`; tonic's own never carry details.
//! Only trailers-only answers (the status in the headers, which is how an
//! unreadable request is answered) are looked at; a handler's answer that
//! has begun is never touched.
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tonic::Code;

use super::status::status;
use crate::error_code::ErrorCode;

const GRPC_STATUS: &str = "grpc-status";
const GRPC_STATUS_DETAILS: &str = "grpc-status-details-bin";

/// What an unreadable request is told, whatever tonic found wrong with it.
pub const MESSAGE: &str = "the request body is not a valid gRPC message";

/// What a request message over the server's size limit is told.
pub const TOO_LARGE: &str =
    "the request message is larger than the server accepts (WAGATE_MAX_BODY_BYTES)";

/// Middleware over the gRPC router (inside grpc-web's translation).
pub async fn rewrite(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let code = match resp.headers().get(GRPC_STATUS) {
        Some(v) => Code::from_bytes(v.as_bytes()),
        None => return resp,
    };
    if resp.headers().contains_key(GRPC_STATUS_DETAILS) {
        return resp;
    }
    // tonic's refusal of a message over the size limit.
    if code == Code::OutOfRange {
        return status(ErrorCode::PayloadTooLarge, TOO_LARGE, None).into_http();
    }
    if !matches!(code, Code::Internal | Code::Unknown) {
        return resp;
    }
    tracing::debug!(
        ?code,
        message = ?resp.headers().get("grpc-message"),
        "unreadable gRPC request"
    );
    status(ErrorCode::ValidationError, MESSAGE, None).into_http()
}
