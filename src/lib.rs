//! wagate: a self-hostable, multi-tenant, gRPC-first platform in front of
//! Meta's WhatsApp Cloud API. See README.md and ../DESIGN.md.
pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod database;
pub mod delivery;
pub mod dispatch;
pub mod domain;
pub mod error_code;
pub mod inbound;
pub mod jobs;
pub mod metrics;
pub mod ops;
pub mod rest;
pub mod server;
pub mod store;
pub mod workers;

// Under load glibc's malloc took about a quarter of the process's CPU
// (allocations freed on another tokio thread than the one that made them);
// mimalloc's per-thread heaps make that cheap. Declared here so the server,
// the benchmarks and the tests all run on the allocator production uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod pb {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("wagate.v1");
    /// The encoded descriptor set of `proto/`, for reflection and the REST transcoder.
    pub const DESCRIPTOR: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/wagate_descriptor.bin"));
}

/// Installs ring as the process's rustls crypto provider (reqwest is built
/// without one, to keep the C toolchain out of the build). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
