//! L1: a moka future cache in this process, bounded by bytes, with a TTL per entry.
//!
//! moka expires entries on its own clock (`std::time::Instant`), which tokio's paused time does
//! not move, and its mock clock is private to moka. So each value also carries its deadline on
//! tokio's clock, checked on every read: a read at or after the deadline is a miss (and removes
//! the entry), whatever moka's clock says. moka's own expiry, set to the same TTL, still frees
//! the memory of entries nobody reads. Tests can therefore drive TTLs with
//! `tokio::time::pause()` / `advance()`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;
use tokio::time::Instant;

use crate::key::CacheKey;
use crate::stats::{Counters, Event};
use crate::{CacheConfig, Tier};

/// What an L1 entry weighs on top of its value's bytes: the key (namespace + digest), the
/// deadline and an estimate of moka's per-entry bookkeeping.
pub const L1_ENTRY_OVERHEAD_BYTES: u64 = 128;

/// (namespace version, key): a namespace bump makes every older entry unreachable at once.
pub(crate) type L1Key = (u64, CacheKey);

#[derive(Clone)]
struct L1Value {
    value: Bytes,
    /// The TTL moka applies (same as `expires_at - inserted_at`).
    ttl: Duration,
    /// The deadline on tokio's clock.
    expires_at: Instant,
}

fn weight(value_len: usize) -> u32 {
    // `max_value_bytes` (validated ≤ u32::MAX - overhead) keeps this exact for stored values.
    u32::try_from(value_len as u64 + L1_ENTRY_OVERHEAD_BYTES).unwrap_or(u32::MAX)
}

struct TtlExpiry;

impl Expiry<L1Key, L1Value> for TtlExpiry {
    fn expire_after_create(
        &self,
        _key: &L1Key,
        value: &L1Value,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &L1Key,
        value: &L1Value,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

pub(crate) struct L1 {
    cache: Cache<L1Key, L1Value>,
    counters: Arc<Counters>,
    l1_ttl: Duration,
}

impl L1 {
    pub(crate) fn new(config: &CacheConfig, counters: Arc<Counters>) -> Self {
        let listener_counters = Arc::clone(&counters);
        let cache = Cache::builder()
            .max_capacity(config.l1_max_bytes)
            .weigher(|_key: &L1Key, value: &L1Value| weight(value.value.len()))
            .expire_after(TtlExpiry)
            .eviction_listener(move |_key, value: L1Value, cause| {
                listener_counters.l1_bytes_add(-i64::from(weight(value.value.len())));
                match cause {
                    RemovalCause::Size => listener_counters.record(Tier::L1, Event::Eviction),
                    RemovalCause::Expired => listener_counters.record(Tier::L1, Event::Expiration),
                    RemovalCause::Explicit | RemovalCause::Replaced => {}
                }
            })
            .build();
        Self {
            cache,
            counters,
            l1_ttl: config.l1_ttl,
        }
    }

    /// The value if present and not expired on tokio's clock; counts a hit or a miss when
    /// `count` is set.
    pub(crate) async fn get(&self, key: &L1Key, count: bool) -> Option<Bytes> {
        let found = match self.cache.get(key).await {
            Some(v) if Instant::now() < v.expires_at => Some(v.value),
            Some(_) => {
                // Expired on tokio's clock before moka's noticed: counted here, since the
                // listener sees an explicit removal.
                self.cache.invalidate(key).await;
                self.counters.record(Tier::L1, Event::Expiration);
                None
            }
            None => None,
        };
        if count {
            let event = if found.is_some() {
                Event::Hit
            } else {
                Event::Miss
            };
            self.counters.record(Tier::L1, event);
        }
        found
    }

    /// Stores `value` for `min(ttl, l1_ttl)`. The caller has checked its size.
    pub(crate) async fn insert(&self, key: L1Key, value: Bytes, ttl: Duration) {
        let ttl = ttl.min(self.l1_ttl);
        if ttl.is_zero() {
            return;
        }
        self.counters.l1_bytes_add(i64::from(weight(value.len())));
        self.counters.record(Tier::L1, Event::Insert);
        let entry = L1Value {
            value,
            ttl,
            expires_at: Instant::now() + ttl,
        };
        self.cache.insert(key, entry).await;
    }

    pub(crate) fn clear(&self) {
        self.cache.invalidate_all();
    }

    pub(crate) async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
    }

    pub(crate) fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }
}
