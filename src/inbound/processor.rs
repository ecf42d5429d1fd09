//! Processes stored deliveries: claims pending rows with `FOR UPDATE SKIP
//! LOCKED` under a lease (so any number of instances share the work), applies
//! a batch in one transaction together with marking it processed, and falls
//! back to one delivery at a time when a batch fails, so one bad delivery
//! never holds back the rest. A delivery that keeps failing is retried with
//! backoff and marked `failed` after [`MAX_ATTEMPTS`]; one that cannot be
//! parsed is marked `unparseable` at once; one naming phones or WABAs no
//! organization has is marked `unrouted` with their ids. Those three wait for
//! an operator (`wagate inbound unrouted`, `wagate inbound reprocess <id>`).
//!
//! Wake-ups: the local writers wake the processor directly; other instances
//! hear a debounced `NOTIFY wagate_inbound`; a slow poll covers the rest.
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tokio::sync::{Notify, watch};
use uuid::Uuid;
use wagate_meta::WebhookPayload;

use crate::app::App;
use crate::domain::inbound as domain;
use crate::metrics::Metrics;
use crate::store::inbound::{self as store, ClaimedDelivery, Finish, state};
use crate::store::{Store, StoreError, StoreResult};

/// Deliveries claimed at once.
pub const BATCH: i64 = 256;
/// Batches processed at once per instance. One: deliveries are applied in
/// the order they were received, which identity changes need (a message
/// naming a BSUID must not be applied after the `user_id_update` that
/// replaced it). A second worker overlapped batches for more throughput
/// but could apply a later batch first.
pub const WORKERS: usize = 1;
/// Longer than any batch takes; a crashed worker's claim expires after it.
pub const LEASE: Duration = Duration::from_secs(60);
/// Claims (processing runs) before a delivery is marked failed.
pub const MAX_ATTEMPTS: i32 = 10;
const POLL: Duration = Duration::from_secs(1);
/// After a wake-up, lets a few more deliveries arrive to share the batch.
const DEBOUNCE: Duration = Duration::from_millis(2);
/// How often old deliveries and early statuses are cleaned up.
const HOUSEKEEPING: Duration = Duration::from_secs(600);

/// Starts processing: `store` is the processor's own pool.
pub fn spawn(
    app: App,
    store: Store,
    wake: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let listen = tokio::spawn(crate::store::listener::listen(
        app.store.clone(),
        store::NOTIFY_CHANNEL,
        wake.clone(),
        shutdown.clone(),
    ));
    let housekeeping_store = app.store.clone();
    let housekeeping = app.workers.spawn(
        "inbound-housekeeping",
        HOUSEKEEPING,
        shutdown.clone(),
        move || {
            let store = housekeeping_store.clone();
            async move {
                store
                    .inbound_housekeeping(
                        chrono::Duration::days(30),
                        chrono::Duration::days(90),
                        chrono::Duration::days(7),
                    )
                    .await
                    .map(|_| ())
                    .map_err(anyhow::Error::from)
            }
        },
    );
    vec![
        listen,
        housekeeping,
        on_own_thread(app, store, wake, shutdown),
    ]
}

/// Runs the workers on a thread and runtime of their own, with their own
/// connections (established there, so their I/O runs there too): a batch is
/// hundreds of short round trips, and on the server's runtime, behind
/// thousands of request tasks, each would wait its turn. This way a flood of
/// deliveries cannot starve processing, nor processing slow down the 200s.
fn on_own_thread(
    app: App,
    store: Store,
    wake: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let on_thread = workers(app.clone(), store.clone(), wake.clone(), shutdown.clone());
    let thread = std::thread::Builder::new()
        .name("wagate-inbound".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(on_thread),
                Err(e) => tracing::error!(error = %e, "inbound processor runtime"),
            }
            let _ = done.send(());
        });
    match thread {
        Ok(_) => tokio::spawn(async move {
            let _ = finished.await;
        }),
        Err(e) => {
            // No thread to be had: share the server's runtime.
            tracing::warn!(error = %e, "inbound processor thread; running on the server's runtime");
            tokio::spawn(workers(app, store, wake, shutdown))
        }
    }
}

/// Runs the processing workers until shutdown.
async fn workers(app: App, store: Store, wake: Arc<Notify>, shutdown: watch::Receiver<bool>) {
    let tasks: Vec<_> = (0..WORKERS)
        .map(|_| {
            tokio::spawn(run(
                app.clone(),
                store.clone(),
                wake.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

async fn run(app: App, store: Store, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    // A full batch is followed by more: the next one is claimed (and
    // parsed) while this one is applied, on a second connection. It is
    // applied in the next turn, after this one commits, so the order holds;
    // and it is applied even when stopping, rather than left leased.
    let mut ahead: Option<Claim> = None;
    loop {
        app.workers.beat("inbound", POLL * 5);
        let claim = match ahead.take() {
            Some(claim) => Ok(claim),
            None => claim(&store, BATCH).await,
        };
        let processed = match claim {
            Ok(claim) if claim.items.len() as i64 == BATCH && !*shutdown.borrow() => {
                let (applied, next) = tokio::join!(
                    apply_claim(&store, &app.metrics, claim),
                    self::claim(&store, BATCH)
                );
                match next {
                    Ok(next) if !next.items.is_empty() => ahead = Some(next),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "inbound claim"),
                }
                applied
            }
            Ok(claim) => apply_claim(&store, &app.metrics, claim).await,
            Err(e) => Err(e),
        };
        let busy = match processed {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::warn!(error = %e, "inbound processing");
                false
            }
        };
        if ahead.is_some() || (busy && !*shutdown.borrow()) {
            continue;
        }
        tokio::select! {
            _ = wake.notified() => tokio::time::sleep(DEBOUNCE).await,
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
    }
}

/// One parsed delivery of a claim.
struct Item {
    id: i64,
    attempts: i32,
    parsed: Result<WebhookPayload, String>,
}

/// Deliveries claimed under one lease token, parsed.
struct Claim {
    token: Uuid,
    items: Vec<Item>,
}

/// Claims up to `limit` pending deliveries, oldest first, and parses them.
async fn claim(store: &Store, limit: i64) -> StoreResult<Claim> {
    let token = Uuid::new_v4();
    let claimed = store.claim_inbound(limit, LEASE, token).await?;
    let items = claimed
        .into_iter()
        .map(|ClaimedDelivery { id, body, attempts }| Item {
            id,
            attempts,
            parsed: domain::parse(&body),
        })
        .collect();
    Ok(Claim { token, items })
}

/// Applies claimed deliveries in one transaction (one at a time when the
/// batch fails); returns how many there were.
async fn apply_claim(
    store: &Store,
    metrics: &Metrics,
    Claim { token, items }: Claim,
) -> StoreResult<usize> {
    if items.is_empty() {
        return Ok(0);
    }
    let n = items.len();
    let mut conn = store.conn().await?;
    let all: Vec<&Item> = items.iter().collect();
    let mut batch = conn
        .transaction::<_, StoreError, _>(async |c| apply(c, token, &all).await)
        .await;
    if batch.is_err() {
        // A conflict with another worker (a deadlock on a contact both
        // batches create) usually clears on a second try.
        batch = conn
            .transaction::<_, StoreError, _>(async |c| apply(c, token, &all).await)
            .await;
    }
    match batch {
        Ok(outcomes) => count_outcomes(metrics, &outcomes),
        Err(e) => {
            if n > 1 {
                tracing::debug!(error = %e, deliveries = n, "batch failed; one delivery at a time");
            }
            for item in &items {
                apply_one(&mut conn, metrics, token, item).await?;
            }
        }
    }
    Ok(n)
}

/// Applies one delivery on its own, or schedules its retry (or marks it
/// failed after [`MAX_ATTEMPTS`]).
async fn apply_one(
    conn: &mut AsyncPgConnection,
    metrics: &Metrics,
    token: Uuid,
    item: &Item,
) -> StoreResult<()> {
    let one = conn
        .transaction::<_, StoreError, _>(async |c| apply(c, token, &[item]).await)
        .await;
    match one {
        Ok(outcomes) => count_outcomes(metrics, &outcomes),
        Err(e) => {
            let retry_at = (item.attempts < MAX_ATTEMPTS)
                .then(|| Utc::now() + crate::jobs::backoff(item.attempts));
            tracing::warn!(
                inbound_id = item.id,
                attempt = item.attempts,
                retry = retry_at.is_some(),
                error = %e,
                "processing a webhook delivery failed"
            );
            store::retry_later(conn, token, item.id, &e.to_string(), retry_at).await?;
            if retry_at.is_none() {
                metrics.inbound_done(state::FAILED, 1);
            }
        }
    }
    Ok(())
}

/// Counts committed outcomes (one `inbound_webhooks.state` per delivery).
fn count_outcomes(metrics: &Metrics, outcomes: &[&'static str]) {
    for outcome in [state::PROCESSED, state::UNPARSEABLE, state::UNROUTED] {
        let n = outcomes.iter().filter(|o| **o == outcome).count();
        if n > 0 {
            metrics.inbound_done(outcome, n as u64);
        }
    }
}

/// Applies deliveries and records their outcome, on one transaction;
/// returns each one's new state.
async fn apply(
    conn: &mut AsyncPgConnection,
    token: Uuid,
    items: &[&Item],
) -> StoreResult<Vec<&'static str>> {
    let payloads: Vec<&WebhookPayload> = items
        .iter()
        .filter_map(|i| i.parsed.as_ref().ok())
        .collect();
    let mut routed = domain::apply(conn, &payloads).await?.into_iter();
    let finishes: Vec<Finish> = items
        .iter()
        .map(|i| match &i.parsed {
            Err(why) => Finish {
                id: i.id,
                state: state::UNPARSEABLE,
                error: Some(why.clone()),
                unrouted: Vec::new(),
            },
            Ok(_) => {
                let r = routed.next().unwrap_or_default();
                if r.unrouted.is_empty() {
                    Finish {
                        id: i.id,
                        state: state::PROCESSED,
                        error: None,
                        unrouted: Vec::new(),
                    }
                } else {
                    Finish {
                        id: i.id,
                        state: state::UNROUTED,
                        error: Some(format!("no organization has {}", r.unrouted.join(", "))),
                        unrouted: r.unrouted,
                    }
                }
            }
        })
        .collect();
    let mine = store::finish(conn, token, &finishes).await?;
    if mine < finishes.len() {
        // The lease ran out and another worker claimed some of them: the
        // effects are idempotent, so committing is still safe.
        tracing::warn!(
            expected = finishes.len(),
            recorded = mine,
            "inbound lease expired during processing"
        );
    }
    Ok(finishes.iter().map(|f| f.state).collect())
}
