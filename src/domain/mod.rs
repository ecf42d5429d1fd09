//! Business rules. Knows nothing of HTTP or gRPC: handlers validate input into
//! these types, call one function here and map the result.
pub mod accounts;
pub mod api_keys;
pub mod conversations;
pub mod credentials;
pub mod error;
pub mod health;
pub mod identity;
pub mod inbound;
pub mod message_view;
pub mod messaging;
pub mod phones;
pub mod plans;
pub mod validate;
pub mod webhooks;

pub use error::{DomainError, DomainResult};
