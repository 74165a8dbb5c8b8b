//! Host calls and timers inside the kernel when no upstream MCP server is configured.

use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::json;

#[tokio::test]
async fn without_upstreams_the_catalogue_is_empty_and_calls_throw_tool_error() {
    let server = Server::start().await;
    assert_eq!(
        server.execute("await mcp.tools.list()").await.value(),
        &json!([])
    );
    let result = server
        .execute(
            "const r = await Promise.allSettled([1, 2, 3].map(i => mcp.tools.call('s' + i, 't', {}))); \
             r.map(x => [x.status, x.reason.name, x.reason instanceof ToolError, x.reason.message])",
        )
        .await;
    let rows = result.value().as_array().expect("array");
    assert_eq!(rows.len(), 3);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], "rejected");
        assert_eq!(row[1], "ToolError");
        assert_eq!(row[2], true);
        let message = row[3].as_str().unwrap();
        assert!(message.contains(&format!("`s{}`", i + 1)), "{message}");
        assert!(message.contains("no upstream MCP servers"), "{message}");
    }
}

#[tokio::test]
async fn bad_tool_call_arguments_are_type_errors_naming_the_argument() {
    let server = Server::start().await;
    let result = server.execute("await mcp.tools.call('s', 't', [1])").await;
    assert_eq!(result.error_name(), "TypeError");
    result.assert_message_contains(&["`args`"]);
    let result = server.execute("await mcp.tools.call(1, 't')").await;
    result.assert_message_contains(&["`server`"]);
}

#[tokio::test]
async fn timers_fire_in_delay_order_and_can_be_cleared() {
    let server = Server::start().await;
    let result = server
        .execute(
            "const o = []; setTimeout(() => o.push('late'), 30); setTimeout(() => o.push('early'), 5); \
             const c = setTimeout(() => o.push('cleared'), 1); clearTimeout(c); \
             queueMicrotask(() => o.push('micro')); o.push('sync'); \
             await new Promise(r => setTimeout(r, 60)); o",
        )
        .await;
    assert_eq!(result.value(), &json!(["sync", "micro", "early", "late"]));
}

#[tokio::test]
async fn a_pending_timer_keeps_the_call_running_until_its_deadline() {
    let server = Server::start().await;
    let result = server
        .execute("setTimeout(() => console.log('fired'), 50); 1")
        .await;
    assert_eq!(result.value(), &json!(1));
    assert_eq!(result.logs(), [("log".to_owned(), "fired".to_owned())]);
    let result = server
        .execute_with(json!({"code": "setTimeout(() => {}, 60000); 1", "timeout_ms": 300}))
        .await;
    assert_eq!(result.error_name(), "TimeoutError", "{}", result.text());
}

#[tokio::test]
async fn host_call_arguments_over_the_limit_are_refused_naming_it() {
    // Boa needs far more than the string's size to stringify it; give the worker room so the
    // host-call limit, not the memory limit, is what stops this call.
    let server = Server::start_with(&["--memory-mib", "4096"]).await;
    let result = server
        .execute_with(json!({
            "code": "try { await mcp.tools.call('s', 't', {v: 'x'.repeat(33 * 2**20)}) } catch (e) { return [e.name, e.message] }",
            "timeout_ms": 30000
        }))
        .await;
    let value = result.value();
    assert_eq!(value[0], "ToolError", "{}", result.text());
    let message = value[1].as_str().unwrap();
    assert!(
        message.contains("33554432-byte limit for host calls"),
        "{message}"
    );
}
