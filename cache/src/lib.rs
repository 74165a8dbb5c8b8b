//! The result cache of mcp-kernel: moka in this process (L1) in front of Redis (L2, optional,
//! shared by replicas). The only crate that names moka and (for the cache) Redis.
//!
//! - **Keys** come from [`KeyBuilder`]: SHA-256 over a canonical encoding of tagged,
//!   length-prefixed fields, so field boundaries cannot shift. What goes into a key (code,
//!   tenant, versions, the inputs a call read) is the caller's decision.
//! - **Values** are opaque [`bytes::Bytes`] with a TTL: the session serialises its results.
//! - **L1** is a moka future cache weighted by bytes (`l1_max_bytes`), with each entry's TTL
//!   (at most `l1_ttl`) kept on tokio's clock as well as moka's, so tests drive expiry with
//!   paused time.
//! - **L2** is Redis: `SET <key_prefix>mcpk:v1:cache:<namespace_version>:<hex key> <value> PX
//!   <ttl ms>`; reads are `GET` + `PTTL` in one `MULTI`, and an L2 hit fills L1 for the TTL
//!   Redis has left. No scans: invalidation is by changing what goes into keys, and
//!   [`TieredCache::set_namespace_version`] (or `CacheConfig::namespace_version`) drops
//!   everything at once.
//! - **Single-flight**: [`TieredCache::get_or_compute`] runs identical concurrent misses once
//!   and gives every waiter the leader's answer, cacheable, uncacheable or error. The in-flight
//!   map is bounded (`max_in_flight_keys`).
//! - **Redis may fail**: a failed or slow command marks L2 down (one warning), calls go on with
//!   L1 alone, and a background probe retries with backoff (1 s doubling to 30 s by default)
//!   until Redis answers (one info line). [`TieredCache::redis_healthy`] is for readiness.
//! - **Metrics** go through the `metrics` facade with a `tier` label; the names are the
//!   constants in this crate ([`HITS_TOTAL`], [`MISSES_TOTAL`], [`INSERTS_TOTAL`],
//!   [`EVICTIONS_TOTAL`], [`EXPIRATIONS_TOTAL`], [`ERRORS_TOTAL`], [`BYTES`], [`REDIS_UP`],
//!   [`COMPUTATIONS_TOTAL`], [`JOINED_TOTAL`]); [`TieredCache::stats`] reads the same counts.

mod config;
mod error;
mod key;
mod l1;
mod l2;
mod stats;
mod tiered;

pub use config::CacheConfig;
pub use error::CacheError;
pub use key::{CacheKey, KeyBuilder};
pub use l1::L1_ENTRY_OVERHEAD_BYTES;
pub use stats::{
    BYTES, COMPUTATIONS_TOTAL, CacheStats, ERRORS_TOTAL, EVICTIONS_TOTAL, EXPIRATIONS_TOTAL,
    HITS_TOTAL, INSERTS_TOTAL, JOINED_TOTAL, MISSES_TOTAL, REDIS_UP, TierStats, describe_metrics,
};
pub use tiered::{Computed, Lookup, RedisState, Source, Tier, TieredCache};
