//! Single-flight for identical `execute` calls: while a call runs, an identical call (same base
//! key: kernel version, tenant, code and result limits) from any session of the tenant waits
//! for it instead of running too, then looks the result cache up again.
//!
//! A waiter re-runs the lookup in its own session rather than taking the leader's answer:
//! whether that answer applies to it depends on what the leader's run turned out to read
//! (`mcp.state` in another state, say), which only the vary record tells. So a waiter whose
//! leader stored nothing, or stored an entry for another state, runs its own code, once: it
//! never waits a second time. `mcpk_cache::TieredCache::get_or_compute` is the cache crate's
//! single-flight for callers that can share one answer outright; this one cannot.
//!
//! The map is bounded (`CacheConfig::max_in_flight_keys`): beyond it a call runs without
//! single-flight.

use std::collections::HashMap;
use std::sync::Mutex;

use mcpk_cache::CacheKey;
use tokio::sync::watch;
use tokio::time::Instant;

/// The identical calls in flight, by base key.
#[derive(Debug)]
pub(crate) struct Flights {
    running: Mutex<HashMap<CacheKey, watch::Receiver<()>>>,
    max_keys: usize,
}

/// What a call does about an identical one in flight.
pub(crate) enum Role<'a> {
    /// No identical call is running: this one runs, and others wait until the guard drops.
    Lead(Leader<'a>),
    /// An identical call is running: wait for it with [`wait`], then look the cache up again.
    Follow(watch::Receiver<()>),
    /// The map is full: run without single-flight.
    Alone,
}

/// Held by the call that runs; dropping it (after the result is stored, or when the call
/// fails or is cancelled) releases every waiter.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: CacheKey,
    done: watch::Sender<()>,
}

impl Flights {
    /// An empty map that holds at most `max_keys` keys.
    pub(crate) fn new(max_keys: usize) -> Self {
        Self {
            running: Mutex::new(HashMap::new()),
            max_keys,
        }
    }

    /// Leads the flight of `key` or joins the one already running.
    pub(crate) fn enter(&self, key: CacheKey) -> Role<'_> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(done) = running.get(&key) {
            return Role::Follow(done.clone());
        }
        if running.len() >= self.max_keys {
            return Role::Alone;
        }
        let (done, waiting) = watch::channel(());
        running.insert(key, waiting);
        Role::Lead(Leader {
            flights: self,
            key,
            done,
        })
    }

    /// Keys with a call in flight now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut running = self
            .flights
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if running
            .get(&self.key)
            .is_some_and(|waiting| waiting.same_channel(&self.done.subscribe()))
        {
            running.remove(&self.key);
        }
        // `done` drops after this: every waiter's `changed()` then returns.
    }
}

/// Waits until the leader behind `done` finishes; `false` when `deadline` came first.
pub(crate) async fn wait(mut done: watch::Receiver<()>, deadline: Instant) -> bool {
    // The sender never sends: `changed` returns (with an error) once it is dropped.
    tokio::time::timeout_at(deadline, done.changed())
        .await
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(n: u8) -> CacheKey {
        mcpk_cache::KeyBuilder::new()
            .field_u64("n", u64::from(n))
            .finish()
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_released_when_the_leader_drops_and_time_out_otherwise() {
        let flights = Flights::new(8);
        let Role::Lead(leader) = flights.enter(key(1)) else {
            panic!("the first call leads");
        };
        let Role::Follow(done) = flights.enter(key(1)) else {
            panic!("an identical call follows");
        };
        let Role::Follow(late) = flights.enter(key(1)) else {
            panic!("an identical call follows");
        };
        assert!(matches!(flights.enter(key(2)), Role::Lead(_)));
        // Not released: the waiter's own deadline ends the wait.
        assert!(!wait(late, Instant::now() + Duration::from_millis(50)).await);
        let waiter = tokio::spawn(wait(done, Instant::now() + Duration::from_secs(3600)));
        drop(leader);
        assert!(waiter.await.unwrap());
        assert_eq!(flights.len(), 0);
        assert!(matches!(flights.enter(key(1)), Role::Lead(_)));
    }

    #[test]
    fn beyond_max_keys_a_call_runs_alone() {
        let flights = Flights::new(1);
        let _first = flights.enter(key(1));
        assert!(matches!(flights.enter(key(2)), Role::Alone));
        assert!(matches!(flights.enter(key(1)), Role::Follow(_)));
    }
}
