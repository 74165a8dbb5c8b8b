//! `mcp.state` kept per top-level key: commits that cannot brick a session, key order kept end
//! to end (also through a worker replacement), no reference into live state surviving a call,
//! and a worker whose memory does not grow call by call with a large state.

use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::{Value, json};

/// Kills the session's only worker and waits until the server no longer lists it, so the
/// next call has to restore the committed state into a new worker.
async fn replace_the_worker(server: &Server) {
    let workers = server.workers();
    assert_eq!(workers.len(), 1, "one session, no warm pool: {workers:?}");
    mcpk_tests::kill_9(workers[0]);
    server
        .wait_for_worker_exit(workers[0], mcpk_tests::REQUEST_DEADLINE)
        .await;
}

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn a_poisoned_to_json_cannot_brick_the_session() {
    let server = Server::start_with(&["--warm-workers", "0"]).await;
    // The prototypes are frozen (lockdown): the pollution itself is refused.
    let result = server
        .execute("mcp.state.a = 1; Object.prototype.toJSON = () => 'x'; return 'ok'")
        .await;
    assert_eq!(result.error_name(), "TypeError", "{}", result.text());
    assert_eq!(
        server
            .execute("return [mcp.state, ({}).toJSON]")
            .await
            .value(),
        &json!([{}, null])
    );
    // A value's own toJSON still applies (JSON.stringify semantics): the array serialises
    // through it, as a string.
    let result = server
        .execute("mcp.state.a = 1; const list = [1]; list.toJSON = () => 'y'; mcp.state.list = list; return 1")
        .await;
    assert!(!result.is_error(), "{}", result.text());
    let result = server.execute("return mcp.state").await;
    assert_eq!(result.value(), &json!({"a": 1, "list": "y"}));
    // A new worker restores exactly that.
    replace_the_worker(&server).await;
    let result = server.execute("return mcp.state").await;
    assert_eq!(result.value(), &json!({"a": 1, "list": "y"}));
}

#[tokio::test]
async fn state_that_could_not_be_restored_is_refused_and_rolled_back() {
    let server = Server::start().await;
    server.execute("mcp.state.n = 1").await;
    for (code, needles) in [
        (
            "mcp.state.n = 2; mcp.state = 5",
            &["StateError", "mcp.state must be a plain object", "number"][..],
        ),
        (
            "mcp.state = [1, 2]",
            &["mcp.state must be a plain object", "an array"],
        ),
        (
            "mcp.state = new Date(0)",
            &["mcp.state must be a plain object", "prototype"],
        ),
        (
            "mcp.state.bad = { get x() { throw new Error('nope') } }",
            &["mcp.state.bad", "nope"],
        ),
        (
            "mcp.state.p = new Proxy({}, { ownKeys() { throw new Error('trap') } })",
            &["mcp.state.p", "trap"],
        ),
        (
            "const r = Proxy.revocable({}, {}); r.revoke(); mcp.state = r.proxy",
            &["StateError", "mcp.state"],
        ),
        (
            "mcp.state = new Proxy({ a: 1 }, { ownKeys() { throw new Error('keys trap') } })",
            &["keys trap"],
        ),
        (
            "mcp.state.n = 3; mcp.state.cycle = {}; mcp.state.cycle.self = mcp.state.cycle",
            &["mcp.state.cycle.self", "cycle"],
        ),
        (
            "mcp.state.n = 3; mcp.state.big = 1n",
            &["mcp.state.big", "BigInt"],
        ),
        (
            "mcp.state.n = 3; mcp.state.d = (() => { let o = {}; for (let i = 0; i < 150; i++) o = {o}; return o })()",
            &["mcp.state.d", "nested more than"],
        ),
    ] {
        // `return 1`: the failure must come from the commit, not from serialising the result.
        let result = server.execute(&format!("{code}; return 1")).await;
        assert!(result.is_error(), "{code}: {}", result.text());
        let text = result.text();
        for needle in needles {
            assert!(text.contains(needle), "{code}: {needle:?} not in {text}");
        }
        assert!(text.contains("rolled back"), "{code}: {text}");
        let state = server.execute("return mcp.state").await;
        assert_eq!(state.value(), &json!({"n": 1}), "after {code}");
    }
}

#[tokio::test]
async fn the_state_object_cannot_be_frozen_or_given_fixed_keys() {
    let server = Server::start().await;
    server.execute("mcp.state.n = 1").await;
    for code in [
        "Object.freeze(mcp.state)",
        "Object.defineProperty(mcp.state, 'k', { value: 1, configurable: false })",
        "Object.setPrototypeOf(mcp.state, null)",
    ] {
        let result = server.execute(code).await;
        assert!(result.is_error(), "{code}: {}", result.text());
        assert_eq!(
            result.error_name(),
            "TypeError",
            "{code}: {}",
            result.text()
        );
    }
    let result = server.execute("mcp.state.n++; return mcp.state").await;
    assert_eq!(result.value(), &json!({"n": 2}));
}

#[tokio::test]
async fn object_key_order_is_kept_in_results() {
    let server = Server::start().await;
    let result = server
        .execute("return {b: 1, a: 2, nested: {z: [{y: 1, x: 2}], c: 0}}")
        .await;
    assert_eq!(
        result.text(),
        r#"{"b":1,"a":2,"nested":{"z":[{"y":1,"x":2}],"c":0}}"#
    );
    let value = result.value();
    assert_eq!(keys(value), ["b", "a", "nested"]);
    assert_eq!(keys(&value["nested"]), ["z", "c"]);
    assert_eq!(keys(&value["nested"]["z"][0]), ["y", "x"]);
}

#[tokio::test]
async fn object_key_order_is_kept_in_state_and_through_a_restore() {
    let server = Server::start_with(&["--warm-workers", "0"]).await;
    server
        .execute("mcp.state.z = 1; mcp.state.b = {d: 1, c: 2}; mcp.state.a = 3; mcp.state['2'] = 0; mcp.state['1'] = 0")
        .await;
    // Array-index keys first, ascending, then the others in insertion order, as in JS.
    let expected = json!({"1": 0, "2": 0, "z": 1, "b": {"d": 1, "c": 2}, "a": 3});
    let result = server.execute("return mcp.state").await;
    assert_eq!(
        result.text(),
        r#"{"1":0,"2":0,"z":1,"b":{"d":1,"c":2},"a":3}"#
    );
    // A key deleted and added again moves to the end; one assigned keeps its place.
    server
        .execute("delete mcp.state.z; mcp.state.z = 4; mcp.state.b = {c: 5, d: 6}")
        .await;
    let after = r#"{"1":0,"2":0,"b":{"c":5,"d":6},"a":3,"z":4}"#;
    assert_eq!(server.execute("return mcp.state").await.text(), after);
    replace_the_worker(&server).await;
    let result = server.execute("return mcp.state").await;
    assert_eq!(result.text(), after);
    assert_ne!(result.value(), &expected);
    assert_eq!(keys(result.value()), ["1", "2", "b", "a", "z"]);
}

#[tokio::test]
async fn a_crash_after_a_commit_restores_it_exactly() {
    let server = Server::start_with(&["--warm-workers", "0"]).await;
    let code = r"mcp.state.text = 'a\ud800b'; mcp.state['\udc00'] = [1.5, -0, 1e300, null, true];
        mcp.state.nested = {deep: [[[{}]]], s: '😀\u2028\u0000'}; mcp.state.__proto__ = {p: 1};
        mcp.state.empty = {}; mcp.state.gone = 1; delete mcp.state.gone; return 1";
    let result = server.execute(code).await;
    assert!(!result.is_error(), "{}", result.text());
    let before = server.execute("return mcp.state").await.text().to_owned();
    assert_eq!(
        before,
        r#"{"text":"a\ud800b","\udc00":[1.5,0,1e+300,null,true],"nested":{"deep":[[[{}]]],"s":"😀\u2028\u0000"},"__proto__":{"p":1},"empty":{}}"#
            .replace("\\u2028", "\u{2028}")
    );
    replace_the_worker(&server).await;
    assert_eq!(server.execute("return mcp.state").await.text(), before);
    let result = server
        .execute(r"return [mcp.state.text === 'a\ud800b', Object.getPrototypeOf(mcp.state) === Object.prototype, mcp.state.__proto__.p]")
        .await;
    assert_eq!(result.value(), &json!([true, true, 1]));
}

#[tokio::test]
async fn failed_calls_roll_back_values_deletions_and_order() {
    let server = Server::start().await;
    server
        .execute("mcp.state.a = 1; mcp.state.b = {list: [1]}")
        .await;
    let result = server
        .execute("delete mcp.state.a; mcp.state.a = 9; mcp.state.c = 1; mcp.state.b.list.push(2); throw new Error('x')")
        .await;
    assert!(result.is_error());
    assert_eq!(
        server.execute("return mcp.state").await.text(),
        r#"{"a":1,"b":{"list":[1]}}"#
    );
    // A rolled-back replacement too.
    server
        .execute("mcp.state = {other: true}; await null; throw 1")
        .await;
    assert_eq!(
        server.execute("return mcp.state").await.text(),
        r#"{"a":1,"b":{"list":[1]}}"#
    );
    // And a committed replacement.
    server.execute("mcp.state = {other: true}").await;
    assert_eq!(
        server
            .execute("return [mcp.state, 'a' in mcp.state]")
            .await
            .value(),
        &json!([{"other": true}, false])
    );
}

#[tokio::test]
async fn no_reference_into_state_survives_a_call() {
    let server = Server::start().await;
    server.execute("mcp.state.list = [1]").await;
    // The global object is frozen (lockdown): a reference cannot be parked in a global, and
    // the refused call is rolled back.
    let result = server
        .execute("mcp.state.list.push(2); globalThis.kept = mcp.state.list; return 0")
        .await;
    assert_eq!(result.error_name(), "TypeError", "{}", result.text());
    assert_eq!(
        server.execute("return mcp.state.list").await.value(),
        &json!([1])
    );
    server.execute("mcp.state.list.push(2); return 0").await;
    let result = server.execute("return [typeof kept, mcp.state.list]").await;
    assert_eq!(result.value(), &json!(["undefined", [1, 2]]));
}

#[tokio::test]
async fn reading_every_key_and_values_json_omits() {
    let server = Server::start().await;
    server
        .execute(
            "mcp.state.a = 1; mcp.state.b = 'x'; mcp.state.f = () => 1; mcp.state.u = undefined",
        )
        .await;
    let result = server
        .execute("return [Object.keys(mcp.state), Object.entries(mcp.state), JSON.stringify(mcp.state), 'b' in mcp.state, 'f' in mcp.state]")
        .await;
    assert_eq!(
        result.value(),
        &json!([
            ["a", "b"],
            [["a", 1], ["b", "x"]],
            r#"{"a":1,"b":"x"}"#,
            true,
            false
        ])
    );
    // Assigning undefined deletes a committed key.
    server.execute("mcp.state.a = undefined").await;
    assert_eq!(
        server.execute("return mcp.state").await.value(),
        &json!({"b": "x"})
    );
}

fn rss_kib(pid: u32) -> u64 {
    mcpk_tests::rss_kib(pid).expect("the worker's VmRSS")
}

#[tokio::test]
async fn worker_memory_does_not_grow_call_by_call_with_a_large_state() {
    let server = Server::start_with(&["--warm-workers", "0"]).await;
    // 50,000 rows, about 1.8 MB of JSON.
    let result = server
        .execute("mcp.state.rows = Array.from({length: 50000}, (_, i) => ({id: i, name: 'row ' + i, ok: i % 2 === 0})); return JSON.stringify(mcp.state).length")
        .await;
    assert!(
        result.value().as_u64().unwrap() > 1_800_000,
        "{}",
        result.text()
    );
    let worker = server.workers()[0];
    let calls = [
        "return 1",
        "return mcp.state.rows.length",
        "mcp.state.counter = (mcp.state.counter ?? 0) + 1",
    ];
    for code in calls {
        assert!(!server.execute(code).await.is_error());
    }
    let first = rss_kib(worker);
    for i in 0..40 {
        let result = server.execute(calls[i % calls.len()]).await;
        assert!(!result.is_error(), "{}", result.text());
    }
    assert_eq!(
        server.workers(),
        [worker],
        "the same worker served every call"
    );
    let last = rss_kib(worker);
    assert!(
        last <= first + first / 10,
        "worker RSS grew from {first} KiB to {last} KiB over 40 calls"
    );
    let result = server.execute("return mcp.state.counter").await;
    assert_eq!(result.value(), &json!(14));
}

#[tokio::test]
async fn the_garbage_of_a_call_is_collected_before_the_next() {
    let server = Server::start_with(&["--warm-workers", "0"]).await;
    // A dropped 100,000-entry Map: Boa's collector does not count the map's storage, so before
    // the worker collected after every call this grew RSS by ~12 MB per call.
    let code =
        "const m = new Map(); for (let i = 0; i < 100000; i++) m.set(i, 'v' + i); return m.size";
    // Two calls to warm the allocator up (its arenas reach their working size by then).
    for _ in 0..2 {
        assert_eq!(server.execute(code).await.value(), &json!(100_000));
    }
    let worker = server.workers()[0];
    let first = rss_kib(worker);
    for _ in 0..8 {
        assert_eq!(server.execute(code).await.value(), &json!(100_000));
    }
    let last = rss_kib(worker);
    // Uncollected, 8 calls would add ~96 MiB; allow the allocator less than two calls' worth.
    assert!(
        last <= first + 16 * 1024,
        "worker RSS grew from {first} KiB to {last} KiB over 8 calls"
    );
}
