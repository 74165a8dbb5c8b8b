//! Sessions and skills, measured through a real MCP client against `mcp-kernel serve`:
//!
//! - the first call of a hibernated session holding 1 MB of `mcp.state` (store load, worker
//!   lease, `Restore`), against the same call on the live session, with the memory store and
//!   with Redis;
//! - the footprint of a hibernated session in Redis (`MEMORY USAGE` of its keys) beyond its
//!   state;
//! - the supervisor's RSS with 1,000 sessions opened and then hibernated (memory store);
//! - `await skills.f(x)` against the same code inline;
//! - a deterministic `execute` answered from the L1 result cache, against the same call run
//!   and against MCP `ping` on the same connection.
//!
//! ```text
//! cargo build --bins && cargo bench -p mcpk-tests --bench sessions --profile dev
//! ```
//! Needs a Redis at `REDIS_URL` (default redis://127.0.0.1:6379) for the Redis rows.
//! Linux only (reads `/proc`).

#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports its table on stdout"
)]

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use mcpk_tests::stats::{Stats, ms};
use mcpk_tests::{ExecuteResult as _, Server, redis_url, rss_kib, unique_prefix};
use serde_json::json;

/// Calls measured per row.
const SAMPLES: usize = 100;
/// Sessions opened for the RSS measurement.
const MANY_SESSIONS: usize = 1_000;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

/// Runs `code` in `session` with the result cache off: these rows measure runs, not hits.
async fn run_in(server: &Server, session: &str, code: &str) -> rmcp::model::CallToolResult {
    server
        .execute_with(json!({"code": code, "session": session, "cache": "off"}))
        .await
}

fn check(result: &rmcp::model::CallToolResult) -> anyhow::Result<()> {
    ensure!(!result.is_error(), "call failed: {}", result.text());
    Ok(())
}

/// `mcp.state.rows`: `rows` records, about 1 MB of JSON for the default 11,000.
fn big_state(rows: usize) -> String {
    format!(
        "mcp.state.rows = Array.from({{length: {rows}}}, (_, i) => \
         ({{id: i, name: 'row-' + i, tags: ['a', 'b'], score: i * 1.5, note: 'x'.repeat(20)}})); \
         return JSON.stringify(mcp.state.rows).length"
    )
}

/// Rows in the hibernated session's state: `MCPK_BENCH_ROWS`, default 11,000 (about 1 MB).
fn rows() -> usize {
    std::env::var("MCPK_BENCH_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(11_000)
}

async fn run() -> anyhow::Result<()> {
    println!(
        "mcp-kernel sessions benchmark: {}",
        mcpk_tests::binary_path().display()
    );
    let mut rows = Vec::new();
    let memory = restore_rows(&[]).await?;
    rows.push((
        "hibernated 1 MB session, first call (memory store)",
        memory.0,
    ));
    rows.push(("same session, live (memory store)", memory.1));
    let prefix = unique_prefix();
    let url = redis_url();
    let redis_flags = [
        "--redis-url",
        url.as_str(),
        "--redis-key-prefix",
        prefix.as_str(),
    ];
    let redis = restore_rows(&redis_flags).await?;
    rows.push(("hibernated 1 MB session, first call (Redis)", redis.0));
    rows.push(("same session, live (Redis)", redis.1));
    let (skill, inline) = skill_rows().await?;
    rows.push(("await skills.sumTo(1000)", skill));
    rows.push(("the same loop inline", inline));
    let (cached, uncached, ping) = cache_rows().await?;
    rows.push(("execute, answered from the L1 cache", cached));
    rows.push(("the same execute with cache: off", uncached));
    rows.push(("MCP ping on the same connection", ping));

    println!();
    println!(
        "{:<52} {:>5} {:>10} {:>10}",
        "measurement", "n", "p50", "p99"
    );
    for (name, samples) in &rows {
        let stats = Stats::of(samples);
        println!(
            "{name:<52} {:>5} {:>10} {:>10}",
            samples.len(),
            ms(stats.p50),
            ms(stats.p99)
        );
    }
    println!();
    footprint(&prefix).await?;
    many_sessions().await?;
    Ok(())
}

/// Alternates two sessions on a server with one live session, so every call on `big` finds
/// it hibernated; then calls `big` repeatedly while it stays live.
async fn restore_rows(flags: &[&str]) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let mut all = vec!["--max-live-sessions", "1", "--warm-workers", "8"];
    all.extend_from_slice(flags);
    let server = Server::start_with(&all).await;
    let size = run_in(&server, "big", &big_state(rows())).await;
    check(&size)?;
    println!("state of `big`: {} bytes of JSON rows", size.value());
    let mut hibernated = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        check(&run_in(&server, "other", "1").await)?;
        let started = Instant::now();
        let result = run_in(&server, "big", "return 1").await;
        hibernated.push(started.elapsed());
        check(&result)?;
    }
    let mut live = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let result = run_in(&server, "big", "return 1").await;
        live.push(started.elapsed());
        check(&result)?;
    }
    if std::env::var_os("MCPK_BENCH_SHOW_LOG").is_some() {
        for line in server
            .stderr()
            .lines()
            .filter(|l| l.contains("leased and restored"))
            .take(20)
        {
            println!("{line}");
        }
    }
    Ok((hibernated, live))
}

async fn skill_rows() -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let server = Server::start().await;
    check(
        &server
            .execute("await mcp.skills.save('sumTo', (n) => { let s = 0; for (let i = 0; i < n; i++) s += i; return s; })")
            .await,
    )?;
    let mut skill = Vec::with_capacity(SAMPLES);
    let mut inline = Vec::with_capacity(SAMPLES);
    for _ in 0..10 {
        check(&run_in(&server, "default", "return skills.sumTo(1000)").await)?;
    }
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let result = run_in(&server, "default", "return skills.sumTo(1000)").await;
        skill.push(started.elapsed());
        ensure!(result.value() == &json!(499_500), "{}", result.text());
        let started = Instant::now();
        let result = server
            .execute_with(json!({"code": "let s = 0; for (let i = 0; i < 1000; i++) s += i; return s", "cache": "off"}))
            .await;
        inline.push(started.elapsed());
        ensure!(result.value() == &json!(499_500), "{}", result.text());
    }
    Ok((skill, inline))
}

/// A deterministic `execute` answered from L1, the same call run (`cache: off`), and `ping`.
async fn cache_rows() -> anyhow::Result<(Vec<Duration>, Vec<Duration>, Vec<Duration>)> {
    let server = Server::start().await;
    let code = "return [3, 1, 2].sort().map(n => n * 2)";
    check(&server.execute(code).await)?;
    let (mut cached, mut uncached, mut ping) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..SAMPLES * 5 {
        let started = Instant::now();
        let result = server.execute(code).await;
        cached.push(started.elapsed());
        ensure!(
            result
                .structured_content
                .as_ref()
                .map(|s| s["cached"].clone())
                == Some(json!("l1")),
            "not a cache hit: {}",
            result.text()
        );
        let started = Instant::now();
        let result = server
            .execute_with(json!({"code": code, "cache": "off"}))
            .await;
        uncached.push(started.elapsed());
        check(&result)?;
        let started = Instant::now();
        server.ping().await;
        ping.push(started.elapsed());
    }
    Ok((cached, uncached, ping))
}

/// Bytes Redis uses for one hibernated session with a small state, beyond the state itself.
async fn footprint(prefix: &str) -> anyhow::Result<()> {
    let url = redis_url();
    let server = Server::start_redis(prefix, &["--max-live-sessions", "1"]).await;
    check(&run_in(&server, "tiny", "mcp.state.n = 1; 1").await)?;
    check(&run_in(&server, "other", "1").await)?;
    drop(server);
    let store = mcpk_session::Store::redis(
        &url,
        mcpk_session::StoreConfig {
            key_prefix: prefix.to_owned(),
            ..mcpk_session::StoreConfig::default()
        },
    )
    .await
    .context("connecting to Redis")?;
    let key = mcpk_session::SessionKey::named("local", "tiny")?;
    let bytes = store
        .footprint(&key)
        .await?
        .context("no snapshot for `tiny`")?;
    println!(
        "hibernated session in Redis (state {{\"n\":1}}, 7 bytes): {bytes} bytes (MEMORY USAGE of its keys)"
    );
    Ok(())
}

/// Supervisor RSS before and after opening 1,000 sessions that then hibernate (memory store,
/// 8 live at most).
async fn many_sessions() -> anyhow::Result<()> {
    let server = Server::start_with(&["--max-live-sessions", "8"]).await;
    check(&server.execute("1").await)?;
    let before = rss_kib(server.pid())?;
    let started = Instant::now();
    for i in 0..MANY_SESSIONS {
        check(
            &run_in(
                &server,
                &format!("s{i}"),
                "mcp.state.n = 1; mcp.state.note = 'hello'; 1",
            )
            .await,
        )?;
    }
    let elapsed = started.elapsed();
    let after = rss_kib(server.pid())?;
    println!(
        "{MANY_SESSIONS} sessions opened and hibernated ({} live workers): supervisor RSS {:.1} MiB → {:.1} MiB ({:.2} KiB per hibernated session); {:.1} ms per open+hibernate",
        server.workers().len(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / MANY_SESSIONS as f64,
        elapsed.as_secs_f64() * 1000.0 / MANY_SESSIONS as f64,
    );
    Ok(())
}
