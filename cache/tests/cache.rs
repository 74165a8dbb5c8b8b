//! mcpk-cache against a real Redis (REDIS_URL, default redis://127.0.0.1:6379; each test uses
//! its own key prefix) and, for the outage test, a `redis-server` it starts itself. Tests that
//! need Redis fail with a message when it is not there.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use mcpk_cache::{
    CacheConfig, CacheKey, Computed, KeyBuilder, L1_ENTRY_OVERHEAD_BYTES, RedisState, Source, Tier,
    TieredCache,
};
use tokio::sync::watch;

/// Failure guard for waits on events (never a synchronisation delay).
const GUARD: Duration = Duration::from_secs(60);

fn key(s: &str) -> CacheKey {
    KeyBuilder::new().field_str("test", s).finish()
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("mcpk-cache-test:{test}:{}:{nanos}:", std::process::id())
}

fn config(test: &str) -> CacheConfig {
    let mut c = CacheConfig::default();
    c.key_prefix = unique_prefix(test);
    c
}

async fn with_redis(config: CacheConfig) -> TieredCache {
    let url = redis_url();
    let cache = TieredCache::connect(config, &url).await.unwrap();
    assert_eq!(
        cache.redis_state(),
        RedisState::Up,
        "these tests need Redis at {url} (set REDIS_URL)"
    );
    cache
}

/// Waits (bounded by [`GUARD`]) until `cond` holds, yielding between checks.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(GUARD, async {
        while !cond() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

async fn wait_health(rx: &mut watch::Receiver<bool>, up: bool) {
    tokio::time::timeout(GUARD, rx.wait_for(|h| *h == up))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for redis health {up}"))
        .unwrap();
}

async fn ok(value: &'static str, ttl: Duration) -> Result<Computed, String> {
    Ok(Computed::cacheable(
        Bytes::from_static(value.as_bytes()),
        ttl,
    ))
}

#[tokio::test]
async fn l1_only_hit_and_miss() {
    let cache = TieredCache::new(CacheConfig::default()).unwrap();
    assert_eq!(cache.redis_state(), RedisState::NotConfigured);
    assert!(!cache.redis_healthy());
    let k = key("a");
    assert_eq!(cache.get(&k).await, None);
    let first = cache
        .get_or_compute(&k, || ok("one", Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(first.source, Source::Computed);
    let again = cache
        .get_or_compute(&k, || ok("two", Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        (again.value.as_ref(), again.source),
        (&b"one"[..], Source::L1)
    );
    assert_eq!(
        cache.get(&k).await,
        Some((Bytes::from_static(b"one"), Tier::L1))
    );
    let s = cache.stats();
    assert_eq!((s.l1.hits, s.l1.misses, s.l1.inserts), (2, 2, 1));
    assert_eq!(s.computations, 1);
}

#[tokio::test(start_paused = true)]
async fn l1_ttl_expires_on_paused_tokio_time() {
    let mut c = CacheConfig::default();
    c.l1_ttl = Duration::from_secs(100);
    let cache = TieredCache::new(c).unwrap();
    let (short, long) = (key("short"), key("long"));
    cache
        .insert(&short, Bytes::from_static(b"s"), Duration::from_secs(10))
        .await;
    // Longer than l1_ttl: L1 keeps it for l1_ttl only.
    cache
        .insert(&long, Bytes::from_static(b"l"), Duration::from_secs(1000))
        .await;
    tokio::time::advance(Duration::from_millis(9_999)).await;
    assert!(
        cache.get(&short).await.is_some(),
        "alive 1 ms before its TTL"
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(cache.get(&short).await, None, "gone at its TTL");
    tokio::time::advance(Duration::from_millis(89_999)).await;
    assert!(cache.get(&long).await.is_some());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(cache.get(&long).await, None, "gone at l1_ttl");
    assert_eq!(cache.stats().l1.expirations, 2);
}

#[tokio::test]
async fn evictions_keep_l1_under_its_byte_bound() {
    let value_bytes = 1000u64;
    let entry = value_bytes + L1_ENTRY_OVERHEAD_BYTES;
    let mut c = CacheConfig::default();
    c.l1_max_bytes = 8 * entry;
    c.max_value_bytes = value_bytes;
    let cache = TieredCache::new(c).unwrap();
    let ttl = Duration::from_secs(60);
    let value = Bytes::from(vec![7u8; value_bytes as usize]);
    for i in 0..8 {
        cache
            .insert(&key(&format!("k{i}")), value.clone(), ttl)
            .await;
    }
    cache.run_pending_tasks().await;
    let s = cache.stats();
    assert_eq!(
        (s.l1.bytes, s.l1.evictions),
        (8 * entry, 0),
        "exactly at the bound"
    );
    assert_eq!(cache.l1_entry_count(), 8);
    cache.insert(&key("k8"), value.clone(), ttl).await;
    cache.run_pending_tasks().await;
    let s = cache.stats();
    assert!(
        s.l1.evictions >= 1,
        "one entry over the bound evicts: {s:?}"
    );
    assert!(s.l1.bytes <= 8 * entry, "{s:?}");
    assert!(cache.l1_entry_count() <= 8);
    // One byte over max_value_bytes is returned but never stored.
    let big = Bytes::from(vec![1u8; value_bytes as usize + 1]);
    let k = key("big");
    let got = cache
        .get_or_compute(&k, || async {
            Ok::<_, String>(Computed::cacheable(big, ttl))
        })
        .await
        .unwrap();
    assert_eq!(got.value.len() as u64, value_bytes + 1);
    assert_eq!(cache.get(&k).await, None);
}

/// Runs `n` concurrent identical misses whose computation waits until the other `n - 1` have
/// joined; returns the cache and how many computations ran.
async fn hundred_concurrent(cache: TieredCache, n: usize) -> usize {
    let k = key("flight");
    let runs = Arc::new(AtomicUsize::new(0));
    let (open_tx, open_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (cache, runs, mut open_rx) = (cache.clone(), Arc::clone(&runs), open_rx.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_compute(&k, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    open_rx.wait_for(|o| *o).await.unwrap();
                    Ok::<_, String>(Computed::cacheable(
                        Bytes::from_static(b"answer"),
                        Duration::from_secs(60),
                    ))
                })
                .await
                .unwrap()
        }));
    }
    let watcher = cache.clone();
    until("all waiters to join", || {
        watcher.stats().joined as usize == n - 1
    })
    .await;
    open_tx.send_replace(true);
    let mut computed = 0;
    for t in tasks {
        let l = t.await.unwrap();
        assert_eq!(l.value.as_ref(), b"answer");
        computed += usize::from(l.source == Source::Computed);
    }
    assert_eq!(computed, 1);
    assert_eq!(
        cache.in_flight_keys(),
        0,
        "the finished flight left the map"
    );
    runs.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_flight_100_concurrent_misses_compute_once_l1_only() {
    let cache = TieredCache::new(CacheConfig::default()).unwrap();
    assert_eq!(hundred_concurrent(cache, 100).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_flight_100_concurrent_misses_compute_once_with_redis() {
    let cache = with_redis(config("flight")).await;
    assert_eq!(hundred_concurrent(cache.clone(), 100).await, 1);
    assert_eq!(cache.stats().l2.inserts, 1);
}

#[tokio::test]
async fn single_flight_shares_uncacheable_answers_and_errors_with_waiters() {
    let cache = TieredCache::new(CacheConfig::default()).unwrap();
    for (name, result) in [
        (
            "uncacheable",
            Ok(Computed::uncacheable(Bytes::from_static(b"now"))),
        ),
        ("error", Err("boom".to_string())),
    ] {
        let k = key(name);
        let (open_tx, open_rx) = watch::channel(false);
        let leader = {
            let (cache, mut open_rx, result) = (cache.clone(), open_rx.clone(), result.clone());
            tokio::spawn(async move {
                cache
                    .get_or_compute(&k, || async move {
                        open_rx.wait_for(|o| *o).await.unwrap();
                        result
                    })
                    .await
            })
        };
        until("the leader's flight", || cache.in_flight_keys() == 1).await;
        let before = cache.stats().joined;
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_compute(&k, || async {
                        Err::<Computed, _>("waiter ran".to_string())
                    })
                    .await
            })
        };
        until("the waiter to join", || cache.stats().joined == before + 1).await;
        drop(open_rx);
        open_tx.send_replace(true);
        let (l, w) = (leader.await.unwrap(), waiter.await.unwrap());
        match &result {
            Ok(_) => {
                assert_eq!(l.unwrap().source, Source::Computed);
                let w = w.unwrap();
                assert_eq!((w.value.as_ref(), w.source), (&b"now"[..], Source::Joined));
            }
            Err(_) => {
                assert_eq!(l.unwrap_err(), "boom");
                assert_eq!(w.unwrap_err(), "boom");
            }
        }
        assert_eq!(cache.get(&k).await, None, "{name} is not stored");
    }
}

#[tokio::test]
async fn in_flight_bound_at_its_limit_computes_without_single_flight() {
    let mut c = CacheConfig::default();
    c.max_in_flight_keys = 1;
    let cache = TieredCache::new(c).unwrap();
    let (open_tx, open_rx) = watch::channel(false);
    let leader = {
        let (cache, mut open_rx) = (cache.clone(), open_rx.clone());
        tokio::spawn(async move {
            cache
                .get_or_compute(&key("a"), || async move {
                    open_rx.wait_for(|o| *o).await.unwrap();
                    Ok::<_, String>(Computed::uncacheable(Bytes::from_static(b"a")))
                })
                .await
        })
    };
    until("the first flight", || cache.in_flight_keys() == 1).await;
    // The map is full: another key computes on its own and does not enter the map.
    let b = cache
        .get_or_compute(&key("b"), || async {
            Ok::<_, String>(Computed::uncacheable(Bytes::from_static(b"b")))
        })
        .await
        .unwrap();
    assert_eq!(b.source, Source::Computed);
    assert_eq!(cache.in_flight_keys(), 1);
    open_tx.send_replace(true);
    assert_eq!(leader.await.unwrap().unwrap().source, Source::Computed);
    assert_eq!(cache.in_flight_keys(), 0);
    assert_eq!(cache.stats().computations, 2);
}

#[tokio::test]
async fn a_cancelled_leader_hands_over_to_a_waiter() {
    let cache = TieredCache::new(CacheConfig::default()).unwrap();
    let k = key("cancel");
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_compute(&k, std::future::pending::<Result<Computed, String>>)
                .await
        })
    };
    until("the leader's flight", || cache.in_flight_keys() == 1).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    let got = cache
        .get_or_compute(&k, || ok("second", Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        (got.value.as_ref(), got.source),
        (&b"second"[..], Source::Computed)
    );
    assert_eq!(cache.in_flight_keys(), 0);
}

#[tokio::test]
async fn redis_hit_and_miss_per_tier_and_l2_hit_after_clear_l1() {
    let cache = with_redis(config("tiers")).await;
    let k = key("x");
    assert_eq!(cache.get(&k).await, None);
    let s = cache.stats();
    assert_eq!((s.l1.misses, s.l2.misses), (1, 1));
    let got = cache
        .get_or_compute(&k, || ok("v", Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(got.source, Source::Computed);
    assert_eq!(cache.get(&k).await.unwrap().1, Tier::L1);
    // What Redis holds, under the documented key, with its TTL.
    let redis_key = cache.redis_key(&k).unwrap();
    assert_eq!(
        redis_key,
        format!(
            "{}mcpk:v1:cache:0:{}",
            cache.config().key_prefix,
            k.to_hex()
        )
    );
    let client = redis::Client::open(redis_url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let (value, pttl): (Vec<u8>, i64) = redis::pipe()
        .get(&redis_key)
        .cmd("PTTL")
        .arg(&redis_key)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(value, b"v");
    assert!(pttl > 0 && pttl <= 60_000, "{pttl}");
    // A second replica: empty L1, same Redis.
    cache.clear_l1();
    let got = cache
        .get_or_compute(&k, || ok("recomputed", Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!((got.value.as_ref(), got.source), (&b"v"[..], Source::L2));
    assert_eq!(
        cache.get(&k).await.unwrap().1,
        Tier::L1,
        "the L2 hit filled L1"
    );
    let s = cache.stats();
    assert_eq!((s.l2.hits, s.l2.inserts, s.l2.errors), (1, 1, 0));
    assert_eq!(s.computations, 1);
}

#[tokio::test]
async fn namespace_bump_invalidates_both_tiers() {
    let cache = with_redis(config("ns")).await;
    let k = key("n");
    cache
        .insert(&k, Bytes::from_static(b"old"), Duration::from_secs(60))
        .await;
    cache.set_namespace_version(1);
    assert_eq!(cache.get(&k).await, None);
    assert!(cache.redis_key(&k).unwrap().contains(":mcpk:v1:cache:1:"));
    cache.set_namespace_version(0);
    cache.clear_l1();
    assert_eq!(
        cache.get(&k).await.unwrap().1,
        Tier::L2,
        "the old namespace is still there"
    );
}

#[tokio::test]
async fn redis_unreachable_runs_on_l1_alone() {
    let port = free_port();
    let mut c = config("down");
    c.redis_timeout = Duration::from_millis(500);
    let cache = TieredCache::connect(c, &format!("redis://127.0.0.1:{port}"))
        .await
        .unwrap();
    assert_eq!(cache.redis_state(), RedisState::Down);
    let k = key("l1");
    let got = cache
        .get_or_compute(&k, || ok("v", Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(got.source, Source::Computed);
    assert_eq!(cache.get(&k).await.unwrap().1, Tier::L1);
    assert!(cache.stats().l2.errors >= 1);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` of this test's own, killed on drop.
struct OwnRedis {
    child: Child,
}

impl OwnRedis {
    async fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for this test");
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        tokio::time::timeout(GUARD, async {
            loop {
                if let Ok(mut con) = client.get_multiplexed_async_connection().await
                    && redis::cmd("PING")
                        .query_async::<String>(&mut con)
                        .await
                        .is_ok()
                {
                    return;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("own redis-server answers PING");
        Self { child }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_that_goes_away_and_returns_keeps_calls_working_and_l2_recovers() {
    let port = free_port();
    let redis = OwnRedis::start(port).await;
    let mut c = config("outage");
    c.redis_timeout = Duration::from_millis(500);
    c.redis_backoff_min = Duration::from_millis(20);
    c.redis_backoff_max = Duration::from_millis(200);
    let cache = TieredCache::connect(c, &format!("redis://127.0.0.1:{port}"))
        .await
        .unwrap();
    assert!(cache.redis_healthy());
    let mut health = cache.redis_health().unwrap();
    let before = key("before");
    cache
        .insert(&before, Bytes::from_static(b"b"), Duration::from_secs(60))
        .await;
    assert_eq!(cache.stats().l2.inserts, 1);

    redis.kill();
    // Calls go on: an L1 hit, then a miss whose L2 lookup fails and marks L2 down.
    assert_eq!(cache.get(&before).await.unwrap().1, Tier::L1);
    let during = key("during");
    let got = cache
        .get_or_compute(&during, || ok("d", Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(got.source, Source::Computed);
    wait_health(&mut health, false).await;
    assert_eq!(cache.redis_state(), RedisState::Down);
    assert_eq!(cache.get(&during).await.unwrap().1, Tier::L1);

    let _redis = OwnRedis::start(port).await;
    wait_health(&mut health, true).await;
    // L2 in use again: a write reaches it and a fresh replica reads it back.
    let after = key("after");
    cache
        .insert(&after, Bytes::from_static(b"a"), Duration::from_secs(60))
        .await;
    cache.clear_l1();
    assert_eq!(
        cache.get(&after).await,
        Some((Bytes::from_static(b"a"), Tier::L2))
    );
    assert!(cache.stats().l2.errors >= 1);
}

#[test]
fn config_errors_name_the_field() {
    let mut c = CacheConfig::default();
    c.max_value_bytes = c.l1_max_bytes + 1;
    let e = TieredCache::new(c).unwrap_err().to_string();
    assert!(e.contains("max_value_bytes"), "{e}");
    let mut c = CacheConfig::default();
    c.max_in_flight_keys = 0;
    let e = TieredCache::new(c).unwrap_err().to_string();
    assert!(e.contains("max_in_flight_keys"), "{e}");
}

#[tokio::test]
async fn l1_bytes_return_to_zero_after_replace_and_clear() {
    let cache = TieredCache::new(CacheConfig::default()).unwrap();
    let ttl = Duration::from_secs(60);
    cache
        .insert(&key("a"), Bytes::from_static(b"12345"), ttl)
        .await;
    cache
        .insert(&key("a"), Bytes::from_static(b"123"), ttl)
        .await;
    cache.insert(&key("b"), Bytes::from_static(b"1"), ttl).await;
    cache.run_pending_tasks().await;
    assert_eq!(cache.stats().l1.bytes, 3 + 1 + 2 * L1_ENTRY_OVERHEAD_BYTES);
    cache.clear_l1();
    cache.run_pending_tasks().await;
    assert_eq!(cache.stats().l1.bytes, 0);
    assert_eq!(cache.l1_entry_count(), 0);
}

#[tokio::test]
async fn ttl_is_shortened_to_max_ttl_in_redis() {
    let mut c = config("max-ttl");
    c.max_ttl = Duration::from_secs(5);
    let cache = with_redis(c).await;
    let k = key("t");
    cache
        .insert(&k, Bytes::from_static(b"v"), Duration::from_secs(3600))
        .await;
    let client = redis::Client::open(redis_url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(cache.redis_key(&k).unwrap())
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 5_000, "{pttl}");
}
