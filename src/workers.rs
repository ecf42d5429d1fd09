//! Background workers and their liveness. Each worker beats a heartbeat;
//! `/ready` is false when one has stopped beating. Later issues register the
//! dispatcher, inbound processor and webhook delivery here.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

#[derive(Clone, Default)]
pub struct Workers {
    beats: Arc<Mutex<HashMap<&'static str, (Instant, Duration)>>>,
}

impl Workers {
    /// Records that `name` is alive and will beat again within `interval`.
    pub fn beat(&self, name: &'static str, interval: Duration) {
        if let Ok(mut b) = self.beats.lock() {
            b.insert(name, (Instant::now(), interval));
        }
    }

    /// Each worker with whether it beat within three of its intervals.
    pub fn status(&self) -> Vec<(&'static str, bool)> {
        let Ok(b) = self.beats.lock() else {
            return Vec::new();
        };
        let mut out: Vec<_> = b
            .iter()
            .map(|(n, (at, every))| (*n, at.elapsed() < *every * 3))
            .collect();
        out.sort();
        out
    }

    pub fn all_alive(&self) -> bool {
        let s = self.status();
        !s.is_empty() && s.iter().all(|(_, alive)| *alive)
    }

    /// Runs `tick` every `interval` until shutdown, beating after each tick
    /// that did not fail.
    pub fn spawn<F, Fut>(
        &self,
        name: &'static str,
        interval: Duration,
        mut shutdown: watch::Receiver<bool>,
        mut tick: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
    {
        let workers = self.clone();
        workers.beat(name, interval);
        tokio::spawn(async move {
            loop {
                match tick().await {
                    Ok(()) => workers.beat(name, interval),
                    Err(e) => tracing::warn!(worker = name, error = %e, "worker tick failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = shutdown.changed() => break,
                }
            }
            tracing::debug!(worker = name, "worker stopped");
        })
    }
}
