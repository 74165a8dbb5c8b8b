//! Real clients over `serve --http`: the official Python and TypeScript MCP SDKs run
//! `execute`, and the official conformance suite (`@modelcontextprotocol/conformance`) runs its
//! server scenarios. `scripts/test.sh` installs all three (tests/clients, tests/npm).

use std::path::PathBuf;

use mcpk_tests::http::{HttpServer, write_auth_file};
use mcpk_tests::upstream::{TempDir, node, utf8};
use serde_json::{Value, json};

/// A server that requires a bearer token, and that token.
async fn authenticated_server() -> (HttpServer, TempDir) {
    let dir = TempDir::new("http-sdk");
    let auth = write_auth_file(&dir, &[("sdk", "sdk-token", None)]);
    (HttpServer::start(&["--auth-file", utf8(&auth)]).await, dir)
}

/// Runs a client script and returns the JSON line it printed.
async fn run_client(program: PathBuf, script: &str, url: &str, code: &str) -> Value {
    let output = tokio::time::timeout(
        mcpk_tests::REQUEST_DEADLINE,
        tokio::process::Command::new(&program)
            .arg(mcpk_tests::workspace_root().join(script))
            .args([url, "sdk-token", code])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the client finished")
    .expect("the client ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed: {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn assert_executed(printed: &Value) {
    assert_eq!(
        printed["tools"],
        json!(["execute", "search_tools"]),
        "{printed}"
    );
    assert_eq!(printed["isError"], json!(false), "{printed}");
    assert_eq!(
        printed["structuredContent"]["result"],
        json!({"sum": 42}),
        "{printed}"
    );
}

#[tokio::test]
async fn the_python_sdk_client_runs_execute_over_http_with_a_bearer_token() {
    let (server, _dir) = authenticated_server().await;
    let printed = run_client(
        mcpk_tests::venv_python(),
        "tests/clients/python_client.py",
        server.url(),
        "return {sum: [20, 22].reduce((a, b) => a + b)}",
    )
    .await;
    assert_executed(&printed);
}

#[tokio::test]
async fn the_typescript_sdk_client_runs_execute_over_http_with_a_bearer_token() {
    let (server, _dir) = authenticated_server().await;
    let printed = run_client(
        PathBuf::from(node()),
        "tests/clients/ts_client.mjs",
        server.url(),
        "return {sum: [20, 22].reduce((a, b) => a + b)}",
    )
    .await;
    assert_executed(&printed);
}

#[tokio::test]
async fn the_conformance_suite_passes_every_scenario_that_applies() {
    let (server, _dir) = authenticated_server().await;
    let output = tokio::time::timeout(
        mcpk_tests::REQUEST_DEADLINE * 5,
        tokio::process::Command::new("bash")
            .arg(mcpk_tests::workspace_root().join("tests/conformance/run.sh"))
            .args([server.url(), "sdk-token"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the suite finished")
    .expect("the suite ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "conformance failures:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The scenarios that apply ran and passed (not skipped as not applicable).
    for scenario in [
        "server-initialize",
        "ping",
        "tools-list",
        "resources-list",
        "dns-rebinding-protection",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("PASS") && l.contains(scenario)),
            "{scenario} did not pass:\n{stdout}"
        );
    }
}
