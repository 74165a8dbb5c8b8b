//! [`CacheConfig`]: limits and names for one [`crate::TieredCache`].

use std::time::Duration;

use crate::error::CacheError;

/// Settings of a [`crate::TieredCache`]. Plain data with documented defaults; checked once by
/// [`CacheConfig::validate`] (which every constructor calls).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Upper bound on the bytes L1 holds: each entry weighs its value's length plus
    /// [`crate::L1_ENTRY_OVERHEAD_BYTES`] (key, expiry, bookkeeping). Does not cover moka's own
    /// per-entry structures beyond that estimate, nor values still referenced by callers after
    /// eviction. Default 64 MiB.
    pub l1_max_bytes: u64,
    /// Longest time an entry stays in L1, whatever the TTL it was inserted with (an entry lives
    /// `min(ttl, l1_ttl)` in L1 and `ttl` in L2). Default 10 min.
    pub l1_ttl: Duration,
    /// Largest value stored, in either tier; a larger value is returned to its caller but not
    /// cached. At most `u32::MAX - L1_ENTRY_OVERHEAD_BYTES` and at most `l1_max_bytes`.
    /// Default 16 MiB.
    pub max_value_bytes: u64,
    /// Longest TTL accepted; a longer one is shortened to this. Default 24 h.
    pub max_ttl: Duration,
    /// Most keys with a computation in flight at once (the single-flight map). A miss beyond it
    /// computes without joining or leading a flight (correct, only not deduplicated).
    /// Default 10 000.
    pub max_in_flight_keys: usize,
    /// Prepended to every Redis key, before `mcpk:v1:cache:`; lets several deployments (or
    /// tests) share one Redis. Default empty.
    pub key_prefix: String,
    /// Part of every key in both tiers; bumping it (config or
    /// [`crate::TieredCache::set_namespace_version`]) invalidates everything cached under the old
    /// one without a scan. Default 0.
    pub namespace_version: u64,
    /// Longest wait for one Redis command (and for each connection attempt); past it the
    /// command counts as a Redis failure. Default 1 s.
    pub redis_timeout: Duration,
    /// First pause before retrying Redis after a failure; doubled after each failed retry up to
    /// `redis_backoff_max`. Defaults 1 s and 30 s.
    pub redis_backoff_min: Duration,
    /// Longest pause between two retries of a failed Redis. Default 30 s.
    pub redis_backoff_max: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            l1_max_bytes: 64 << 20,
            l1_ttl: Duration::from_secs(600),
            max_value_bytes: 16 << 20,
            max_ttl: Duration::from_secs(24 * 3600),
            max_in_flight_keys: 10_000,
            key_prefix: String::new(),
            namespace_version: 0,
            redis_timeout: Duration::from_secs(1),
            redis_backoff_min: Duration::from_secs(1),
            redis_backoff_max: Duration::from_secs(30),
        }
    }
}

impl CacheConfig {
    /// Checks the limits against each other.
    ///
    /// # Errors
    /// [`CacheError::Config`] naming the field: a zero `l1_max_bytes`, `l1_ttl`, `max_ttl`,
    /// `max_in_flight_keys`, `redis_timeout` or `redis_backoff_min`; `max_value_bytes` above
    /// `l1_max_bytes` or above what a moka weight (u32) can hold; `redis_backoff_max` below
    /// `redis_backoff_min`.
    pub fn validate(&self) -> Result<(), CacheError> {
        let bad = |field: &'static str, reason: String| Err(CacheError::Config { field, reason });
        if self.l1_max_bytes == 0 {
            return bad("l1_max_bytes", "must be > 0".into());
        }
        if self.l1_ttl.is_zero() {
            return bad("l1_ttl", "must be > 0".into());
        }
        if self.max_ttl.is_zero() {
            return bad("max_ttl", "must be > 0".into());
        }
        if self.max_in_flight_keys == 0 {
            return bad("max_in_flight_keys", "must be > 0".into());
        }
        let weight_cap = u64::from(u32::MAX) - crate::l1::L1_ENTRY_OVERHEAD_BYTES;
        if self.max_value_bytes > self.l1_max_bytes || self.max_value_bytes > weight_cap {
            return bad(
                "max_value_bytes",
                format!(
                    "{} exceeds l1_max_bytes ({}) or {weight_cap}",
                    self.max_value_bytes, self.l1_max_bytes
                ),
            );
        }
        if self.redis_timeout.is_zero() {
            return bad("redis_timeout", "must be > 0".into());
        }
        if self.redis_backoff_min.is_zero() {
            return bad("redis_backoff_min", "must be > 0".into());
        }
        if self.redis_backoff_max < self.redis_backoff_min {
            return bad(
                "redis_backoff_max",
                format!(
                    "{:?} is below redis_backoff_min ({:?})",
                    self.redis_backoff_max, self.redis_backoff_min
                ),
            );
        }
        Ok(())
    }
}
