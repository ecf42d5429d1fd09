//! Meta's WhatsApp Cloud API, both directions: the Graph API client with typed
//! requests and classified errors, and the webhook payloads Meta posts, with
//! their `X-Hub-Signature-256` signatures. Knows nothing of wagate's server.
pub mod signature;
