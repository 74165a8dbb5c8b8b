//! Sessions that last, through the real binary: LRU hibernation at `max_live_sessions`, the
//! busy refusal, the session modes, listing and closing, and — with the test Redis — restart
//! recovery, two replicas, the lease, and tenants.

use mcpk_tests::{ExecuteResult as _, REQUEST_DEADLINE, Server, kill_9, unique_prefix};
use serde_json::{Value, json};

/// `mcp.sessions.list()` as `{name: {live, state_bytes}}`.
async fn sessions(server: &Server, from: &str) -> serde_json::Map<String, Value> {
    let listed = server
        .execute_in(from, "return await mcp.sessions.list()")
        .await;
    assert!(!listed.is_error(), "{}", listed.text());
    listed
        .value()
        .as_array()
        .expect("mcp.sessions.list() gives an array")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_owned(),
                json!({"live": s["live"], "state_bytes": s["state_bytes"]}),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_least_recently_used_idle_session_hibernates_at_max_live_sessions() {
    let server = Server::start_with(&["--max-live-sessions", "2", "--warm-workers", "0"]).await;
    let first = server.execute_in("a", "mcp.state.v = 'kept'; 1").await;
    assert!(!first.is_error(), "{}", first.text());
    let a_worker = server.workers();
    assert_eq!(a_worker.len(), 1, "one session, one worker: {a_worker:?}");
    assert!(!server.execute_in("b", "1").await.is_error());
    // `c` needs room: `a` is the least recently used idle session.
    assert!(!server.execute_in("c", "1").await.is_error());
    server
        .wait_for_worker_exit(a_worker[0], REQUEST_DEADLINE)
        .await;
    let listed = sessions(&server, "c").await;
    assert_eq!(listed["a"]["live"], json!(false), "{listed:?}");
    assert_eq!(listed["c"]["live"], json!(true), "{listed:?}");
    // A call to the hibernated session restores it transparently.
    let resumed = server.execute_in("a", "mcp.state.v").await;
    assert_eq!(resumed.value(), &json!("kept"), "{}", resumed.text());
}

#[tokio::test]
async fn a_call_is_refused_naming_the_limit_only_when_every_live_session_is_busy() {
    let server = Server::start_with(&["--max-live-sessions", "1", "--warm-workers", "0"]).await;
    assert!(!server.execute_in("a", "1").await.is_error());
    let before = server.worker_cpu_ticks();
    let spin = server.execute_with(json!({
        "code": "while (true) {}",
        "session": "a",
        "timeout_ms": 4000,
    }));
    let refused = async {
        server.wait_for_spinning_worker(&before).await;
        server.execute_in("b", "1").await
    };
    let (spun, refused) = tokio::join!(spin, refused);
    assert_eq!(spun.error_name(), "TimeoutError", "{}", spun.text());
    assert_eq!(
        refused.error_name(),
        "SessionLimitError",
        "{}",
        refused.text()
    );
    refused.assert_message_contains(&["max_live_sessions=1"]);
    // Once `a` is idle again it hibernates to make room.
    assert!(!server.execute_in("b", "1").await.is_error());
}

#[tokio::test]
async fn resume_only_and_new_sessions_follow_session_mode() {
    let server = Server::start().await;
    let missing = server
        .execute_with(json!({"code": "1", "session": "ghost", "session_mode": "resume"}))
        .await;
    assert_eq!(
        missing.error_name(),
        "SessionNotFound",
        "{}",
        missing.text()
    );
    missing.assert_message_contains(&["ghost"]);
    let created = server
        .execute_with(json!({"code": "mcp.state.a = 1; 1", "session": "s", "session_mode": "new"}))
        .await;
    assert!(!created.is_error(), "{}", created.text());
    let again = server
        .execute_with(json!({"code": "1", "session": "s", "session_mode": "new"}))
        .await;
    assert_eq!(again.error_name(), "SessionExists", "{}", again.text());
    let resumed = server
        .execute_with(json!({"code": "mcp.state.a", "session": "s", "session_mode": "resume"}))
        .await;
    assert_eq!(resumed.value(), &json!(1));
    let bad = server
        .execute_with(json!({"code": "1", "session_mode": "sometimes"}))
        .await;
    assert_eq!(bad.error_name(), "ArgumentError");
    bad.assert_message_contains(&["session_mode", "sometimes"]);
}

#[tokio::test]
async fn an_agent_lists_and_closes_its_sessions() {
    let server = Server::start_with(&["--warm-workers", "0"]).await;
    assert!(!server.execute("1").await.is_error());
    assert!(
        !server
            .execute_in("x", "mcp.state.rows = [1, 2, 3]; 1")
            .await
            .is_error()
    );
    let x_worker = *server.workers().last().expect("x's worker");
    let listed = sessions(&server, "default").await;
    assert_eq!(listed["x"]["live"], json!(true), "{listed:?}");
    assert_eq!(listed["x"]["state_bytes"], json!(16), "{listed:?}");
    assert!(listed.contains_key("default"), "{listed:?}");

    let own = server
        .execute("return await mcp.sessions.close('default')")
        .await;
    assert!(own.is_error());
    own.assert_message_contains(&["cannot close the session this call runs in"]);
    let closed = server.execute("return await mcp.sessions.close('x')").await;
    assert_eq!(closed.value(), &json!(true), "{}", closed.text());
    server
        .wait_for_worker_exit(x_worker, REQUEST_DEADLINE)
        .await;
    assert!(!sessions(&server, "default").await.contains_key("x"));
    let unknown = server
        .execute("return await mcp.sessions.close('never')")
        .await;
    assert_eq!(unknown.value(), &json!(false));
    // Closing frees the name: the next call starts an empty session.
    let fresh = server.execute_in("x", "mcp.state.rows ?? 'empty'").await;
    assert_eq!(fresh.value(), &json!("empty"));

    // The same list, as `session://` resources for a person in the Inspector.
    let resources = server
        .client()
        .list_all_resources()
        .await
        .expect("resources/list");
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert!(uris.contains(&"session://x"), "{uris:?}");
    assert!(uris.contains(&"session://default"), "{uris:?}");
    let read = server
        .client()
        .read_resource(rmcp::model::ReadResourceRequestParams::new("session://x"))
        .await
        .expect("read session://x");
    let text = mcpk_tests::resource_text(&read);
    let info: Value = serde_json::from_str(&text).expect("session:// is JSON");
    assert_eq!(info["name"], "x");
    assert_eq!(info["live"], true);
}

#[tokio::test]
async fn named_sessions_survive_kill_9_of_the_server_with_redis() {
    let prefix = unique_prefix();
    let server = Server::start_redis(&prefix, &[]).await;
    let set = server
        .execute_in("keep", "mcp.state.n = 41; mcp.state.k = {a: [1, 2]}; 1")
        .await;
    assert!(!set.is_error(), "{}", set.text());
    assert!(
        !server
            .execute_in("keep", "mcp.state.n++; 1")
            .await
            .is_error()
    );
    kill_9(server.pid());
    drop(server);
    let server = Server::start_redis(&prefix, &[]).await;
    let resumed = server
        .execute_in("keep", "[mcp.state.n, mcp.state.k, Object.keys(mcp.state)]")
        .await;
    assert_eq!(
        resumed.value(),
        &json!([42, {"a": [1, 2]}, ["n", "k"]]),
        "{}",
        resumed.text()
    );
}

#[tokio::test]
async fn two_replicas_serve_one_session_in_turn() {
    let prefix = unique_prefix();
    let (a, b) = tokio::join!(
        Server::start_redis(&prefix, &[]),
        Server::start_redis(&prefix, &[])
    );
    assert!(
        !a.execute_in("s", "mcp.state.who = ['a']; 1")
            .await
            .is_error()
    );
    let on_b = b
        .execute_in("s", "mcp.state.who.push('b'); mcp.state.who")
        .await;
    assert_eq!(on_b.value(), &json!(["a", "b"]), "{}", on_b.text());
    // `a` still has a live worker holding ['a']: it must notice that `b` committed since.
    let on_a = a
        .execute_in("s", "mcp.state.who.push('a2'); mcp.state.who")
        .await;
    assert_eq!(on_a.value(), &json!(["a", "b", "a2"]), "{}", on_a.text());
    let again = b.execute_in("s", "mcp.state.who").await;
    assert_eq!(again.value(), &json!(["a", "b", "a2"]));
}

#[tokio::test]
async fn a_replica_waits_for_the_lease_within_its_deadline_then_reports_session_busy() {
    let prefix = unique_prefix();
    let (a, b) = tokio::join!(
        Server::start_redis(&prefix, &["--warm-workers", "0"]),
        Server::start_redis(&prefix, &[])
    );
    assert!(!a.execute_in("s", "mcp.state.n = 1; 1").await.is_error());
    let before = a.worker_cpu_ticks();
    let spin =
        a.execute_with(json!({"code": "while (true) {}", "session": "s", "timeout_ms": 5000}));
    let blocked = async {
        a.wait_for_spinning_worker(&before).await;
        b.execute_with(json!({"code": "mcp.state.n = 2; 1", "session": "s", "timeout_ms": 300}))
            .await
    };
    let (spun, blocked) = tokio::join!(spin, blocked);
    assert_eq!(spun.error_name(), "TimeoutError", "{}", spun.text());
    assert_eq!(blocked.error_name(), "SessionBusy", "{}", blocked.text());
    blocked.assert_message_contains(&["local/s", "lease"]);
    // Neither the timed-out call nor the refused one committed anything.
    let after = b.execute_in("s", "mcp.state.n").await;
    assert_eq!(after.value(), &json!(1), "{}", after.text());
}

#[tokio::test]
async fn tenants_do_not_share_sessions_or_skills() {
    let prefix = unique_prefix();
    let (one, two) = tokio::join!(
        Server::start_redis(&prefix, &["--tenant", "one"]),
        Server::start_redis(&prefix, &["--tenant", "two"])
    );
    assert!(
        !one.execute_in(
            "s",
            "mcp.state.secret = 'one'; await mcp.skills.save('hello', () => 'hi from one'); 1"
        )
        .await
        .is_error()
    );
    let other = two
        .execute_in("s", "[mcp.state.secret ?? null, typeof skills.hello]")
        .await;
    assert_eq!(
        other.value(),
        &json!([null, "undefined"]),
        "{}",
        other.text()
    );
    let same = one
        .execute_in(
            "t",
            "[await skills.hello(), (await mcp.sessions.list()).some(s => s.name === 's')]",
        )
        .await;
    assert_eq!(
        same.value(),
        &json!(["hi from one", true]),
        "{}",
        same.text()
    );
}

#[tokio::test]
async fn a_session_closed_on_another_replica_starts_anew_or_is_not_found_here() {
    let prefix = unique_prefix();
    let (a, b) = tokio::join!(
        Server::start_redis(&prefix, &[]),
        Server::start_redis(&prefix, &[])
    );
    assert!(!a.execute_in("cs", "mcp.state.v = 'A'; 1").await.is_error());
    let closed = b.execute("return await mcp.sessions.close('cs')").await;
    assert_eq!(closed.value(), &json!(true), "{}", closed.text());
    // `a` still holds a live worker with v = 'A': the store says the session is gone.
    let resumed = a
        .execute_with(json!({"code": "1", "session": "cs", "session_mode": "resume"}))
        .await;
    assert_eq!(
        resumed.error_name(),
        "SessionNotFound",
        "{}",
        resumed.text()
    );
    let fresh = a.execute_in("cs", "mcp.state.v ?? 'fresh'").await;
    assert_eq!(fresh.value(), &json!("fresh"), "{}", fresh.text());
}

#[tokio::test]
async fn closing_a_session_that_runs_a_call_on_another_replica_is_refused() {
    let prefix = unique_prefix();
    let (a, b) = tokio::join!(
        Server::start_redis(&prefix, &["--warm-workers", "0"]),
        Server::start_redis(&prefix, &[])
    );
    assert!(!a.execute_in("cs", "mcp.state.v = 0; 1").await.is_error());
    let before = a.worker_cpu_ticks();
    let running = a.execute_with(json!({
        "code": "const t = Date.now(); while (Date.now() - t < 3000) {} mcp.state.v = 1; return 'done'",
        "session": "cs",
    }));
    let close = async {
        a.wait_for_spinning_worker(&before).await;
        b.execute("return await mcp.sessions.close('cs')").await
    };
    let (ran, refused) = tokio::join!(running, close);
    assert_eq!(ran.value(), &json!("done"), "{}", ran.text());
    assert!(refused.is_error(), "{}", refused.text());
    refused.assert_message_contains(&["cs", "busy", "another replica"]);
    let after = b.execute_in("cs", "mcp.state.v").await;
    assert_eq!(after.value(), &json!(1), "{}", after.text());
}
