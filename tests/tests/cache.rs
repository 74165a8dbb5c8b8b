//! The result cache through the real binary: hits and misses, keys that follow what the code
//! read, a hit that applies the cached state, impure calls never cached, the `cache` option,
//! an L2 hit on a second replica sharing Redis, a namespace bump, and single-flight of identical
//! calls across sessions.

use mcpk_tests::{ExecuteResult as _, Server, unique_prefix};
use rmcp::model::CallToolResult;
use serde_json::{Value, json};

fn cached(result: &CallToolResult) -> Value {
    result
        .structured_content
        .as_ref()
        .map_or(Value::Null, |s| s["cached"].clone())
}

#[tokio::test]
async fn a_deterministic_call_is_answered_from_l1_the_second_time() {
    let server = Server::start().await;
    let code = "console.log('computing'); return [1, 2, 3].map(n => n * 2)";
    let first = server.execute_in("a", code).await;
    assert_eq!(first.value(), &json!([2, 4, 6]), "{}", first.text());
    assert_eq!(cached(&first), json!(false));
    let second = server.execute_in("a", code).await;
    assert_eq!(second.value(), &json!([2, 4, 6]));
    assert_eq!(cached(&second), json!("l1"));
    assert_eq!(second.logs(), first.logs(), "a hit replays the logs");
}

#[tokio::test]
async fn code_that_never_touched_state_hits_from_any_session_and_leaves_its_state_alone() {
    let server = Server::start().await;
    assert!(
        !server
            .execute_in("a", "mcp.state.x = 'a'; 1")
            .await
            .is_error()
    );
    assert!(
        !server
            .execute_in("b", "mcp.state.x = 'b'; 1")
            .await
            .is_error()
    );
    let code = "return 'pure'.toUpperCase()";
    assert_eq!(cached(&server.execute_in("a", code).await), json!(false));
    let hit = server.execute_in("b", code).await;
    assert_eq!((hit.value(), cached(&hit)), (&json!("PURE"), json!("l1")));
    let state = server.execute_in("b", "mcp.state.x").await;
    assert_eq!(state.value(), &json!("b"));
}

#[tokio::test]
async fn code_that_read_state_is_keyed_on_that_state() {
    let server = Server::start().await;
    assert!(
        !server
            .execute_in("a", "mcp.state.x = 'a'; 1")
            .await
            .is_error()
    );
    assert!(
        !server
            .execute_in("b", "mcp.state.x = 'b'; 1")
            .await
            .is_error()
    );
    let code = "return mcp.state.x + '!'";
    let on_a = server.execute_in("a", code).await;
    assert_eq!((on_a.value(), cached(&on_a)), (&json!("a!"), json!(false)));
    let on_b = server.execute_in("b", code).await;
    assert_eq!((on_b.value(), cached(&on_b)), (&json!("b!"), json!(false)));
    let again = server.execute_in("a", code).await;
    assert_eq!((again.value(), cached(&again)), (&json!("a!"), json!("l1")));
}

#[tokio::test]
async fn a_hit_applies_the_state_the_call_committed() {
    let server = Server::start().await;
    let code = "mcp.state.n = (mcp.state.n ?? 0) + 1; return mcp.state.n";
    let run = server.execute_in("s1", code).await;
    assert_eq!((run.value(), cached(&run)), (&json!(1), json!(false)));
    // A fresh session has the same (empty) state before the call: a hit, with its state.
    let hit = server.execute_in("s2", code).await;
    assert_eq!((hit.value(), cached(&hit)), (&json!(1), json!("l1")));
    let state = server.execute_in("s2", "JSON.stringify(mcp.state)").await;
    assert_eq!(state.value(), &json!("{\"n\":1}"), "{}", state.text());
    // From n = 1 the call has not run yet: a miss, and then 2.
    let next = server.execute_in("s2", code).await;
    assert_eq!((next.value(), cached(&next)), (&json!(2), json!(false)));
}

#[tokio::test]
async fn clocks_randomness_timers_and_errors_are_never_cached() {
    let server = Server::start().await;
    for code in [
        "return Date.now() > 0",
        "return new Date().getFullYear() > 2000",
        "return Math.random() < 2",
        "await new Promise(r => setTimeout(r, 1)); return 1",
        "throw new Error('no')",
    ] {
        for _ in 0..2 {
            let result = server.execute(code).await;
            assert_eq!(cached(&result), json!(false), "{code}: {}", result.text());
        }
    }
}

#[tokio::test]
async fn the_cache_option_turns_the_cache_off_or_refreshes_an_entry() {
    let server = Server::start().await;
    let code = "return 40 + 2";
    for _ in 0..2 {
        let off = server
            .execute_with(json!({"code": code, "cache": "off"}))
            .await;
        assert_eq!((off.value(), cached(&off)), (&json!(42), json!(false)));
    }
    let refreshed = server
        .execute_with(json!({"code": code, "cache": "refresh"}))
        .await;
    assert_eq!(cached(&refreshed), json!(false));
    let hit = server.execute(code).await;
    assert_eq!(cached(&hit), json!("l1"));
    let bad = server
        .execute_with(json!({"code": code, "cache": "sometimes"}))
        .await;
    assert_eq!(bad.error_name(), "ArgumentError");
    bad.assert_message_contains(&["cache", "sometimes"]);
}

#[tokio::test]
async fn a_second_replica_sharing_redis_hits_in_l2() {
    let prefix = unique_prefix();
    let (a, b) = tokio::join!(
        Server::start_redis(&prefix, &[]),
        Server::start_redis(&prefix, &[])
    );
    let code = "return 'shared'.repeat(3)";
    let run = a.execute(code).await;
    assert_eq!(cached(&run), json!(false), "{}", run.text());
    let hit = b.execute(code).await;
    assert_eq!(
        (hit.value(), cached(&hit)),
        (&json!("sharedsharedshared"), json!("l2"))
    );
    let again = b.execute(code).await;
    assert_eq!(cached(&again), json!("l1"));
}

#[tokio::test]
async fn a_namespace_bump_invalidates_what_every_replica_cached_before() {
    let prefix = unique_prefix();
    let (a, b) = tokio::join!(
        Server::start_redis(&prefix, &[]),
        Server::start_redis(&prefix, &["--cache-namespace", "0"])
    );
    let code = "return 'before the bump'.length";
    let run = a.execute(code).await;
    assert_eq!(cached(&run), json!(false), "{}", run.text());
    assert_eq!(cached(&b.execute(code).await), json!("l2"));
    // The replicas restarted with the bumped namespace: nothing cached before is found.
    drop((a, b));
    let bumped = Server::start_redis(&prefix, &["--cache-namespace", "1"]).await;
    let rerun = bumped.execute(code).await;
    assert_eq!((rerun.value(), cached(&rerun)), (&json!(15), json!(false)));
    assert_eq!(cached(&bumped.execute(code).await), json!("l1"));
}

#[tokio::test]
async fn a_read_only_tool_call_is_cached_and_any_other_tool_call_is_not() {
    let dir = mcpk_tests::upstream::TempDir::new("cache-tools");
    let config = mcpk_tests::upstream::write_config(
        &dir,
        json!({"fixture": mcpk_tests::upstream::fixture_entry(&[])}),
    );
    let server = Server::start_with_upstreams(&config, &[], &[], &["fixture"]).await;
    // `echo` is annotated readOnlyHint: true.
    let code = "return (await servers.fixture.echo({value: 7})).value";
    let run = server.execute(code).await;
    assert_eq!(
        (run.value(), cached(&run)),
        (&json!(7), json!(false)),
        "{}",
        run.text()
    );
    let hit = server.execute(code).await;
    assert_eq!((hit.value(), cached(&hit)), (&json!(7), json!("l1")));
    // `stderr_flood` is not read-only: every call runs it.
    for _ in 0..2 {
        let result = server
            .execute("return await servers.fixture.stderr_flood({bytes: 0})")
            .await;
        assert_eq!(
            (result.value(), cached(&result)),
            (&json!({"written": 0}), json!(false)),
            "{}",
            result.text()
        );
    }
}

/// A server with the fixture upstream, whose `rendezvous` tool (readOnlyHint) replies only once
/// `n` calls with the same key have arrived: it holds a run open until the test lets it go.
async fn with_fixture(label: &str) -> (mcpk_tests::upstream::TempDir, Server) {
    let dir = mcpk_tests::upstream::TempDir::new(label);
    let config = mcpk_tests::upstream::write_config(
        &dir,
        json!({"fixture": mcpk_tests::upstream::fixture_entry(&[])}),
    );
    let server = Server::start_with_upstreams(&config, &[], &[], &["fixture"]).await;
    (dir, server)
}

#[tokio::test]
async fn a_hundred_identical_calls_in_a_hundred_sessions_run_once() {
    let (_dir, server) = with_fixture("cache-single-flight").await;
    let key = unique_prefix();
    // The run waits at a rendezvous that only the releasing call below completes: without
    // single-flight, the identical calls would run too and pair up with each other there.
    let code = format!(
        "await servers.fixture.rendezvous({{key: '{key}', n: 2}}); return [1, 2, 3].length"
    );
    let calls = (0..100).map(|i| {
        server.execute_with(json!({"code": code, "session": format!("s{i}"), "timeout_ms": 60_000}))
    });
    let release = server.execute_with(json!({
        "code": format!("return (await servers.fixture.rendezvous({{key: '{key}', n: 2}})).met"),
        "session": "release",
        "cache": "off",
    }));
    let (results, released) = tokio::join!(futures::future::join_all(calls), release);
    assert_eq!(released.value(), &json!(2), "{}", released.text());
    let mut runs = 0;
    for result in &results {
        assert_eq!(result.value(), &json!(3), "{}", result.text());
        match cached(result) {
            Value::Bool(false) => runs += 1,
            hit => assert_eq!(hit, json!("l1"), "{}", result.text()),
        }
    }
    assert_eq!(
        runs, 1,
        "one call ran, the other 99 were answered from its entry"
    );
}

#[tokio::test]
async fn a_call_waiting_for_an_identical_one_gives_up_at_its_own_deadline() {
    let (_dir, server) = with_fixture("cache-follower-deadline").await;
    let key = unique_prefix();
    // The leader announces itself at rendezvous `started`, then waits at `release`.
    let code = format!(
        "await servers.fixture.rendezvous({{key: '{key}-started', n: 2}}); \
         await servers.fixture.rendezvous({{key: '{key}-release', n: 2}}); return 'led'"
    );
    let meet = |what: &str| {
        server.execute_with(json!({
            "code": format!("return (await servers.fixture.rendezvous({{key: '{key}-{what}', n: 2}})).met"),
            "session": format!("{what}-side"),
            "cache": "off",
        }))
    };
    let leader =
        server.execute_with(json!({"code": code, "session": "leader", "timeout_ms": 60_000}));
    let waiter = async {
        assert_eq!(meet("started").await.value(), &json!(2));
        // The leader is running: an identical call waits for it, until its own deadline.
        let waited = server
            .execute_with(json!({"code": code, "session": "waiter", "timeout_ms": 300}))
            .await;
        assert_eq!(waited.error_name(), "TimeoutError", "{}", waited.text());
        assert!(
            waited.error_message().contains("identical call"),
            "{}",
            waited.text()
        );
        assert_eq!(meet("release").await.value(), &json!(2));
    };
    let (led, ()) = tokio::join!(leader, waiter);
    assert_eq!(led.value(), &json!("led"), "{}", led.text());
    // The waiter's session is unharmed: the same code now hits the leader's entry.
    let hit = server.execute_in("waiter", &code).await;
    assert_eq!((hit.value(), cached(&hit)), (&json!("led"), json!("l1")));
}

#[tokio::test]
async fn a_catalogue_change_during_a_run_does_not_file_its_result_under_the_new_catalogue() {
    let (_dir, server) = with_fixture("cache-catalogue-mid-run").await;
    let key = unique_prefix();
    // Under the old catalogue (echo not yet grown) the run waits at a rendezvous, which the
    // test completes once it has changed the catalogue; under the new one it does not wait.
    let code = format!(
        "const loud = JSON.stringify((await mcp.tools.list({{server: 'fixture', detail: 'full'}})).find(t => t.name === 'echo')).includes('loud'); \
         const wait = what => servers.fixture.rendezvous({{key: `{key}-${{loud}}-${{what}}`, n: loud ? 1 : 2}}); \
         await wait('read'); await wait('release'); return loud"
    );
    let meet = |what: &str| {
        server.execute_with(json!({
            "code": format!("return (await servers.fixture.rendezvous({{key: '{key}-false-{what}', n: 2}})).met"),
            "session": "changer",
            "cache": "off",
        }))
    };
    let run = server.execute_with(json!({"code": code, "session": "reader", "timeout_ms": 60_000}));
    let change = async {
        // The run has read the old catalogue.
        assert_eq!(meet("read").await.value(), &json!(2));
        server.grow_fixture_echo("changer").await;
        assert_eq!(meet("release").await.value(), &json!(2));
    };
    let (ran, ()) = tokio::join!(run, change);
    assert_eq!(
        (ran.value(), cached(&ran)),
        (&json!(false), json!(false)),
        "{}",
        ran.text()
    );
    // The run began under the old catalogue, so its entry is not the new catalogue's: the same
    // code runs again and sees the new tools.
    let again = server.execute_in("reader", &code).await;
    assert_eq!(
        (again.value(), cached(&again)),
        (&json!(true), json!(false)),
        "{}",
        again.text()
    );
    assert_eq!(
        cached(&server.execute_in("reader", &code).await),
        json!("l1")
    );
}
