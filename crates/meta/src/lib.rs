//! Meta's WhatsApp Cloud API, both directions: the Graph API client with typed
//! requests and classified errors, and the webhook payloads Meta posts, with
//! their `X-Hub-Signature-256` signatures. Knows nothing of wagate's server,
//! database or gRPC.
pub mod contact;
pub mod graph;
pub mod json;
pub mod signature;
pub mod webhook;

pub use graph::{ErrorClass, GraphClient, GraphConfig, GraphError, MetaApiError};
pub use webhook::WebhookPayload;
