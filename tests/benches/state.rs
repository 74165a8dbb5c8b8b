//! What `mcp.state` costs a call, through a real MCP client against `mcp-kernel serve`:
//!
//! - with an empty, a 1 MiB and an 8 MiB state (rows in `mcp.state.rows`, plus a small key
//!   `mcp.state.counter`), end-to-end latency of a trivial call (`return 1`), a read of the
//!   small key, a read of the large one (`return mcp.state.rows.length`, which loads and then
//!   re-serialises that key) and a one-key write (`mcp.state.counter = i`), p50/p99;
//! - the worker's RSS over 100 calls on a session with 1.8 MB of state (50,000 rows).
//!
//! Part of the `data` benchmark (`benches/data.rs`); `--state-only` runs just this part.
//! Linux only (reads `/proc`).

use std::time::Instant;

use anyhow::{Context as _, ensure};
use mcpk_tests::stats::{Stats, ms};
use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::json;

/// Timed calls per measurement.
const SAMPLES: usize = 50;
/// Calls in the memory measurement.
const MEMORY_CALLS: usize = 100;
/// Rows for the memory measurement (about 1.8 MB of JSON).
const MEMORY_ROWS: usize = 50_000;

/// Prints the state-size table and the RSS over repeated calls.
pub(crate) async fn run() -> anyhow::Result<()> {
    println!(
        "mcp-kernel state benchmark: {}",
        mcpk_tests::binary_path().display()
    );
    println!();
    println!(
        "{:<10} {:>10} {:<34} {:>4} {:>10} {:>10}",
        "state", "JSON bytes", "call", "n", "p50", "p99"
    );
    for (label, bytes) in [
        ("empty", 0),
        ("1 MiB", 1 << 20),
        // Just under the default max_state_bytes (8 MiB) with the counter key.
        ("8 MiB", (8 << 20) - 4096),
    ] {
        sizes(label, bytes).await?;
    }
    memory().await
}

/// Code that sets `mcp.state.rows` to rows whose JSON is close to `bytes` (none for 0) and
/// `mcp.state.counter` to 0, and returns the state's JSON length.
fn setup_code(bytes: usize) -> String {
    format!(
        "const target = {bytes}; const rows = []; let size = 2;
         while (target > 0) {{
           const row = {{id: rows.length, name: 'row ' + rows.length, ok: rows.length % 2 === 0}};
           const add = JSON.stringify(row).length + 1;
           if (size + add + 64 > target) break;
           rows.push(row); size += add;
         }}
         if (target > 0) mcp.state.rows = rows;
         mcp.state.counter = 0;
         return JSON.stringify(mcp.state).length"
    )
}

async fn sizes(label: &str, bytes: usize) -> anyhow::Result<()> {
    let server = Server::start_with(&["--memory-mib", "1024"]).await;
    let result = server
        .execute_with(json!({"code": setup_code(bytes), "timeout_ms": 60_000}))
        .await;
    ensure!(!result.is_error(), "setup failed: {}", result.text());
    let actual = result.value().as_u64().context("the state's length")?;
    let mut calls = vec![
        ("return 1", "return 1".to_owned()),
        (
            "return mcp.state.counter",
            "return mcp.state.counter".to_owned(),
        ),
        ("mcp.state.counter = i", String::new()),
    ];
    if bytes > 0 {
        calls.insert(
            2,
            (
                "return mcp.state.rows.length",
                "return mcp.state.rows.length".to_owned(),
            ),
        );
    }
    for (name, code) in calls {
        // Reading the large key costs O(that key): fewer samples (p99 is then their maximum).
        let n = if name.contains("rows") {
            SAMPLES / 5
        } else {
            SAMPLES
        };
        let mut samples = Vec::with_capacity(n);
        for i in 0..n + 3 {
            let code = if code.is_empty() {
                format!("mcp.state.counter = {i}")
            } else {
                code.clone()
            };
            let started = Instant::now();
            let result = server
                .execute_with(json!({"code": code, "timeout_ms": 60_000}))
                .await;
            let elapsed = started.elapsed();
            ensure!(!result.is_error(), "{name} failed: {}", result.text());
            // The first calls warm the worker up.
            if i >= 3 {
                samples.push(elapsed);
            }
        }
        let stats = Stats::of(&samples);
        println!(
            "{:<10} {:>10} {:<34} {:>4} {:>10} {:>10}",
            label,
            actual,
            name,
            samples.len(),
            ms(stats.p50),
            ms(stats.p99)
        );
    }
    Ok(())
}

async fn memory() -> anyhow::Result<()> {
    let server = Server::start_with(&["--warm-workers", "0"]).await;
    let code = format!(
        "mcp.state.rows = Array.from({{length: {MEMORY_ROWS}}}, (_, i) => ({{id: i, name: 'row ' + i, ok: i % 2 === 0}}));
         mcp.state.counter = 0; return JSON.stringify(mcp.state).length"
    );
    let result = server
        .execute_with(json!({"code": code, "timeout_ms": 60_000}))
        .await;
    ensure!(!result.is_error(), "setup failed: {}", result.text());
    let bytes = result.value().as_u64().context("the state's length")?;
    let worker = *server.workers().first().context("no worker")?;
    // The large key first, so that "after the first call" includes the memory of loading it.
    let calls = [
        "return mcp.state.rows.length",
        "return 1",
        "return mcp.state.counter",
        "mcp.state.counter++",
    ];
    let after_setup = rss_kib(worker)?;
    let mut first = 0;
    let mut trace = Vec::new();
    let started = Instant::now();
    for i in 0..MEMORY_CALLS {
        let result = server.execute(calls[i % calls.len()]).await;
        ensure!(!result.is_error(), "call {i} failed: {}", result.text());
        if i == 0 {
            first = rss_kib(worker)?;
        }
        if (i + 1) % 20 == 0 {
            trace.push(format!("{}: {} MiB", i + 1, rss_kib(worker)? / 1024));
        }
    }
    let elapsed = started.elapsed();
    ensure!(server.workers() == [worker], "the worker was replaced");
    let last = rss_kib(worker)?;
    println!();
    println!(
        "worker RSS over {MEMORY_CALLS} calls with {bytes} bytes of state ({}): {:.1} MiB after \
         set-up, {:.1} MiB after the first call, {:.1} MiB after the last ({:+.1}%); after \
         calls {}; {} per call on average",
        calls.join(" | "),
        after_setup as f64 / 1024.0,
        first as f64 / 1024.0,
        last as f64 / 1024.0,
        (last as f64 / first as f64 - 1.0) * 100.0,
        trace.join(", "),
        ms(elapsed / u32::try_from(MEMORY_CALLS).unwrap_or(1)),
    );
    Ok(())
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    mcpk_tests::rss_kib(pid)
}
