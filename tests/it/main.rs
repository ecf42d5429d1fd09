//! Integration tests: a real PostgreSQL (started from the machine's binaries,
//! or TEST_DATABASE_URL), a real server on 127.0.0.1:0, real clients over
//! REST, gRPC (HTTP/2) and grpc-web.
mod harness;

mod accounts;
mod api_keys;
mod auth_matrix;
mod caches;
mod conversations;
mod dispatch_claim;
mod embedded;
mod inbound;
mod message_list_plans;
mod operations;
mod other_languages;
mod outbound;
mod outbound_faults;
mod outgoing_webhooks;
mod phones;
mod readme;
mod send_input_hardening;
mod transcoder;
mod transport_hardening;
