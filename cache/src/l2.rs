//! L2: Redis, shared by every replica on the same Redis and key prefix.
//!
//! An entry is one string key `<key_prefix>mcpk:v1:cache:<namespace_version>:<hex digest>`,
//! written with `SET … PX <ttl ms>` and read with `GET` + `PTTL` in one `MULTI`, so an L2 hit
//! fills L1 with the TTL Redis has left. No scans: invalidation is by key change (namespace
//! version, or the versions the caller puts into the key).
//!
//! Health: the first failed command (error or timeout) marks L2 down, logs one warning and
//! starts a prober task; while down, L2 is skipped (no latency, no errors for callers). The
//! prober PINGs after `redis_backoff_min`, doubling the pause after each failure up to
//! `redis_backoff_max`; the first answer marks L2 up again and logs one info line.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::ConnectionManager;
use tokio::sync::watch;

use crate::key::CacheKey;
use crate::stats::{Counters, Event};
use crate::{CacheConfig, Tier};

pub(crate) struct L2 {
    con: ConnectionManager,
    /// `<key_prefix>mcpk:v1:cache:`.
    prefix: String,
    timeout: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    /// `true` while L2 is in use.
    health: watch::Sender<bool>,
    counters: Arc<Counters>,
}

/// The reconnecting connection used by [`crate::TieredCache::connect`]: each command and each
/// connection attempt bounded by `redis_timeout`, one reconnection attempt per failed command
/// (the prober does the longer backoff).
pub(crate) fn manager_config(config: &CacheConfig) -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.redis_timeout))
        .set_response_timeout(Some(config.redis_timeout))
        .set_number_of_retries(1)
}

impl L2 {
    pub(crate) fn new(
        config: &CacheConfig,
        con: ConnectionManager,
        counters: Arc<Counters>,
    ) -> Arc<Self> {
        Counters::redis_up(true);
        Arc::new(Self {
            con,
            prefix: format!("{}mcpk:v1:cache:", config.key_prefix),
            timeout: config.redis_timeout,
            backoff_min: config.redis_backoff_min,
            backoff_max: config.redis_backoff_max,
            health: watch::Sender::new(true),
            counters,
        })
    }

    pub(crate) fn redis_key(&self, namespace: u64, key: &CacheKey) -> String {
        format!("{}{namespace}:{}", self.prefix, key.to_hex())
    }

    pub(crate) fn healthy(&self) -> bool {
        *self.health.borrow()
    }

    pub(crate) async fn check(self: &Arc<Self>) {
        if let Err(e) = self.ping().await {
            self.failed(&format!("PING: {e}"));
        }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.health.subscribe()
    }

    /// The value and the TTL Redis has left for it; `None` on a miss, while down, or on a
    /// failure (which is recorded and starts the backoff).
    pub(crate) async fn get(
        self: &Arc<Self>,
        namespace: u64,
        key: &CacheKey,
    ) -> Option<(Bytes, Option<Duration>)> {
        if !self.healthy() {
            return None;
        }
        let k = self.redis_key(namespace, key);
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        pipe.atomic().get(&k).cmd("PTTL").arg(&k);
        let reply = tokio::time::timeout(
            self.timeout,
            pipe.query_async::<(Option<Vec<u8>>, i64)>(&mut con),
        )
        .await;
        match reply {
            Ok(Ok((Some(value), pttl_ms))) if pttl_ms != -2 && pttl_ms != 0 => {
                self.counters.record(Tier::L2, Event::Hit);
                // -1: no expiry (not written by us); the L1 cap applies.
                let left = u64::try_from(pttl_ms).ok().map(Duration::from_millis);
                Some((Bytes::from(value), left))
            }
            Ok(Ok(_)) => {
                self.counters.record(Tier::L2, Event::Miss);
                None
            }
            Ok(Err(e)) => {
                self.failed(&format!("GET: {e}"));
                None
            }
            Err(_) => {
                self.failed(&format!("GET: no reply within {:?}", self.timeout));
                None
            }
        }
    }

    /// `SET key value PX ttl`; a failure is recorded and starts the backoff, never returned.
    pub(crate) async fn set(
        self: &Arc<Self>,
        namespace: u64,
        key: &CacheKey,
        value: &[u8],
        ttl: Duration,
    ) {
        if !self.healthy() {
            return;
        }
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let k = self.redis_key(namespace, key);
        let mut con = self.con.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(&k).arg(value).arg("PX").arg(ttl_ms);
        match tokio::time::timeout(self.timeout, cmd.query_async::<()>(&mut con)).await {
            Ok(Ok(())) => self.counters.record(Tier::L2, Event::Insert),
            Ok(Err(e)) => self.failed(&format!("SET: {e}")),
            Err(_) => self.failed(&format!("SET: no reply within {:?}", self.timeout)),
        }
    }

    /// Records a failed command; the first one after a healthy period marks L2 down, logs once
    /// and starts the prober.
    pub(crate) fn failed(self: &Arc<Self>, what: &str) {
        self.counters.record(Tier::L2, Event::Error);
        let went_down = self
            .health
            .send_if_modified(|up| std::mem::replace(up, false));
        if went_down {
            Counters::redis_up(false);
            tracing::warn!(
                error = what,
                retry_after = ?self.backoff_min,
                "result cache: redis unavailable, running on L1 alone until it answers again"
            );
            tokio::spawn(probe(Arc::downgrade(self)));
        }
    }

    async fn ping(&self) -> Result<(), String> {
        let mut con = self.con.clone();
        match tokio::time::timeout(
            self.timeout,
            redis::cmd("PING").query_async::<String>(&mut con),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no reply within {:?}", self.timeout)),
        }
    }
}

/// Retries Redis with backoff until it answers (then marks it up) or the cache is dropped.
async fn probe(l2: Weak<L2>) {
    let Some(mut backoff) = l2.upgrade().map(|l2| l2.backoff_min) else {
        return;
    };
    loop {
        tokio::time::sleep(backoff).await;
        let Some(l2) = l2.upgrade() else {
            return;
        };
        match l2.ping().await {
            Ok(()) => {
                l2.health.send_replace(true);
                Counters::redis_up(true);
                tracing::info!("result cache: redis answers again, L2 back in use");
                return;
            }
            Err(e) => {
                l2.counters.record(Tier::L2, Event::Error);
                backoff = next_backoff(backoff, l2.backoff_max);
                tracing::debug!(error = e, retry_after = ?backoff, "result cache: redis still unavailable");
            }
        }
    }
}

/// The pause after a failed retry: double the last one, at most `max`.
fn next_backoff(last: Duration, max: Duration) -> Duration {
    last.saturating_mul(2).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_1_s_up_to_30_s() {
        let config = CacheConfig::default();
        let mut pauses = vec![config.redis_backoff_min];
        while pauses.len() < 8 {
            let last = *pauses.last().unwrap();
            pauses.push(next_backoff(last, config.redis_backoff_max));
        }
        let secs: Vec<u64> = pauses.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
