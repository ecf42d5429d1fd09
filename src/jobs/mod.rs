//! Background jobs from the `jobs` table: claimed with SKIP LOCKED under a
//! lease, woken by LISTEN/NOTIFY (with a slow poll as the fallback), retried
//! with exponential backoff and jitter, parked as `dead:<kind>` when they run
//! out of attempts.
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tokio::sync::{Notify, Semaphore, watch};
use uuid::Uuid;

use crate::app::App;
use crate::domain::{DomainError, phones};
use crate::store::jobs::JobRow;

const LEASE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_secs(2);
const CONCURRENCY: usize = 8;

/// Every kind this runner executes.
const KINDS: [&str; 1] = [phones::RESYNC_JOB];

/// Runs jobs until shutdown.
pub fn spawn(app: &App, shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
    let wake = Arc::new(Notify::new());
    let listen = tokio::spawn(crate::store::listener::listen(
        app.store.clone(),
        "wagate_jobs",
        wake.clone(),
        shutdown.clone(),
    ));
    let run = tokio::spawn(run(app.clone(), wake, shutdown));
    vec![listen, run]
}

async fn run(app: App, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    loop {
        app.workers.beat("jobs", POLL);
        let free = slots.available_permits() as i64;
        let claimed = if free > 0 {
            match app.store.claim_jobs(&KINDS, free, LEASE).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming jobs");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let busy = !claimed.is_empty();
        for job in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let app = app.clone();
            tokio::spawn(async move {
                execute(&app, job).await;
                drop(permit);
            });
        }
        if busy {
            continue;
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => break,
        }
    }
}

async fn execute(app: &App, job: JobRow) {
    let Some(lease) = job.lease_token else {
        return;
    };
    let result = match job.kind.as_str() {
        phones::RESYNC_JOB => match payload_uuid(&job, "phoneId") {
            Some(id) => phones::resync(app, id).await,
            None => Err(DomainError::validation(
                "phoneId",
                "job payload has no phoneId",
            )),
        },
        other => Err(DomainError::Internal(anyhow::anyhow!(
            "no handler for job kind {other}"
        ))),
    };
    let outcome = match result {
        Ok(()) => app.store.complete_job(job.id, lease).await,
        Err(e) => {
            let retry = matches!(e, DomainError::Unavailable(_) | DomainError::Internal(_))
                && job.attempts < job.max_attempts;
            tracing::warn!(job = job.id, kind = %job.kind, attempt = job.attempts, retry, error = %e, "job failed");
            let at = retry.then(|| Utc::now() + backoff(job.attempts));
            app.store.fail_job(job.id, lease, &e.to_string(), at).await
        }
    };
    if let Err(e) = outcome {
        tracing::warn!(job = job.id, error = %e, "recording job outcome");
    }
}

fn payload_uuid(job: &JobRow, key: &str) -> Option<Uuid> {
    job.payload.get(key)?.as_str()?.parse().ok()
}

/// 2^attempt seconds (capped at 5 minutes), ±20 % jitter.
pub fn backoff(attempt: i32) -> chrono::Duration {
    let base = 2f64.powi(attempt.clamp(0, 12)).min(300.0);
    let jitter = rand::rng().random_range(0.8..1.2);
    chrono::Duration::milliseconds((base * jitter * 1000.0) as i64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_grows_within_jitter_and_is_capped() {
        for attempt in 0..20 {
            let d = super::backoff(attempt).num_milliseconds() as f64 / 1000.0;
            let base = 2f64.powi(attempt.clamp(0, 12)).min(300.0);
            assert!(
                d >= base * 0.8 - 0.001 && d <= base * 1.2 + 0.001,
                "{attempt}: {d}"
            );
        }
    }
}
