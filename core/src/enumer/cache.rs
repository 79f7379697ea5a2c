//! The answer cache: bounded (LRU per shard), with a fresh period from the record
//! TTL (capped), negative entries for numbers without records, and a stale period
//! during which an expired entry may still be served when the node fails.
//!
//! Time is passed in by the caller, so the rules can be tested without waiting.

use std::hash::BuildHasher;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;
use tokio::time::{Duration, Instant};

use super::answer::EnumAnswer;

const SHARDS: usize = 16;

/// What the cache holds for one number (an answer without NAPTRs is a negative entry).
#[derive(Clone, Debug)]
pub struct CacheEntry {
    pub answer: Arc<EnumAnswer>,
    pub fresh_until: Instant,
    pub stale_until: Instant,
}

/// Result of a cache read.
#[derive(Clone, Debug)]
pub enum CacheRead {
    /// Within its TTL, which ends at the given instant.
    Fresh(Arc<EnumAnswer>, Instant),
    /// Past its TTL but still within the stale period.
    Stale(Arc<EnumAnswer>),
    Miss,
}

pub struct AnswerCache {
    shards: Vec<Mutex<LruCache<Box<str>, CacheEntry>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl AnswerCache {
    /// A cache of at most `capacity` numbers (at least one per shard).
    pub fn new(capacity: usize) -> Self {
        let per_shard = NonZeroUsize::new(capacity.div_ceil(SHARDS).max(1)).expect("non-zero");
        AnswerCache {
            shards: (0..SHARDS).map(|_| Mutex::new(LruCache::new(per_shard))).collect(),
            hasher: Default::default(),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<LruCache<Box<str>, CacheEntry>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    pub fn get(&self, key: &str, now: Instant) -> CacheRead {
        let mut shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = shard.get(key) else { return CacheRead::Miss };
        if now < entry.fresh_until {
            CacheRead::Fresh(entry.answer.clone(), entry.fresh_until)
        } else if now < entry.stale_until {
            CacheRead::Stale(entry.answer.clone())
        } else {
            shard.pop(key);
            CacheRead::Miss
        }
    }

    pub fn insert(&self, key: &str, answer: Arc<EnumAnswer>, now: Instant, ttl: Duration, stale_for: Duration) {
        let fresh_until = now + ttl;
        let entry = CacheEntry { answer, fresh_until, stale_until: fresh_until + stale_for };
        self.shard(key).lock().unwrap_or_else(|p| p.into_inner()).put(key.into(), entry);
    }

    pub fn remove(&self, key: &str) {
        self.shard(key).lock().unwrap_or_else(|p| p.into_inner()).pop(key);
    }

    pub fn clear(&self) {
        for s in &self.shards {
            s.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).cap().get()).sum()
    }

    /// The numbers held (fresh, stale or expired-but-not-yet-evicted), in no order.
    pub fn keys(&self) -> Vec<Box<str>> {
        let mut out = Vec::new();
        for s in &self.shards {
            out.extend(s.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, _)| k.clone()));
        }
        out
    }

    /// A cache of `capacity` holding this one's entries; when it is smaller, each
    /// shard keeps its most recently used ones.
    pub fn resized(&self, capacity: usize) -> AnswerCache {
        let out = AnswerCache::new(capacity);
        for s in &self.shards {
            let shard = s.lock().unwrap_or_else(|p| p.into_inner());
            // Oldest first, so the newest end up most recently used.
            for (k, e) in shard.iter().rev() {
                out.shard(k).lock().unwrap_or_else(|p| p.into_inner()).put(k.clone(), e.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enumer::E164;

    fn empty() -> Arc<EnumAnswer> {
        Arc::new(EnumAnswer::empty(E164::parse("+1555").unwrap()))
    }

    #[test]
    fn fresh_then_stale_then_gone() {
        let c = AnswerCache::new(100);
        let t0 = Instant::now();
        c.insert("1555", empty(), t0, Duration::from_secs(10), Duration::from_secs(5));
        assert!(matches!(c.get("1555", t0 + Duration::from_secs(9)), CacheRead::Fresh(..)));
        assert!(matches!(c.get("1555", t0 + Duration::from_secs(12)), CacheRead::Stale(_)));
        assert!(matches!(c.get("1555", t0 + Duration::from_secs(15)), CacheRead::Miss));
        assert!(c.is_empty());
    }

    #[test]
    fn resizing_keeps_entries_and_their_times() {
        let c = AnswerCache::new(1000);
        let t0 = Instant::now();
        for i in 0..500 {
            c.insert(&format!("1{i:04}"), empty(), t0, Duration::from_secs(10), Duration::from_secs(5));
        }
        let bigger = c.resized(2000);
        assert_eq!(bigger.len(), 500);
        assert!(matches!(bigger.get("10007", t0 + Duration::from_secs(9)), CacheRead::Fresh(..)));
        assert!(matches!(bigger.get("10008", t0 + Duration::from_secs(12)), CacheRead::Stale(_)));
        let smaller = c.resized(64);
        assert!(smaller.len() <= 64 && !smaller.is_empty());
        assert_eq!(c.keys().len(), 500);
    }

    #[test]
    fn memory_is_bounded() {
        let c = AnswerCache::new(64);
        let t0 = Instant::now();
        for i in 0..10_000 {
            c.insert(&format!("1{i}"), empty(), t0, Duration::from_secs(60), Duration::ZERO);
        }
        assert!(c.len() <= c.capacity());
        assert_eq!(c.capacity(), 64);
    }
}
