//! Resource limits: a call that exhausts memory fails, and the session survives.

use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::json;

/// Commits `n = 1`, runs `hog`, and checks that it failed without taking the session down.
async fn fails_and_session_survives(hog: &str) {
    let server = Server::start_with(&["--memory-mib", "256"]).await;
    server.execute("mcp.state.n = 1").await;
    let result = server
        .execute_with(json!({"code": format!("mcp.state.n = 99; {hog}"), "timeout_ms": 20000}))
        .await;
    assert!(result.is_error(), "{hog}: {}", result.text());
    assert_eq!(
        result.error_name(),
        "MemoryLimitError",
        "{hog}: {}",
        result.error_message()
    );
    assert!(
        result.error_message().contains("rolled back"),
        "{hog}: {}",
        result.error_message()
    );
    let result = server.execute("return ++mcp.state.n").await;
    assert_eq!(result.value(), &json!(2), "{hog}: state after the failure");
}

#[tokio::test]
async fn growing_an_array_of_big_strings_hits_the_memory_limit() {
    fails_and_session_survives("const a = []; while (true) a.push('x'.repeat(1e6) + a.length)")
        .await;
}

#[tokio::test]
async fn a_gigantic_string_hits_the_memory_limit() {
    fails_and_session_survives("return 'x'.repeat(2**30).length").await;
}

#[tokio::test]
async fn other_sessions_are_unaffected_by_a_memory_hog() {
    let server = Server::start().await;
    server.execute_in("calm", "mcp.state.v = 'kept'").await;
    let result = server
        .execute_in(
            "hog",
            "const a = []; while (true) a.push('x'.repeat(1e6) + a.length)",
        )
        .await;
    assert!(result.is_error());
    assert_eq!(
        server
            .execute_in("calm", "return mcp.state.v")
            .await
            .value(),
        "kept"
    );
}
