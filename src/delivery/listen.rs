//! LISTEN on the webhook channel over a dedicated connection; each
//! notification wakes the worker. Reconnects with backoff; the worker's poll
//! covers the gaps.
use std::sync::Arc;
use std::time::Duration;

use diesel_async::RunQueryDsl;
use futures_util::StreamExt;
use tokio::sync::{Notify, watch};

use crate::store::{Store, StoreError};

pub async fn listen(
    store: Store,
    channel: &'static str,
    wake: Arc<Notify>,
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
            let mut notes = std::pin::pin!(conn.notifications_stream());
            while let Some(note) = notes.next().await {
                if note.is_err() {
                    break;
                }
                wake.notify_one();
            }
            Ok::<(), StoreError>(())
        };
        tokio::select! {
            r = session => {
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
