//! Sample-driven tests: the real Meta payloads under `tests/fixtures/meta`
//! (provenance in SOURCES.md there) against the typed client and webhooks.
mod common;
mod graph_requests;
mod graph_responses;
mod transport;
mod webhooks;
