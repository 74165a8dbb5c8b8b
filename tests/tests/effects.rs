//! Effects tracking: what a call did that a cached answer could not reproduce, recorded by the
//! worker as the call runs (`Execution::effects`). MCP does not show effects yet, so these
//! tests drive real `mcp-kernel worker` processes through the kernel's own `WorkerPool`.

use std::sync::Arc;
use std::time::Duration;

use mcpk_kernel::{
    Effects, Execution, HostFuture, HostHandler, HostOp, KernelConfig, MAX_EFFECTS_TOOLS,
    SkillLibrary, SkillSource, ToolRef, Worker, WorkerPool,
};
use mcpk_tests::binary_path;
use serde_json::Value;

/// Answers every host call with `null`.
struct Null;

impl HostHandler for Null {
    fn call(&self, _op: HostOp) -> HostFuture {
        Box::pin(async { Ok(Value::Null) })
    }
}

/// [`Null`] with two upstream server names.
struct TwoServers;

impl HostHandler for TwoServers {
    fn call(&self, _op: HostOp) -> HostFuture {
        Box::pin(async { Ok(Value::Null) })
    }

    fn server_names(&self) -> Vec<String> {
        vec!["fs".to_owned(), "memory".to_owned()]
    }
}

async fn worker() -> (Arc<WorkerPool>, Worker) {
    let mut config = KernelConfig::new(binary_path());
    config.warm_workers = 0;
    let pool = WorkerPool::start(config);
    let worker = pool.spawn().await.expect("a worker starts");
    (pool, worker)
}

async fn run(worker: &mut Worker, code: &str) -> Execution {
    run_with(worker, code, None).await
}

async fn run_with(worker: &mut Worker, code: &str, skills: Option<SkillLibrary>) -> Execution {
    worker
        .execute(code, Duration::from_secs(30), Arc::new(Null), skills)
        .await
        .expect("the call runs")
}

/// Runs `code` with `host` answering its host calls.
async fn run_on(worker: &mut Worker, code: &str, host: Arc<dyn HostHandler>) -> Execution {
    worker
        .execute(code, Duration::from_secs(30), host, None)
        .await
        .expect("the call runs")
}

/// The effects of a call that succeeded.
async fn effects(worker: &mut Worker, code: &str) -> Effects {
    let execution = run(worker, code).await;
    assert!(
        execution.outcome.result.is_ok(),
        "{code}: {:?}",
        execution.outcome.result
    );
    execution.effects
}

fn tool(server: &str, tool: &str) -> ToolRef {
    ToolRef {
        server: server.to_owned(),
        tool: tool.to_owned(),
    }
}

#[tokio::test]
async fn pure_code_has_no_effects() {
    let (_pool, mut worker) = worker().await;
    for code in [
        "return 1",
        "new Date(0).toISOString()",
        "new Date(undefined).getTime()",
        "new Date('2020-01-01').getTime()",
        "Date.UTC(2020, 0) + Date.parse('2020-01-01')",
        "[3, 1, 2].sort()",
        "queueMicrotask(() => {}); await null; 1",
        "mcp.state.k = 1",
        "new WeakMap().set({}, 1); 1",
        "btoa('hi') + atob('aGk=')",
        "new TextDecoder().decode(new TextEncoder().encode('é')).length",
        "new URL('../d?e=1', 'https://a.example/b/c').href",
        "structuredClone({a: [1]}).a[0]",
        "const c = new AbortController(); c.abort('x'); c.signal.aborted",
    ] {
        assert_eq!(
            effects(&mut worker, code).await,
            Effects::default(),
            "{code}"
        );
    }
}

#[tokio::test]
async fn every_way_to_read_the_clock_counts_as_time() {
    let (_pool, mut worker) = worker().await;
    let time = Effects {
        time: true,
        ..Effects::default()
    };
    for code in [
        "Date.now()",
        "new Date()",
        "Date()",
        "new Date",
        "Reflect.construct(Date, [])",
        "class Later extends Date {}; new Later()",
        "new (new Date(0).constructor)()",
        "new Date.prototype.constructor()",
        "Date.now.call(null)",
    ] {
        assert_eq!(effects(&mut worker, code).await, time, "{code}");
    }
    // Reset after each call.
    assert_eq!(effects(&mut worker, "return 1").await, Effects::default());
}

#[tokio::test]
async fn randomness_and_timers_are_recorded() {
    let (_pool, mut worker) = worker().await;
    let random = Effects {
        random: true,
        ..Effects::default()
    };
    for code in [
        "Math.random()",
        "const r = Math.random; r()",
        "new WeakRef({}).deref(); 1",
        "new FinalizationRegistry(() => {}); 1",
        "crypto.randomUUID()",
        "const { randomUUID } = crypto; randomUUID()",
    ] {
        assert_eq!(effects(&mut worker, code).await, random, "{code}");
    }
    let timers = Effects {
        timers: true,
        ..Effects::default()
    };
    assert_eq!(
        effects(&mut worker, "await new Promise((r) => setTimeout(r, 0)); 1").await,
        timers
    );
    assert_eq!(
        effects(&mut worker, "clearTimeout(setTimeout(() => {}, 0)); 1").await,
        timers
    );
}

#[tokio::test]
async fn the_wrappers_cannot_be_removed_or_bypassed() {
    let (_pool, mut worker) = worker().await;
    for code in [
        "Math.random = () => 0.5",
        "delete Math.random",
        "Date.now = () => 0",
        "globalThis.Date = function () {}",
        "Object.defineProperty(Math, 'random', { value: () => 0.5 })",
    ] {
        let execution = run(&mut worker, code).await;
        let error = execution.outcome.result.expect_err(code);
        assert_eq!(error.kind.name(), "TypeError", "{code}: {}", error.message);
    }
    let both = Effects {
        time: true,
        random: true,
        ..Effects::default()
    };
    assert_eq!(
        effects(&mut worker, "[Math.random(), Date.now()].length").await,
        both
    );
}

#[tokio::test]
async fn failed_calls_report_their_effects_too() {
    let (_pool, mut worker) = worker().await;
    let execution = run(
        &mut worker,
        "Math.random(); await servers.s.t({}); throw new Error('no')",
    )
    .await;
    assert!(execution.outcome.result.is_err());
    assert_eq!(
        execution.effects,
        Effects {
            random: true,
            tools: vec![tool("s", "t")],
            ..Effects::default()
        }
    );
    assert_eq!(effects(&mut worker, "return 1").await, Effects::default());
}

#[tokio::test]
async fn tool_calls_are_recorded_once_each_in_first_use_order() {
    let (_pool, mut worker) = worker().await;
    let library = SkillLibrary {
        version: 1,
        skills: vec![SkillSource {
            name: "fetch".to_owned(),
            source: "async (x) => servers.skillful.get({ x })".to_owned(),
        }],
    };
    let execution = run_with(
        &mut worker,
        "await servers.b.one({}); await mcp.tools.call('a', 'two', {});\n\
         await servers['b']['one']({ again: true }); await skills.fetch(1);\n\
         await mcp.tools.list(); await mcp.tools.search('x'); await mcp.tools.list();\n\
         try { await mcp.tools.call('bad', 'args', 5) } catch (e) {}\n\
         1",
        Some(library),
    )
    .await;
    assert!(execution.outcome.result.is_ok(), "{:?}", execution.outcome);
    assert_eq!(
        execution.effects,
        Effects {
            tools: vec![tool("b", "one"), tool("a", "two"), tool("skillful", "get")],
            host_ops: vec!["list_tools".to_owned(), "search_tools".to_owned()],
            ..Effects::default()
        }
    );
    assert_eq!(execution.skills_used, ["fetch"]);
}

#[tokio::test]
async fn distinct_tools_are_kept_up_to_the_limit_then_truncated() {
    let (_pool, mut worker) = worker().await;
    let calls =
        |n: usize| format!("for (let i = 0; i < {n}; i++) await servers.s['t' + i]({{}}); 1");
    let at_limit = effects(&mut worker, &calls(MAX_EFFECTS_TOOLS)).await;
    assert_eq!(at_limit.tools.len(), MAX_EFFECTS_TOOLS);
    assert!(!at_limit.tools_truncated);
    let over = effects(&mut worker, &calls(MAX_EFFECTS_TOOLS + 1)).await;
    assert_eq!(over.tools.len(), MAX_EFFECTS_TOOLS);
    assert_eq!(over.tools[MAX_EFFECTS_TOOLS - 1], tool("s", "t255"));
    assert!(over.tools_truncated);
}

#[tokio::test]
async fn listing_the_servers_reads_the_catalogue_and_naming_one_does_not() {
    let (_pool, mut worker) = worker().await;
    let listed = Effects {
        host_ops: vec!["list_tools".to_owned()],
        ..Effects::default()
    };
    for (code, expected) in [
        (
            "JSON.stringify(Object.keys(servers))",
            "[\"fs\",\"memory\"]",
        ),
        (
            "String('fs' in servers) + String('web' in servers)",
            "truefalse",
        ),
        (
            "const n = []; for (const k in servers) n.push(k); n.join()",
            "fs,memory",
        ),
        (
            "String(Object.getOwnPropertyDescriptor(servers, 'memory') !== undefined)",
            "true",
        ),
    ] {
        let execution = run_on(&mut worker, code, Arc::new(TwoServers)).await;
        let value = execution.outcome.result.expect(code);
        assert_eq!(value.json, format!("{expected:?}"), "{code}");
        assert_eq!(execution.effects, listed, "{code}");
    }
    // Naming a server is not listing: it keys on nothing.
    let execution = run_on(&mut worker, "typeof servers.fs", Arc::new(TwoServers)).await;
    assert_eq!(execution.effects, Effects::default());
    // Writes are refused, as on any frozen global.
    for code in [
        "servers.x = 1",
        "delete servers.fs",
        "Object.defineProperty(servers, 'x', {value: 1})",
        "Object.setPrototypeOf(servers, {})",
    ] {
        let execution = run_on(&mut worker, code, Arc::new(TwoServers)).await;
        let error = execution.outcome.result.expect_err(code);
        assert_eq!(error.kind.name(), "TypeError", "{code}: {}", error.message);
    }
}
