//! Data work inside the kernel against Node 20 on the same input: the idioms agents use to
//! filter data where it lives (split/filter, regex over lines, JSON, sort, map/filter/reduce,
//! string building, string search with a position, `replaceAll`, `lastIndexOf`).
//!
//! Each workload is one JavaScript snippet run twice in the kernel (`execute` through the real
//! binary), on an input of about 1 MB (scale 1) and of twice that (scale 2), and once under
//! `node` at scale 1. The snippet builds its input deterministically, then times only the work
//! with the engine's own clock (`performance.now()` where it exists, `Date.now()` in the
//! kernel), as the median of [`REPS`] runs after one warm-up run. The kernel and Node must
//! compute the same answer, or the benchmark fails.
//!
//! Then the end-to-end log filter: an 860 KB log of 20,000 lines is read through the pinned
//! `@modelcontextprotocol/server-filesystem`, split into lines, filtered for `ERROR` and
//! counted; reported is the time inside the kernel (`structuredContent.duration_ms`).
//!
//! ```text
//! cargo build --workspace --bins && cargo bench -p mcpk-tests --bench data --no-run --profile dev
//! # then run the bench binary that cargo printed (dev profile: dependencies optimised);
//! # `--e2e-only` runs only the end-to-end log filter; `--only <text>` (repeatable) runs only
//! # the workloads whose name contains one of the texts, and nothing else
//! ```
//!
//! Then the cost of `mcp.state` by its size (`state.rs`; `--state-only` runs just that part).
//!
//! Needs `node` (≥ 18) and `tests/npm/node_modules` (see `scripts/test.sh`).

#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports its table on stdout"
)]

#[path = "state.rs"]
mod state;

use std::process::{Command, Stdio};

use anyhow::{Context as _, bail, ensure};
use mcpk_tests::upstream::{TempDir, filesystem_entry, node, utf8, write_config};
use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::{Value, json};

/// Timed runs per workload and engine (after one untimed warm-up run).
const REPS: usize = 5;
/// The call deadline asked for each kernel call; a workload that exceeds it is reported as
/// such and the table goes on.
const TIMEOUT_MS: u64 = 30_000;

/// Builds `text` (log lines, ~1 MB per unit of SCALE), `lines`, `records` (10k per unit),
/// `json` (their JSON text) and `nums` (100k numbers per unit).
const SETUP: &str = r"
const N = 20000 * SCALE;
const kinds = ['INFO', 'INFO', 'INFO', 'WARN', 'ERROR', 'INFO', 'DEBUG'];
const lines = [];
for (let i = 0; i < N; i++) {
  const kind = kinds[i % kinds.length];
  lines.push('2024-05-01T12:' + String(i % 60).padStart(2, '0') + ':00Z ' + kind +
    ' worker-' + (i % 13) + ' GET /api/items/' + i + ' took ' + ((i * 37) % 1000) + 'ms');
}
const text = lines.join('\n');
const records = [];
for (let i = 0; i < 10000 * SCALE; i++) {
  records.push({id: i, kind: 'k' + (i % 17), value: (i * 7919) % 1000, tags: ['a', 'b'], ok: i % 3 === 0, note: 'record number ' + i});
}
const json = JSON.stringify(records);
const nums = [];
let seed = 42;
for (let i = 0; i < 100000 * SCALE; i++) {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  nums.push(seed / 2147483648);
}
";

/// `(name, body of a function that does the work and returns a small answer)`.
const WORKLOADS: &[(&str, &str)] = &[
    (
        "split('\\n') + filter + count",
        "return text.split('\\n').filter(l => l.includes('ERROR')).length;",
    ),
    (
        "match(/^.*ERROR.*$/gm)",
        "return text.match(/^.*ERROR.*$/gm).length;",
    ),
    (
        "matchAll(/took (\\d+)ms/g)",
        "let n = 0; for (const m of text.matchAll(/took (\\d+)ms/g)) n += +m[1]; return n;",
    ),
    (
        "replace(/\\d+ms/g, ..)",
        "return text.replace(/\\d+ms/g, 'Xms').length;",
    ),
    ("split(/\\n/)", "return text.split(/\\n/).length;"),
    (
        "exec loop /ERROR/g",
        "const re = /ERROR/g; let n = 0; while (re.exec(text)) n++; return n;",
    ),
    (
        "JSON.parse + group-by",
        "const g = {}; for (const r of JSON.parse(json)) g[r.kind] = (g[r.kind] || 0) + r.value; \
         return Object.keys(g).length + ':' + g.k3;",
    ),
    ("JSON.stringify", "return JSON.stringify(records).length;"),
    (
        "sort 100k numbers",
        "const s = nums.slice().sort((a, b) => a - b); return s[500] + s[s.length - 500];",
    ),
    (
        "map/filter/reduce 100k",
        "return nums.map(x => x * 1000).filter(x => x > 500).reduce((a, b) => a + b, 0);",
    ),
    (
        "template literals + join",
        "return lines.map((l, i) => `${i}: ${l.length} ${l.slice(0, 8)}`).join('\\n').length;",
    ),
    (
        "string +=",
        "let s = ''; for (const l of lines) s += l + '\\n'; return s.length;",
    ),
    (
        "indexOf(s, from) loop",
        "let n = 0, i = 0; while ((i = text.indexOf('ERROR', i)) !== -1) { n++; i++; } return n;",
    ),
    (
        "includes(s, from) loop",
        "let n = 0; for (let i = 0; i < text.length; i += 100) if (text.includes('ERROR', i)) n++; \
         return n;",
    ),
    (
        "split(string) 'ERROR'",
        "return text.split('ERROR').length;",
    ),
    (
        "replaceAll('INFO', ..)",
        "return text.replaceAll('INFO', 'I').length;",
    ),
    (
        "lastIndexOf(s, from) loop",
        "let n = 0, i = text.length; \
         while (i >= 0 && (i = text.lastIndexOf('ERROR', i)) !== -1) { n++; i--; } return n;",
    ),
];

/// The whole script for one workload at one scale: the same text for the kernel (as the body
/// of `execute`) and for Node (wrapped in an async function).
fn script(scale: u32, work: &str) -> String {
    format!(
        "const SCALE = {scale};\n{SETUP}\n\
         const work = () => {{ {work} }};\n\
         const now = typeof performance !== 'undefined' ? () => performance.now() : () => Date.now();\n\
         let out = work();\n\
         const times = [];\n\
         for (let r = 0; r < {REPS}; r++) {{ const t0 = now(); out = work(); times.push(now() - t0); }}\n\
         times.sort((a, b) => a - b);\n\
         return {{ms: times[Math.floor(times.length / 2)], out: String(out)}};\n"
    )
}

/// `{ms, out}` from the kernel, or `None` when the call hit [`TIMEOUT_MS`].
async fn in_kernel(server: &Server, code: &str) -> anyhow::Result<Option<(f64, String)>> {
    let result = server
        .execute_with(json!({"code": code, "timeout_ms": TIMEOUT_MS}))
        .await;
    if result.is_error() && result.error_name() == "TimeoutError" {
        return Ok(None);
    }
    ensure!(!result.is_error(), "kernel: {}", result.text());
    parse(result.value()).map(Some)
}

/// `{ms, out}` from Node on the same script.
fn in_node(code: &str) -> anyhow::Result<(f64, String)> {
    let wrapped =
        format!("(async () => {{\n{code}\n}})().then(r => console.log(JSON.stringify(r)));");
    let output = Command::new(node())
        .args(["-e", &wrapped])
        .stdin(Stdio::null())
        .output()
        .context("run node")?;
    ensure!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value: Value = serde_json::from_slice(&output.stdout).context("node's JSON")?;
    parse(&value)
}

fn parse(value: &Value) -> anyhow::Result<(f64, String)> {
    let ms = value["ms"].as_f64().context("ms")?;
    let out = value["out"].as_str().context("out")?.to_owned();
    Ok((ms, out))
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    println!(
        "mcp-kernel data benchmark: {} (median of {REPS} runs, ms)",
        mcpk_tests::binary_path().display()
    );
    let mut failures = Vec::new();
    if std::env::args().any(|a| a == "--e2e-only") {
        return report_log_filter().await;
    }
    if std::env::args().any(|a| a == "--state-only") {
        return state::run().await;
    }
    let args: Vec<String> = std::env::args().collect();
    let only: Vec<&str> = args
        .windows(2)
        .filter(|pair| pair[0] == "--only")
        .map(|pair| pair[1].as_str())
        .collect();
    let server = Server::start().await;
    println!();
    println!(
        "{:<30} {:>10} {:>10} {:>8} {:>9} {:>11}",
        "workload", "kernel 1x", "kernel 2x", "2x/1x", "node 1x", "kernel/node"
    );
    for (name, work) in WORKLOADS {
        if !only.is_empty() && !only.iter().any(|o| name.contains(o)) {
            continue;
        }
        let (n1, node_out) = in_node(&script(1, work))?;
        let Some((k1, out1)) = in_kernel(&server, &script(1, work)).await? else {
            println!(
                "{name:<30} {:>10} (node {n1:.2} ms)",
                format!("> {TIMEOUT_MS} ms")
            );
            continue;
        };
        if out1 != node_out {
            failures.push(format!("{name}: kernel {out1:?}, node {node_out:?}"));
        }
        let Some((k2, _)) = in_kernel(&server, &script(2, work)).await? else {
            println!("{name:<30} {k1:>10.1} {:>10}", format!("> {TIMEOUT_MS} ms"));
            continue;
        };
        println!(
            "{:<30} {:>10.1} {:>10.1} {:>8.2} {:>9.2} {:>11.1}",
            name,
            k1,
            k2,
            k2 / k1.max(0.1),
            n1,
            k1 / n1.max(0.01)
        );
    }
    if only.is_empty() {
        println!();
        report_log_filter().await?;
        println!();
        state::run().await?;
    }
    if !failures.is_empty() {
        bail!("kernel and node disagree:\n{}", failures.join("\n"));
    }
    Ok(())
}

async fn report_log_filter() -> anyhow::Result<()> {
    let (bytes, e2e, cache) = log_filter().await?;
    println!(
        "end to end: {bytes}-byte log of 20,000 lines via server-filesystem, split/filter/count: \
         {e2e:.0} ms inside the kernel (duration_ms, median of {REPS})"
    );
    println!(
        "the same analytics call with the result cache (round trip at the client): first run \
         {:.1} ms, then answered from L1 in {:.3} ms (median of {REPS}): {:.0}x",
        cache.first_ms,
        cache.hit_ms,
        cache.first_ms / cache.hit_ms
    );
    Ok(())
}

/// The log filter with `cache: auto`, timed at the client: its first run and its hits.
struct CachedRepeat {
    first_ms: f64,
    hit_ms: f64,
}

/// The end-to-end log filter: median `duration_ms` of reading the log through
/// server-filesystem and counting its `ERROR` lines, with the log's size in bytes, then the
/// same call repeated with the result cache on.
async fn log_filter() -> anyhow::Result<(usize, f64, CachedRepeat)> {
    let dir = TempDir::new("data-bench");
    let mut log = String::new();
    let mut errors = 0;
    for i in 0..20_000u32 {
        let kind = if i % 9 == 4 {
            errors += 1;
            "ERROR"
        } else {
            "INFO "
        };
        log.push_str(&format!(
            "12:{:02}:{:02}.{:03} {kind} svc-{:02} req {i:>5} {:>4}ms\n",
            (i / 60) % 60,
            i % 60,
            i % 1000,
            i % 17,
            (i * 37) % 1000
        ));
    }
    let file = dir.write("files/app.log", &log);
    ensure!(
        (830_000..=890_000).contains(&log.len()),
        "log is {} bytes, expected about 870 KB",
        log.len()
    );
    let config = write_config(&dir, json!({"fs": filesystem_entry(&dir.join("files"))}));
    let server = Server::start_with_upstreams(&config, &[], &[], &["fs"]).await;
    let code = format!(
        "const {{content}} = await servers.fs.read_text_file({{path: {path}}});\n\
         return content.split('\\n').filter(l => l.includes('ERROR')).length;",
        path = json!(utf8(&file))
    );
    let mut samples = Vec::new();
    for _ in 0..=REPS {
        // `cache: off`: a read-only tool call is cacheable, and this measures runs, not hits.
        let result = server
            .execute_with(json!({"code": code, "timeout_ms": TIMEOUT_MS, "cache": "off"}))
            .await;
        ensure!(!result.is_error(), "log filter: {}", result.text());
        ensure!(
            result.value() == &json!(errors),
            "log filter counted {}, expected {errors}",
            result.value()
        );
        let ms = result.structured()["duration_ms"]
            .as_f64()
            .context("structuredContent.duration_ms")?;
        samples.push(ms);
    }
    // The first call starts the upstream connection's first read; the rest are steady.
    samples.remove(0);
    samples.sort_by(f64::total_cmp);
    let e2e = samples[samples.len() / 2];
    // Repeated analytics: the first run with the cache on stores the answer, later calls hit.
    let mut times = Vec::new();
    for i in 0..=REPS {
        let started = std::time::Instant::now();
        let result = server
            .execute_with(json!({"code": code, "timeout_ms": TIMEOUT_MS}))
            .await;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        let expected = if i == 0 { json!(false) } else { json!("l1") };
        ensure!(
            result.value() == &json!(errors) && result.structured()["cached"] == expected,
            "cached log filter call {i}: {}",
            result.text()
        );
    }
    let first_ms = times.remove(0);
    times.sort_by(f64::total_cmp);
    let cache = CachedRepeat {
        first_ms,
        hit_ms: times[times.len() / 2],
    };
    Ok((log.len(), e2e, cache))
}
