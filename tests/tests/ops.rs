//! Operating `serve --http`: `/healthz`, `/readyz` and `/metrics` (no token needed), and the
//! drain on SIGTERM: new requests refused, the call in progress finishes, exit status 0.

use mcpk_tests::ExecuteResult as _;
use mcpk_tests::http::{HttpServer, write_auth_file};
use mcpk_tests::upstream::{
    TempDir, fixture_entry, free_port, utf8, wait_for_listener, write_config,
};
use serde_json::json;

/// The value of the Prometheus sample `name{labels}` (labels as rendered, in order), if any.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    })
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served_and_count_what_happened() {
    let dir = TempDir::new("ops-metrics");
    let config = write_config(&dir, json!({"fixture": fixture_entry(&[])}));
    let auth = write_auth_file(&dir, &[("ops", "ops-token", None)]);
    let server = HttpServer::start(&["--config", utf8(&config), "--auth-file", utf8(&auth)]).await;
    // Probes need no token.
    assert_eq!(server.get("healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(server.get("readyz").await, (200, "ready\n".to_owned()));
    let client = server.client(Some("ops-token")).await;
    let ok = client
        .execute("return (await servers.fixture.echo({value: 1})).value")
        .await;
    assert_eq!(ok.value(), 1, "{}", ok.text());
    let custom = client
        .execute("class Oops extends Error { name = 'Oops' + Math.random() }; throw new Oops('x')")
        .await;
    assert!(custom.is_error());
    let missing = client
        .execute("return await servers.fixture.nope({})")
        .await;
    assert!(missing.is_error());

    let (status, metrics) = server.get("metrics").await;
    assert_eq!(status, 200);
    let count = |series: &str| {
        sample(&metrics, series).unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
    };
    assert_eq!(
        count(r#"mcpk_executions_total{status="ok",cache="none"}"#),
        1.0
    );
    // Agent code's own error names do not grow the label set.
    assert_eq!(
        count(r#"mcpk_executions_total{status="Error",cache="none"}"#),
        1.0
    );
    assert_eq!(
        count(r#"mcpk_executions_total{status="ToolError",cache="none"}"#),
        1.0
    );
    assert_eq!(count("mcpk_execute_duration_seconds_count"), 3.0);
    assert_eq!(
        count(r#"mcpk_host_calls_total{server="fixture",tool="echo",outcome="ok"}"#),
        1.0
    );
    assert_eq!(
        count(r#"mcpk_host_calls_total{server="(unknown)",tool="(unknown)",outcome="error"}"#),
        1.0
    );
    assert_eq!(count(r#"mcpk_upstream_up{server="fixture"}"#), 1.0);
    assert_eq!(count(r#"mcpk_sessions{state="live"}"#), 1.0);
    assert_eq!(count("mcpk_queue_depth"), 0.0);
    assert_eq!(count("mcpk_execute_in_progress"), 0.0);
    assert!(count("mcpk_worker_starts_total") >= 1.0);
    assert!(metrics.contains("# HELP mcpk_queue_depth"), "{metrics}");
}

#[tokio::test]
async fn readyz_says_when_redis_is_unreachable() {
    let port = free_port();
    let mut redis = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server (scripts/test.sh installs it)");
    wait_for_listener(std::net::SocketAddr::from(([127, 0, 0, 1], port))).await;
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = mcpk_tests::unique_prefix();
    let server = HttpServer::start(&["--redis-url", &url, "--redis-key-prefix", &prefix]).await;
    assert_eq!(server.get("readyz").await.0, 200);
    redis.kill().await.expect("kill redis-server");
    let (status, body) = server.get("readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("the session store is unreachable"), "{body}");
    // Liveness is not readiness: the process still serves.
    assert_eq!(server.get("healthz").await.0, 200);
}

#[tokio::test]
async fn sigterm_lets_the_call_in_progress_finish_refuses_new_requests_and_exits_0() {
    let dir = TempDir::new("ops-drain");
    let config = write_config(&dir, json!({"fixture": fixture_entry(&[])}));
    let mut server =
        HttpServer::start(&["--config", utf8(&config), "--shutdown-grace-secs", "60"]).await;
    let mcpk_tests::http::HttpClient {
        service,
        mut progress,
    } = server.client(None).await;
    // The call says it started (a progress notification), then works for 3 s in an upstream.
    let mut params = rmcp::model::CallToolRequestParams::new("execute").with_arguments(
        json!({"code": "mcp.progress(0.1, 'started'); await servers.fixture.slow({ms: 3000}); return 'finished'"})
            .as_object()
            .cloned()
            .expect("object"),
    );
    params.meta = Some(rmcp::model::RequestMetaObject::with_progress_token(
        rmcp::model::ProgressToken(rmcp::model::NumberOrString::String("drain".into())),
    ));
    let call = service.peer().call_tool(params);
    tokio::pin!(call);
    let started = async {
        loop {
            let note = progress.recv().await.expect("progress");
            if note.message.as_deref() == Some("started") {
                return;
            }
        }
    };
    // Wait for the call to be running (the event), polling the call too.
    let mut progress = std::pin::pin!(started);
    tokio::select! {
        () = &mut progress => {}
        done = &mut call => panic!("the call ended before it started: {done:?}"),
    }
    server.terminate();
    // Draining: not ready, and a new request is refused; the call in progress goes on.
    let ready = async {
        loop {
            let (status, body) = server.get("readyz").await;
            if status == 503 {
                return body;
            }
        }
    };
    let body = tokio::select! {
        body = ready => body,
        done = &mut call => panic!("the call ended before the drain began: {done:?}"),
    };
    assert!(body.contains("draining"), "{body}");
    let refused = mcpk_tests::http::HttpClient::connect(server.url(), None).await;
    assert!(
        refused.is_err(),
        "a new MCP session was accepted while draining"
    );
    let result = tokio::time::timeout(mcpk_tests::REQUEST_DEADLINE, call)
        .await
        .unwrap_or_else(|_| panic!("no answer to the call in progress:\n{}", server.stderr()))
        .expect("the call in progress finished");
    assert_eq!(result.value(), "finished");
    let status = server.wait().await;
    assert!(status.success(), "{status:?}\n{}", server.stderr());
}
