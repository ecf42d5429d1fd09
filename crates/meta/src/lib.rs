//! Meta's WhatsApp Cloud API, both directions: the Graph API client with typed
//! requests and classified errors, and the webhook payloads Meta posts, with
//! their `X-Hub-Signature-256` signatures. Knows nothing of wagate's server,
//! database or gRPC.
//!
//! ```no_run
//! use wagate_meta::graph::messages::{MessagePayload, SendMessage};
//! use wagate_meta::{GraphClient, GraphConfig, GraphError, WebhookPayload, signature};
//!
//! # async fn demo(token: &str, app_secret: &[u8], body: &[u8], header: &str) -> Result<(), GraphError> {
//! let client = GraphClient::new(GraphConfig::meta().map_err(|e| GraphError::Request(e.to_string()))?)?;
//! let msg = SendMessage::to("+16505551234", MessagePayload::text("hi")).callback_data("outbox-42");
//! match client.send_message(token, "106540352242922", &msg).await {
//!     Ok(resp) => println!("accepted as {:?}", resp.message_id()),
//!     Err(e) if e.is_retryable() => { /* requeue with backoff per e.class() */ }
//!     Err(e) => { /* final, auth, policy or ambiguous: see e.class() */ }
//! }
//!
//! if signature::verify(app_secret, body, header) {
//!     let payload = WebhookPayload::from_slice(body).map_err(|e| GraphError::Request(e.to_string()))?;
//!     for (phone_number_id, value) in payload.messages_values() {
//!         for m in &value.messages {
//!             let who = value.sender(m);
//!             println!("{phone_number_id}: {:?} from {:?}/{:?}", m.content.kind(), who.wa_id, who.user_id);
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```
pub mod contact;
pub mod graph;
pub mod json;
pub mod signature;
pub mod webhook;

pub use graph::{ErrorClass, GraphClient, GraphConfig, GraphError, MetaApiError};
pub use webhook::WebhookPayload;
