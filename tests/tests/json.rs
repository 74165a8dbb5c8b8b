//! Results follow `JSON.stringify` semantics; what it cannot serialise is a clear error.

use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::json;

/// A snippet beside the JSON text `JSON.stringify` writes for its result.
const STRINGIFY_CASES: &[(&str, &str)] = &[
    ("return {toJSON() { return {a: 1} }}", r#"{"a":1}"#),
    ("return new Date(0)", r#""1970-01-01T00:00:00.000Z""#),
    ("return {get x() { return 5 }}", r#"{"x":5}"#),
    ("return NaN", "null"),
    ("return [NaN, Infinity, -Infinity]", "[null,null,null]"),
    ("return undefined", "null"),
    ("return {a: undefined, b: () => 1, c: 1}", r#"{"c":1}"#),
    ("return [undefined, () => 1]", "[null,null]"),
    ("return new Map([[1, 2]])", "{}"),
    (
        "return Object.assign(Object.create({inherited: 1}), {own: 2})",
        r#"{"own":2}"#,
    ),
    ("return [1e21, -0, 0.1]", "[1e+21,0,0.1]"),
    (
        "return 'quote\" backslash\\\\ newline\\n'",
        r#""quote\" backslash\\ newline\n""#,
    ),
];

#[tokio::test]
async fn results_use_json_stringify_semantics() {
    let server = Server::start().await;
    for (code, expected) in STRINGIFY_CASES {
        let result = server.execute(code).await;
        assert!(!result.is_error(), "{code}: {}", result.text());
        assert_eq!(result.text(), *expected, "{code}");
    }
}

async fn fails_naming(server: &Server, code: &str, needles: &[&str]) {
    let result = server.execute(code).await;
    assert!(result.is_error(), "{code}: {}", result.text());
    let message = result.error_message().to_lowercase();
    assert!(
        needles.iter().any(|needle| message.contains(needle)),
        "{code}: {} names none of {needles:?}",
        result.error_message()
    );
}

#[tokio::test]
async fn unserialisable_results_are_errors_and_the_session_survives() {
    let server = Server::start().await;
    server.execute("mcp.state.n = 1").await;
    fails_naming(&server, "return 1n", &["bigint"]).await;
    fails_naming(&server, "return {big: [2n]}", &["bigint"]).await;
    fails_naming(
        &server,
        "const a = {}; a.self = a; return a",
        &["cycl", "circular"],
    )
    .await;
    fails_naming(
        &server,
        "let o = null; for (let i = 0; i < 10000; i++) o = {o}; return o",
        &["depth", "deep", "nest"],
    )
    .await;
    fails_naming(
        &server,
        "let a = []; for (let i = 0; i < 10000; i++) a = [a]; return a",
        &["depth", "deep", "nest"],
    )
    .await;
    // Still alive, state intact.
    let result = server.execute("return ++mcp.state.n").await;
    assert_eq!(result.value(), &json!(2));
}
