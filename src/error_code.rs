//! The contract's error codes, with their HTTP statuses and gRPC codes.
//! Every layer that reports an error to a client speaks in these.
use http::StatusCode;
use tonic::Code as GrpcCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ValidationError,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    IdempotencyMismatch,
    PayloadTooLarge,
    RateLimited,
    InternalError,
    Unavailable,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 11] = [
        Self::ValidationError,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::IdempotencyMismatch,
        Self::PayloadTooLarge,
        Self::RateLimited,
        Self::InternalError,
        Self::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationError => "VALIDATION_ERROR",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::Conflict => "CONFLICT",
            Self::IdempotencyMismatch => "IDEMPOTENCY_MISMATCH",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::RateLimited => "RATE_LIMITED",
            Self::InternalError => "INTERNAL_ERROR",
            Self::Unavailable => "UNAVAILABLE",
        }
    }

    pub fn from_reason(reason: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == reason)
    }

    pub fn http_status(self) -> StatusCode {
        match self {
            Self::ValidationError => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn grpc_code(self) -> GrpcCode {
        match self {
            Self::ValidationError | Self::IdempotencyMismatch => GrpcCode::InvalidArgument,
            Self::Unauthorized => GrpcCode::Unauthenticated,
            Self::Forbidden => GrpcCode::PermissionDenied,
            Self::NotFound => GrpcCode::NotFound,
            // The HTTP method is wrong for the path; gRPC has only UNIMPLEMENTED for that.
            Self::MethodNotAllowed => GrpcCode::Unimplemented,
            Self::Conflict => GrpcCode::FailedPrecondition,
            Self::PayloadTooLarge | Self::RateLimited => GrpcCode::ResourceExhausted,
            Self::InternalError => GrpcCode::Internal,
            Self::Unavailable => GrpcCode::Unavailable,
        }
    }

    /// For a status that carries no ErrorInfo (tonic's own errors, e.g. a
    /// malformed gRPC frame), the closest contract code.
    pub fn from_grpc(code: GrpcCode) -> Self {
        match code {
            GrpcCode::InvalidArgument | GrpcCode::OutOfRange => Self::ValidationError,
            GrpcCode::Unauthenticated => Self::Unauthorized,
            GrpcCode::PermissionDenied => Self::Forbidden,
            GrpcCode::NotFound | GrpcCode::Unimplemented => Self::NotFound,
            GrpcCode::AlreadyExists | GrpcCode::Aborted | GrpcCode::FailedPrecondition => {
                Self::Conflict
            }
            GrpcCode::ResourceExhausted => Self::RateLimited,
            GrpcCode::Unavailable | GrpcCode::DeadlineExceeded | GrpcCode::Cancelled => {
                Self::Unavailable
            }
            _ => Self::InternalError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_reason(c.as_str()), Some(c));
        }
        assert_eq!(ErrorCode::IdempotencyMismatch.http_status().as_u16(), 422);
        assert_eq!(ErrorCode::MethodNotAllowed.http_status().as_u16(), 405);
    }
}
