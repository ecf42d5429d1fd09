//! The one place where domain errors become `tonic::Status`. The contract's
//! code travels as the `reason` of a `google.rpc.ErrorInfo` detail, so gRPC
//! clients in any language can branch on it, and the REST transcoder renders
//! it as `error.code`.
use std::collections::HashMap;

use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::DomainError;
use crate::error_code::ErrorCode;

pub const ERROR_DOMAIN: &str = "wagate";

/// Builds a status carrying the contract code, and optionally the field at fault.
pub fn status(code: ErrorCode, message: &str, field: Option<&str>) -> Status {
    status_as(code.grpc_code(), code, message, field)
}

/// [`status`] with a gRPC code of its own (the contract allows several for
/// one code: CONFLICT is ABORTED when a retry will succeed).
fn status_as(grpc: tonic::Code, code: ErrorCode, message: &str, field: Option<&str>) -> Status {
    let mut metadata = HashMap::new();
    if let Some(f) = field {
        metadata.insert("field".to_owned(), f.to_owned());
    }
    let mut details = ErrorDetails::with_error_info(code.as_str(), ERROR_DOMAIN, metadata);
    if let Some(f) = field {
        details.add_bad_request_violation(f, message);
    }
    Status::with_error_details(grpc, message, details)
}

impl From<DomainError> for Status {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Validation { field, message } => {
                // No field: the input at fault is not known (a store backstop).
                let field = Some(field.as_str()).filter(|f| !f.is_empty());
                status(ErrorCode::ValidationError, &message, field)
            }
            DomainError::Unauthorized => status(ErrorCode::Unauthorized, &e.to_string(), None),
            DomainError::Forbidden(m) => status(ErrorCode::Forbidden, &m, None),
            DomainError::NotFound(_) => status(ErrorCode::NotFound, &e.to_string(), None),
            DomainError::Conflict(m) => status(ErrorCode::Conflict, &m, None),
            DomainError::InFlight(m) => {
                status_as(tonic::Code::Aborted, ErrorCode::Conflict, &m, None)
            }
            DomainError::IdempotencyMismatch(m) => status(ErrorCode::IdempotencyMismatch, &m, None),
            DomainError::RateLimited {
                message,
                retry_after_secs,
            } => {
                let mut s = status(ErrorCode::RateLimited, &message, None);
                if let Ok(v) = retry_after_secs.to_string().parse() {
                    s.metadata_mut().insert("retry-after", v);
                }
                s
            }
            DomainError::Unavailable(m) => {
                tracing::warn!(error = %m, "service unavailable");
                status(
                    ErrorCode::Unavailable,
                    "service temporarily unavailable, retry shortly",
                    None,
                )
            }
            DomainError::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                status(ErrorCode::InternalError, "internal error", None)
            }
        }
    }
}

/// The contract code and field carried by a status (from its ErrorInfo), or
/// the closest code for statuses produced outside our handlers.
pub fn contract_code(s: &Status) -> (ErrorCode, Option<String>) {
    match s.get_details_error_info() {
        Some(info) if info.domain == ERROR_DOMAIN => (
            ErrorCode::from_reason(&info.reason).unwrap_or_else(|| ErrorCode::from_grpc(s.code())),
            info.metadata.get("field").cloned(),
        ),
        _ => (ErrorCode::from_grpc(s.code()), None),
    }
}
