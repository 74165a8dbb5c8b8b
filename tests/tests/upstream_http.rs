//! A streamable-HTTP upstream: server-everything in `streamableHttp` mode on a free port,
//! reached through a recording proxy so the test sees the configured headers on the wire.

use std::net::SocketAddr;
use std::process::Stdio;

use mcpk_tests::upstream::{
    RecordingProxy, TempDir, free_port, node, npm_server, wait_for_listener, write_config,
};
use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::json;

#[tokio::test]
async fn a_streamable_http_upstream_gets_its_headers_and_its_tools_work() {
    let port = free_port();
    let _everything = tokio::process::Command::new(node())
        .arg(npm_server("server-everything"))
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start server-everything streamableHttp");
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_listener(target).await;
    let proxy = RecordingProxy::start(target).await;

    let dir = TempDir::new("http");
    let config = write_config(
        &dir,
        json!({"remote": {
            "url": format!("http://{}/mcp", proxy.addr()),
            "headers": {"Authorization": "Bearer ${MCPK_TEST_HTTP_TOKEN}", "X-Mcpk-Test": "header-check"}
        }}),
    );
    let server = Server::start_with_upstreams(
        &config,
        &[],
        &[("MCPK_TEST_HTTP_TOKEN", "tok-http-123")],
        &["remote"],
    )
    .await;

    let result = server
        .execute("(await mcp.tools.list({server: 'remote', detail: 'names'})).map(t => t.name)")
        .await;
    let names: Vec<&str> = result
        .value()
        .as_array()
        .expect("array")
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    for tool in [
        "echo",
        "get-sum",
        "get-tiny-image",
        "get-structured-content",
    ] {
        assert!(names.contains(&tool), "{tool} not in {names:?}");
    }
    let result = server
        .execute(
            "[await servers.remote.echo({message: 'over http'}), \
              await servers.remote['get-sum']({a: 2, b: 3})]",
        )
        .await;
    assert_eq!(
        result.value(),
        &json!(["Echo: over http", "The sum of 2 and 3 is 5."])
    );
    let result = server
        .execute("await servers.remote.echo({message: 7})")
        .await;
    assert_eq!(result.error_name(), "ToolError", "{}", result.text());
    result.assert_message_contains(&["`message`"]);

    // Every request on the wire carried the configured headers, the variable expanded.
    let sent = proxy.sent().to_ascii_lowercase();
    let requests = sent.matches(" /mcp http/1.1\r\n").count();
    assert!(requests >= 4, "{requests} requests: {sent}");
    assert_eq!(
        sent.matches("\r\nauthorization: bearer tok-http-123\r\n")
            .count(),
        requests,
        "{sent}"
    );
    assert_eq!(
        sent.matches("\r\nx-mcpk-test: header-check\r\n").count(),
        requests,
        "{sent}"
    );
}
