//! Meta's webhook receiver: `GET /webhooks/whatsapp` (verification) and
//! `POST /webhooks/whatsapp` (deliveries), plus the worker that processes
//! what was received.
//!
//! A delivery is answered 200 only once its raw body is stored durably in
//! `inbound_webhooks`; processing runs afterwards ([`processor`]), so Meta
//! gets its answer fast and nothing is lost if wagate stops at any point.
//! Concurrent deliveries are stored together: each request hands its body to
//! a few writer tasks ([`writer`]) and waits for its acknowledgement, and a
//! writer stores everything waiting with one multi-row INSERT (one commit,
//! one fsync), which is what lets one instance accept thousands of
//! deliveries a second.
//!
//! Security: the `X-Hub-Signature-256` HMAC is checked over the raw bytes
//! with the app secret before anything is stored. Without a secret (outside
//! sandbox mode, neither `WHATSAPP_APP_SECRET` nor `META_APP_SECRET` set)
//! every delivery is refused with 401: wagate never accepts unsigned input.
pub mod processor;
mod receiver;
pub mod writer;

use std::sync::Arc;

use tokio::sync::{Notify, watch};

use crate::app::App;
use crate::store::Store;

pub use receiver::routes;

/// Largest delivery accepted (Meta's own limit is 3 MB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// Connections of the processor's pool: one per worker, plus the claim of
/// the next batch while one is applied.
pub const PROCESSOR_POOL: usize = processor::WORKERS + 2;

/// What the receiver needs to know.
#[derive(Debug, Clone, Default)]
pub struct InboundOptions {
    /// The app secret Meta signs with; None refuses every delivery.
    pub app_secret: Option<String>,
    /// The token Meta presents when verifying the URL; None refuses
    /// verification.
    pub verify_token: Option<String>,
}

/// The receiver's state: its settings, the writer queue and the wake-up of
/// the local processor.
pub struct Inbound {
    pub options: InboundOptions,
    writer: writer::Writer,
    wake: Arc<Notify>,
    /// The processor's own connections (see `processor`).
    processor_store: Store,
}

impl Inbound {
    /// Its writer tasks start with [`spawn`]; until then bodies queue up.
    /// `store` serves the writers; `processor_store`, a pool of its own
    /// (connections are made lazily, by the processor), the processor.
    pub fn new(store: Store, processor_store: Store, options: InboundOptions) -> Inbound {
        let wake = Arc::new(Notify::new());
        Inbound {
            options,
            writer: writer::Writer::new(store, wake.clone()),
            wake,
            processor_store,
        }
    }

    /// Stores a body durably; returns its id.
    pub async fn store(&self, body: bytes::Bytes) -> Result<i64, writer::WriteError> {
        self.writer.submit(body).await
    }
}

/// Starts the writers and the processor (and its LISTEN connection).
pub fn spawn(app: &App, shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
    if app.inbound.options.app_secret.is_none() {
        tracing::warn!(
            "no WhatsApp app secret configured (WHATSAPP_APP_SECRET, or META_APP_SECRET): every POST /webhooks/whatsapp is refused with 401 until one is set"
        );
    }
    if app.inbound.options.verify_token.is_none() {
        tracing::warn!(
            "no WHATSAPP_VERIFY_TOKEN configured: Meta cannot verify the webhook URL (GET /webhooks/whatsapp answers 403)"
        );
    }
    app.inbound.writer.spawn();
    processor::spawn(
        app.clone(),
        app.inbound.processor_store.clone(),
        app.inbound.wake.clone(),
        shutdown,
    )
}
