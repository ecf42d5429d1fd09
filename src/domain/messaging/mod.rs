//! Outbound messaging: validation into the exact Graph request, accepting
//! sends (durably, idempotently), and the lifecycle actions on them.
pub mod build;
mod decode;
pub mod send;
