//! Lookup latency of each tier of the `TieredCache`, in process (no MCP, no worker): an L1
//! hit, and an L2 hit over loopback Redis (L1 cleared before each lookup, as on a replica
//! that has not seen the entry). Needs a Redis at `REDIS_URL` (default
//! redis://127.0.0.1:6379) for the L2 row.
//!
//! ```text
//! cargo bench -p mcpk-cache --bench tiers --profile dev
//! ```

#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports its table on stdout"
)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use mcpk_cache::{CacheConfig, KeyBuilder, Tier, TieredCache};

/// Lookups measured per row.
const SAMPLES: usize = 2_000;
/// The cached value: a small analytics answer, as JSON.
const VALUE_BYTES: usize = 4 << 10;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<40} {:>6} {:>9.1} µs {:>9.1} µs",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut config = CacheConfig::default();
    config.key_prefix = format!("bench:{}:{nanos}:", std::process::id());
    let cache = TieredCache::connect(config, &url)
        .await
        .expect("a valid Redis URL");
    let value = Bytes::from(vec![b'x'; VALUE_BYTES]);
    let key = KeyBuilder::new().field("bench", b"tiers").finish();
    cache.insert(&key, value, Duration::from_secs(60)).await;

    println!(
        "{:<40} {:>6} {:>12} {:>12}",
        "lookup (4 KiB value)", "n", "p50", "p99"
    );
    let mut l1 = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let hit = cache.get(&key).await;
        l1.push(started.elapsed());
        assert!(matches!(hit, Some((_, Tier::L1))), "expected an L1 hit");
    }
    report("L1 hit", l1);
    if !cache.redis_healthy() {
        println!("L2 hit: skipped, no Redis answers at {url}");
        return;
    }
    let mut l2 = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        cache.clear_l1();
        let started = Instant::now();
        let hit = cache.get(&key).await;
        l2.push(started.elapsed());
        assert!(matches!(hit, Some((_, Tier::L2))), "expected an L2 hit");
    }
    report("L2 hit (loopback Redis, L1 cleared)", l2);
}
