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

#[tokio::test]
async fn state_at_max_state_bytes_commits_and_one_byte_more_rolls_back() {
    let server = Server::start_with(&["--max-state-bytes", "1000"]).await;
    // `{"s":"xxx…"}` is the string's length plus 8 bytes.
    let result = server.execute("mcp.state.s = 'x'.repeat(992); 0").await;
    assert!(!result.is_error(), "{}", result.text());
    let result = server.execute("mcp.state.s += 'y'; 0").await;
    assert_eq!(result.error_name(), "StateLimitError");
    result.assert_message_contains(&["1001 bytes", "max_state_bytes=1000", "rolled back"]);
    assert_eq!(
        server.execute("mcp.state.s.length").await.value(),
        &json!(992)
    );
}

#[tokio::test]
async fn nesting_at_100_levels_serialises_and_one_level_more_fails() {
    let server = Server::start().await;
    let nest = |levels: usize| format!("let v = 0; for (let i = 0; i < {levels}; i++) v = [v]; v");
    let result = server.execute(&nest(100)).await;
    assert!(
        !result.is_error(),
        "100 levels: {}",
        &result.text()[..200.min(result.text().len())]
    );
    let result = server.execute(&nest(101)).await;
    assert_eq!(result.error_name(), "SerializationError");
    result.assert_message_contains(&["more than 100 levels"]);
}
