//! [`TieredCache`]: L1 then L2 on reads, both on writes, single-flight on misses.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::ConnectionManager;
use tokio::sync::{OnceCell, watch};

use crate::CacheConfig;
use crate::error::CacheError;
use crate::key::CacheKey;
use crate::l1::{L1, L1Key};
use crate::l2::{self, L2};
use crate::stats::{CacheStats, Counters};

/// Which tier answered a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// This process's memory (moka).
    L1,
    /// Redis, shared by replicas.
    L2,
}

impl Tier {
    /// `"l1"` or `"l2"`: the `tier` label of the metrics and the `cached` value of a response.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::L1 => "l1",
            Self::L2 => "l2",
        }
    }
}

/// Where the value returned by [`TieredCache::get_or_compute`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A hit in this process's memory.
    L1,
    /// A hit in Redis (now also in L1).
    L2,
    /// This caller ran `compute`.
    Computed,
    /// Another caller was already computing the same key; this one waited and got its answer
    /// (whether or not that answer was cacheable).
    Joined,
}

impl Source {
    /// The tier for a hit, `None` when the value was computed (here or by the leader).
    #[must_use]
    pub const fn tier(self) -> Option<Tier> {
        match self {
            Self::L1 => Some(Tier::L1),
            Self::L2 => Some(Tier::L2),
            Self::Computed | Self::Joined => None,
        }
    }
}

/// The answer of [`TieredCache::get_or_compute`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The value (opaque to the cache).
    pub value: Bytes,
    /// Where it came from.
    pub source: Source,
}

/// What a `compute` of [`TieredCache::get_or_compute`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computed {
    /// The value returned to the caller (and to every joined waiter).
    pub value: Bytes,
    /// How long to cache it; `None` = uncacheable (returned, not stored).
    pub ttl: Option<Duration>,
}

impl Computed {
    /// A value to store for `ttl` (shortened to `max_ttl`, and in L1 to `l1_ttl`).
    #[must_use]
    pub fn cacheable(value: Bytes, ttl: Duration) -> Self {
        Self {
            value,
            ttl: Some(ttl),
        }
    }

    /// A value to return without storing it.
    #[must_use]
    pub fn uncacheable(value: Bytes) -> Self {
        Self { value, ttl: None }
    }
}

/// Whether L2 is configured and in use; see [`TieredCache::redis_state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisState {
    /// No Redis: the cache runs on L1 alone by configuration.
    NotConfigured,
    /// Redis answers; L2 is in use.
    Up,
    /// Redis failed; L2 is skipped while a background task retries with backoff.
    Down,
}

/// The outcome a flight leader shares with its waiters. The error is type-erased so the
/// in-flight map does not depend on the caller's error type.
#[derive(Clone)]
struct Shared(Result<Bytes, Arc<dyn Any + Send + Sync>>);

type Flight = OnceCell<Shared>;

/// A two-tier result cache: moka in this process (L1, bounded by bytes, TTL per entry) in front
/// of Redis (L2, optional, shared by replicas).
///
/// Cheap to clone (an `Arc`); clones share everything. Reads go L1, then L2; an L2 hit fills L1
/// with the TTL Redis has left. Writes go to both. Redis failures are never the caller's: they
/// are logged once, counted, and L2 is skipped until a background probe finds Redis again.
///
/// Read through [`TieredCache::get_or_compute`], the single-flight entry point: it is like
/// moka's `try_get_with`, but spans both tiers and shares uncacheable results and errors too,
/// which `try_get_with` cannot.
#[derive(Clone)]
pub struct TieredCache {
    inner: Arc<Inner>,
}

struct Inner {
    config: CacheConfig,
    namespace: AtomicU64,
    l1: L1,
    l2: Option<Arc<L2>>,
    flights: Mutex<HashMap<L1Key, Arc<Flight>>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for TieredCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredCache")
            .field("config", &self.inner.config)
            .field("redis", &self.redis_state())
            .finish_non_exhaustive()
    }
}

impl TieredCache {
    /// An L1-only cache (no Redis configured).
    ///
    /// # Errors
    /// [`CacheError::Config`] when `config` does not validate.
    pub fn new(config: CacheConfig) -> Result<Self, CacheError> {
        Self::build(config, None)
    }

    /// A cache with L2 on the Redis at `url` (`redis://host:port/db`), through its own
    /// reconnecting connection. Redis need not be up: if the first PING fails, the cache starts
    /// on L1 alone and the background probe brings L2 in when Redis answers. Must be called
    /// within a tokio runtime.
    ///
    /// # Errors
    /// [`CacheError::Config`] when `config` does not validate; [`CacheError::RedisUrl`] when
    /// `url` does not parse.
    pub async fn connect(config: CacheConfig, url: &str) -> Result<Self, CacheError> {
        config.validate()?;
        let client = redis::Client::open(url).map_err(|e| CacheError::RedisUrl(e.to_string()))?;
        let con = ConnectionManager::new_lazy_with_config(client, l2::manager_config(&config))
            .map_err(|e| CacheError::RedisUrl(e.to_string()))?;
        let cache = Self::build(config, Some(con))?;
        if let Some(l2) = &cache.inner.l2 {
            l2.check().await;
        }
        Ok(cache)
    }

    /// A cache with L2 over an existing connection (for example the session store's). Redis is
    /// assumed up until a command fails. Must be called within a tokio runtime.
    ///
    /// # Errors
    /// [`CacheError::Config`] when `config` does not validate.
    pub fn with_connection(
        config: CacheConfig,
        con: ConnectionManager,
    ) -> Result<Self, CacheError> {
        Self::build(config, Some(con))
    }

    fn build(config: CacheConfig, con: Option<ConnectionManager>) -> Result<Self, CacheError> {
        config.validate()?;
        let counters = Arc::new(Counters::default());
        let l1 = L1::new(&config, Arc::clone(&counters));
        let l2 = con.map(|con| L2::new(&config, con, Arc::clone(&counters)));
        Ok(Self {
            inner: Arc::new(Inner {
                namespace: AtomicU64::new(config.namespace_version),
                config,
                l1,
                l2,
                flights: Mutex::new(HashMap::new()),
                counters,
            }),
        })
    }

    /// The configuration this cache was built with.
    #[must_use]
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// The namespace version in every key (starts at `CacheConfig::namespace_version`).
    #[must_use]
    pub fn namespace_version(&self) -> u64 {
        self.inner.namespace.load(Ordering::Acquire)
    }

    /// Switches to another namespace version: every entry under the old one, in both tiers,
    /// becomes unreachable at once (L1 memory is freed; Redis lets the old keys expire).
    pub fn set_namespace_version(&self, version: u64) {
        self.inner.namespace.store(version, Ordering::Release);
        self.inner.l1.clear();
    }

    /// Looks `key` up in L1, then L2 (an L2 hit fills L1). Counts a hit or miss per tier
    /// consulted.
    pub async fn get(&self, key: &CacheKey) -> Option<(Bytes, Tier)> {
        let ns = self.namespace_version();
        self.lookup(ns, key).await.map(|l| {
            let tier = l.source.tier().unwrap_or(Tier::L1);
            (l.value, tier)
        })
    }

    /// Stores `value` for `ttl` in L1 (at most `l1_ttl`) and L2 (`SET … PX`). A value over
    /// `max_value_bytes` or a zero `ttl` is not stored; `ttl` is shortened to `max_ttl`. Redis
    /// failures are logged and counted, never returned.
    pub async fn insert(&self, key: &CacheKey, value: Bytes, ttl: Duration) {
        let ns = self.namespace_version();
        self.store(ns, key, value, ttl).await;
    }

    /// Returns the cached value for `key`, or runs `compute` once for all identical concurrent
    /// misses (single-flight) and stores its result when it is cacheable.
    ///
    /// Every caller that joins a running computation gets the leader's answer: its value
    /// (cacheable or not) or its error (cloned). If the leader is cancelled or panics, one of
    /// the waiters runs its own `compute` instead. Beyond `max_in_flight_keys` keys in flight, a
    /// miss runs `compute` alone.
    ///
    /// # Errors
    /// The error `compute` returned (this caller's, or the leader's clone).
    pub async fn get_or_compute<F, Fut, E>(&self, key: &CacheKey, compute: F) -> Result<Lookup, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Computed, E>>,
        E: Clone + Send + Sync + 'static,
    {
        let ns = self.namespace_version();
        if let Some(hit) = self.lookup(ns, key).await {
            return Ok(hit);
        }
        let Some(flight) = self.join(ns, key) else {
            tracing::debug!(
                max_in_flight_keys = self.inner.config.max_in_flight_keys,
                "result cache: in-flight bound reached, computing without single-flight"
            );
            self.inner.counters.computation();
            let computed = compute().await?;
            return Ok(self.keep(ns, key, computed).await);
        };
        let guard = FlightGuard {
            inner: &self.inner,
            key: (ns, *key),
            flight: &flight,
        };
        let mut compute = Some(compute);
        let mut source = Source::Joined;
        let shared = flight
            .get_or_init(|| async {
                // A caller that missed just before the previous flight stored its value.
                if let Some(v) = self.inner.l1.get(&(ns, *key), false).await {
                    source = Source::L1;
                    return Shared(Ok(v));
                }
                source = Source::Computed;
                self.inner.counters.computation();
                let compute = compute.take().expect("compute is taken once");
                match compute().await {
                    Ok(computed) => Shared(Ok(self.keep(ns, key, computed).await.value)),
                    Err(e) => Shared(Err(Arc::new(e))),
                }
            })
            .await
            .clone();
        drop(guard);
        match shared.0 {
            Ok(value) => Ok(Lookup { value, source }),
            Err(e) => match e.downcast_ref::<E>() {
                Some(e) => Err(e.clone()),
                // Another error type under the same key (two callers disagreeing on the
                // type): compute for this caller alone.
                None => {
                    let compute = compute.take().expect("a joined caller still has compute");
                    self.inner.counters.computation();
                    let computed = compute().await?;
                    Ok(self.keep(ns, key, computed).await)
                }
            },
        }
    }

    /// Empties L1 (as if this were a fresh replica); L2 is untouched.
    pub fn clear_l1(&self) {
        self.inner.l1.clear();
    }

    /// `true` while L2 is configured and in use (for a readiness check). `false` both without
    /// Redis and while Redis is down; see [`TieredCache::redis_state`] to tell them apart.
    #[must_use]
    pub fn redis_healthy(&self) -> bool {
        self.redis_state() == RedisState::Up
    }

    /// Whether L2 is configured, up or down.
    #[must_use]
    pub fn redis_state(&self) -> RedisState {
        match &self.inner.l2 {
            None => RedisState::NotConfigured,
            Some(l2) if l2.healthy() => RedisState::Up,
            Some(_) => RedisState::Down,
        }
    }

    /// A receiver that changes whenever L2 goes down (`false`) or comes back (`true`); `None`
    /// without Redis. For waiting on recovery without polling.
    #[must_use]
    pub fn redis_health(&self) -> Option<watch::Receiver<bool>> {
        self.inner.l2.as_ref().map(|l2| l2.subscribe())
    }

    /// The Redis key an entry is stored under:
    /// `<key_prefix>mcpk:v1:cache:<namespace_version>:<hex key>`; `None` without Redis.
    #[must_use]
    pub fn redis_key(&self, key: &CacheKey) -> Option<String> {
        let ns = self.namespace_version();
        self.inner.l2.as_ref().map(|l2| l2.redis_key(ns, key))
    }

    /// Counters since the cache was built (the same events as the metrics).
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        self.inner.counters.snapshot()
    }

    /// Keys with a computation in flight now (at most `max_in_flight_keys`).
    #[must_use]
    pub fn in_flight_keys(&self) -> usize {
        self.inner
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Entries in L1 (approximate until [`TieredCache::run_pending_tasks`]).
    #[must_use]
    pub fn l1_entry_count(&self) -> u64 {
        self.inner.l1.entry_count()
    }

    /// Runs moka's pending maintenance (evictions, expiry, listeners) now, so counts and bytes
    /// are exact; moka otherwise does it in small steps on later operations.
    pub async fn run_pending_tasks(&self) {
        self.inner.l1.run_pending_tasks().await;
    }

    async fn lookup(&self, ns: u64, key: &CacheKey) -> Option<Lookup> {
        if let Some(value) = self.inner.l1.get(&(ns, *key), true).await {
            return Some(Lookup {
                value,
                source: Source::L1,
            });
        }
        let l2 = self.inner.l2.as_ref()?;
        let (value, left) = l2.get(ns, key).await?;
        if value.len() as u64 <= self.inner.config.max_value_bytes {
            let ttl = left.unwrap_or(self.inner.config.l1_ttl);
            self.inner.l1.insert((ns, *key), value.clone(), ttl).await;
        }
        Some(Lookup {
            value,
            source: Source::L2,
        })
    }

    async fn keep(&self, ns: u64, key: &CacheKey, computed: Computed) -> Lookup {
        if let Some(ttl) = computed.ttl {
            self.store(ns, key, computed.value.clone(), ttl).await;
        }
        Lookup {
            value: computed.value,
            source: Source::Computed,
        }
    }

    async fn store(&self, ns: u64, key: &CacheKey, value: Bytes, ttl: Duration) {
        let config = &self.inner.config;
        if value.len() as u64 > config.max_value_bytes {
            tracing::debug!(
                bytes = value.len(),
                max_value_bytes = config.max_value_bytes,
                "result cache: value too large to cache"
            );
            return;
        }
        let ttl = ttl.min(config.max_ttl);
        if ttl.is_zero() {
            return;
        }
        if let Some(l2) = &self.inner.l2 {
            l2.set(ns, key, &value, ttl).await;
        }
        self.inner.l1.insert((ns, *key), value, ttl).await;
    }

    /// The flight to join or lead for `key`; `None` when the in-flight map is full.
    fn join(&self, ns: u64, key: &CacheKey) -> Option<Arc<Flight>> {
        let mut flights = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let k = (ns, *key);
        match flights.get(&k) {
            Some(f) if !f.initialized() => {
                self.inner.counters.joined();
                return Some(Arc::clone(f));
            }
            // A finished flight not yet removed: replaced below (its answer is not shared with
            // callers that arrive after it finished).
            Some(_) => {}
            None if flights.len() >= self.inner.config.max_in_flight_keys => return None,
            None => {}
        }
        let flight = Arc::new(Flight::new());
        flights.insert(k, Arc::clone(&flight));
        Some(flight)
    }
}

/// Removes a flight from the map once it has finished, or when its last participant leaves
/// (cancelled), so the map holds only live flights.
struct FlightGuard<'a> {
    inner: &'a Inner,
    key: L1Key,
    flight: &'a Arc<Flight>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut flights = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = flights.get(&self.key)
            && Arc::ptr_eq(f, self.flight)
            // The map's Arc, this participant's, and no one else's.
            && (f.initialized() || Arc::strong_count(f) <= 2)
        {
            flights.remove(&self.key);
        }
    }
}
