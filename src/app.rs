//! The state every handler and worker shares.
use std::sync::Arc;
use std::time::Instant;

use wagate_meta::graph::GraphClient;

use crate::crypto::SecretBox;
use crate::store::Store;
use crate::workers::Workers;

/// How wagate reaches Meta.
pub struct MetaApp {
    pub graph: GraphClient,
    /// The Meta app (Embedded Signup, debug_token); None in sandbox mode and
    /// for bring-your-own-credentials deployments without an app.
    pub app_id: Option<String>,
    pub app_secret: Option<String>,
}

pub struct AppState {
    pub store: Store,
    /// No Meta app is configured: the in-process simulator stands in for Meta.
    pub sandbox: bool,
    pub started: Instant,
    pub workers: Workers,
    pub meta: MetaApp,
    /// Encrypts Meta access tokens and other secrets at rest.
    pub secrets: SecretBox,
    /// The in-process Cloud API simulator (sandbox mode).
    pub simulator: Option<wagate_simulator::Simulator>,
    /// Meta's webhook receiver: app secret, verify token, writers.
    pub inbound: crate::inbound::Inbound,
    /// Outgoing webhook deliveries: settings and the SSRF-guarded client.
    pub webhooks: crate::delivery::Deliverer,
    /// Coalesces accepted sends into shared transactions.
    pub outbound: crate::store::outbound::OutboundWriter,
    /// Wakes this instance's dispatcher (others hear a NOTIFY).
    pub dispatch_wake: Arc<tokio::sync::Notify>,
    /// What `/metrics` shows; the workers count their outcomes here.
    pub metrics: Arc<crate::metrics::Metrics>,
}

pub type App = Arc<AppState>;
