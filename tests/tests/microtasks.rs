//! Job-queue order: a mix of `then`, `await` and thenables must run in the order Node runs it.

use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::{Value, json};

/// The snippet, as the body of an async function.
const SNIPPET: &str = r#"const order = [];
const thenable = {
  then(resolve) {
    order.push('thenable.then');
    resolve('T');
  },
};
Promise.resolve()
  .then(() => order.push('p1'))
  .then(() => order.push('p2'))
  .then(() => order.push('p3'))
  .then(() => order.push('p4'));
(async () => {
  order.push('async start');
  await null;
  order.push('after await null');
  const v = await thenable;
  order.push('after await thenable ' + v);
  await Promise.resolve();
  order.push('after await promise');
})();
Promise.resolve(thenable).then((v) => order.push('resolved thenable ' + v));
new Promise((resolve) => resolve(Promise.resolve('P'))).then((v) => order.push('nested ' + v));
order.push('sync end');
for (let i = 0; i < 10; i++) await null;
return order;"#;

#[tokio::test]
async fn microtasks_run_in_node_order() {
    // Node v20.20.2 prints this for SNIPPET run as the body of an AsyncFunction:
    //   node -e 'new (async () => {}).constructor(SNIPPET)().then(r => console.log(JSON.stringify(r)))'
    let node_order = json!([
        "async start",
        "sync end",
        "p1",
        "after await null",
        "thenable.then",
        "p2",
        "thenable.then",
        "resolved thenable T",
        "p3",
        "after await thenable T",
        "nested P",
        "p4",
        "after await promise"
    ]);
    let server = Server::start().await;
    let result = server.execute(SNIPPET).await;
    assert!(!result.is_error(), "{}", result.text());
    assert_eq!(result.value(), &node_order);
}

#[tokio::test]
async fn a_resolved_thenable_is_adopted_after_one_job() {
    // Node v20.20.2: ["sync","then called","p1","value 7","p2"]
    let server = Server::start().await;
    let result = server
        .execute(
            "const out = [];\n\
             const t = { then(r) { out.push('then called'); r(7); } };\n\
             Promise.resolve(t).then(v => out.push('value ' + v));\n\
             Promise.resolve().then(() => out.push('p1')).then(() => out.push('p2'));\n\
             out.push('sync');\n\
             for (let i = 0; i < 5; i++) await null;\n\
             return out",
        )
        .await;
    let expected: Value = json!(["sync", "then called", "p1", "value 7", "p2"]);
    assert_eq!(result.value(), &expected);
}

#[tokio::test]
async fn a_rejection_the_code_never_handles_is_logged_as_an_error() {
    let server = Server::start().await;
    // Two forgotten rejections (one from a host call that fails), one handled late (not
    // reported: a handler was attached before the call ended), and the call itself succeeds.
    let result = server
        .execute(
            "Promise.reject(new TypeError('forgotten')); \
             servers.no_such_server.some_tool({}); \
             const late = Promise.reject(new Error('handled later')); \
             await null; \
             try { await late; } catch (e) {} \
             return 'done';",
        )
        .await;
    assert!(!result.is_error(), "{}", result.text());
    assert_eq!(result.value(), &json!("done"));
    let logs = result.logs();
    let errors: Vec<&str> = logs
        .iter()
        .filter(|(level, _)| level == "error")
        .map(|(_, message)| message.as_str())
        .collect();
    assert_eq!(errors.len(), 2, "{logs:?}");
    assert_eq!(errors[0], "Uncaught (in promise) TypeError: forgotten");
    assert!(
        errors[1].starts_with("Uncaught (in promise) ") && errors[1].contains("no_such_server"),
        "{logs:?}"
    );
    assert!(
        !logs.iter().any(|(_, m)| m.contains("handled later")),
        "{logs:?}"
    );

    // A failing call reports its own error once, not as an unhandled rejection too; the
    // tracker starts empty on the next call.
    let failed = server.execute("throw new RangeError('mine')").await;
    assert!(failed.is_error());
    assert_eq!(failed.error_name(), "RangeError");
    assert!(failed.logs().is_empty(), "{:?}", failed.logs());
}
