//! Latency and memory of `mcp-kernel serve` over one stdio connection, measured through a real
//! MCP client:
//!
//! - `execute("return 1")` round trips against MCP `ping` round trips (the protocol floor);
//! - the same call run every time (`cache: "off"`), in JavaScript and in TypeScript
//!   (`const x: number = 1; return x`, stripped by swc after Boa's parser rejects it);
//! - the first call of a fresh named session while the warm pool has a worker ready;
//! - memory per live session: the growth of PSS and of RSS summed over the server and all its
//!   worker processes (from `/proc`), divided by the number of sessions opened.
//!
//! Run with the dev profile (dependencies are optimised there; a release build of the whole
//! tree is slow), or against a release binary by pointing `MCP_KERNEL_BIN` at it:
//!
//! ```text
//! cargo build --bins && cargo bench -p mcpk-tests --bench kernel --profile dev
//! cargo build --release --bin mcp-kernel && \
//!   MCP_KERNEL_BIN=target/release/mcp-kernel cargo bench -p mcpk-tests --bench kernel --profile dev
//! ```
//!
//! Linux only (reads `/proc`).

#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports its table on stdout"
)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use mcpk_tests::stats::{Stats, ms, ratio};
use mcpk_tests::{ExecuteResult as _, Server};

/// Round trips measured for `execute` and for `ping`.
const ROUND_TRIPS: usize = 500;
/// Fresh sessions whose first call is measured.
const FRESH_SESSIONS: usize = 100;
/// Live sessions opened for the memory measurement.
const LIVE_SESSIONS: usize = 50;
/// The server's default warm pool size.
const WARM_WORKERS: usize = 2;
/// How long to wait for the pool to reach its expected size.
const SETTLE_DEADLINE: Duration = Duration::from_secs(30);

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    println!(
        "mcp-kernel benchmark: {}",
        mcpk_tests::binary_path().display()
    );
    let (execute, ping) = round_trips().await?;
    let (javascript, typescript) = languages().await?;
    let fresh = fresh_sessions().await?;
    let memory = memory_per_session().await?;

    println!();
    println!(
        "{:<34} {:>5} {:>10} {:>10} {:>10}",
        "measurement", "n", "p50", "p99", "mean"
    );
    for (name, samples) in [
        ("execute(\"return 1\")", &execute),
        ("ping", &ping),
        ("run, JavaScript (cache off)", &javascript),
        ("run, TypeScript (cache off)", &typescript),
        ("first call of a fresh session", &fresh),
    ] {
        let stats = Stats::of(samples);
        println!(
            "{:<34} {:>5} {:>10} {:>10} {:>10}",
            name,
            samples.len(),
            ms(stats.p50),
            ms(stats.p99),
            ms(stats.mean)
        );
    }
    let (execute, ping) = (Stats::of(&execute), Stats::of(&ping));
    println!();
    println!(
        "execute / ping: {:.1}x at p50, {:.1}x at p99",
        ratio(execute.p50, ping.p50),
        ratio(execute.p99, ping.p99)
    );
    println!(
        "memory per live session: {:.1} MiB PSS, {:.1} MiB RSS ({} sessions; server + workers \
         {:.1} MiB PSS / {:.1} MiB RSS in {} processes before, {:.1} / {:.1} MiB in {} after)",
        memory.per_session_pss_kib as f64 / 1024.0,
        memory.per_session_kib as f64 / 1024.0,
        LIVE_SESSIONS,
        memory.before.pss_kib as f64 / 1024.0,
        memory.before.rss_kib as f64 / 1024.0,
        memory.before.processes,
        memory.after.pss_kib as f64 / 1024.0,
        memory.after.rss_kib as f64 / 1024.0,
        memory.after.processes,
    );
    println!(
        "(RSS counts the shared pages of the mcp-kernel binary once per worker; PSS splits them \
         between the processes that share them)"
    );
    Ok(())
}

/// N sequential `execute("return 1")` calls, then N pings, on one warmed-up connection.
async fn round_trips() -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let server = Server::start().await;
    for _ in 0..20 {
        check(&server.execute("return 1").await)?;
        server.ping().await;
    }
    let mut execute = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let started = Instant::now();
        let result = server.execute("return 1").await;
        execute.push(started.elapsed());
        check(&result)?;
    }
    let mut ping = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let started = Instant::now();
        server.ping().await;
        ping.push(started.elapsed());
    }
    Ok((execute, ping))
}

/// N runs of one trivial call in JavaScript and of its TypeScript twin, interleaved, cache off.
async fn languages() -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    const JS: &str = "const x = 1; return x";
    const TS: &str = "const x: number = 1; return x";
    let server = Server::start().await;
    let run = |code: &'static str| serde_json::json!({"code": code, "cache": "off"});
    for _ in 0..20 {
        check(&server.execute_with(run(JS)).await)?;
        check(&server.execute_with(run(TS)).await)?;
    }
    let (mut javascript, mut typescript) = (Vec::new(), Vec::new());
    for _ in 0..ROUND_TRIPS {
        for (code, samples) in [(JS, &mut javascript), (TS, &mut typescript)] {
            let started = Instant::now();
            let result = server.execute_with(run(code)).await;
            samples.push(started.elapsed());
            check(&result)?;
        }
    }
    Ok((javascript, typescript))
}

/// The first call of each of N new sessions, one at a time, each after the pool has refilled.
async fn fresh_sessions() -> anyhow::Result<Vec<Duration>> {
    let server = Server::start().await;
    let mut samples = Vec::with_capacity(FRESH_SESSIONS);
    for i in 0..FRESH_SESSIONS {
        // i sessions hold a worker each, plus the warm pool.
        wait_for_workers(server.pid(), i + WARM_WORKERS).await?;
        let started = Instant::now();
        // Cache off: a cached answer needs no worker, so the session would not take one.
        let result = server
            .execute_with(
                serde_json::json!({"code": "return 1", "session": format!("fresh-{i}"), "cache": "off"}),
            )
            .await;
        samples.push(started.elapsed());
        check(&result)?;
    }
    Ok(samples)
}

struct Memory {
    before: TreeRss,
    after: TreeRss,
    per_session_kib: u64,
    per_session_pss_kib: u64,
}

/// RSS of the server and its workers with no session, then with K live sessions.
async fn memory_per_session() -> anyhow::Result<Memory> {
    let server = Server::start().await;
    wait_for_workers(server.pid(), WARM_WORKERS).await?;
    let before = tree_rss(server.pid())?;
    for i in 0..LIVE_SESSIONS {
        let result = server
            .execute_in(
                &format!("live-{i}"),
                &format!("mcp.state.i = {i}; return 1"),
            )
            .await;
        check(&result)?;
    }
    wait_for_workers(server.pid(), LIVE_SESSIONS + WARM_WORKERS).await?;
    let after = tree_rss(server.pid())?;
    let per_session_kib = after.rss_kib.saturating_sub(before.rss_kib) / LIVE_SESSIONS as u64;
    let per_session_pss_kib = after.pss_kib.saturating_sub(before.pss_kib) / LIVE_SESSIONS as u64;
    Ok(Memory {
        before,
        after,
        per_session_kib,
        per_session_pss_kib,
    })
}

fn check(result: &rmcp::model::CallToolResult) -> anyhow::Result<()> {
    ensure!(!result.is_error(), "execute failed: {}", result.text());
    Ok(())
}

/// Waits until the server has exactly `workers` descendant processes.
async fn wait_for_workers(server: u32, workers: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + SETTLE_DEADLINE;
    loop {
        let count = descendants(server)?.len();
        if count == workers {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the server has {count} worker processes, expected {workers}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct TreeRss {
    rss_kib: u64,
    pss_kib: u64,
    processes: usize,
}

/// Summed `VmRSS` and `Pss` of `root` and all its descendants. RSS counts the binary's shared
/// file pages once per process; PSS splits shared pages between the processes that map them,
/// so the PSS sum is the memory the tree really occupies.
fn tree_rss(root: u32) -> anyhow::Result<TreeRss> {
    let mut pids = descendants(root)?;
    pids.push(root);
    let (mut rss_kib, mut pss_kib) = (0, 0);
    for pid in &pids {
        rss_kib += kib_field(&format!("/proc/{pid}/status"), "VmRSS:")?;
        pss_kib += kib_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:")?;
    }
    Ok(TreeRss {
        rss_kib,
        pss_kib,
        processes: pids.len(),
    })
}

/// The value in KiB of the `name` line of a /proc file such as `VmRSS:   18740 kB`.
fn kib_field(path: &str, name: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {path}"))?;
    let line = text
        .lines()
        .find(|line| line.starts_with(name))
        .with_context(|| format!("no {name} in {path}"))?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .with_context(|| format!("bad line {line:?} in {path}"))?;
    Ok(kib.parse()?)
}

/// Every process below `root`, found by walking the parent links in `/proc/*/stat`.
fn descendants(root: u32) -> anyhow::Result<Vec<u32>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit between read_dir and this read.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may contain spaces and parentheses.
        let Some((_, fields)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = fields.split_whitespace();
        let (Some(state), Some(ppid)) = (fields.next(), fields.next()) else {
            continue;
        };
        // Zombies (exited, not yet reaped) hold no memory and are not workers.
        let Ok(ppid) = ppid.parse::<u32>() else {
            continue;
        };
        if state == "Z" {
            continue;
        }
        children.entry(ppid).or_default().push(pid);
    }
    let mut found = Vec::new();
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        for child in children.get(&pid).into_iter().flatten() {
            found.push(*child);
            queue.push(*child);
        }
    }
    Ok(found)
}
