//! LISTEN on a channel over a dedicated connection; each notification wakes
//! the workers. Reconnects with backoff; the workers' slow poll covers gaps.
use std::sync::Arc;
use std::time::Duration;

use diesel_async::RunQueryDsl;
use futures_util::StreamExt;
use tokio::sync::{Notify, watch};

use super::{Store, StoreError};

pub async fn listen(
    store: Store,
    channel: &'static str,
    wake: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
) {
    listen_events(store, channel, move |_| wake.notify_one(), shutdown).await
}

/// What a listener saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenEvent {
    /// LISTEN is in place (first time or after a reconnect: notifications
    /// sent meanwhile were missed).
    Connected,
    Notified,
    /// The connection is gone; notifications are being missed until the
    /// next `Connected`.
    Lost,
}

/// LISTENs on `channel`, reporting each event to `on`; reconnects with backoff.
pub async fn listen_events(
    store: Store,
    channel: &'static str,
    on: impl Fn(ListenEvent) + Send + Sync + 'static,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut delay = Duration::from_millis(200);
    loop {
        let session = async {
            let mut conn = store.dedicated().await?;
            diesel::sql_query(format!("LISTEN {channel}"))
                .execute(&mut conn)
                .await
                .map_err(StoreError::from)?;
            on(ListenEvent::Connected);
            delay = Duration::from_millis(200);
            let mut notes = std::pin::pin!(conn.notifications_stream());
            while let Some(note) = notes.next().await {
                if note.is_err() {
                    break;
                }
                on(ListenEvent::Notified);
            }
            Ok::<(), StoreError>(())
        };
        tokio::select! {
            r = session => {
                on(ListenEvent::Lost);
                if let Err(e) = r {
                    tracing::debug!(channel, error = %e, "LISTEN connection lost; reconnecting");
                }
            }
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}
