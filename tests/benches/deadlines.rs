//! Time from a call's deadline to its answer under a host-call flood: code that makes 3000
//! `mcp.tools.list()` host calls at once, forever, with `timeout_ms` = 1000. The supervisor
//! must kill the worker at the deadline and answer at once, however full the pipes are.
//!
//! For each of N calls (sequential, one session, the server's default warm pool), the
//! client's wall time from sending `execute` to receiving its `TimeoutError`, minus 1000 ms;
//! and the server's own `duration_ms` minus 1000 ms. Also run with the test-only fault
//! `--worker-fault stop-reading-stdin` and the fixture upstream answering 64 KiB per call,
//! where the supervisor's writes to the worker block for good.
//!
//! ```text
//! cargo build --workspace --bins && cargo bench -p mcpk-tests --bench deadlines --profile dev
//! ```

#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports its table on stdout"
)]

use std::time::{Duration, Instant};

use anyhow::ensure;
use mcpk_tests::stats::{Stats, ms};
use mcpk_tests::upstream::{TempDir, fixture_entry, write_config};
use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::json;

/// Calls per measurement.
const N: usize = 30;
/// The calls' `timeout_ms`.
const TIMEOUT: Duration = Duration::from_millis(1000);

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn measure(server: &Server, code: &str) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let mut wall = Vec::with_capacity(N);
    let mut reported = Vec::with_capacity(N);
    let timeout_ms = u64::try_from(TIMEOUT.as_millis())?;
    // One untimed call first: the session's first worker lease.
    for i in 0..=N {
        let started = Instant::now();
        let result = server
            .execute_with(json!({"code": code, "timeout_ms": timeout_ms}))
            .await;
        let elapsed = started.elapsed();
        ensure!(
            result.error_name() == "TimeoutError",
            "expected a TimeoutError, got {}",
            result.text()
        );
        let duration_ms = result.structured()["duration_ms"].as_u64().unwrap_or(0);
        if i > 0 {
            wall.push(elapsed.saturating_sub(TIMEOUT));
            reported.push(Duration::from_millis(duration_ms).saturating_sub(TIMEOUT));
        }
    }
    Ok((wall, reported))
}

fn print(label: &str, samples: &[Duration]) {
    let stats = Stats::of(samples);
    println!(
        "{label:<58} {:>4} {:>12} {:>12} {:>12}",
        samples.len(),
        ms(stats.p50),
        ms(stats.p99),
        ms(stats.mean)
    );
}

async fn run() -> anyhow::Result<()> {
    println!(
        "deadline-to-answer benchmark: {}",
        mcpk_tests::binary_path().display()
    );
    let flood = "for (;;) await Promise.all(Array.from({length: 3000}, () => mcp.tools.list()))";
    let server = Server::start().await;
    let (wall, reported) = measure(&server, flood).await?;
    drop(server);

    let dir = TempDir::new("deadline-bench");
    let config = write_config(&dir, json!({"fixture": fixture_entry(&[])}));
    let server = Server::start_with_upstreams(
        &config,
        &["--worker-fault", "stop-reading-stdin"],
        &[],
        &["fixture"],
    )
    .await;
    let stuck =
        "await Promise.all(Array.from({length: 3000}, () => servers.fixture.big({bytes: 65536})))";
    let (stuck_wall, stuck_reported) = measure(&server, stuck).await?;

    println!();
    println!(
        "{:<58} {:>4} {:>12} {:>12} {:>12}",
        "time after the 1000 ms deadline", "n", "p50", "p99", "mean"
    );
    print("flood of 3000 host calls, client wall time", &wall);
    print("flood of 3000 host calls, server duration_ms", &reported);
    print("worker not reading stdin, client wall time", &stuck_wall);
    print(
        "worker not reading stdin, server duration_ms",
        &stuck_reported,
    );
    Ok(())
}
