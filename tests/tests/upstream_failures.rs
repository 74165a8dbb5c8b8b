//! Upstream failures: a server that crashes mid-call, one that never answers, and servers that
//! are dead from the start. Each is a `ToolError` (or the call's `TimeoutError`) within bounded
//! time; the session keeps its committed state, and other servers keep working.

use std::time::{Duration, Instant};

use mcpk_tests::upstream::{TempDir, filesystem_entry, fixture_entry, utf8, write_config};
use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::{Value, json};

/// Upper bound for "fails fast" and "gives up in bounded time": far below the 30 s connect and
/// 60 s call timeouts a call would otherwise wait for.
const BOUNDED: Duration = Duration::from_secs(10);

/// `[name, isToolError, server, tool, message]` of what `call` throws, or `{returned}`.
fn caught(call: &str) -> String {
    format!(
        "try {{ return {{returned: await {call}}} }} catch (e) {{ \
           return [e.name, e instanceof ToolError, e.server ?? null, e.tool ?? null, e.message] }}"
    )
}

/// Polls `servers.fixture.echo` until the restarted fixture answers; every failure on the way
/// must say the server is unavailable.
async fn wait_until_fixture_is_back(server: &Server) {
    let started = Instant::now();
    loop {
        let result = server
            .execute(&caught("servers.fixture.echo({value: 7})"))
            .await;
        let value = result.value();
        if value == &json!({"returned": {"value": 7}}) {
            return;
        }
        assert_eq!(value[0], "ToolError", "{value}");
        let message = value[4].as_str().unwrap();
        assert!(
            message.starts_with("fixture.echo: server `fixture` is unavailable ("),
            "{message}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the fixture was not restarted within 15 s; last error: {message}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn list_files(server: &Server, dir: &std::path::Path) -> Value {
    let result = server
        .execute(&format!(
            "(await servers.fs.list_directory({{path: {}}})).content",
            json!(utf8(dir))
        ))
        .await;
    result.value().clone()
}

#[tokio::test]
async fn an_upstream_crash_mid_call_is_a_tool_error_and_the_server_is_restarted() {
    let dir = TempDir::new("crash");
    dir.write("files/a.txt", "a");
    let files = dir.join("files");
    let config = write_config(
        &dir,
        json!({"fixture": fixture_entry(&[]), "fs": filesystem_entry(&files)}),
    );
    let server = Server::start_with_upstreams(&config, &[], &[], &["fixture", "fs"]).await;
    assert_eq!(server.execute("mcp.state.n = 1").await.value(), &json!(1));

    // The message proves the crash was noticed, not waited out: a call timeout says otherwise.
    let result = server
        .execute("mcp.state.n = 2; await servers.fixture.crash(); 'unreachable'")
        .await;
    assert_eq!(result.error_name(), "ToolError", "{}", result.text());
    let message = result.error_message();
    assert!(
        message.starts_with(
            "fixture.crash: the server closed the connection during the call (it may have \
             crashed); the call was not retried"
        ),
        "{message}"
    );
    // The session is intact, at its last committed state; other servers are unaffected.
    assert_eq!(server.execute("mcp.state.n").await.value(), &json!(1));
    assert_eq!(list_files(&server, &files).await, json!("[FILE] a.txt"));

    wait_until_fixture_is_back(&server).await;

    // A call in flight when it dies fails too, and is not retried. (The fixture counts
    // waiting `hang` calls, so the crash is sent only once `hang` has arrived.)
    let result = server
        .execute(
            "const hang = servers.fixture.hang(); \
             while ((await servers.fixture.cancellations()).hanging < 1) await new Promise(r => setTimeout(r, 10)); \
             const r = await Promise.allSettled([hang, servers.fixture.crash()]); \
             r.map(x => [x.status, x.reason.name, x.reason.server, x.reason.tool, x.reason.message])",
        )
        .await;
    let rows = result.value().as_array().expect("array").clone();
    assert_eq!(rows.len(), 2);
    for (row, tool) in rows.iter().zip(["hang", "crash"]) {
        assert_eq!(row[0], "rejected", "{row}");
        assert_eq!(row[1], "ToolError", "{row}");
        assert_eq!(row[2], "fixture", "{row}");
        assert_eq!(row[3], tool, "{row}");
        let message = row[4].as_str().unwrap();
        assert!(
            message.starts_with(&format!("fixture.{tool}: the server closed the connection")),
            "{message}"
        );
    }
    assert_eq!(list_files(&server, &files).await, json!("[FILE] a.txt"));
    wait_until_fixture_is_back(&server).await;
    assert_eq!(server.execute("mcp.state.n").await.value(), &json!(1));
}

/// Polls the fixture's `cancellations` tool until it has seen at least one
/// `notifications/cancelled` and nothing is hanging any more.
async fn wait_for_cancellation(server: &Server) -> Value {
    let started = Instant::now();
    loop {
        let result = server
            .execute_with(json!({"code": "await servers.fixture.cancellations()", "cache": "off"}))
            .await;
        let value = result.value().clone();
        if value["count"].as_u64() >= Some(1) && value["hanging"] == 0 {
            return value;
        }
        assert!(
            started.elapsed() < BOUNDED,
            "the fixture never saw notifications/cancelled: {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_hanging_upstream_call_times_out_with_execute_and_is_cancelled_upstream() {
    let dir = TempDir::new("hang");
    let config = write_config(&dir, json!({"fixture": fixture_entry(&[])}));
    let server = Server::start_with_upstreams(&config, &[], &[], &["fixture"]).await;
    assert_eq!(server.execute("mcp.state.n = 1").await.value(), &json!(1));
    assert_eq!(
        server
            .execute_with(json!({"code": "await servers.fixture.cancellations()", "cache": "off"}))
            .await
            .value(),
        &json!({"count": 0, "hanging": 0})
    );

    let result = server
        .execute_with(json!({
            "code": "mcp.state.n = 2; await servers.fixture.hang(); 'unreachable'",
            "timeout_ms": 1000
        }))
        .await;
    // The execute deadline, not the 60 s upstream call timeout, ended it.
    assert_eq!(result.error_name(), "TimeoutError", "{}", result.text());
    result.assert_message_contains(&["timeout_ms=1000", "rolled back"]);
    assert_eq!(server.execute("mcp.state.n").await.value(), &json!(1));
    assert_eq!(
        wait_for_cancellation(&server).await,
        json!({"count": 1, "hanging": 0})
    );
}

#[tokio::test]
async fn the_upstream_call_timeout_is_a_tool_error_that_cancels_the_call() {
    let dir = TempDir::new("call-timeout");
    let config = write_config(&dir, json!({"fixture": fixture_entry(&[])}));
    let server = Server::start_with_upstreams(
        &config,
        &["--upstream-call-timeout-ms", "500"],
        &[],
        &["fixture"],
    )
    .await;
    let result = server
        .execute_with(json!({
            "code": format!("const t = Date.now(); const r = await (async () => {{ {} }})(); return [r, Date.now() - t]",
                caught("servers.fixture.hang()")),
            "timeout_ms": 5000
        }))
        .await;
    let value = result.value();
    let error = &value[0];
    assert_eq!(error[0], "ToolError", "{value}");
    assert_eq!(error[2], "fixture", "{value}");
    assert_eq!(error[3], "hang", "{value}");
    let message = error[4].as_str().unwrap();
    assert!(message.starts_with("fixture.hang: "), "{message}");
    assert!(
        message.contains("500ms") && message.contains("cancelled"),
        "{message}"
    );
    let took = value[1].as_u64().unwrap();
    assert!((500..3000).contains(&took), "gave up after {took} ms");
    assert_eq!(
        wait_for_cancellation(&server).await,
        json!({"count": 1, "hanging": 0})
    );
    // The server is fine afterwards.
    assert_eq!(
        server
            .execute("await servers.fixture.slow({ms: 10})")
            .await
            .value(),
        &json!({"slept_ms": 10})
    );
}

#[tokio::test]
async fn dead_upstreams_do_not_block_start_up_and_calls_to_them_fail_fast_with_the_reason() {
    let dir = TempDir::new("dead");
    dir.write("files/a.txt", "a");
    let files = dir.join("files");
    let config = write_config(
        &dir,
        json!({
            "fs": filesystem_entry(&files),
            "missing": {"command": "/nonexistent/mcpk-no-such-server"},
            "quits": {"command": "sh", "args": ["-c", "echo 'quits: no licence' >&2; exit 3"]},
        }),
    );
    let server = Server::start_with_upstreams(&config, &[], &[], &["fs"]).await;
    let result = server
        .execute("[...new Set((await mcp.tools.list({detail: 'names'})).map(t => t.server))]")
        .await;
    assert_eq!(result.value(), &json!(["fs"]));
    assert_eq!(list_files(&server, &files).await, json!("[FILE] a.txt"));

    for (call, prefix, reason) in [
        (
            "servers.missing.anything({})",
            "missing.anything: server `missing` is unavailable (",
            "cannot start `/nonexistent/mcpk-no-such-server`: No such file or directory",
        ),
        (
            "mcp.tools.call('quits', 'anything', {})",
            "quits.anything: server `quits` is unavailable (",
            "MCP handshake failed",
        ),
    ] {
        // "unavailable" with the start failure as reason: answered from the status at once,
        // not after a connect timeout ("still starting after ...").
        let result = server.execute(&caught(call)).await;
        let value = result.value();
        assert_eq!(value[0], "ToolError", "{value}");
        let message = value[4].as_str().unwrap();
        assert!(message.starts_with(prefix), "{message}");
        assert!(message.contains(reason), "{message}");
        assert!(message.contains("restarted with backoff"), "{message}");
    }
    // Still fine afterwards.
    assert_eq!(list_files(&server, &files).await, json!("[FILE] a.txt"));
}
