//! `mcp.state`: persists across calls, committed on success, rolled back on failure.

use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::json;

#[tokio::test]
async fn state_persists_across_calls() {
    let server = Server::start().await;
    assert_eq!(server.execute("mcp.state.n = 1").await.value(), &json!(1));
    assert_eq!(
        server.execute("return ++mcp.state.n").await.value(),
        &json!(2)
    );
    assert_eq!(
        server.execute("return ++mcp.state.n").await.value(),
        &json!(3)
    );
    assert_eq!(
        server
            .execute("mcp.state.list = [1, {a: 'b'}]; return mcp.state")
            .await
            .value(),
        &json!({"n": 3, "list": [1, {"a": "b"}]})
    );
    assert_eq!(
        server.execute("return mcp.state").await.value(),
        &json!({"n": 3, "list": [1, {"a": "b"}]})
    );
}

#[tokio::test]
async fn locals_do_not_outlive_the_call() {
    let server = Server::start().await;
    let result = server.execute("var v = 1; let l = 2; return 0").await;
    assert_eq!(result.value(), &json!(0));
    let result = server.execute("return [typeof v, typeof l]").await;
    assert_eq!(result.value(), &json!(["undefined", "undefined"]));
}

#[tokio::test]
async fn a_throw_rolls_state_back_and_says_so() {
    let server = Server::start().await;
    server
        .execute("mcp.state.n = 1; mcp.state.keep = 'yes'")
        .await;
    let result = server
        .execute(
            "mcp.state.n = 99; delete mcp.state.keep; mcp.state.added = true;\n\
             console.log('about to throw');\n\
             function inner() { throw new Error('boom') }\n\
             inner()",
        )
        .await;
    assert!(result.is_error());
    assert_eq!(result.error_name(), "Error");
    let message = result.error_message();
    assert!(message.contains("boom"), "{message}");
    assert!(message.contains("rolled back"), "{message}");
    let stack = result.error()["stack"].as_str().expect("a stack");
    assert!(!stack.is_empty());
    assert_eq!(
        result.logs(),
        [("log".to_owned(), "about to throw".to_owned())]
    );

    let result = server.execute("return mcp.state").await;
    assert_eq!(result.value(), &json!({"n": 1, "keep": "yes"}));
}

#[tokio::test]
async fn an_error_in_a_call_that_never_wrote_state_does_not_mention_a_rollback() {
    let server = Server::start().await;
    server.execute("mcp.state.n = 1").await;
    let result = server
        .execute("const n = mcp.state.n; throw new Error('read only ' + n)")
        .await;
    assert_eq!(result.error_name(), "Error");
    assert_eq!(result.error_message(), "read only 1");
}

#[tokio::test]
async fn a_stack_names_the_users_lines_and_columns_and_not_the_wrapper() {
    let server = Server::start().await;
    let result = server
        .execute(
            "function inner(x) {\n  return x.missing.field;\n}\nconst f = () => inner({});\nf()",
        )
        .await;
    assert_eq!(result.error_name(), "TypeError");
    let stack = result.error()["stack"].as_str().expect("a stack");
    // The failing line and a caret under the failing column come first.
    let lines: Vec<&str> = stack.lines().collect();
    assert_eq!(lines[0], "  2 |   return x.missing.field;", "{stack}");
    assert_eq!(lines[1], "    |                    ^", "{stack}");
    let frames: Vec<&str> = lines[2..].iter().map(|l| l.trim()).collect();
    // Line and column of each frame as the user wrote them: `f()` is the last line, which
    // the kernel turned into `return f()`, and the wrapper's own frame is gone.
    assert_eq!(frames.len(), 3, "{stack}");
    assert!(frames[0].starts_with("at inner (code:2:"), "{stack}");
    assert!(frames[1].starts_with("at f (code:4:"), "{stack}");
    assert!(
        frames[2] == "at <main> (code:5:1)" || frames[2] == "at <main> (code:5:2)",
        "{stack}"
    );
}

#[tokio::test]
async fn a_rejected_await_rolls_state_back() {
    let server = Server::start().await;
    server.execute("mcp.state.n = 1").await;
    let result = server
        .execute("mcp.state.n = 2; await null; mcp.state.n = 3; await Promise.reject(new TypeError('nope'))")
        .await;
    assert_eq!(result.error_name(), "TypeError");
    result.assert_message_contains(&["rolled back"]);
    assert_eq!(
        server.execute("return mcp.state.n").await.value(),
        &json!(1)
    );
}

#[tokio::test]
async fn state_that_is_not_json_serialisable_fails_the_call_and_is_not_committed() {
    let server = Server::start().await;
    server.execute("mcp.state.n = 1").await;
    let result = server
        .execute("mcp.state.n = 2; mcp.state.big = 10n; return 'ok'")
        .await;
    assert!(result.is_error(), "{}", result.text());
    result.assert_message_contains(&["BigInt"]);
    assert_eq!(
        server.execute("return mcp.state").await.value(),
        &json!({"n": 1})
    );
}

#[tokio::test]
async fn sessions_have_separate_state() {
    let server = Server::start().await;
    server.execute_in("a", "mcp.state.who = 'a'").await;
    server.execute_in("b", "mcp.state.who = 'b'").await;
    assert_eq!(
        server.execute_in("a", "return mcp.state.who").await.value(),
        "a"
    );
    assert_eq!(
        server.execute_in("b", "return mcp.state.who").await.value(),
        "b"
    );
    assert_eq!(server.execute("return mcp.state").await.value(), &json!({}));
}

#[tokio::test]
async fn committed_state_is_plain_json_in_the_next_call() {
    let server = Server::start().await;
    server
        .execute("mcp.state.f = () => 1; mcp.state.d = new Date(0); mcp.state.u = undefined; 1")
        .await;
    let result = server
        .execute("return [typeof mcp.state.f, mcp.state.d, 'u' in mcp.state]")
        .await;
    assert_eq!(
        result.value(),
        &json!(["undefined", "1970-01-01T00:00:00.000Z", false])
    );
}

#[tokio::test]
async fn values_that_json_would_change_are_named_in_a_warning_at_commit() {
    let server = Server::start().await;
    let stored = server
        .execute(
            "mcp.state.byId = new Map([[1, 'a']]); mcp.state.when = new Date(0); \
             mcp.state.cfg = {tags: new Set([1]), ok: [1, 2]}; mcp.state.f = () => 1; \
             mcp.state.plain = {a: [1, {b: 'c'}]}; return 'stored'",
        )
        .await;
    assert_eq!(stored.value(), &json!("stored"), "{}", stored.text());
    let warnings: Vec<String> = stored
        .logs()
        .into_iter()
        .filter(|(level, _)| level == "warn")
        .map(|(_, message)| message)
        .collect();
    for needle in [
        "mcp.state.byId holds a Map, which mcp.state keeps as JSON: {}",
        "mcp.state.when holds a Date, which mcp.state keeps as JSON: its ISO string",
        "mcp.state.cfg.tags holds a Set",
        "mcp.state.f holds a function",
    ] {
        assert!(
            warnings.iter().any(|w| w.starts_with(needle)),
            "{needle}: {warnings:#?}"
        );
    }
    assert_eq!(warnings.len(), 4, "plain data is not named: {warnings:#?}");
    // What the next call finds, as the warnings said; reading it warns no more.
    let next = server
        .execute("[mcp.state.byId, mcp.state.when, 'f' in mcp.state, mcp.state.plain.a[1].b]")
        .await;
    assert_eq!(
        next.value(),
        &json!([{}, "1970-01-01T00:00:00.000Z", false, "c"]),
        "{}",
        next.text()
    );
    assert!(next.logs().is_empty(), "{:?}", next.logs());
}
