//! The dispatcher: sends queued messages to Meta.
//!
//! - **Claiming.** Per phone with due messages, a short transaction claims
//!   what fits in the phone's pace for the next window, under a lease
//!   (`FOR UPDATE SKIP LOCKED`; the phone row lock serialises instances).
//!   Each claimed message gets a send slot, so sends are spread evenly at the
//!   phone's throughput (80 msg/s, or 1,000 when upgraded), and every
//!   recipient is kept within Meta's pair rate.
//! - **Waking.** A NOTIFY from the transaction that queued messages (one per
//!   transaction), debounced, plus a slow poll for scheduled sends.
//! - **Outcomes** are written in batches, fenced by the lease token:
//!   `sent` with the wamid; retryable errors -> `retrying` with exponential
//!   backoff and jitter (130429 also slows the phone, 131056 only that
//!   recipient); final errors -> `failed` with Meta's code, title, details
//!   and `errorMessage`; a timeout after the request left -> outcome unknown,
//!   settled by the status webhook (our id is in `biz_opaque_callback_data`),
//!   never resent blindly.
//! - **Crashes.** A lost lease waits `crash_grace` for a status webhook; only
//!   without one is the message sent again, so a message Meta acknowledged is
//!   never sent twice.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use diesel_async::AsyncConnection;
use rand::Rng;
use tokio::sync::{Semaphore, mpsc, watch};
use uuid::Uuid;
use wagate_meta::graph::messages::SendMessage;
use wagate_meta::graph::{ErrorClass, GraphError};

use crate::app::App;
use crate::domain::message_view;
use crate::store::StoreError;
use crate::store::dispatch::{Outcome, Pace, PhoneClaim, record_outcomes};
use crate::store::events::{MESSAGE_SENT, MESSAGE_STATUS_UPDATED, NewEvent, record_events};
use crate::store::messages::{MessageRow, MetaFailure};
use crate::store::outbound::DISPATCH_CHANNEL;
use crate::store::phones::PhoneRow;

/// How long one send to Meta may take (the Graph client's request timeout).
pub const GRAPH_REQUEST_TIMEOUT: StdDuration = StdDuration::from_secs(15);

/// Dispatcher settings (defaults suit production; tests shorten the graces).
#[derive(Debug, Clone)]
pub struct DispatchOptions {
    /// How long a claim is held before it counts as lost.
    pub lease: StdDuration,
    /// How far ahead send slots are handed out.
    pub window: StdDuration,
    /// After a lost lease, how long to wait for Meta's status before sending again.
    pub crash_grace: StdDuration,
    /// After a timeout, how long to wait for Meta's status before failing.
    pub timeout_grace: StdDuration,
    pub max_attempts: i32,
    /// Sends in flight at most (this instance).
    pub concurrency: usize,
    /// Slow poll (scheduled messages, missed notifications).
    pub poll: StdDuration,
    /// Meta's pair rate: one message per period per recipient, bursts up to `pair_burst`.
    pub pair_period: StdDuration,
    pub pair_burst: i32,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        Self {
            lease: StdDuration::from_secs(60),
            window: StdDuration::from_millis(100),
            crash_grace: StdDuration::from_secs(60),
            timeout_grace: StdDuration::from_secs(15 * 60),
            max_attempts: 8,
            concurrency: 256,
            poll: StdDuration::from_secs(1),
            pair_period: StdDuration::from_secs(6),
            pair_burst: 45,
        }
    }
}

fn chrono(d: StdDuration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::seconds(60))
}

pub fn spawn(
    app: &App,
    opts: DispatchOptions,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let listen = tokio::spawn(crate::store::listener::listen(
        app.store.clone(),
        DISPATCH_CHANNEL,
        app.dispatch_wake.clone(),
        shutdown.clone(),
    ));
    let (results_tx, results_rx) = mpsc::channel(8192);
    let flusher = tokio::spawn(flush(app.clone(), results_rx));
    let run = tokio::spawn(run(app.clone(), opts, results_tx, shutdown));
    vec![listen, run, flusher]
}

/// One finished attempt, on its way to the database.
struct Done {
    message: MessageRow,
    outcome: Outcome,
    phone: Arc<PhoneRow>,
}

async fn run(
    app: App,
    opts: DispatchOptions,
    results: mpsc::Sender<Done>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(opts.concurrency));
    let pace = Pace {
        window: chrono(opts.window),
        lease: chrono(opts.lease),
        pair_period: chrono(opts.pair_period),
        pair_burst: opts.pair_burst,
    };
    let stopping = shutdown.clone();
    let mut last_settle = std::time::Instant::now() - StdDuration::from_secs(60);
    // Under a flood of sends every writer commit wakes us; scanning on each
    // (over a hundred a second) cost PostgreSQL a tenth of a core and found
    // nothing the pacer would let out sooner. Claims reach a window ahead,
    // so a quarter window between scans delays nothing that is due.
    let min_gap = opts.window / 4;
    loop {
        let scanned = tokio::time::Instant::now();
        app.workers
            .beat("dispatcher", opts.poll.max(StdDuration::from_secs(1)));
        if last_settle.elapsed() > StdDuration::from_secs(2) {
            last_settle = std::time::Instant::now();
            match app
                .store
                .settle_leases(chrono(opts.crash_grace), chrono(opts.timeout_grace))
                .await
            {
                Ok(n) if n > 0 => tracing::info!(
                    requeued = n,
                    "messages whose dispatch was lost are queued again"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "settling dispatch leases"),
            }
            if let Err(e) = app.store.prune_pair_pacing().await {
                tracing::warn!(error = %e, "pruning pair pacing");
            }
        }
        let mut busy = false;
        match app.store.due_phones(64).await {
            Ok(phones) => {
                for phone_id in phones {
                    let free = slots.available_permits() as i64;
                    if free == 0 {
                        busy = true;
                        break;
                    }
                    let started = std::time::Instant::now();
                    match app.store.claim_phone(phone_id, pace, free).await {
                        Ok(Some(claim)) => {
                            tracing::debug!(
                                %phone_id,
                                claimed = claim.messages.len(),
                                ms = started.elapsed().as_millis(),
                                "claim"
                            );
                            // Due messages remain (pace or pair limits): come back soon.
                            busy = true;
                            launch(&app, &opts, claim, &slots, &results, &stopping);
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, %phone_id, "claiming messages"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "finding due messages"),
        }
        let pause = if busy { opts.window / 2 } else { opts.poll };
        tokio::select! {
            _ = app.dispatch_wake.notified() => {
                // Debounce: let the burst of sends that caused this land
                // first, and keep scans at least `min_gap` apart.
                let debounced = tokio::time::Instant::now() + StdDuration::from_millis(5);
                tokio::time::sleep_until(debounced.max(scanned + min_gap)).await;
            }
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => break,
        }
    }
    // Let in-flight sends finish (or release their claims) before stopping.
    let _ = slots.acquire_many(opts.concurrency as u32).await;
}

fn launch(
    app: &App,
    opts: &DispatchOptions,
    claim: PhoneClaim,
    slots: &Arc<Semaphore>,
    results: &mpsc::Sender<Done>,
    stopping: &watch::Receiver<bool>,
) {
    if claim.messages.is_empty() {
        return;
    }
    let phone = Arc::new(claim.phone);
    let token = match crate::domain::phones::access_token(app, &claim.waba) {
        Ok(Some(t)) => Some(t),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "decrypting a phone's access token");
            None
        }
    };
    let token = Arc::new(token);
    for claimed in claim.messages {
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Over our own concurrency: hand the claim back.
            let _ = results.try_send(Done {
                message: claimed.message,
                outcome: Outcome::Released,
                phone: phone.clone(),
            });
            continue;
        };
        let app = app.clone();
        let results = results.clone();
        let phone = phone.clone();
        let token = token.clone();
        let max_attempts = opts.max_attempts;
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let wait = (claimed.slot - Utc::now()).to_std().unwrap_or_default();
            if !wait.is_zero() {
                // A stop hands back at once what has not been sent.
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopping.wait_for(|stop| *stop) => {}
                }
            }
            let outcome = if *stopping.borrow() {
                Outcome::Released
            } else {
                attempt(
                    &app,
                    &phone,
                    token.as_deref(),
                    &claimed.message,
                    max_attempts,
                )
                .await
            };
            let _ = results
                .send(Done {
                    message: claimed.message,
                    outcome,
                    phone,
                })
                .await;
            drop(permit);
        });
    }
}

/// One call to Meta, and what to do about its answer.
async fn attempt(
    app: &App,
    phone: &PhoneRow,
    token: Option<&str>,
    msg: &MessageRow,
    max_attempts: i32,
) -> Outcome {
    let Some(token) = token else {
        return Outcome::Failed(MetaFailure {
            message: "no Meta credentials for this phone's WABA: set them with PUT /auth/me/credentials, then retry".into(),
            ..Default::default()
        });
    };
    let body: SendMessage = match serde_json::from_value(msg.payload.clone()) {
        Ok(b) => b,
        Err(e) => {
            return Outcome::Failed(MetaFailure {
                message: format!("stored request could not be read: {e}"),
                ..Default::default()
            });
        }
    };
    match app
        .meta
        .graph
        .send_message(token, &phone.meta_phone_number_id, &body)
        .await
    {
        Ok(resp) => match resp.message_id() {
            Some(wamid) => Outcome::Sent {
                wamid: wamid.to_owned(),
            },
            None => Outcome::Unknown {
                note: "Meta answered without a message id".into(),
            },
        },
        Err(e) => classify(app, phone, msg, &e, max_attempts).await,
    }
}

async fn classify(
    app: &App,
    phone: &PhoneRow,
    msg: &MessageRow,
    e: &GraphError,
    max_attempts: i32,
) -> Outcome {
    let failure = failure_of(e);
    let class = e.class();
    if class == ErrorClass::Ambiguous {
        return Outcome::Unknown {
            note: format!("outcome unknown ({e}); waiting for Meta's status webhook"),
        };
    }
    if !class.is_retryable() {
        return Outcome::Failed(failure);
    }
    // Attempts within the current budget (a manual retry starts a new one).
    let tried = msg.attempts - msg.attempts_before_retry;
    if tried >= max_attempts {
        return Outcome::Failed(MetaFailure {
            message: format!("gave up after {tried} attempts: {}", failure.message),
            ..failure
        });
    }
    let now = Utc::now();
    let at = match class {
        ErrorClass::ThrottlePair => {
            // Meta's advice for 131056: wait 4^x seconds; only this recipient waits.
            let secs = 4f64.powi((tried - 1).clamp(0, 5)).clamp(6.0, 300.0);
            let at = now + jitter(secs);
            if let Some(r) = &msg.recipient
                && let Err(err) = app
                    .store
                    .defer_pair(msg.phone_id, msg.conversation_id, r, at)
                    .await
            {
                tracing::warn!(error = %err, "deferring a recipient");
            }
            at
        }
        ErrorClass::ThrottleNumber => {
            let pause = match e {
                GraphError::Api(api) => api
                    .regain_access_after
                    .map_or(1.0, |d| d.as_secs_f64().clamp(1.0, 300.0)),
                _ => 1.0,
            };
            let at = now + jitter(pause);
            if let Err(err) = app.store.slow_phone(phone.id, at).await {
                tracing::warn!(error = %err, "slowing a phone");
            }
            at
        }
        _ => now + backoff(tried),
    };
    Outcome::Retry { at, failure }
}

/// 1 s, 2 s, 4 s … capped at 5 minutes, ±20 %.
pub fn backoff(attempt: i32) -> Duration {
    jitter(2f64.powi((attempt - 1).clamp(0, 12)).min(300.0))
}

fn jitter(secs: f64) -> Duration {
    let f = rand::rng().random_range(0.8..1.2);
    Duration::milliseconds((secs * f * 1000.0) as i64)
}

/// Meta's error as recorded on the message.
/// Meta's message without its leading "(#code) ".
fn without_code(message: &str) -> &str {
    message
        .strip_prefix("(#")
        .and_then(|rest| rest.split_once(") "))
        .filter(|(code, _)| !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()))
        .map_or(message, |(_, text)| text)
}

pub fn failure_of(e: &GraphError) -> MetaFailure {
    match e {
        GraphError::Api(api) => {
            let b = &api.error;
            // A send's answer has no title, only a message prefixed with
            // its code ("(#131026) Message undeliverable"); the status
            // webhook's title for the same error has no prefix.
            let title = b
                .error_user_title
                .clone()
                .or_else(|| b.title.clone())
                .or_else(|| b.message.as_deref().map(without_code).map(str::to_owned));
            let details = api.details().map(str::to_owned);
            let message = match (&b.message, &details) {
                (Some(m), Some(d)) => format!("{m}: {d}"),
                (Some(m), None) => m.clone(),
                (None, Some(d)) => d.clone(),
                (None, None) => format!("Meta error {}", b.code),
            };
            MetaFailure {
                code: Some(b.code),
                title,
                details,
                message,
            }
        }
        other => MetaFailure {
            code: None,
            title: None,
            details: None,
            message: other.to_string(),
        },
    }
}

/// Writes outcomes in batches: one transaction for many results, with the
/// `message.sent` / `message.status_updated` events they cause.
async fn flush(app: App, mut rx: mpsc::Receiver<Done>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + StdDuration::from_millis(10);
        while batch.len() < 256 {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(d)) => batch.push(d),
                _ => break,
            }
        }
        let mut delay = StdDuration::from_millis(100);
        // A write that fails (database down) is retried: the outcome is known
        // and must not be lost; the lease covers us meanwhile.
        for _ in 0..20 {
            match write(&app, &batch).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, n = batch.len(), "recording dispatch outcomes; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(StdDuration::from_secs(5));
                }
            }
        }
    }
}

async fn write(app: &App, batch: &[Done]) -> Result<(), StoreError> {
    let results: Vec<(MessageRow, Outcome)> = batch
        .iter()
        .map(|d| (d.message.clone(), d.outcome.clone()))
        .collect();
    let phones: HashMap<Uuid, Arc<PhoneRow>> = batch
        .iter()
        .map(|d| (d.message.id, d.phone.clone()))
        .collect();
    let mut conn = app.store.conn().await?;
    conn.transaction::<_, StoreError, _>(async |c| {
        let changed = record_outcomes(c, &results).await?;
        let events: Vec<NewEvent> = changed
            .iter()
            .filter_map(|(msg, contact)| {
                let phone = phones.get(&msg.id)?;
                Some(NewEvent {
                    org_id: msg.org_id,
                    waba_id: Some(phone.waba_id),
                    event: if msg.status == "sent" {
                        MESSAGE_SENT
                    } else {
                        MESSAGE_STATUS_UPDATED
                    },
                    data: message_view::event_data(msg, contact.as_ref(), phone),
                })
            })
            .collect();
        record_events(c, events).await?;
        // Statuses that arrived before we knew the wamid apply now, after
        // the `message.sent` they follow.
        let wamids: Vec<String> = changed
            .iter()
            .filter(|(m, _)| m.status == "sent")
            .filter_map(|(m, _)| m.wamid.clone())
            .collect();
        let early = crate::store::dispatch::wamids_with_orphans(c, &wamids).await?;
        for (msg, _) in &changed {
            if msg.status == "sent" && msg.wamid.as_ref().is_some_and(|w| early.contains(w)) {
                crate::domain::inbound::statuses::reconcile_orphans(c, msg).await?;
            }
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use wagate_meta::graph::GraphError;
    use wagate_meta::graph::error::{ErrorBody, MetaApiError};

    #[test]
    fn a_send_errors_title_is_the_webhooks_title() {
        // Meta's answer to a send, as the Graph API gives it.
        let error: ErrorBody = serde_json::from_value(serde_json::json!({
            "message": "(#131026) Message undeliverable",
            "type": "OAuthException",
            "code": 131026,
            "error_data": {"messaging_product": "whatsapp", "details": "Message Undeliverable."},
            "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"
        }))
        .expect("error body");
        let failure = super::failure_of(&GraphError::Api(Box::new(MetaApiError {
            status: 400,
            error,
            regain_access_after: None,
        })));
        assert_eq!(failure.title.as_deref(), Some("Message undeliverable"));
        assert_eq!(failure.code, Some(131026));
        assert!(
            failure
                .message
                .starts_with("(#131026) Message undeliverable")
        );
        for kept in ["(#) x", "(#12a) x", "Rate limit hit", "(#131026)"] {
            assert_eq!(super::without_code(kept), kept);
        }
    }

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        for attempt in 1..15 {
            let secs = super::backoff(attempt).num_milliseconds() as f64 / 1000.0;
            let base = 2f64.powi((attempt - 1).clamp(0, 12)).min(300.0);
            assert!(
                secs >= base * 0.8 - 0.01 && secs <= base * 1.2 + 0.01,
                "{attempt}: {secs}"
            );
        }
    }
}
