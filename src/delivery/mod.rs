//! The outgoing webhook delivery worker.
//!
//! A claimer takes due deliveries from PostgreSQL (`SKIP LOCKED`, under a
//! lease, at most `endpoint_concurrency` in flight per endpoint across every
//! instance), attempts each on its own task (at most `concurrency` at once
//! per instance), and a completer writes the results back in batches: the
//! delivery's new state and one log row per attempt. It wakes on
//! `pg_notify('wagate_webhooks')`, on its own completions, at the earliest
//! retry it scheduled, and otherwise polls.
mod client;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use uuid::Uuid;

use crate::app::App;
use crate::crypto::SecretBox;
use crate::domain::webhooks::schedule::{self, RetrySchedule, Verdict};
use crate::domain::webhooks::{envelope, signing, ssrf};
use crate::store::events::NOTIFY_CHANNEL;
use crate::store::webhooks::{
    AttemptResult, AttemptRow, ClaimedDelivery, OUTCOME_FAILED, OUTCOME_RETRYING,
    OUTCOME_SUCCEEDED, TRIGGER_TEST,
};
use crate::store::{Store, StoreResult};

pub use client::GuardedResolver;

/// How much of a response body the log keeps.
pub const RESPONSE_LOG_BYTES: usize = 2048;
/// How much of a response body is read at most (the rest is dropped).
const RESPONSE_READ_BYTES: usize = 64 * 1024;

/// Operator settings of outgoing webhooks.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Allow private and loopback targets (local development and tests).
    /// Link-local, metadata and reserved addresses stay refused.
    pub allow_private: bool,
    pub schedule: RetrySchedule,
    /// Per attempt, connection to last body byte.
    pub timeout: Duration,
    /// Attempts in flight per instance.
    pub concurrency: usize,
    /// Attempts in flight per endpoint, over every instance.
    pub endpoint_concurrency: usize,
    /// The slowest the worker looks for due deliveries without a wake-up.
    pub poll_interval: Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self {
            allow_private: false,
            schedule: RetrySchedule::default(),
            timeout: Duration::from_secs(15),
            concurrency: 256,
            endpoint_concurrency: 16,
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// Sends deliveries; shared by the worker and the test call.
pub struct Deliverer {
    opts: WebhookOptions,
    http: reqwest::Client,
    secrets: SecretBox,
    wake: Arc<Notify>,
    /// The earliest retry this instance scheduled, to wake for it.
    next_due: Mutex<Option<Instant>>,
}

impl Deliverer {
    pub fn new(opts: WebhookOptions, secrets: SecretBox) -> anyhow::Result<Self> {
        let http = client::build(opts.allow_private, opts.timeout)?;
        Ok(Self {
            opts,
            http,
            secrets,
            wake: Arc::new(Notify::new()),
            next_due: Mutex::new(None),
        })
    }

    pub fn options(&self) -> &WebhookOptions {
        &self.opts
    }

    /// How long a claim holds a delivery: longer than any attempt can take.
    pub fn lease(&self) -> Duration {
        self.opts.timeout + Duration::from_secs(30)
    }

    /// Makes the worker look for due deliveries now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Signs and sends one delivery, and judges the answer.
    pub async fn attempt(&self, d: &ClaimedDelivery) -> AttemptResult {
        let started_at = Utc::now();
        let started = Instant::now();
        let sent = self.send(d).await;
        let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let (status, response, error, retry_after, literal_refused) = match sent {
            Ok(r) => (Some(r.status), r.body, None, r.retry_after, false),
            Err(SendError::Refused(e)) => (None, None, Some(e), None, true),
            Err(SendError::Failed(e)) => (None, None, Some(e), None, false),
        };
        let verdict = if literal_refused {
            Verdict::Final
        } else {
            schedule::verdict(status)
        };
        let error = error.or_else(|| match (verdict, status) {
            (Verdict::Success, _) | (_, None) => None,
            (Verdict::Gone, Some(s)) => Some(format!(
                "HTTP {s}: the endpoint is gone; it was deactivated"
            )),
            (Verdict::Final, Some(s)) if (300..400).contains(&s) => {
                Some(format!("HTTP {s}: redirects are not followed"))
            }
            (_, Some(s)) => Some(format!("HTTP {s}")),
        });
        let now = Utc::now();
        let (outcome, next_attempt_at) = match verdict {
            Verdict::Success => (OUTCOME_SUCCEEDED, None),
            Verdict::Final | Verdict::Gone => (OUTCOME_FAILED, None),
            Verdict::Retry => {
                let next = (d.trigger != TRIGGER_TEST)
                    .then(|| {
                        self.opts
                            .schedule
                            .next_attempt(d.attempts, retry_after, now)
                    })
                    .flatten();
                match next {
                    Some(at) => (OUTCOME_RETRYING, Some(at)),
                    None => (OUTCOME_FAILED, None),
                }
            }
        };
        let deactivate = (verdict == Verdict::Gone).then(|| {
            format!(
                "the endpoint answered 410 Gone at {}",
                envelope::timestamp(started_at)
            )
        });
        AttemptResult {
            lease_token: d.lease_token,
            deactivate,
            attempt: AttemptRow {
                status_code: status.map(i32::from),
                duration_ms,
                response,
                error,
                next_attempt_at,
                ..attempt_row(d, outcome, started_at)
            },
        }
    }

    /// A delivery that is not sent because its endpoint is inactive.
    fn skipped(&self, d: &ClaimedDelivery) -> AttemptResult {
        AttemptResult {
            lease_token: d.lease_token,
            deactivate: None,
            attempt: AttemptRow {
                error: Some("not sent: the endpoint is inactive".into()),
                ..attempt_row(d, OUTCOME_FAILED, Utc::now())
            },
        }
    }

    async fn send(&self, d: &ClaimedDelivery) -> Result<Sent, SendError> {
        let url = ssrf::parse_url(&d.url).map_err(|r| SendError::Refused(r.0))?;
        ssrf::check_literal(&url, self.opts.allow_private).map_err(|r| SendError::Refused(r.0))?;
        let mut keys = Vec::with_capacity(1 + d.old_secrets.len());
        for sealed in std::iter::once(&d.secret_enc).chain(d.old_secrets.iter()) {
            let secret = self
                .secrets
                .open_string(sealed)
                .map_err(|e| SendError::Failed(format!("not sent: {e}")))?;
            keys.push(signing::key_bytes(&secret));
        }
        let body = envelope::envelope(d.event_id, &d.event, d.event_at, d.org_id, &d.data);
        let msg_id = d.event_id.to_string();
        let ts = Utc::now().timestamp();
        let signature = signing::signature_header(&keys, &msg_id, ts, &body);
        let resp = self
            .http
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Failed(client::describe(&e, self.opts.timeout)))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| schedule::parse_retry_after(v, Utc::now()));
        let body = read_start(resp).await;
        Ok(Sent {
            status,
            body,
            retry_after,
        })
    }

    /// Writes results (deactivating endpoints that answered 410) and
    /// schedules a wake-up for the earliest retry.
    pub async fn record(&self, store: &Store, results: &[AttemptResult]) -> StoreResult<()> {
        store.complete_deliveries(results).await?;
        let earliest = results
            .iter()
            .filter_map(|r| r.attempt.next_attempt_at)
            .min()
            .map(|at| Instant::now() + (at - Utc::now()).to_std().unwrap_or_default());
        if let Some(at) = earliest
            && let Ok(mut next) = self.next_due.lock()
        {
            *next = Some(next.map_or(at, |n| n.min(at)));
        }
        Ok(())
    }

    /// How long the worker may sleep: until the earliest known retry, at most a poll.
    fn idle_for(&self) -> Duration {
        let now = Instant::now();
        let mut idle = self.opts.poll_interval;
        if let Ok(mut next) = self.next_due.lock() {
            match *next {
                Some(at) if at <= now => *next = None,
                Some(at) => idle = idle.min(at - now + Duration::from_millis(5)),
                None => {}
            }
        }
        idle
    }
}

struct Sent {
    status: u16,
    body: Option<String>,
    retry_after: Option<Duration>,
}

enum SendError {
    /// The URL itself is refused (a literal address the guard forbids): final.
    Refused(String),
    /// Network error, timeout, refused resolution: retried.
    Failed(String),
}

/// Up to 64 KiB of the body (read so the connection can be reused); the
/// first 2 KiB, as text, for the log.
async fn read_start(mut resp: reqwest::Response) -> Option<String> {
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < RESPONSE_READ_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    if buf.is_empty() {
        return None;
    }
    buf.truncate(RESPONSE_LOG_BYTES);
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    // A multi-byte character cut at the limit shows as U+FFFD; drop it.
    if text.ends_with('\u{FFFD}') && buf.len() == RESPONSE_LOG_BYTES {
        text.pop();
    }
    Some(text)
}

/// Runs the delivery worker until shutdown.
pub fn spawn(app: &App, shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
    let listen = tokio::spawn(crate::store::listener::listen(
        app.store.clone(),
        NOTIFY_CHANNEL,
        app.webhooks.wake.clone(),
        shutdown.clone(),
    ));
    let run = tokio::spawn(run(app.clone(), shutdown));
    vec![listen, run]
}

/// Claims at most this many deliveries per round trip.
const CLAIM_BATCH: usize = 500;
/// Writes at most this many results per round trip.
const COMPLETE_BATCH: usize = 1000;

async fn run(app: App, mut shutdown: watch::Receiver<bool>) {
    let opts = app.webhooks.options().clone();
    let slots = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let (tx, rx) = mpsc::unbounded_channel::<AttemptResult>();
    let completer = tokio::spawn(complete(app.clone(), rx));
    let lease = app.webhooks.lease();
    let beat = opts.poll_interval.max(Duration::from_secs(1));
    loop {
        app.workers.beat("webhooks", beat);
        let free = slots.available_permits().min(CLAIM_BATCH);
        let mut claimed = Vec::new();
        if free > 0 {
            let started = Instant::now();
            match app
                .store
                .claim_deliveries(free as i64, opts.endpoint_concurrency.max(1) as i64, lease)
                .await
            {
                Ok(c) => {
                    tracing::debug!(
                        n = c.len(),
                        ms = started.elapsed().as_millis() as u64,
                        "claimed webhook deliveries"
                    );
                    claimed = c
                }
                Err(e) => tracing::warn!(error = %e, "claiming webhook deliveries"),
            }
        }
        let full = free > 0 && claimed.len() == free;
        for d in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let app = app.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let attempted = if d.is_active {
                    app.webhooks.attempt(&d).await
                } else {
                    app.webhooks.skipped(&d)
                };
                let _ = tx.send(attempted);
                drop(permit);
            });
        }
        if full {
            continue;
        }
        tokio::select! {
            _ = app.webhooks.wake.notified() => {}
            _ = tokio::time::sleep(app.webhooks.idle_for()) => {}
            _ = shutdown.changed() => break,
        }
    }
    // Let attempts in flight finish (they are bounded by the timeout), then
    // write their results.
    let all = u32::try_from(opts.concurrency.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(
        opts.timeout + Duration::from_secs(2),
        slots.acquire_many(all),
    )
    .await;
    drop(tx);
    let _ = completer.await;
}

async fn complete(app: App, mut rx: mpsc::UnboundedReceiver<AttemptResult>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < COMPLETE_BATCH {
            match rx.try_recv() {
                Ok(a) => batch.push(a),
                Err(_) => break,
            }
        }
        // The attempts happened; keep trying to record them for a while. If
        // that fails for good, the leases expire and the deliveries are
        // attempted again (delivery is at least once).
        let mut delay = Duration::from_millis(100);
        for tries in 1.. {
            let started = Instant::now();
            match app.webhooks.record(&app.store, &batch).await {
                Ok(()) => {
                    tracing::debug!(
                        n = batch.len(),
                        ms = started.elapsed().as_millis() as u64,
                        "recorded webhook attempts"
                    );
                    break;
                }
                Err(e) if tries < 12 => {
                    tracing::warn!(error = %e, n = batch.len(), "recording webhook attempts");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(error = %e, n = batch.len(), "giving up recording webhook attempts; they will be retried when their leases expire");
                    break;
                }
            }
        }
        app.webhooks.wake();
    }
}

/// The log row of an attempt at `d` that ended with `outcome` and has no
/// answer (callers add the answer when there is one).
fn attempt_row(d: &ClaimedDelivery, outcome: &str, created_at: DateTime<Utc>) -> AttemptRow {
    AttemptRow {
        id: Uuid::new_v4(),
        org_id: d.org_id,
        endpoint_id: d.endpoint_id,
        delivery_id: d.id,
        event_id: d.event_id,
        event: d.event.clone(),
        trigger: d.trigger.clone(),
        attempt: d.attempts,
        url: d.url.clone(),
        status_code: None,
        duration_ms: 0,
        response: None,
        error: None,
        outcome: outcome.to_owned(),
        next_attempt_at: None,
        created_at,
    }
}
