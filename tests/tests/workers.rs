//! Worker lifecycle: the pool notices workers that die and replaces them; a session whose
//! worker dies, between calls or mid-call, continues from its last committed state.

use std::time::Duration;

use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::json;

#[tokio::test]
async fn idle_workers_killed_from_outside_are_replaced() {
    let server = Server::start_with(&["--warm-workers", "2"]).await;
    let before = server.wait_for_workers(2).await;
    for &pid in &before {
        mcpk_tests::kill_9(pid);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = server.workers();
        if now.len() == 2 && now.iter().all(|pid| !before.contains(pid)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pool did not refill: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        server.execute_in("fresh", "6 * 7").await.value(),
        &json!(42)
    );
}

#[tokio::test]
async fn a_worker_killed_between_calls_is_replaced_transparently() {
    let server = Server::start_with(&["--warm-workers", "0"]).await;
    server.execute("mcp.state.n = 5").await;
    let workers = server.workers();
    assert_eq!(workers.len(), 1, "one session, no warm pool: {workers:?}");
    mcpk_tests::kill_9(workers[0]);
    // The event, not a pause: the killed worker is gone before the next call.
    server
        .wait_for_worker_exit(workers[0], Duration::from_secs(30))
        .await;
    let result = server.execute("return ++mcp.state.n").await;
    assert!(!result.is_error(), "{}", result.text());
    assert_eq!(result.value(), &json!(6));
    assert_ne!(server.workers(), workers, "a new worker serves the session");
}

#[tokio::test]
async fn a_worker_killed_mid_call_is_an_internal_error_and_the_session_resumes() {
    let server = std::sync::Arc::new(Server::start_with(&["--warm-workers", "0"]).await);
    server.execute("mcp.state.n = 1").await;
    let worker = server.workers()[0];
    let before = server.worker_cpu_ticks();
    let call = tokio::spawn({
        let server = server.clone();
        async move {
            server
                .execute_with(json!({"code": "mcp.state.n = 2; console.log('looping'); while (true) {}", "timeout_ms": 30000}))
                .await
        }
    });
    // Killed while provably running the loop, not before it started.
    assert_eq!(server.wait_for_spinning_worker(&before).await, worker);
    mcpk_tests::kill_9(worker);
    let result = call.await.unwrap();
    assert!(result.is_error());
    assert_eq!(result.error_name(), "InternalError", "{}", result.text());
    result.assert_message_contains(&["signal 9", "rolled back"]);
    assert_eq!(result.logs(), [("log".to_owned(), "looping".to_owned())]);
    assert_eq!(server.execute("mcp.state.n").await.value(), &json!(1));
}

#[tokio::test]
async fn a_native_stack_overflow_is_an_internal_error_and_the_session_resumes() {
    // Every native recursion known in Boa now throws a RangeError first
    // (tests/tests/builtins.rs), so a test-only fault overflows the stack on purpose.
    let server = Server::start_with(&["--worker-fault", "overflow-native-stack"]).await;
    server.execute("mcp.state.n = 1").await;
    let result = server.execute("/* overflow-native-stack */").await;
    assert!(result.is_error());
    assert_eq!(result.error_name(), "InternalError", "{}", result.text());
    assert!(
        result
            .error_message()
            .contains("overflowed its native stack"),
        "{}",
        result.error_message()
    );
    assert_eq!(server.execute("mcp.state.n").await.value(), &json!(1));
}

#[tokio::test]
async fn the_recursion_limit_replaces_the_worker_and_keeps_committed_state() {
    let server = Server::start_with(&["--warm-workers", "0"]).await;
    server.execute("mcp.state.n = 1").await;
    let before = server.workers();
    let result = server
        .execute("mcp.state.n = 2; function f() { return f() + 1 } f()")
        .await;
    assert!(result.is_error());
    assert_eq!(result.error_name(), "RangeError", "{}", result.text());
    assert!(
        result
            .error_message()
            .contains("Maximum call stack size exceeded"),
        "{}",
        result.error_message()
    );
    assert_eq!(server.execute("mcp.state.n").await.value(), &json!(1));
    assert_ne!(server.workers(), before, "the damaged worker was replaced");
}
