//! Idle TTL, hibernation, expiry and the read-only cache TTL with paused tokio time: the server
//! runs in this process (`mcpk_api::run` over an in-memory pipe, the embedded memory store),
//! its workers are the real `mcp-kernel worker` processes, and the test advances the clock
//! instead of sleeping.
//!
//! Time is paused only while no call runs and no worker is starting, so no deadline fires
//! early; the sweeper and the store's expiry are what the advances drive.

use std::time::Duration;

use mcpk_tests::{ExecuteResult as _, REQUEST_DEADLINE, binary_path};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt as _};
use serde_json::{Value, json};

const IDLE_TTL: Duration = Duration::from_secs(30 * 60);
const RETENTION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

struct InProcess {
    client: RunningService<RoleClient, ()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start() -> InProcess {
    start_with_idle_ttl(IDLE_TTL).await
}

async fn start_with_idle_ttl(idle_ttl: Duration) -> InProcess {
    start_with(idle_ttl, None).await
}

async fn start_with(idle_ttl: Duration, upstreams: Option<std::path::PathBuf>) -> InProcess {
    let mut config = mcpk_api::ServeConfig::default();
    config.upstream_config = upstreams;
    config.worker_exe = binary_path();
    config.warm_workers = 0;
    config.idle_ttl = idle_ttl;
    config.retention_ttl = RETENTION_TTL;
    config.max_timeout = Duration::from_secs(3600);
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let (server_read, server_write) = tokio::io::split(server_io);
    let server = tokio::spawn(mcpk_api::run(config, server_read, server_write));
    let client = ().serve(client_io).await.expect("MCP handshake");
    InProcess { client, server }
}

impl InProcess {
    async fn execute(&self, arguments: Value) -> rmcp::model::CallToolResult {
        tokio::time::timeout(REQUEST_DEADLINE, self.execute_unguarded(arguments))
            .await
            .expect("execute answered")
    }

    /// `execute` with no hang guard: for a call that spans a clock jump, which would fire a
    /// guard on tokio time.
    async fn execute_unguarded(&self, arguments: Value) -> rmcp::model::CallToolResult {
        let Value::Object(arguments) = arguments else {
            panic!("arguments must be an object")
        };
        self.client
            .call_tool(CallToolRequestParams::new("execute").with_arguments(arguments))
            .await
            .expect("execute is a tool result")
    }

    async fn stop(self) {
        drop(self.client);
        self.server
            .await
            .expect("server task")
            .expect("server ended cleanly");
    }
}

/// Live `mcp-kernel worker` children of this process.
fn workers() -> Vec<u32> {
    mcpk_tests::worker_children(std::process::id())
}

/// Waits (in real time, the clock running) until worker `pid` has exited.
async fn wait_for_exit(pid: u32) {
    let deadline = tokio::time::Instant::now() + REQUEST_DEADLINE;
    while workers().contains(&pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker {pid} never exited"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Moves tokio's clock forward by `by` with no call running, letting timers due by then run.
async fn advance(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    // Let the sweeper, woken by the advance, run before the clock resumes.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    tokio::time::resume();
}

// These tests share this process's children, so they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn an_idle_session_hibernates_after_its_ttl_and_resumes_transparently() {
    let _serial = SERIAL.lock().await;
    let server = start().await;
    let set = server
        .execute(json!({"code": "mcp.state.n = 7; 1", "session": "s"}))
        .await;
    assert!(!set.is_error(), "{}", set.text());
    let [worker] = workers()[..] else {
        panic!("one worker expected: {:?}", workers())
    };
    advance(IDLE_TTL - Duration::from_secs(1)).await;
    // Not yet: one second short of the TTL the worker is still there.
    let listed = server
        .execute(json!({"code": "(await mcp.sessions.list()).find(s => s.name === 's').live"}))
        .await;
    assert_eq!(listed.value(), &json!(true), "{}", listed.text());

    advance(IDLE_TTL + Duration::from_secs(1)).await;
    wait_for_exit(worker).await;
    let listed = server
        .execute(json!({"code": "(await mcp.sessions.list()).find(s => s.name === 's').live"}))
        .await;
    assert_eq!(listed.value(), &json!(false), "{}", listed.text());
    let resumed = server
        .execute(json!({"code": "mcp.state.n", "session": "s"}))
        .await;
    assert_eq!(resumed.value(), &json!(7), "{}", resumed.text());
    server.stop().await;
}

#[tokio::test]
async fn a_session_past_its_retention_ttl_is_expired_until_a_new_one_is_asked_for() {
    let _serial = SERIAL.lock().await;
    let server = start().await;
    let set = server
        .execute(json!({"code": "mcp.state.n = 1; 1", "session": "old"}))
        .await;
    assert!(!set.is_error(), "{}", set.text());
    // Hibernate, then pass the retention TTL.
    advance(IDLE_TTL + Duration::from_secs(1)).await;
    advance(RETENTION_TTL).await;
    let expired = server
        .execute(json!({"code": "mcp.state.n", "session": "old"}))
        .await;
    assert_eq!(expired.error_name(), "SessionExpired", "{}", expired.text());
    expired.assert_message_contains(&["`old`", "session_mode"]);
    let resumed_only = server
        .execute(json!({"code": "1", "session": "never", "session_mode": "resume"}))
        .await;
    assert_eq!(resumed_only.error_name(), "SessionNotFound");
    let fresh = server
        .execute(json!({"code": "mcp.state.n ?? 'empty'", "session": "old", "session_mode": "new"}))
        .await;
    assert_eq!(fresh.value(), &json!("empty"), "{}", fresh.text());
    server.stop().await;
}

#[tokio::test]
async fn a_session_is_never_hibernated_while_a_call_runs_on_it() {
    let _serial = SERIAL.lock().await;
    // Shorter than the session lease's 30 s, which the running call renews every 10 s: a jump
    // past the lease would lose it, as a process stalled that long would.
    let idle_ttl = Duration::from_secs(20);
    let server = start_with_idle_ttl(idle_ttl).await;
    assert!(
        !server
            .execute(json!({"code": "mcp.state.n = 1; 1", "session": "busy"}))
            .await
            .is_error()
    );
    let [worker] = workers()[..] else {
        panic!("one worker expected: {:?}", workers())
    };
    let before = mcpk_tests::cpu_ticks(worker).expect("the worker's CPU time");
    // A call that spins for 3 s of real time, spanning the clock jump below.
    let call = server.execute_unguarded(json!({
        "code": "const t = Date.now(); while (Date.now() - t < 3000) {} mcp.state.n += 1; return mcp.state.n",
        "session": "busy",
        "timeout_ms": 3_600_000,
    }));
    let jump = async {
        // The event: the call is running (its worker burns CPU); then pass the idle TTL.
        let deadline = tokio::time::Instant::now() + REQUEST_DEADLINE;
        while mcpk_tests::cpu_ticks(worker).unwrap_or_default() < before + mcpk_tests::SPIN_TICKS {
            assert!(tokio::time::Instant::now() < deadline, "the call never ran");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        advance(idle_ttl + Duration::from_secs(5)).await;
    };
    let (result, ()) = tokio::join!(call, jump);
    assert_eq!(result.value(), &json!(2), "{}", result.text());
    assert_eq!(
        workers(),
        vec![worker],
        "the running session kept its worker"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_read_only_tool_answer_is_cached_for_the_read_only_ttl_only() {
    let _serial = SERIAL.lock().await;
    let dir = mcpk_tests::upstream::TempDir::new("readonly-ttl");
    let upstreams = mcpk_tests::upstream::write_config(
        &dir,
        json!({"fixture": mcpk_tests::upstream::fixture_entry(&[])}),
    );
    let server = start_with(IDLE_TTL, Some(upstreams)).await;
    let call = json!({"code": "return (await servers.fixture.echo({value: 1})).value"});
    let cached = |result: &rmcp::model::CallToolResult| {
        result
            .structured_content
            .as_ref()
            .map_or(Value::Null, |s| s["cached"].clone())
    };
    let run = server.execute(call.clone()).await;
    assert_eq!(
        (run.value(), cached(&run)),
        (&json!(1), json!(false)),
        "{}",
        run.text()
    );
    advance(Duration::from_secs(59)).await;
    let hit = server.execute(call.clone()).await;
    assert_eq!((hit.value(), cached(&hit)), (&json!(1), json!("l1")));
    // 60 s after the run the entry has expired: the call runs again.
    advance(Duration::from_secs(1)).await;
    let expired = server.execute(call).await;
    assert_eq!(
        (expired.value(), cached(&expired)),
        (&json!(1), json!(false)),
        "{}",
        expired.text()
    );
    server.stop().await;
}
