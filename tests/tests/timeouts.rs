//! Deadlines: runaway code is stopped at `timeout_ms`, its state changes are rolled back, and
//! the session carries on from its last committed state.

use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::json;

/// Commits `n = 1`, then runs `runaway` (which first sets `n = 99`) with a 500 ms deadline and
/// checks the timeout and the rollback.
async fn times_out_and_rolls_back(runaway: &str) {
    let server = Server::start().await;
    assert_eq!(server.execute("mcp.state.n = 1").await.value(), &json!(1));
    let result = server
        .execute_with(json!({"code": format!("mcp.state.n = 99; {runaway}"), "timeout_ms": 500}))
        .await;
    assert!(result.is_error(), "{runaway}: {}", result.text());
    assert_eq!(result.error_name(), "TimeoutError", "{runaway}");
    assert!(
        result.error_message().contains("rolled back"),
        "{runaway}: {}",
        result.error_message()
    );
    assert!(
        result.text().starts_with("TimeoutError: "),
        "{}",
        result.text()
    );
    let duration_ms = result.structured()["duration_ms"]
        .as_u64()
        .expect("duration_ms");
    assert!(
        duration_ms >= 500,
        "{runaway}: stopped after {duration_ms} ms"
    );

    let result = server.execute("return ++mcp.state.n").await;
    assert_eq!(
        result.value(),
        &json!(2),
        "{runaway}: state after the timeout"
    );
}

#[tokio::test]
async fn an_infinite_loop_times_out() {
    times_out_and_rolls_back("while(true){}").await;
}

#[tokio::test]
async fn an_infinite_loop_after_await_times_out() {
    times_out_and_rolls_back("await null; while(true){}").await;
}

#[tokio::test]
async fn a_catastrophic_regex_times_out() {
    times_out_and_rolls_back("/(a+)+$/.test('a'.repeat(30)+'!')").await;
}

#[tokio::test]
async fn awaiting_a_promise_that_can_never_settle_fails_and_rolls_back() {
    // Nothing can ever settle it (no jobs, timers or host calls left), so the kernel may fail
    // the call at once instead of waiting for the deadline; either way state is rolled back.
    let server = Server::start().await;
    server.execute("mcp.state.n = 1").await;
    let result = server
        .execute_with(
            json!({"code": "mcp.state.n = 99; await new Promise(() => {})", "timeout_ms": 2000}),
        )
        .await;
    assert!(result.is_error(), "{}", result.text());
    result.assert_message_contains(&["rolled back"]);
    assert_eq!(
        server.execute("return mcp.state.n").await.value(),
        &json!(1)
    );
}

#[tokio::test]
async fn logs_printed_before_a_timeout_are_returned() {
    let server = Server::start().await;
    let result = server
        .execute_with(json!({"code": "console.log('started'); while(true){}", "timeout_ms": 300}))
        .await;
    assert_eq!(result.error_name(), "TimeoutError");
    assert_eq!(result.logs(), [("log".to_owned(), "started".to_owned())]);
}
