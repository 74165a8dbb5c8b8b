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
