//! Reads of rows every request needs and that rarely change (API keys, the
//! sending phone and its WABA), served from memory.
//!
//! Correctness comes from invalidation, not expiry: a statement trigger on
//! `api_keys`, `wabas` and `phone_numbers` NOTIFYs `wagate_cache` on every
//! change (no write path can forget it), and each instance's listener clears
//! its cache when one arrives; the writing instance also clears its own right
//! after its commit, so it never reads its own write stale. An entry is used
//! only if no invalidation happened since the read that produced it started
//! (a generation counter), and only while the listener is connected: while it
//! is down, or before it first connects, every read goes to PostgreSQL.
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The channel the trigger notifies.
pub const CHANNEL: &str = "wagate_cache";
/// A bound on staleness should a notification be lost in transit anyway.
const MAX_AGE: Duration = Duration::from_secs(30);
/// Entries kept per map; the map is cleared when it fills (no LRU needed at
/// this size: a working set larger than this simply reads through).
const MAX_ENTRIES: usize = 10_000;

/// The shared state: whether the listener is live, and the generation.
#[derive(Debug, Default)]
pub struct Invalidation {
    live: AtomicBool,
    generation: AtomicU64,
}

impl Invalidation {
    /// Everything cached so far is stale.
    pub fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The listener connected (and LISTENs): caching may start, from a clean slate.
    pub fn connected(&self) {
        self.bump();
        self.live.store(true, Ordering::SeqCst);
    }

    /// The listener lost its connection: notifications may be missed.
    pub fn lost(&self) {
        self.live.store(false, Ordering::SeqCst);
        self.bump();
    }

    /// The generation to tag a read with, or None when caching is off.
    fn ticket(&self) -> Option<u64> {
        self.live
            .load(Ordering::SeqCst)
            .then(|| self.generation.load(Ordering::SeqCst))
    }

    fn current(&self, generation: u64) -> bool {
        self.live.load(Ordering::SeqCst) && self.generation.load(Ordering::SeqCst) == generation
    }
}

/// One map of cached reads.
#[derive(Debug)]
pub struct ReadCache<K, V> {
    entries: Mutex<HashMap<K, (u64, Instant, V)>>,
}

impl<K, V> Default for ReadCache<K, V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> ReadCache<K, V> {
    /// The cached value for `key`, else `read()`'s, cached when nothing was
    /// invalidated while it ran.
    pub async fn get_or_read<E, F>(&self, inv: &Invalidation, key: K, read: F) -> Result<V, E>
    where
        F: AsyncFnOnce() -> Result<V, E>,
    {
        let Some(generation) = inv.ticket() else {
            return read().await;
        };
        if let Some(v) = self.lookup(inv, &key) {
            return Ok(v);
        }
        let value = read().await?;
        if inv.current(generation)
            && let Ok(mut map) = self.entries.lock()
        {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(key, (generation, Instant::now(), value.clone()));
        }
        Ok(value)
    }

    fn lookup(&self, inv: &Invalidation, key: &K) -> Option<V> {
        let map = self.entries.lock().ok()?;
        let (generation, at, v) = map.get(key)?;
        (inv.current(*generation) && at.elapsed() < MAX_AGE).then(|| v.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(
        cache: &ReadCache<u32, u32>,
        inv: &Invalidation,
        reads: &mut u32,
        value: u32,
    ) -> u32 {
        cache
            .get_or_read(inv, 1, async || {
                *reads += 1;
                Ok::<_, ()>(value)
            })
            .await
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn nothing_is_cached_until_the_listener_is_live() {
        let (cache, inv, mut reads) = (ReadCache::default(), Invalidation::default(), 0);
        assert_eq!(read(&cache, &inv, &mut reads, 7).await, 7);
        assert_eq!(read(&cache, &inv, &mut reads, 8).await, 8);
        assert_eq!(reads, 2, "both read through");
        inv.connected();
        assert_eq!(read(&cache, &inv, &mut reads, 9).await, 9);
        assert_eq!(
            read(&cache, &inv, &mut reads, 10).await,
            9,
            "served from memory"
        );
        assert_eq!(reads, 3);
    }

    #[tokio::test]
    async fn an_invalidation_or_a_lost_listener_drops_every_entry() {
        let (cache, inv, mut reads) = (ReadCache::default(), Invalidation::default(), 0);
        inv.connected();
        read(&cache, &inv, &mut reads, 1).await;
        inv.bump();
        assert_eq!(
            read(&cache, &inv, &mut reads, 2).await,
            2,
            "re-read after a change"
        );
        inv.lost();
        assert_eq!(read(&cache, &inv, &mut reads, 3).await, 3);
        assert_eq!(
            read(&cache, &inv, &mut reads, 4).await,
            4,
            "no caching while down"
        );
    }

    #[tokio::test]
    async fn a_read_overtaken_by_a_change_is_not_cached() {
        let (cache, inv) = (ReadCache::<u32, u32>::default(), Invalidation::default());
        inv.connected();
        let v = cache
            .get_or_read(&inv, 1, async || {
                // The row changes (and is notified) while this read is in flight.
                inv.bump();
                Ok::<_, ()>(1)
            })
            .await;
        assert_eq!(v, Ok(1));
        let mut reads = 0;
        assert_eq!(
            read(&cache, &inv, &mut reads, 2).await,
            2,
            "the stale read was not kept"
        );
        assert_eq!(reads, 1);
    }
}
