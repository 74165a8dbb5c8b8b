//! Bad arguments are tool execution errors (`isError: true`, MCP 2025-11-25, SEP-1303) whose
//! message names the field, so the model sees them; an unknown tool stays a JSON-RPC error
//! (-32602); the server keeps answering afterwards.

use mcpk_tests::{ExecuteResult as _, Server};
use rmcp::model::ErrorCode;
use serde_json::{Value, json};

/// Each case: the arguments, then the pieces the error message must contain.
fn bad_arguments() -> Vec<(Value, &'static [&'static str])> {
    vec![
        (json!({}), &["missing required field `code`"]),
        (Value::Null, &["missing required field `code`"]),
        (json!({"code": 42}), &["`code`", "string", "42"]),
        (json!({"code": ["1"]}), &["`code`", "string"]),
        (
            json!({"code": "1", "timeout_ms": "100"}),
            &["`timeout_ms`", "integer from 1 to 60000", "\"100\""],
        ),
        (
            json!({"code": "1", "timeout_ms": 0}),
            &["`timeout_ms`", "integer from 1 to 60000", "got 0"],
        ),
        (
            json!({"code": "1", "timeout_ms": 60001}),
            &["`timeout_ms`", "got 60001"],
        ),
        (
            json!({"code": "1", "timeout_ms": 1.5}),
            &["`timeout_ms`", "1.5"],
        ),
        (
            json!({"code": "1", "timeout_ms": -1}),
            &["`timeout_ms`", "-1"],
        ),
        (
            json!({"code": "1", "sesion": "a"}),
            &["unknown field `sesion`"],
        ),
        (json!({"code": "1", "session": ""}), &["`session`"]),
        (json!({"code": "1", "session": "no spaces"}), &["`session`"]),
        (json!({"code": "1", "session": 7}), &["`session`"]),
    ]
}

#[tokio::test]
async fn bad_arguments_are_tool_errors_naming_the_field() {
    let server = Server::start().await;
    for (arguments, needles) in bad_arguments() {
        let result = server.execute_with(arguments.clone()).await;
        assert!(result.is_error(), "{arguments}: {result:?}");
        assert_eq!(result.error_name(), "ArgumentError", "{arguments}");
        let message = result.error_message();
        assert!(message.starts_with("execute: "), "{arguments}: {message}");
        assert_eq!(result.text(), format!("ArgumentError: {message}"));
        result.assert_message_contains(needles);
    }
    // Still serving.
    server.ping().await;
    let tools = server.client().list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["execute", "search_tools"]);
}

#[tokio::test]
async fn unknown_tool_is_invalid_params_naming_it() {
    let server = Server::start().await;
    let error = server
        .call_tool("exec", json!({"code": "1"}))
        .await
        .expect_err("an unknown tool is a JSON-RPC error");
    assert_eq!(error.code, ErrorCode::INVALID_PARAMS);
    assert!(error.message.contains("Unknown tool"), "{}", error.message);
    assert!(error.message.contains("exec"), "{}", error.message);
    server.ping().await;
}

#[tokio::test]
async fn echoed_values_are_capped() {
    let server = Server::start().await;
    let huge = "x".repeat(1 << 20);
    for arguments in [
        json!({"code": "1", "session": huge}),
        json!({"code": "1", "timeout_ms": huge}),
        json!({"code": "1", huge.clone(): 1}),
        json!({"code": [huge]}),
    ] {
        let result = server.execute_with(arguments).await;
        assert!(result.is_error());
        assert!(result.text().len() < 300, "{}", &result.text()[..300]);
    }
    let result = server
        .call_tool("search_tools", json!({"query": "x", "detail": huge}))
        .await
        .expect("a tool result");
    assert!(result.is_error());
    assert!(result.text().len() < 300, "{}", &result.text()[..300]);
}

#[tokio::test]
async fn the_server_still_runs_code_after_rejecting_arguments() {
    let server = Server::start().await;
    for (arguments, _) in bad_arguments() {
        assert!(server.execute_with(arguments).await.is_error());
    }
    let result = server.execute("return 40 + 2").await;
    assert_eq!(result.value(), &json!(42));
}

#[tokio::test]
async fn the_tool_list_documents_the_contract() {
    let server = Server::start().await;
    let info = server.client().peer_info().expect("server info");
    let implementation = info.server_info.as_ref().expect("serverInfo");
    assert_eq!(implementation.name, "mcp-kernel");
    assert_eq!(implementation.version, env!("CARGO_PKG_VERSION"));
    assert!(info.instructions.as_deref().is_some_and(|i| !i.is_empty()));

    let tools = server.client().list_all_tools().await.expect("tools/list");
    let [tool, search] = tools.as_slice() else {
        panic!("expected execute and search_tools: {tools:?}")
    };
    assert_eq!(tool.name, "execute");
    assert_eq!(search.name, "search_tools");
    let search_annotations = search.annotations.as_ref().expect("annotations");
    assert_eq!(search_annotations.read_only_hint, Some(true));
    let description = tool.description.as_deref().unwrap_or_default();
    assert!(
        description.split_whitespace().count() <= 120,
        "{description}"
    );
    let schema = Value::Object(tool.input_schema.as_ref().clone());
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], json!(["code"]));
    // The limits are said in words (the schema carries no bounds: they cost tokens on every
    // request, and each rejection names its limit).
    let timeout = schema["properties"]["timeout_ms"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(timeout.contains("max 60000"), "{timeout}");
    let annotations = tool.annotations.as_ref().expect("annotations");
    assert_eq!(annotations.read_only_hint, Some(false));
    assert_eq!(annotations.idempotent_hint, Some(false));
    assert_eq!(annotations.open_world_hint, Some(false));
}
