//! The cost of one upstream tool call made from the kernel, against the same call made directly
//! by an rmcp client, for two stdio upstreams: the workspace's `mcpk-fixture` (`echo {value}`,
//! its arguments back as JSON text) and the pinned npm `server-everything` (`echo {message}`).
//!
//! For each upstream, N sequential samples after a warm-up:
//!
//! - direct: an rmcp client in this process → the upstream's `echo`, one round trip;
//! - one call per `execute`: `execute("return await servers.<s>.echo(..)")`, and
//!   `execute("return 1")` on the same connection to `mcp-kernel serve --config ..`;
//! - amortised: one `execute` making K sequential `await servers.<s>.echo(..)` calls; time per
//!   call = wall time / K (and `structuredContent.duration_ms` / K);
//! - probes that stop short of the upstream, to see where the kernel's time goes, each K times
//!   in one `execute`: a call to an unknown server (answered by the supervisor: the
//!   worker ↔ supervisor host-call round trip, on the error path), `mcp.tools.list` (a host
//!   call that succeeds without upstream I/O), an `echo` whose arguments the supervisor's schema
//!   check rejects (the round trip plus the work done before a call is sent), and a loop of
//!   `await i` (the JavaScript floor);
//! - the CPU time each process (this client, the kernel's supervisor, its worker, the upstream)
//!   spends per request, from `/proc/<pid>/task/*/schedstat`.
//!
//! Every row is sampled in ROUNDS interleaved rounds (direct, then each kernel row, N / ROUNDS
//! samples each), so a change of the machine's speed during the run affects all rows alike;
//! the output also gives the amortised ratio of each round alone.
//! The direct client is this process, so it is built with this benchmark's profile: with
//! `--profile dev` and a release `mcp-kernel`, the direct side carries debug assertions and the
//! kernel does not (the output says so), which flatters the kernel.
//!
//! Run with the dev profile (dependencies are optimised there) against the debug binaries, or
//! against a release build pointed at by `MCP_KERNEL_BIN`; `mcpk-fixture` is taken from next to
//! the `mcp-kernel` binary (`mcpk_tests::upstream::fixture_path`), so both come from one build.
//! The last line builds this benchmark optimised too, so both sides are built alike:
//!
//! ```text
//! cargo build --workspace --bins && cargo bench -p mcpk-tests --bench upstream --profile dev
//! MCP_KERNEL_BIN=target/release/mcp-kernel cargo bench -p mcpk-tests --bench upstream --profile dev
//! cargo build --release --bins && \
//!   MCP_KERNEL_BIN=target/release/mcp-kernel cargo bench -p mcpk-tests --bench upstream
//! ```
//!
//! server-everything needs Node.js and `npm ci --prefix tests/npm` (`scripts/test.sh` does
//! both; see tests/npm/README.md). Linux only.

#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports its table on stdout"
)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, ensure};
use mcpk_tests::stats::{Stats, ms, ratio};
use mcpk_tests::upstream::{TempDir, everything_entry, fixture_entry, write_config};
use mcpk_tests::{ExecuteResult as _, Server};
use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceError};
use serde_json::{Value, json};

/// Timed samples of each measurement.
const N: usize = 300;
/// The samples are taken in this many rounds of N / ROUNDS samples of every row each.
const ROUNDS: usize = 10;
/// Untimed requests before each row's samples in a round.
const ROUND_WARMUP: usize = 3;
/// Untimed requests of each row before the first round.
const WARMUP: usize = 30;
/// Untimed direct calls before the first direct measurement: about as many as the kernel's own
/// instance of the upstream has answered when the amortised rows start (`node` compiles hot
/// code after enough calls, so a barely warmed-up server-everything is slower per call).
const DIRECT_WARMUP: usize = 2_000;
/// Sequential tool calls in one `execute` for the amortised measurements.
const K: usize = 50;
/// The server's default warm pool size.
const WARM_WORKERS: usize = 2;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

/// One upstream server and how to call its `echo` tool.
struct Upstream {
    /// Shown in the tables.
    label: &'static str,
    /// Its name in `mcpServers`, so `servers.<name>` in code.
    name: &'static str,
    /// Its `mcpServers` entry (`command`, `args`), also used to start it for the direct client.
    entry: Value,
    /// The JavaScript arguments object of `echo` for the JavaScript expression `i`.
    js_args: fn(&str) -> String,
    /// JavaScript arguments that the input schema of `echo` refuses, for the expression `i`.
    js_rejected: fn(&str) -> String,
    /// The arguments of the direct call number `i`.
    direct_args: fn(usize) -> Value,
    /// What `servers.<name>.echo(..)` returns in code for `i`.
    expected: fn(usize) -> Value,
}

async fn run() -> anyhow::Result<()> {
    print_context();
    let upstreams = [
        Upstream {
            label: "mcpk-fixture",
            name: "fx",
            entry: fixture_entry(&[]),
            js_args: |i| format!("{{value: {i}}}"),
            js_rejected: |i| format!("{{bogus: {i}}}"),
            direct_args: |i| json!({ "value": i }),
            expected: |i| json!({ "value": i }),
        },
        Upstream {
            label: "server-everything",
            name: "ev",
            entry: everything_entry(),
            js_args: |i| format!("{{message: String({i})}}"),
            js_rejected: |_| "{}".to_owned(),
            direct_args: |i| json!({ "message": i.to_string() }),
            expected: |i| json!(format!("Echo: {i}")),
        },
    ];
    let mut summaries = Vec::new();
    for upstream in &upstreams {
        let measured = measure(upstream).await?;
        measured.print(upstream);
        summaries.push((upstream.label, measured));
    }
    println!();
    println!("summary (target: the kernel's cost of one upstream call ≤ 1.2x the direct call)");
    for (label, measured) in &summaries {
        let (amortised, marginal) = (measured.amortised_ratio(), measured.marginal_ratio());
        let (low, _, high) = measured.round_spread();
        println!(
            "  {label:<18} amortised {:.2}x p50 / {:.2}x mean ({low:.2}x..{high:.2}x over the \
             rounds)   marginal {:.2}x p50 / {:.2}x mean   whole execute {:.2}x p50",
            amortised.0,
            amortised.1,
            marginal.0,
            marginal.1,
            measured.whole_ratio()
        );
    }
    Ok(())
}

/// Everything measured for one upstream.
struct Measured {
    direct: Run,
    return_1: Run,
    one_echo: Run,
    one_unknown: Run,
    /// `execute` calls making K calls each (divide by K for per call).
    loop_echo: Run,
    loop_unknown: Run,
    loop_list: Run,
    loop_rejected: Run,
    loop_await: Run,
    /// (amortised per call at p50) / (direct at p50) of each round.
    round_ratios: Vec<f64>,
}

/// The samples of one measurement.
#[derive(Default)]
struct Run {
    /// Wall time of each request, as the client sees it.
    wall: Vec<Duration>,
    /// `structuredContent.duration_ms` of each `execute` (empty for direct calls).
    reported: Vec<Duration>,
    /// CPU time the processes of each role of [`ROLES`] used over all the timed requests.
    cpu: [Duration; ROLES.len()],
}

impl Run {
    fn extend(&mut self, other: Self) {
        self.wall.extend(other.wall);
        self.reported.extend(other.reported);
        for (total, more) in self.cpu.iter_mut().zip(other.cpu) {
            *total += more;
        }
    }
}

/// The processes whose CPU time is accounted.
const ROLES: [&str; 4] = ["client", "supervisor", "worker", "upstream"];

/// The process ids of each role of [`ROLES`].
struct Roles([Vec<u32>; ROLES.len()]);

impl Roles {
    /// This process and the upstream a direct client started.
    fn direct(upstream: u32) -> Self {
        Self([vec![std::process::id()], vec![], vec![], vec![upstream]])
    }

    /// This process, the kernel, its workers and its other children (the upstreams).
    fn kernel(server: &Server) -> Self {
        let workers = server.workers();
        let upstreams = children(server.pid())
            .into_iter()
            .filter(|pid| !workers.contains(pid))
            .collect();
        Self([
            vec![std::process::id()],
            vec![server.pid()],
            workers,
            upstreams,
        ])
    }

    /// CPU time used so far by each role.
    fn cpu(&self) -> [Duration; ROLES.len()] {
        self.0
            .each_ref()
            .map(|pids| pids.iter().map(|pid| cpu_time(*pid)).sum())
    }
}

async fn measure(upstream: &Upstream) -> anyhow::Result<Measured> {
    let name = upstream.name;
    println!();
    println!("measuring {} ({name}) ...", upstream.label);

    let (direct_client, direct_pid) = direct_client(&upstream.entry).await?;
    let direct_roles = Roles::direct(direct_pid);

    let dir = TempDir::new("bench-upstream");
    let config = write_config(&dir, json!({ name: upstream.entry }));
    let server = Server::start_with_upstreams(&config, &[], &[], &[name]).await;

    // The probes must fail where they are meant to: in the supervisor, before any upstream I/O.
    let message = |call: String| {
        format!("try {{ await {call}; return 'sent' }} catch (e) {{ return e.message }}")
    };
    let unknown = server
        .execute(&message("mcp.tools.call('nope', 'x', {})".to_owned()))
        .await;
    let unknown = unknown.value().as_str().unwrap_or_default();
    ensure!(
        unknown.contains("unknown server"),
        "the unknown-server probe gave {unknown:?}"
    );
    let rejected = server
        .execute(&message(format!(
            "servers.{name}.echo({})",
            (upstream.js_rejected)("1")
        )))
        .await;
    let rejected = rejected.value().as_str().unwrap_or_default();
    ensure!(
        rejected.contains("invalid arguments"),
        "the schema-rejected probe gave {rejected:?}, not the kernel's argument check"
    );

    // The session holds a worker now and the warm pool has refilled: the pids are stable.
    server.wait_for_workers(WARM_WORKERS + 1).await;
    let roles = Roles::kernel(&server);
    ensure!(
        roles.0[3].len() == 1,
        "expected one upstream process under the kernel, found {:?}",
        roles.0[3]
    );

    let echo = |i: &str| format!("servers.{name}.echo({})", (upstream.js_args)(i));
    let repeat = |expression: String| {
        format!("let r; for (let i = 0; i < {K}; i++) r = await {expression}; return r")
    };
    let last = json!(K - 1);
    // In the order of the fields of `Measured`.
    let probes: [(String, Value); 8] = [
        ("return 1".to_owned(), json!(1)),
        (
            format!("return await {}", echo("1")),
            (upstream.expected)(1),
        ),
        (
            "return await mcp.tools.call('nope', 'x', {}).catch(() => 0)".to_owned(),
            json!(0),
        ),
        (repeat(echo("i")), (upstream.expected)(K - 1)),
        (
            repeat("mcp.tools.call('nope', 'x', {}).catch(() => i)".to_owned()),
            last.clone(),
        ),
        (
            repeat(format!(
                "mcp.tools.list({{server: '{name}', detail: 'names'}}).then(() => i)"
            )),
            last.clone(),
        ),
        (
            repeat(format!(
                "servers.{name}.echo({}).catch(() => i)",
                (upstream.js_rejected)("i")
            )),
            last.clone(),
        ),
        (repeat("i".to_owned()), last),
    ];

    // Warm everything up, then measure in rounds that each take N / ROUNDS samples of every
    // row, so that a change in the machine's speed during the run (this is a shared 2-vCPU
    // VM) affects the direct and the kernel rows alike.
    direct_calls(&direct_client, upstream, &direct_roles, DIRECT_WARMUP, 0).await?;
    for (code, expected) in &probes {
        executes(&server, &roles, code, expected, WARMUP, 0).await?;
    }
    let mut direct = Run::default();
    let mut runs: [Run; 8] = Default::default();
    let mut round_ratios = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let round_direct = direct_calls(
            &direct_client,
            upstream,
            &direct_roles,
            ROUND_WARMUP,
            N / ROUNDS,
        )
        .await?;
        for ((code, expected), run) in probes.iter().zip(&mut runs) {
            let round = executes(&server, &roles, code, expected, ROUND_WARMUP, N / ROUNDS).await?;
            run.extend(round);
        }
        let round_echo = &runs[3].wall[runs[3].wall.len() - N / ROUNDS..];
        round_ratios.push(ratio(
            Measured::per_call(round_echo).p50,
            Stats::of(&round_direct.wall).p50,
        ));
        direct.extend(round_direct);
    }
    drop(server);
    let _ = direct_client.cancel().await;

    let [
        return_1,
        one_echo,
        one_unknown,
        loop_echo,
        loop_unknown,
        loop_list,
        loop_rejected,
        loop_await,
    ] = runs;
    Ok(Measured {
        direct,
        return_1,
        one_echo,
        one_unknown,
        loop_echo,
        loop_unknown,
        loop_list,
        loop_rejected,
        loop_await,
        round_ratios,
    })
}

/// An rmcp client connected over stdio to the server started as `entry` says, and the
/// server's process id.
async fn direct_client(entry: &Value) -> anyhow::Result<(RunningService<RoleClient, ()>, u32)> {
    let program = entry["command"].as_str().context("the entry's command")?;
    let args: Vec<&str> = entry["args"]
        .as_array()
        .map(|args| args.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut command = tokio::process::Command::new(program);
    command.args(&args).kill_on_drop(true);
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("spawn {program} {args:?}"))?;
    let pid = transport.id().context("the upstream's pid")?;
    let client = tokio::time::timeout(mcpk_tests::REQUEST_DEADLINE, ().serve(transport))
        .await
        .context("the upstream did not initialise in time")??;
    Ok((client, pid))
}

/// N timed `echo` calls straight to the upstream after WARMUP untimed ones.
async fn direct_calls(
    client: &RunningService<RoleClient, ()>,
    upstream: &Upstream,
    roles: &Roles,
    warmup: usize,
    samples: usize,
) -> anyhow::Result<Run> {
    let call = |i: usize| {
        let Value::Object(args) = (upstream.direct_args)(i) else {
            unreachable!("direct_args builds an object")
        };
        client.call_tool(CallToolRequestParams::new("echo").with_arguments(args))
    };
    let check = |result: Result<CallToolResult, ServiceError>| -> anyhow::Result<()> {
        let result = result?;
        ensure!(
            result.is_error != Some(true),
            "the direct echo failed: {result:?}"
        );
        Ok(())
    };
    for i in 0..warmup {
        check(call(i).await)?;
    }
    let mut wall = Vec::with_capacity(samples);
    let cpu_before = roles.cpu();
    for i in 0..samples {
        let started = Instant::now();
        let result = call(i).await;
        wall.push(started.elapsed());
        check(result)?;
    }
    Ok(Run {
        wall,
        reported: Vec::new(),
        cpu: cpu_since(cpu_before, roles),
    })
}

/// `samples` timed `execute(code)` calls after `warmup` untimed ones, each of which must
/// return `expected`.
async fn executes(
    server: &Server,
    roles: &Roles,
    code: &str,
    expected: &Value,
    warmup: usize,
    samples: usize,
) -> anyhow::Result<Run> {
    let check = |result: &CallToolResult| -> anyhow::Result<Duration> {
        ensure!(!result.is_error(), "{code}: {}", result.text());
        ensure!(
            result.value() == expected,
            "{code} returned {}, expected {expected}",
            result.value()
        );
        let ms = result.structured()["duration_ms"]
            .as_u64()
            .context("structuredContent.duration_ms")?;
        Ok(Duration::from_millis(ms))
    };
    for _ in 0..warmup {
        check(&server.execute(code).await)?;
    }
    let (mut wall, mut reported) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    let cpu_before = roles.cpu();
    for _ in 0..samples {
        let started = Instant::now();
        let result = server.execute(code).await;
        wall.push(started.elapsed());
        reported.push(check(&result)?);
    }
    Ok(Run {
        wall,
        reported,
        cpu: cpu_since(cpu_before, roles),
    })
}

fn cpu_since(before: [Duration; ROLES.len()], roles: &Roles) -> [Duration; ROLES.len()] {
    let after = roles.cpu();
    std::array::from_fn(|i| after[i].saturating_sub(before[i]))
}

/// CPU time used so far by the live threads of process `pid`: the sum of the first field of
/// `/proc/<pid>/task/*/schedstat` (nanoseconds on the CPU); zero when the process is gone.
fn cpu_time(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// The live (not zombie) child processes of `parent`, from the parent links in `/proc/*/stat`.
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // `pid (comm) state ppid ...`; comm may contain spaces and parentheses.
            let mut fields = stat
                .rsplit_once(')')
                .map_or("", |(_, f)| f)
                .split_whitespace();
            let (state, ppid) = (fields.next(), fields.next());
            state != Some("Z") && ppid.and_then(|p| p.parse::<u32>().ok()) == Some(parent)
        })
        .collect()
}

impl Measured {
    fn per_call(samples: &[Duration]) -> Stats {
        Stats::of(samples).divided_by(K)
    }

    /// (amortised per call) / direct, at p50 and in the mean.
    fn amortised_ratio(&self) -> (f64, f64) {
        let (per_call, direct) = (
            Self::per_call(&self.loop_echo.wall),
            Stats::of(&self.direct.wall),
        );
        (
            ratio(per_call.p50, direct.p50),
            ratio(per_call.mean, direct.mean),
        )
    }

    /// (execute with one echo − execute return 1) / direct, at p50 and in the mean.
    fn marginal_ratio(&self) -> (f64, f64) {
        let (one, base) = (
            Stats::of(&self.one_echo.wall),
            Stats::of(&self.return_1.wall),
        );
        let direct = Stats::of(&self.direct.wall);
        (
            (secs(one.p50) - secs(base.p50)) / secs(direct.p50),
            (secs(one.mean) - secs(base.mean)) / secs(direct.mean),
        )
    }

    /// (execute with one echo) / direct at p50.
    /// The lowest, median and highest amortised ratio of the rounds.
    fn round_spread(&self) -> (f64, f64, f64) {
        let mut ratios = self.round_ratios.clone();
        ratios.sort_by(f64::total_cmp);
        let at = |i: usize| ratios.get(i).copied().unwrap_or(f64::NAN);
        (
            at(0),
            at(ratios.len() / 2),
            at(ratios.len().saturating_sub(1)),
        )
    }

    fn whole_ratio(&self) -> f64 {
        ratio(
            Stats::of(&self.one_echo.wall).p50,
            Stats::of(&self.direct.wall).p50,
        )
    }

    fn print(&self, upstream: &Upstream) {
        let name = upstream.name;
        println!();
        println!(
            "{:<58} {:>5} {:>10} {:>10} {:>10}",
            format!("{} (servers.{name}.echo)", upstream.label),
            "n",
            "p50",
            "p99",
            "mean"
        );
        let whole = |label: &str, samples: &[Duration]| {
            (label.to_owned(), samples.len(), Stats::of(samples))
        };
        let per_call =
            |label: String, samples: &[Duration]| (label, samples.len(), Self::per_call(samples));
        let rows = [
            whole("direct: rmcp client → echo", &self.direct.wall),
            whole("execute(\"return 1\")", &self.return_1.wall),
            whole("execute: one echo call", &self.one_echo.wall),
            whole(
                "execute: one unknown-server call (no upstream I/O)",
                &self.one_unknown.wall,
            ),
            per_call(
                format!("per call, {K} echo calls in one execute (wall / K)"),
                &self.loop_echo.wall,
            ),
            per_call(
                "per call, the same, duration_ms / K".to_owned(),
                &self.loop_echo.reported,
            ),
            per_call(
                format!("per call, {K} unknown-server calls (wall / K)"),
                &self.loop_unknown.wall,
            ),
            per_call(
                format!("per call, {K} mcp.tools.list names (wall / K)"),
                &self.loop_list.wall,
            ),
            per_call(
                format!("per call, {K} schema-rejected echo calls (wall / K)"),
                &self.loop_rejected.wall,
            ),
            per_call(
                format!("per iteration, {K} × `await i` (wall / K)"),
                &self.loop_await.wall,
            ),
        ];
        for (label, n, stats) in rows {
            println!(
                "{:<58} {:>5} {:>10} {:>10} {:>10}",
                label,
                n,
                ms(stats.p50),
                ms(stats.p99),
                ms(stats.mean)
            );
        }

        let direct = Stats::of(&self.direct.wall);
        let (amortised_p50, amortised_mean) = self.amortised_ratio();
        let (marginal_p50, marginal_mean) = self.marginal_ratio();
        println!();
        println!(
            "amortised  (per call of {K} in one execute) / direct: {amortised_p50:.2}x at p50, \
             {amortised_mean:.2}x in the mean"
        );
        println!(
            "           an agent that makes its calls from one script pays this per call; the \
             execute round trip is shared by the {K} calls"
        );
        let (low, middle, high) = self.round_spread();
        println!(
            "           in each of the {ROUNDS} rounds alone (its p50s): {low:.2}x lowest, \
             {middle:.2}x median, {high:.2}x highest"
        );
        println!(
            "marginal   (execute one echo − execute return 1) / direct: {marginal_p50:.2}x at \
             p50, {marginal_mean:.2}x in the mean"
        );
        println!(
            "           what one tool call adds to an execute the agent makes anyway (difference \
             of the p50s, of the means)"
        );
        println!(
            "whole      (execute one echo) / direct: {:.2}x at p50",
            self.whole_ratio()
        );
        println!(
            "           one call per execute with nothing else in it: the agent pays a second MCP \
             round trip (to the kernel) that no script amortises; not the target's comparison"
        );

        // Where the amortised per-call time goes, by differences of the per-call p50s.
        let p50 = |s: &[Duration]| secs(Self::per_call(s).p50);
        let floor = p50(&self.loop_await.wall);
        let unknown = p50(&self.loop_unknown.wall);
        let list = p50(&self.loop_list.wall);
        let rejected = p50(&self.loop_rejected.wall);
        let echo = p50(&self.loop_echo.wall);
        println!();
        println!("where the amortised per-call time goes (differences of per-call p50s):");
        let parts = [
            ("JavaScript loop and await (floor)", floor),
            (
                "host-call round trip, error path (unknown server − floor)",
                unknown - floor,
            ),
            (
                "host-call round trip, success path (tools.list − floor)",
                list - floor,
            ),
            (
                "supervisor before sending: upstream lookup, schema check (rejected − unknown)",
                rejected - unknown,
            ),
            (
                "the upstream call and its result (echo − rejected)",
                echo - rejected,
            ),
            ("  for comparison: the direct call at p50", secs(direct.p50)),
            ("total per call (echo)", echo),
        ];
        for (label, seconds) in parts {
            println!("  {label:<80} {:>10.3} ms", seconds * 1000.0);
        }
        println!(
            "  (the error-path probes also build, throw and catch a ToolError, which a successful \
             call does not; the schema-rejected probe also formats the validation error)"
        );
        println!();
        println!(
            "CPU time per request by process (sum over the timed requests of each row, from \
             /proc/<pid>/task/*/schedstat):"
        );
        print!("  {:<50}", "");
        for role in ROLES {
            print!(" {role:>10}");
        }
        println!(" {:>10} {:>10}", "CPU total", "wall mean");
        let cpu_rows = [
            ("direct call", &self.direct, 1),
            ("execute(\"return 1\")", &self.return_1, 1),
            ("execute: one echo call", &self.one_echo, 1),
            ("execute: one unknown-server call", &self.one_unknown, 1),
            ("per call, K echo calls in one execute", &self.loop_echo, K),
            ("per call, K unknown-server calls", &self.loop_unknown, K),
        ];
        for (label, run, per) in cpu_rows {
            let requests = u32::try_from(run.wall.len() * per)
                .unwrap_or(u32::MAX)
                .max(1);
            print!("  {label:<50}");
            for cpu in run.cpu {
                print!(" {:>10}", ms(cpu / requests));
            }
            let total: Duration = run.cpu.iter().sum();
            let wall: Duration = run.wall.iter().sum();
            println!(" {:>10} {:>10}", ms(total / requests), ms(wall / requests));
        }
    }
}

/// The machine and the binaries under test.
fn print_context() {
    let kernel = mcpk_tests::binary_path();
    println!("mcp-kernel upstream-call benchmark");
    println!(
        "machine: nproc {}, {}, load average {}",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        cpu_model().unwrap_or_else(|| "unknown CPU".to_owned()),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".to_owned()),
    );
    let release = kernel.components().any(|c| c.as_os_str() == "release");
    let profile = if release {
        "release"
    } else if kernel.components().any(|c| c.as_os_str() == "debug") {
        "debug (dev profile: workspace crates unoptimised, dependencies at opt-level 2)"
    } else {
        "unknown profile"
    };
    println!("mcp-kernel: {} [{profile}]", kernel.display());
    println!("  {}", freshness(&kernel));
    println!(
        "this benchmark (the direct rmcp client, and the client of mcp-kernel): {}",
        if cfg!(debug_assertions) {
            "dev profile, debug assertions on, dependencies (rmcp, tokio, serde) at opt-level 2"
        } else {
            "optimised, debug assertions off"
        }
    );
    if release && cfg!(debug_assertions) {
        println!(
            "  NOTE: the kernel is a release build but the direct client is not: its rmcp client \
             costs more CPU than a release one would (see the `client` column of the CPU \
             tables), which makes the direct rows slower and the ratios smaller than with \
             clients built alike"
        );
    }
    println!(
        "mcpk-fixture: {}",
        mcpk_tests::upstream::fixture_path().display()
    );
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|e| format!("not found ({e})"));
    println!("node: {node}");
    println!(
        "N = {N} samples per row after {WARMUP} warm-up requests ({DIRECT_WARMUP} for the direct \
         client); K = {K} calls per amortised execute"
    );
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

/// Whether `binary` was built after the last commit touching the crates it is made of.
fn freshness(binary: &Path) -> String {
    let built = std::fs::metadata(binary)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let committed = std::process::Command::new("git")
        .arg("-C")
        .arg(&workspace)
        .args([
            "log",
            "-1",
            "--format=%ct %h",
            "--",
            "api",
            "kernel",
            "session",
        ])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let committed = committed.as_deref().and_then(|line| {
        let (time, hash) = line.split_once(' ')?;
        Some((time.parse::<u64>().ok()?, hash.to_owned()))
    });
    match (built, committed) {
        (Some(built), Some((time, hash))) if built >= time => {
            format!("built after {hash}, the last commit touching api/, kernel/, session/")
        }
        (Some(built), Some((time, hash))) => format!(
            "STALE: built {} s before {hash}, the last commit touching api/, kernel/, session/",
            time - built
        ),
        _ => "build time unknown".to_owned(),
    }
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}
