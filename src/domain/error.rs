//! The domain layer's error: what went wrong in terms a client can act on.
//! Mapped to `tonic::Status` in exactly one place (`api::status`).
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Bad input. `field` is the lowerCamelCase name the client sent.
    #[error("{message}")]
    Validation { field: String, message: String },
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist or belongs to another organization.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// A conflict that clears by itself: the same request is still running
    /// (CONFLICT, 409; gRPC ABORTED, which clients treat as retryable).
    #[error("{0}")]
    InFlight(String),
    #[error("{0}")]
    IdempotencyMismatch(String),
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    Unavailable(String),
    /// Anything unexpected. Logged in full; the client sees only "internal error".
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type DomainResult<T> = Result<T, DomainError>;

impl DomainError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(msg) => {
                Self::Unavailable(format!("database unavailable: {msg}"))
            }
            // Which field is unknown here: the domain's own checks name it
            // for every input they know of; this covers the rest.
            StoreError::NulCharacter => Self::Validation {
                field: String::new(),
                message: "text must not contain NUL characters".into(),
            },
            other => Self::Internal(anyhow::Error::new(other)),
        }
    }
}
