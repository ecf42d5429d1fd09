//! Group commit for webhook bodies: requests queue their body with a
//! oneshot for the answer; a few writer tasks each take everything queued
//! (up to a batch) and store it with one multi-row INSERT, then answer every
//! request of the batch. Under load the batches grow by themselves, so one
//! commit (and one fsync) serves many requests; idle, a body is written
//! alone at once.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::store::Store;

/// Writer tasks: while one commits, the next batch forms and another
/// writes it.
const WRITERS: usize = 4;
/// Largest batch, in bodies and in bytes.
const MAX_BATCH: usize = 512;
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Bodies waiting for a writer before requests wait to enqueue.
const QUEUE: usize = 16_384;
/// Other instances are woken through PostgreSQL at most this often (their
/// processors also poll); this instance's processor is woken directly.
const NOTIFY_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("the webhook writer has stopped")]
    Stopped,
    #[error("storing the webhook failed: {0}")]
    Store(String),
}

struct Job {
    body: Bytes,
    ack: oneshot::Sender<Result<i64, WriteError>>,
}

pub struct Writer {
    tx: mpsc::Sender<Job>,
    shared: Arc<Shared>,
}

struct Shared {
    rx: tokio::sync::Mutex<mpsc::Receiver<Job>>,
    store: Store,
    /// Wakes this instance's processor.
    wake: Arc<Notify>,
    last_notify: Mutex<Option<Instant>>,
}

impl Writer {
    pub fn new(store: Store, wake: Arc<Notify>) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE);
        Writer {
            tx,
            shared: Arc::new(Shared {
                rx: tokio::sync::Mutex::new(rx),
                store,
                wake,
                last_notify: Mutex::new(None),
            }),
        }
    }

    /// Stores `body` durably with whatever else is waiting; returns its id
    /// once committed.
    pub async fn submit(&self, body: Bytes) -> Result<i64, WriteError> {
        let (ack, answer) = oneshot::channel();
        self.tx
            .send(Job { body, ack })
            .await
            .map_err(|_| WriteError::Stopped)?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }

    /// Starts the writer tasks, detached: they stop once the queue is
    /// closed and drained (when the server's state is dropped), not at the
    /// shutdown signal, so requests still in flight during a graceful
    /// shutdown are stored and answered.
    pub fn spawn(&self) {
        for _ in 0..WRITERS {
            tokio::spawn(run(self.shared.clone()));
        }
    }
}

async fn run(shared: Arc<Shared>) {
    loop {
        let batch = {
            let mut rx = shared.rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut bytes = first.body.len();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(job) => {
                        bytes += job.body.len();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        write(&shared, batch).await;
    }
}

async fn write(shared: &Shared, batch: Vec<Job>) {
    let notify = match shared.last_notify.lock() {
        Ok(mut last) => {
            let due = last.is_none_or(|t| t.elapsed() >= NOTIFY_EVERY);
            if due {
                *last = Some(Instant::now());
            }
            due
        }
        Err(_) => true,
    };
    let bodies: Vec<&[u8]> = batch.iter().map(|j| j.body.as_ref()).collect();
    let result = shared.store.insert_inbound(&bodies, notify).await;
    match result {
        Ok(ids) if ids.len() == batch.len() => {
            shared.wake.notify_one();
            for (job, id) in batch.into_iter().zip(ids) {
                let _ = job.ack.send(Ok(id));
            }
        }
        Ok(ids) => {
            // Cannot happen (one row per body); refuse rather than guess.
            let e = WriteError::Store(format!("{} ids for {} bodies", ids.len(), batch.len()));
            for job in batch {
                let _ = job.ack.send(Err(e.clone()));
            }
        }
        Err(e) => {
            let e = WriteError::Store(e.to_string());
            for job in batch {
                let _ = job.ack.send(Err(e.clone()));
            }
        }
    }
}
