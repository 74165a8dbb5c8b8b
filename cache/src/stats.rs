//! Metrics: every event is counted twice, in the `metrics` facade (exported by whatever recorder
//! the binary installs, e.g. Prometheus) and in atomics read by [`crate::TieredCache::stats`]
//! (tests, benches, diagnostics).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::Tier;

/// Counter `mcpk_cache_hits_total{tier}`: lookups answered by the tier.
pub const HITS_TOTAL: &str = "mcpk_cache_hits_total";
/// Counter `mcpk_cache_misses_total{tier}`: lookups the tier could not answer (an L2 that is
/// down is not consulted and counts no miss).
pub const MISSES_TOTAL: &str = "mcpk_cache_misses_total";
/// Counter `mcpk_cache_inserts_total{tier}`: entries written (in L1 also the fills from L2 hits).
pub const INSERTS_TOTAL: &str = "mcpk_cache_inserts_total";
/// Counter `mcpk_cache_evictions_total{tier}`: L1 entries removed to stay under
/// `l1_max_bytes` (including new entries the admission policy refused). L2 eviction is Redis's
/// own and is not seen.
pub const EVICTIONS_TOTAL: &str = "mcpk_cache_evictions_total";
/// Counter `mcpk_cache_expirations_total{tier}`: L1 entries removed because their TTL passed.
pub const EXPIRATIONS_TOTAL: &str = "mcpk_cache_expirations_total";
/// Counter `mcpk_cache_errors_total{tier}`: failed Redis commands (including timeouts).
pub const ERRORS_TOTAL: &str = "mcpk_cache_errors_total";
/// Gauge `mcpk_cache_bytes{tier}`: bytes held by L1 (weights as in `CacheConfig::l1_max_bytes`).
/// Only `tier="l1"`: what L2 holds is Redis's to report (no scans).
pub const BYTES: &str = "mcpk_cache_bytes";
/// Gauge `mcpk_cache_redis_up`: 1 while L2 is in use, 0 while it is backing off.
pub const REDIS_UP: &str = "mcpk_cache_redis_up";
/// Counter `mcpk_cache_computations_total`: `compute` runs started by
/// [`crate::TieredCache::get_or_compute`] (one per flight; more when the in-flight bound is
/// reached or a leader was cancelled).
pub const COMPUTATIONS_TOTAL: &str = "mcpk_cache_computations_total";
/// Counter `mcpk_cache_joined_total`: misses that attached to another caller's running
/// computation of the same key (counted when they attach, before it finishes; one that then
/// takes over from a cancelled leader counts here and in computations).
pub const JOINED_TOTAL: &str = "mcpk_cache_joined_total";

/// Registers the descriptions of the metrics above with the installed recorder. Call once after
/// installing it; harmless without one.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(HITS_TOTAL, "Result cache lookups answered, by tier");
    describe_counter!(MISSES_TOTAL, "Result cache lookups not answered, by tier");
    describe_counter!(INSERTS_TOTAL, "Result cache entries written, by tier");
    describe_counter!(
        EVICTIONS_TOTAL,
        "Result cache entries evicted by the byte bound"
    );
    describe_counter!(
        EXPIRATIONS_TOTAL,
        "Result cache entries expired by their TTL"
    );
    describe_counter!(ERRORS_TOTAL, "Result cache Redis command failures");
    describe_gauge!(
        BYTES,
        Unit::Bytes,
        "Bytes held by the result cache, by tier"
    );
    describe_gauge!(REDIS_UP, "1 while the result cache's Redis tier is in use");
    describe_counter!(
        COMPUTATIONS_TOTAL,
        "Computations run on result cache misses"
    );
    describe_counter!(
        JOINED_TOTAL,
        "Misses that waited for a concurrent identical computation"
    );
}

/// A snapshot of one tier's counters since the cache was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStats {
    /// Lookups answered.
    pub hits: u64,
    /// Lookups not answered.
    pub misses: u64,
    /// Entries written.
    pub inserts: u64,
    /// Entries evicted by the byte bound (L1 only).
    pub evictions: u64,
    /// Entries expired (L1 only).
    pub expirations: u64,
    /// Failed commands (L2 only).
    pub errors: u64,
    /// Bytes held (L1 only; 0 for L2).
    pub bytes: u64,
}

/// A snapshot of [`crate::TieredCache`]'s counters, see [`crate::TieredCache::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// The in-process tier.
    pub l1: TierStats,
    /// The Redis tier.
    pub l2: TierStats,
    /// `compute` runs started by `get_or_compute`.
    pub computations: u64,
    /// Misses that attached to another caller's running computation (counted on attaching).
    pub joined: u64,
}

#[derive(Debug, Default)]
pub(crate) struct TierCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    l1: TierCounters,
    l2: TierCounters,
    computations: AtomicU64,
    joined: AtomicU64,
}

/// What happened, for [`Counters::record`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    Hit,
    Miss,
    Insert,
    Eviction,
    Expiration,
    Error,
}

impl Counters {
    fn tier(&self, tier: Tier) -> &TierCounters {
        match tier {
            Tier::L1 => &self.l1,
            Tier::L2 => &self.l2,
        }
    }

    pub(crate) fn record(&self, tier: Tier, event: Event) {
        let t = self.tier(tier);
        let (cell, name) = match event {
            Event::Hit => (&t.hits, HITS_TOTAL),
            Event::Miss => (&t.misses, MISSES_TOTAL),
            Event::Insert => (&t.inserts, INSERTS_TOTAL),
            Event::Eviction => (&t.evictions, EVICTIONS_TOTAL),
            Event::Expiration => (&t.expirations, EXPIRATIONS_TOTAL),
            Event::Error => (&t.errors, ERRORS_TOTAL),
        };
        cell.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(name, "tier" => tier.label()).increment(1);
    }

    /// Adds (or with a negative `delta`, removes) L1 bytes and publishes the gauge.
    pub(crate) fn l1_bytes_add(&self, delta: i64) {
        let now = if delta >= 0 {
            self.l1
                .bytes
                .fetch_add(delta.unsigned_abs(), Ordering::Relaxed)
                + delta.unsigned_abs()
        } else {
            self.l1
                .bytes
                .fetch_sub(delta.unsigned_abs(), Ordering::Relaxed)
                - delta.unsigned_abs()
        };
        #[allow(clippy::cast_precision_loss)] // a gauge; exact below 2^53 bytes
        metrics::gauge!(BYTES, "tier" => Tier::L1.label()).set(now as f64);
    }

    pub(crate) fn computation(&self) {
        self.computations.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(COMPUTATIONS_TOTAL).increment(1);
    }

    pub(crate) fn joined(&self) {
        self.joined.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(JOINED_TOTAL).increment(1);
    }

    pub(crate) fn redis_up(up: bool) {
        metrics::gauge!(REDIS_UP).set(if up { 1.0 } else { 0.0 });
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let tier = |t: &TierCounters| TierStats {
            hits: t.hits.load(Ordering::Relaxed),
            misses: t.misses.load(Ordering::Relaxed),
            inserts: t.inserts.load(Ordering::Relaxed),
            evictions: t.evictions.load(Ordering::Relaxed),
            expirations: t.expirations.load(Ordering::Relaxed),
            errors: t.errors.load(Ordering::Relaxed),
            bytes: t.bytes.load(Ordering::Relaxed),
        };
        CacheStats {
            l1: tier(&self.l1),
            l2: tier(&self.l2),
            computations: self.computations.load(Ordering::Relaxed),
            joined: self.joined.load(Ordering::Relaxed),
        }
    }
}
