//! Deadlines that always hold: host-call floods, a worker that stops reading its stdin, frames
//! at the size limit, a restore that hangs, and an upstream whose `tools/list` hangs after
//! `list_changed`. Each call ends (the fixture's request deadline is the hang guard), and the
//! next call on the session works.

use std::time::Duration;

use mcpk_tests::upstream::{TempDir, fixture_entry, write_config};
use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::{Value, json};

/// The flood of issue 6: 3000 host calls at once.
const FLOOD: &str = "Array.from({length: 3000}, () => mcp.tools.list())";

#[tokio::test]
async fn a_flood_of_3000_host_calls_waits_its_turn_and_succeeds() {
    let server = Server::start().await;
    let result = server
        .execute_with(json!({
            "code": format!("const lists = await Promise.all({FLOOD}); return [lists.length, 'ok']"),
            "timeout_ms": 30_000,
        }))
        .await;
    assert_eq!(result.value(), &json!([3000, "ok"]), "{}", result.text());
    assert_eq!(server.execute("return 1").await.value(), &json!(1));
}

#[tokio::test]
async fn an_endless_host_call_flood_is_stopped_at_its_deadline() {
    let server = Server::start().await;
    assert_eq!(server.execute("mcp.state.n = 1").await.value(), &json!(1));
    let result = server
        .execute_with(json!({
            "code": format!("mcp.state.n = 2; for (;;) await Promise.all({FLOOD})"),
            "timeout_ms": 1000,
        }))
        .await;
    assert_eq!(result.error_name(), "TimeoutError", "{}", result.text());
    result.assert_message_contains(&["timeout_ms=1000", "rolled back"]);
    assert_eq!(
        server.execute("return mcp.state.n").await.value(),
        &json!(1)
    );
}

/// Host calls past `max_host_calls_in_flight` are not sent until an answer frees a slot: with
/// two slots taken by slow calls, a quick third call cannot finish first.
#[tokio::test]
async fn host_calls_past_the_in_flight_limit_wait_for_a_free_slot() {
    let dir = TempDir::new("in-flight");
    let config = write_config(&dir, json!({"fixture": fixture_entry(&[])}));
    let server = Server::start_with_upstreams(
        &config,
        &["--max-host-calls-in-flight", "2"],
        &[],
        &["fixture"],
    )
    .await;
    let result = server
        .execute(
            "const order = [];
             const slow1 = servers.fixture.slow({ms: 500}).then(() => order.push('slow1'));
             const slow2 = servers.fixture.slow({ms: 500}).then(() => order.push('slow2'));
             const quick = servers.fixture.echo({value: 1}).then(() => order.push('echo'));
             await Promise.all([slow1, slow2, quick]);
             return order",
        )
        .await;
    // `quick` was made last, so with two slots it waits for one of the slow calls.
    let order = result.value().as_array().expect("an array").clone();
    assert_eq!(order.len(), 3, "{}", result.text());
    assert_ne!(order[0], json!("echo"), "{order:?}");
}

/// A worker that sends more host calls than the limit (here made to ignore it) is stopped by
/// the supervisor with an error naming the limit, and the session carries on.
#[tokio::test]
async fn the_supervisor_stops_a_worker_past_the_in_flight_limit() {
    let dir = TempDir::new("past-limit");
    let config = write_config(&dir, json!({"fixture": fixture_entry(&[])}));
    let server = Server::start_with_upstreams(
        &config,
        &[
            "--max-host-calls-in-flight",
            "2",
            "--worker-fault",
            "ignore-host-call-limit",
        ],
        &[],
        &["fixture"],
    )
    .await;
    assert_eq!(server.execute("mcp.state.n = 1").await.value(), &json!(1));
    let result = server
        .execute(
            "mcp.state.n = 2;
             await Promise.all([1, 2, 3].map(() => servers.fixture.slow({ms: 2000})))",
        )
        .await;
    assert_eq!(result.error_name(), "InternalError", "{}", result.text());
    result.assert_message_contains(&[
        "more host calls than max_host_calls_in_flight=2",
        "rolled back",
    ]);
    assert_eq!(
        server.execute("return mcp.state.n").await.value(),
        &json!(1)
    );
}

#[tokio::test]
async fn max_host_calls_in_flight_of_zero_is_refused_at_start_up() {
    let output =
        mcpk_tests::upstream::run_binary(&["serve", "--max-host-calls-in-flight", "0"], &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("max-host-calls-in-flight must be greater than zero"),
        "{stderr}"
    );
}

/// The worker reads no host reply; the replies (256 × 64 KiB) back up in the supervisor's
/// pipe to it. The supervisor's writes must not hold up the deadline.
#[tokio::test]
async fn a_worker_that_stops_reading_its_stdin_is_stopped_at_the_deadline() {
    let dir = TempDir::new("stop-reading");
    let config = write_config(&dir, json!({"fixture": fixture_entry(&[])}));
    let server = Server::start_with_upstreams(
        &config,
        &["--worker-fault", "stop-reading-stdin"],
        &[],
        &["fixture"],
    )
    .await;
    assert_eq!(server.execute("mcp.state.n = 1").await.value(), &json!(1));
    let result = server
        .execute_with(json!({
            "code": "mcp.state.n = 2;
                     await Promise.all(Array.from({length: 3000},
                       () => servers.fixture.big({bytes: 65536})));
                     return 'unreachable'",
            "timeout_ms": 2000,
        }))
        .await;
    assert_eq!(result.error_name(), "TimeoutError", "{}", result.text());
    result.assert_message_contains(&["timeout_ms=2000", "rolled back"]);
    assert_eq!(
        server.execute("return mcp.state.n").await.value(),
        &json!(1)
    );
}

#[tokio::test]
async fn a_restore_that_hangs_fails_clearly_and_the_next_call_restores_the_state() {
    let server = Server::start_with(&["--worker-fault", "hang-on-first-restore"]).await;
    assert_eq!(server.execute("mcp.state.n = 1").await.value(), &json!(1));
    // A timeout replaces the worker, so the next call restores into a new one.
    let result = server
        .execute_with(json!({"code": "mcp.state.n = 2; while (true) {}", "timeout_ms": 300}))
        .await;
    assert_eq!(result.error_name(), "TimeoutError", "{}", result.text());

    let result = server.execute("return mcp.state.n").await;
    assert_eq!(result.error_name(), "InternalError", "{}", result.text());
    result.assert_message_contains(&[
        "restoring the session's committed mcp.state (7 bytes) into a new worker took longer \
         than its 3s deadline",
        "the code did not run",
        "keeps its last committed mcp.state",
    ]);
    assert!(
        !result.error_message().contains("protocol error"),
        "{}",
        result.error_message()
    );

    assert_eq!(
        server.execute("return mcp.state.n").await.value(),
        &json!(1)
    );
}

/// 1 GiB of address space per worker, for strings of tens of MiB, and a long deadline: the
/// debug build copies such strings slowly.
const BIG_FLAGS: [&str; 4] = ["--memory-mib", "1024", "--max-timeout-ms", "50000"];

async fn run_long(server: &Server, code: &str) -> rmcp::model::CallToolResult {
    server
        .execute_with(json!({"code": code, "timeout_ms": 50_000}))
        .await
}

/// 32 MiB (`MAX_HOST_MESSAGE_BYTES`) is the limit of a host call's arguments and of a reply,
/// as JSON.
const HOST_MESSAGE_LIMIT: usize = 32 << 20;

#[tokio::test]
async fn host_calls_at_the_size_limit_neither_hang_nor_crash() {
    let server = Server::start_with(&BIG_FLAGS).await;
    // Arguments just under the limit cross to the supervisor (which finds no such server);
    // at the limit, the worker refuses them before sending.
    let result = run_long(
        &server,
        &format!(
            "try {{ await mcp.tools.call('nope', 'x', {{v: 'x'.repeat({})}}) }}
             catch (e) {{ return [e.name, e.message] }}",
            HOST_MESSAGE_LIMIT - 200
        ),
    )
    .await;
    let value = result.value();
    assert_eq!(value[0], "ToolError", "{value}");
    assert!(
        value[1]
            .as_str()
            .is_some_and(|m| m.contains("unknown server `nope`")),
        "{value}"
    );
    let result = run_long(
        &server,
        &format!(
            "try {{ await mcp.tools.call('nope', 'x', {{v: 'x'.repeat({HOST_MESSAGE_LIMIT})}}) }}
             catch (e) {{ return [e.name, e.message] }}"
        ),
    )
    .await;
    let value = result.value();
    assert_eq!(value[0], "ToolError", "{value}");
    let message = value[1].as_str().expect("a message");
    assert!(
        message.contains(&format!(
            "over the {HOST_MESSAGE_LIMIT}-byte limit for host calls"
        )),
        "{message}"
    );
    assert_eq!(server.execute("return 1").await.value(), &json!(1));
}

/// rmcp's stdio transport drops upstream messages over 16 MiB, so a reply at the 32 MiB host
/// limit cannot come from a stdio upstream; 15 MiB is the largest such reply (the limit itself
/// is unit-tested in `process.rs`).
#[tokio::test]
async fn a_15_mib_host_reply_arrives_whole() {
    let dir = TempDir::new("big-reply");
    let config = write_config(&dir, json!({"fixture": fixture_entry(&[])}));
    let server = Server::start_with_upstreams(&config, &BIG_FLAGS, &[], &["fixture"]).await;
    let bytes = 15 << 20;
    let result = run_long(
        &server,
        &format!("(await servers.fixture.big({{bytes: {bytes}}})).length"),
    )
    .await;
    assert_eq!(result.value(), &json!(bytes), "{}", result.text());
    assert_eq!(server.execute("return 1").await.value(), &json!(1));
}

/// At a configured `max_log_bytes` and `max_result_bytes` of 3 MiB each (the MCP response
/// carries both twice, text and `structuredContent`, and rmcp's stdio client drops messages
/// over 16 MiB).
#[tokio::test]
async fn results_and_logs_at_the_size_limit_neither_hang_nor_crash() {
    let log_bytes = 3 << 20;
    let result_bytes = 3 << 20;
    let mut flags = BIG_FLAGS.to_vec();
    let (log_flag, result_flag) = (log_bytes.to_string(), result_bytes.to_string());
    flags.extend([
        "--max-log-bytes",
        &log_flag,
        "--max-result-bytes",
        &result_flag,
    ]);
    let server = Server::start_with(&flags).await;
    // The result's JSON (the string and its two quotes) is exactly max_result_bytes.
    let result = run_long(
        &server,
        &format!(
            "console.log('y'.repeat({log_bytes})); return 'z'.repeat({})",
            result_bytes - 2
        ),
    )
    .await;
    assert!(!result.is_error(), "{}", &result.text()[..200]);
    let logs = result.logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].1.len(), log_bytes);
    let value = result.value().as_str().expect("a string");
    assert_eq!(value.len(), result_bytes - 2);
    assert_eq!(server.execute("return 2").await.value(), &json!(2));
}

/// Polls `servers.fixture.pid()` until it answers with a pid other than `old`.
async fn wait_for_a_new_fixture_process(server: &Server, old: &Value) -> Value {
    loop {
        // `pid` is read-only, so its answer would be cached: the poll must see the new one.
        let result = server
            .execute_with(json!({
                "code": "try { return (await servers.fixture.pid()).pid } catch (e) { return e.message }",
                "cache": "off",
            }))
            .await;
        let value = result.value().clone();
        if value.is_u64() && &value != old {
            return value;
        }
        // Hang guard only: the assertion is that a new process answers at all.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// After `list_changed`, the fixture's `tools/list` never answers. The supervising task must
/// give up (connect timeout), restart the server, and so notice and recover; before, it
/// waited forever and never noticed anything again.
#[tokio::test]
async fn a_tools_list_that_hangs_after_list_changed_restarts_the_upstream() {
    let dir = TempDir::new("hung-list");
    let config = write_config(&dir, json!({"fixture": fixture_entry(&[])}));
    let server = Server::start_with_upstreams(
        &config,
        &["--upstream-connect-timeout-ms", "1000"],
        &[],
        &["fixture"],
    )
    .await;
    let first = server.execute("(await servers.fixture.pid()).pid").await;
    let first = first.value().clone();
    assert!(first.is_u64(), "{first}");
    let result = server
        .execute("await servers.fixture.hang_tools_list()")
        .await;
    assert_eq!(
        result.value(),
        &json!({"hanging": true}),
        "{}",
        result.text()
    );
    let guard = Duration::from_secs(30);
    let second = tokio::time::timeout(guard, wait_for_a_new_fixture_process(&server, &first))
        .await
        .unwrap_or_else(|_| panic!("no new fixture process within {guard:?}"));
    assert_ne!(second, first);
    assert!(
        server
            .stderr()
            .contains("tools/list after notifications/tools/list_changed did not answer"),
        "{}",
        server.stderr()
    );
}

#[tokio::test]
async fn tool_list_paging_is_capped_per_server() {
    let dir = TempDir::new("pages");
    let config = write_config(
        &dir,
        json!({
            "at_cap": fixture_entry(&["--tool-pages", "100"]),
            "over_cap": fixture_entry(&["--tool-pages", "101"]),
        }),
    );
    let server = Server::start_with_upstreams(&config, &[], &[], &["at_cap"]).await;
    let result = server
        .execute("(await servers.at_cap.echo({value: 1})).value")
        .await;
    assert_eq!(result.value(), &json!(1), "{}", result.text());
    let result = server
        .execute("try { await servers.over_cap.echo({value: 1}) } catch (e) { return e.message }")
        .await;
    let message = result.value().as_str().expect("a message");
    assert!(
        message.contains("more than 100 pages (the per-server cap)"),
        "{message}"
    );
}
