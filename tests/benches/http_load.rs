//! Throughput and latency of `mcp-kernel serve --http` under concurrent load, measured through
//! real MCP clients (rmcp's streamable HTTP client, one MCP session each, so one default kernel
//! session and one worker process each):
//!
//! - **one server, cache off**: `MCPK_LOAD_CLIENTS` clients (default 64) each call
//!   `execute({code: "return 1", cache: "off"})` back to back for `MCPK_LOAD_SECS` seconds
//!   (default 10), so every call runs in the client's worker;
//! - **one server, cache on**: the same clients and loop without `cache`, so after the warm-up
//!   call every answer comes from the result cache (the `hits` column counts them);
//! - **two replicas, cache off**: two servers sharing one Redis (`--redis-url`, the same
//!   `--redis-key-prefix`), half of the clients on each, the same loop; the row combines both.
//!
//! Before each timed loop every client makes one untimed call (starting its session's worker).
//! Each server gets `--max-live-sessions` above its client count, so no session hibernates.
//!
//! The columns: `calls` completed in the loop (a call started before the deadline counts when it
//! answers), `calls/s` = calls / wall time of the loop, `p50`/`p99` of the successful calls'
//! round trips (nearest rank), `errors` = JSON-RPC errors + transport errors (a 503 from
//! `--max-concurrent-requests` is one) + `isError: true` results + results other than `1` + no
//! answer within 60 s (the first few are printed below the table; the target is 0), `hits`
//! = answers from the result cache, the CPU seconds used during the loop by the server
//! processes, by their workers and by this process (the clients), and the RSS at the end of
//! the loop of each server process and, summed, of its `mcp-kernel worker` children (with
//! their number). `WARN`/`ERROR` lines the servers logged are counted and the first few
//! printed. Last, the single server's clients close their MCP sessions (`DELETE`) and the line
//! below the table says how many workers the server still has after up to 15 s (its sessions'
//! workers should be released, leaving the warm pool).
//!
//! The clients run in this process on the same machine, so they compete with the server and
//! its workers for the CPU (the CPU column shows the split): on a small machine the numbers
//! are a floor, not the server's limit.
//!
//! ```text
//! cargo build --bins && cargo bench -p mcpk-tests --bench http_load --profile dev
//! cargo build --release --bin mcp-kernel && \
//!   MCP_KERNEL_BIN=target/release/mcp-kernel cargo bench -p mcpk-tests --bench http_load --profile dev
//! ```
//!
//! `MCPK_LOAD_SECS` and `MCPK_LOAD_CLIENTS` change the duration and the number of clients;
//! `MCPK_LOAD_FLAGS` (whitespace-separated) adds `serve` flags to every server, e.g.
//! `MCPK_LOAD_FLAGS="--max-concurrent-requests 16"`. Needs a Redis at `REDIS_URL` (default
//! redis://127.0.0.1:6379) for the replica row. Linux only (reads `/proc`).

#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports its table on stdout"
)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use futures::future::join_all;
use mcpk_tests::http::{HttpClient, HttpServer};
use mcpk_tests::stats::Stats;
use mcpk_tests::{REQUEST_DEADLINE, cpu_ticks, redis_url, rss_kib, unique_prefix, worker_children};
use rmcp::RoleClient;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{Peer, ServiceError};
use serde_json::{Value, json};

/// Seconds each timed loop runs unless `MCPK_LOAD_SECS` says otherwise.
const DEFAULT_SECS: u64 = 10;
/// Concurrent clients unless `MCPK_LOAD_CLIENTS` says otherwise.
const DEFAULT_CLIENTS: usize = 64;
/// Live sessions each server allows beyond its clients' (so none hibernates).
const SPARE_LIVE_SESSIONS: usize = 16;
/// Workers each server keeps started ahead of demand (the warm-up starts one per client).
const WARM_WORKERS: usize = 8;
/// How long the servers get to release the workers of closed MCP sessions.
const CLOSE_DEADLINE: Duration = Duration::from_secs(15);
/// Clock ticks per second in `/proc/<pid>/stat` (`CLK_TCK`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;
/// Error messages kept per row.
const SHOWN_ERRORS: usize = 5;
/// Server log lines (`WARN`/`ERROR`) shown per server.
const SHOWN_LOG_LINES: usize = 5;
/// The code every call runs.
const CODE: &str = "return 1";

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

/// The knobs read from the environment.
#[derive(Debug, Clone)]
struct Settings {
    duration: Duration,
    clients: usize,
    extra_flags: Vec<String>,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let number = |name: &str, default: u64| -> anyhow::Result<u64> {
            match std::env::var(name) {
                Ok(value) => value
                    .trim()
                    .parse()
                    .with_context(|| format!("{name}={value:?} is not a whole number")),
                Err(_) => Ok(default),
            }
        };
        let secs = number("MCPK_LOAD_SECS", DEFAULT_SECS)?;
        let clients = usize::try_from(number("MCPK_LOAD_CLIENTS", DEFAULT_CLIENTS as u64)?)?;
        ensure!(secs > 0, "MCPK_LOAD_SECS must be at least 1");
        ensure!(
            clients >= 2,
            "MCPK_LOAD_CLIENTS must be at least 2 (one per replica)"
        );
        let extra_flags = std::env::var("MCPK_LOAD_FLAGS")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        Ok(Self {
            duration: Duration::from_secs(secs),
            clients,
            extra_flags,
        })
    }

    /// Starts a server for `clients` clients with `flags` (e.g. the Redis ones).
    async fn server(&self, clients: usize, flags: &[&str]) -> HttpServer {
        let live = (clients + SPARE_LIVE_SESSIONS).to_string();
        let warm = WARM_WORKERS.to_string();
        let mut all = vec![
            "--max-live-sessions",
            live.as_str(),
            "--warm-workers",
            warm.as_str(),
        ];
        all.extend_from_slice(flags);
        all.extend(self.extra_flags.iter().map(String::as_str));
        HttpServer::start(&all).await
    }
}

/// What a set of calls produced.
#[derive(Debug, Default)]
struct Outcome {
    /// Round trips of the calls that answered `1`.
    latencies: Vec<Duration>,
    /// Calls that failed in any way.
    errors: usize,
    /// The first [`SHOWN_ERRORS`] failures, described.
    messages: Vec<String>,
    /// Answers from the result cache.
    hits: usize,
}

impl Outcome {
    fn fail(&mut self, message: String) {
        self.errors += 1;
        if self.messages.len() < SHOWN_ERRORS {
            self.messages.push(message);
        }
    }

    fn merge(&mut self, other: Self) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.hits += other.hits;
        for message in other.messages {
            if self.messages.len() < SHOWN_ERRORS {
                self.messages.push(message);
            }
        }
    }

    /// Records one call that took `elapsed` and ended with `answer`.
    fn record(
        &mut self,
        elapsed: Duration,
        answer: Result<Result<CallToolResult, ServiceError>, tokio::time::error::Elapsed>,
    ) {
        let result = match answer {
            Err(_) => return self.fail(format!("no answer within {REQUEST_DEADLINE:?}")),
            Ok(Err(ServiceError::McpError(error))) => {
                return self.fail(format!(
                    "JSON-RPC error {}: {}",
                    error.code.0, error.message
                ));
            }
            Ok(Err(error)) => return self.fail(format!("transport: {error}")),
            Ok(Ok(result)) => result,
        };
        let structured = result.structured_content.as_ref();
        if result.is_error == Some(true) {
            return self.fail(format!("isError: {}", text(&result)));
        }
        if structured.map(|s| &s["result"]) != Some(&json!(1)) {
            return self.fail(format!("unexpected result: {}", text(&result)));
        }
        if structured.is_some_and(|s| s["cached"].is_string()) {
            self.hits += 1;
        }
        self.latencies.push(elapsed);
    }
}

/// The text blocks of `result`, joined.
fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One `execute` call with `arguments`, timed and recorded in `outcome`.
async fn call(peer: &Peer<RoleClient>, arguments: &Value, outcome: &mut Outcome) {
    let mut params = CallToolRequestParams::new("execute");
    if let Value::Object(arguments) = arguments.clone() {
        params = params.with_arguments(arguments);
    }
    let started = Instant::now();
    let answer = tokio::time::timeout(REQUEST_DEADLINE, peer.call_tool(params)).await;
    outcome.record(started.elapsed(), answer);
}

/// CPU ticks (normally 10 ms each) used so far by `server` and, by pid, its workers.
fn ticks(server: &HttpServer) -> (u64, HashMap<u32, u64>) {
    let workers = worker_children(server.pid())
        .into_iter()
        .filter_map(|pid| Some((pid, cpu_ticks(pid)?)))
        .collect();
    (cpu_ticks(server.pid()).unwrap_or(0), workers)
}

/// CPU seconds used between two [`ticks`] readings: the server's, then its workers'.
fn cpu_seconds(before: &(u64, HashMap<u32, u64>), after: &(u64, HashMap<u32, u64>)) -> (f64, f64) {
    let workers: u64 = after
        .1
        .iter()
        .map(|(pid, now)| now.saturating_sub(before.1.get(pid).copied().unwrap_or(0)))
        .sum();
    (
        after.0.saturating_sub(before.0) as f64 / TICKS_PER_SECOND,
        workers as f64 / TICKS_PER_SECOND,
    )
}

/// One untimed call per client, all at once; then every client calls back to back until
/// `duration` has passed. The row's wall time runs until the last call in flight at the
/// deadline answered; its CPU and memory are those of `servers` (the clients' servers).
async fn load(
    name: &'static str,
    servers: &[&HttpServer],
    clients: &[HttpClient],
    arguments: &Value,
    duration: Duration,
) -> anyhow::Result<Row> {
    let peers: Vec<Peer<RoleClient>> = clients.iter().map(|c| c.service.peer().clone()).collect();
    let mut warm_up = Outcome::default();
    for outcome in join_all(peers.iter().map(|peer| async move {
        let mut outcome = Outcome::default();
        call(peer, arguments, &mut outcome).await;
        outcome
    }))
    .await
    {
        warm_up.merge(outcome);
    }
    let own_before = cpu_ticks(std::process::id()).unwrap_or(0);
    let before: Vec<_> = servers.iter().map(|s| ticks(s)).collect();
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = peers
        .into_iter()
        .map(|peer| {
            let arguments = arguments.clone();
            tokio::spawn(async move {
                let mut outcome = Outcome::default();
                while Instant::now() < deadline {
                    call(&peer, &arguments, &mut outcome).await;
                }
                outcome
            })
        })
        .collect();
    let mut timed = Outcome::default();
    for task in join_all(tasks).await {
        match task {
            Ok(outcome) => timed.merge(outcome),
            Err(error) => timed.fail(format!("client task: {error}")),
        }
    }
    let elapsed = started.elapsed();
    let own = cpu_ticks(std::process::id())
        .unwrap_or(0)
        .saturating_sub(own_before);
    let (mut server_cpu, mut worker_cpu) = (0.0, 0.0);
    for (server, before) in servers.iter().zip(&before) {
        let (s, w) = cpu_seconds(before, &ticks(server));
        server_cpu += s;
        worker_cpu += w;
    }
    Ok(Row {
        name,
        servers: servers.len(),
        clients: clients.len(),
        warm_up,
        timed,
        elapsed,
        cpu: [server_cpu, worker_cpu, own as f64 / TICKS_PER_SECOND],
        footprints: servers
            .iter()
            .map(|s| Footprint::of(s))
            .collect::<anyhow::Result<_>>()?,
    })
}

/// Memory of one server at the end of a loop.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    server_kib: u64,
    workers: usize,
    workers_kib: u64,
}

impl Footprint {
    fn of(server: &HttpServer) -> anyhow::Result<Self> {
        let workers = worker_children(server.pid());
        Ok(Self {
            server_kib: rss_kib(server.pid())?,
            workers: workers.len(),
            // A worker may exit between listing and reading; it then counts as 0.
            workers_kib: workers.iter().filter_map(|&pid| rss_kib(pid).ok()).sum(),
        })
    }
}

/// One line of the table.
#[derive(Debug)]
struct Row {
    name: &'static str,
    servers: usize,
    clients: usize,
    warm_up: Outcome,
    timed: Outcome,
    elapsed: Duration,
    /// CPU seconds during the timed loop: the servers, their workers, this process.
    cpu: [f64; 3],
    footprints: Vec<Footprint>,
}

/// Closes every client's MCP session (`DELETE`), then waits up to [`CLOSE_DEADLINE`] for
/// `server` to release the sessions' workers (down to its warm pool). Returns the number of
/// workers before, the number at the end, and how long that took.
async fn disconnect(server: &HttpServer, clients: Vec<HttpClient>) -> (usize, usize, Duration) {
    let before = worker_children(server.pid()).len();
    let started = Instant::now();
    join_all(clients.into_iter().map(|c| c.service.cancel())).await;
    loop {
        let now = worker_children(server.pid()).len();
        if now <= WARM_WORKERS || started.elapsed() >= CLOSE_DEADLINE {
            return (before, now, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Connects `n` clients to `server`, all at once.
async fn connect(server: &HttpServer, n: usize) -> Vec<HttpClient> {
    join_all((0..n).map(|_| server.client(None))).await
}

/// The loop's `execute` arguments: `cache: "off"` unless `cached`.
fn arguments(cached: bool) -> Value {
    if cached {
        json!({"code": CODE})
    } else {
        json!({"code": CODE, "cache": "off"})
    }
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let binary = mcpk_tests::binary_path();
    println!("mcp-kernel HTTP load benchmark: {}", binary.display());
    println!(
        "{} clients, {} s per row, extra flags: {:?}",
        settings.clients,
        settings.duration.as_secs(),
        settings.extra_flags
    );

    let mut rows = Vec::new();
    let mut logs = Vec::new();

    let server = settings.server(settings.clients, &[]).await;
    let clients = connect(&server, settings.clients).await;
    for (name, cached) in [
        ("one server, cache off", false),
        ("one server, cache on", true),
    ] {
        let row = load(
            name,
            &[&server],
            &clients,
            &arguments(cached),
            settings.duration,
        )
        .await?;
        rows.push(row);
    }
    let closed = disconnect(&server, clients).await;
    logs.push(("one server", server.stderr()));
    drop(server);

    let url = redis_url();
    let prefix = unique_prefix();
    let redis = [
        "--redis-url",
        url.as_str(),
        "--redis-key-prefix",
        prefix.as_str(),
    ];
    let first_half = settings.clients / 2;
    let second_half = settings.clients - first_half;
    let replicas = [
        settings.server(first_half, &redis).await,
        settings.server(second_half, &redis).await,
    ];
    let mut clients = connect(&replicas[0], first_half).await;
    clients.extend(connect(&replicas[1], second_half).await);
    let row = load(
        "two replicas (Redis), cache off",
        &[&replicas[0], &replicas[1]],
        &clients,
        &arguments(false),
        settings.duration,
    )
    .await?;
    rows.push(row);
    drop(clients);
    logs.push(("replica A", replicas[0].stderr()));
    logs.push(("replica B", replicas[1].stderr()));
    drop(replicas);

    print_report(&settings, &binary, &rows, &logs);
    let (before, after, waited) = closed;
    println!(
        "one server: after its {} clients closed their MCP sessions, its workers went from {before} to {after} in {:.1} s",
        settings.clients,
        waited.as_secs_f64()
    );
    Ok(())
}

/// `kib` in MiB with one decimal.
fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// The command that reproduces this run, from the environment and this executable's profile.
fn command(settings: &Settings) -> String {
    let mut parts = Vec::new();
    for name in ["MCP_KERNEL_BIN", "MCPK_LOAD_SECS", "MCPK_LOAD_CLIENTS"] {
        if let Ok(value) = std::env::var(name) {
            parts.push(format!("{name}={value}"));
        }
    }
    if !settings.extra_flags.is_empty() {
        parts.push(format!(
            "MCPK_LOAD_FLAGS=\"{}\"",
            settings.extra_flags.join(" ")
        ));
    }
    // This executable is target/<profile dir>/deps/http_load-<hash>.
    let profile_dir = std::env::current_exe().ok().and_then(|exe| {
        Some(
            exe.parent()?
                .parent()?
                .file_name()?
                .to_string_lossy()
                .into_owned(),
        )
    });
    let profile = match profile_dir.as_deref() {
        Some("debug") => " --profile dev".to_owned(),
        Some("release") | None => String::new(),
        Some(other) => format!(" --profile {other}"),
    };
    parts.push(format!(
        "cargo bench -p mcpk-tests --bench http_load{profile}"
    ));
    parts.join(" ")
}

/// The machine: logical CPUs and the CPU model.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("nproc = {cpus} ({model}); clients, servers and workers share it")
}

fn print_report(
    settings: &Settings,
    binary: &std::path::Path,
    rows: &[Row],
    logs: &[(&str, String)],
) {
    println!();
    println!("`{}`", command(settings));
    println!();
    println!("binary: {}; {}", binary.display(), machine());
    println!();
    println!(
        "| row | servers | clients | calls | calls/s | p50 ms | p99 ms | errors | hits | CPU s server / workers / clients | server RSS MiB | workers (RSS MiB) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let calls = row.timed.latencies.len() + row.timed.errors;
        let (p50, p99) = if row.timed.latencies.is_empty() {
            ("-".to_owned(), "-".to_owned())
        } else {
            let stats = Stats::of(&row.timed.latencies);
            (
                format!("{:.2}", stats.p50.as_secs_f64() * 1000.0),
                format!("{:.2}", stats.p99.as_secs_f64() * 1000.0),
            )
        };
        let server_rss: Vec<String> = row.footprints.iter().map(|f| mib(f.server_kib)).collect();
        let workers: Vec<String> = row
            .footprints
            .iter()
            .map(|f| format!("{} ({})", f.workers, mib(f.workers_kib)))
            .collect();
        println!(
            "| {} | {} | {} | {} | {:.0} | {p50} | {p99} | {} | {} | {:.1} / {:.1} / {:.1} | {} | {} |",
            row.name,
            row.servers,
            row.clients,
            calls,
            calls as f64 / row.elapsed.as_secs_f64(),
            row.timed.errors,
            row.timed.hits,
            row.cpu[0],
            row.cpu[1],
            row.cpu[2],
            server_rss.join(" / "),
            workers.join(" / "),
        );
    }
    println!();
    for row in rows {
        for (phase, outcome) in [("warm-up", &row.warm_up), ("timed", &row.timed)] {
            if outcome.errors > 0 {
                println!(
                    "{} ({phase}): {} errors, the first:",
                    row.name, outcome.errors
                );
                for message in &outcome.messages {
                    println!("  - {message}");
                }
            }
        }
    }
    for (server, log) in logs {
        let flagged: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        if !flagged.is_empty() {
            println!(
                "{server}: {} WARN/ERROR log lines, the first:",
                flagged.len()
            );
            for line in flagged.iter().take(SHOWN_LOG_LINES) {
                println!("  {line}");
            }
        }
    }
}
