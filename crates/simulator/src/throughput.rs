//! Throughput limits, as GCRA (the Generic Cell Rate Algorithm, equivalent to a token bucket):
//! one "theoretical arrival time" (TAT) per key. A request at `now` is admitted when
//! `max(TAT, now) + T - now <= B * T`, where `T` is the emission interval (1 / rate) and `B`
//! the burst: an idle key admits `B` requests at once, then one per `T`. Refused requests
//! consume nothing.
//!
//! * per phone number: rate = the phone's mps (80 by default, 20 / 1,000 settable), burst =
//!   [`crate::SimulatorConfig::throughput_burst`] (default a tenth of a second: `mps/10`, >= 1)
//!   -> 130429;
//! * per (phone number, recipient) pair: one message per 6 s with a burst of 45 by default
//!   -> 131056 (configurable, can be disabled).
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A set of GCRA cells keyed by `K`.
#[derive(Debug)]
pub struct Gcra<K> {
    tat: HashMap<K, Instant>,
    inserts: u64,
}

impl<K: std::hash::Hash + Eq + Clone> Default for Gcra<K> {
    fn default() -> Self {
        Gcra {
            tat: HashMap::new(),
            inserts: 0,
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> Gcra<K> {
    /// Admits one request for `key` at `now` (or refuses it, changing nothing).
    pub fn check(&mut self, key: &K, now: Instant, interval: Duration, burst: u32) -> bool {
        let burst = burst.max(1);
        let tat = self.tat.get(key).copied().unwrap_or(now).max(now);
        let new_tat = tat + interval;
        if new_tat.saturating_duration_since(now) > interval * burst {
            return false;
        }
        if self.tat.insert(key.clone(), new_tat).is_none() {
            self.inserts += 1;
            if self.inserts.is_multiple_of(10_000) {
                // Forget idle keys so that benchmarks over many recipients stay small.
                self.tat.retain(|_, t| *t > now);
            }
        }
        true
    }

    pub fn clear(&mut self) {
        self.tat.clear();
    }

    pub fn remove(&mut self, key: &K) {
        self.tat.remove(key);
    }
}

/// Emission interval for `per_second` events per second.
pub fn interval_for(per_second: u32) -> Duration {
    Duration::from_nanos(1_000_000_000 / u64::from(per_second.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut g = Gcra::default();
        let t0 = Instant::now();
        let iv = interval_for(20);
        let admitted = (0..10).filter(|_| g.check(&"p", t0, iv, 2)).count();
        assert_eq!(admitted, 2);
        // One interval later exactly one more fits.
        assert!(g.check(&"p", t0 + iv, iv, 2));
        assert!(!g.check(&"p", t0 + iv, iv, 2));
        // Spaced at the rate, everything passes.
        let mut t = t0 + Duration::from_secs(10);
        for _ in 0..100 {
            assert!(g.check(&"q", t, iv, 2));
            t += iv;
        }
    }

    #[test]
    fn admitted_never_exceed_rate_times_t_plus_burst() {
        let mut g = Gcra::default();
        let t0 = Instant::now();
        let iv = interval_for(80);
        let mut admitted = 0u32;
        // 1,000 arrivals over 1 s (1 per ms).
        for i in 0..1000u64 {
            if g.check(&"p", t0 + Duration::from_millis(i), iv, 8) {
                admitted += 1;
            }
        }
        assert!(admitted <= 80 + 8, "admitted {admitted}");
        assert!(admitted >= 80, "admitted {admitted}");
    }
}
