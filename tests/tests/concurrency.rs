//! Sessions run in parallel; the calls of one session run one at a time, in order.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::future::join_all;
use mcpk_tests::{ExecuteResult as _, Server};
use rmcp::model::{CallToolRequest, CallToolRequestParams, ClientRequest};
use rmcp::service::PeerRequestOptions;
use serde_json::json;
use tokio::time::Instant;

#[tokio::test]
async fn a_second_session_answers_while_the_first_is_stuck() {
    let server = Server::start().await;
    // Both sessions hold a worker before the race starts.
    server.execute_in("a", "return 0").await;
    server.execute_in("b", "return 0").await;

    let before = server.worker_cpu_ticks();
    let stuck = async {
        let result = server
            .execute_with(json!({"code": "while(true){}", "session": "a", "timeout_ms": 5000}))
            .await;
        (result, Instant::now())
    };
    let quick = async {
        // The stuck call is really running (its worker burns CPU) before b starts.
        server.wait_for_spinning_worker(&before).await;
        let result = server.execute_in("b", "return 1").await;
        (result, Instant::now())
    };
    let ((stuck, stuck_done), (quick, quick_done)) = tokio::join!(stuck, quick);
    assert_eq!(stuck.error_name(), "TimeoutError");
    assert_eq!(quick.value(), &json!(1));
    assert!(
        quick_done < stuck_done,
        "session b finished {:?} after session a",
        quick_done - stuck_done
    );
}

#[tokio::test]
async fn a_ping_answers_while_a_call_is_stuck() {
    let server = Server::start().await;
    server.execute("return 0").await;
    let before = server.worker_cpu_ticks();
    let stuck = async {
        server
            .execute_with(json!({"code": "while(true){}", "timeout_ms": 5000}))
            .await;
        Instant::now()
    };
    let ping = async {
        server.wait_for_spinning_worker(&before).await;
        server.ping().await;
        Instant::now()
    };
    let (stuck_done, ping_done) = tokio::join!(stuck, ping);
    assert!(ping_done < stuck_done);
}

#[tokio::test]
async fn a_hundred_concurrent_calls_over_ten_sessions_are_serialised_per_session() {
    const SESSIONS: usize = 10;
    const CALLS: u64 = 10;
    let server = Server::start().await;
    let code = "mcp.state.n = (mcp.state.n ?? 0) + 1; await null; return {n: mcp.state.n}";
    let calls = (0..SESSIONS)
        .flat_map(|s| (0..CALLS).map(move |_| s))
        .map(|s| {
            let server = &server;
            async move {
                let session = format!("counter-{s}");
                let result = server.execute_in(&session, code).await;
                assert!(!result.is_error(), "{session}: {}", result.text());
                assert_eq!(result.structured()["session"], session.as_str());
                (s, result.value()["n"].as_u64().expect("n"))
            }
        });
    let results = join_all(calls).await;
    assert_eq!(results.len(), SESSIONS * CALLS as usize);
    for s in 0..SESSIONS {
        let seen: BTreeSet<u64> = results
            .iter()
            .filter(|(session, _)| *session == s)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(
            seen,
            (1..=CALLS).collect::<BTreeSet<_>>(),
            "session counter-{s} saw {seen:?}"
        );
        let result = server
            .execute_in(&format!("counter-{s}"), "return mcp.state.n")
            .await;
        assert_eq!(result.value(), &json!(CALLS));
    }
}

#[tokio::test]
async fn pipelined_calls_on_one_session_run_in_arrival_order() {
    const CALLS: u64 = 30;
    let call = |id: u64, code: String| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "execute", "arguments": {"code": code}}})
    };
    let mut requests: Vec<_> = (1..=CALLS)
        .map(|i| call(i, format!("(mcp.state.order ??= []).push({i}); return {i}")))
        .collect();
    // A rejected call in the middle must not hold up the calls behind it.
    requests.insert(
        10,
        json!({"jsonrpc": "2.0", "id": 1000, "method": "tools/call",
                               "params": {"name": "execute", "arguments": {"code": 1}}}),
    );
    requests.push(call(CALLS + 1, "return mcp.state.order".to_owned()));

    let responses = mcpk_tests::pipelined(&requests).await;
    assert_eq!(responses[&1000]["result"]["isError"], true);
    for i in 1..=CALLS {
        assert_eq!(
            responses[&i]["result"]["structuredContent"]["result"],
            json!(i),
            "{}",
            responses[&i]
        );
    }
    assert_eq!(
        responses[&(CALLS + 1)]["result"]["structuredContent"]["result"],
        json!((1..=CALLS).collect::<Vec<_>>())
    );
}

/// The cancel is sent while the loop provably runs (its worker burns CPU), and the test fails
/// unless that worker is killed: the call's own timeout (60 s) is far beyond the 30 s the
/// test waits for the worker to go.
#[tokio::test]
async fn a_cancelled_call_stops_and_its_session_rolls_back() {
    let server = Server::start().await;
    server.execute_in("c", "mcp.state.n = 1").await;
    let before = server.worker_cpu_ticks();

    let mut params = CallToolRequestParams::new("execute");
    params = params.with_arguments(
        json!({"code": "mcp.state.n = 99; while(true){}", "session": "c", "timeout_ms": 60000})
            .as_object()
            .cloned()
            .unwrap(),
    );
    let handle = server
        .client()
        .send_cancellable_request(
            ClientRequest::CallToolRequest(CallToolRequest::new(params)),
            PeerRequestOptions::no_options(),
        )
        .await
        .expect("send the call");
    let worker = server.wait_for_spinning_worker(&before).await;
    handle
        .cancel(Some("the test cancels it".into()))
        .await
        .expect("cancel");
    server
        .wait_for_worker_exit(worker, Duration::from_secs(30))
        .await;

    let result = server.execute_in("c", "return mcp.state.n").await;
    assert_eq!(result.value(), &json!(1), "state after the cancelled call");
}
