//! No request waits on another session's work: `search_tools`, `resources/list` and
//! `resources/read`, which wait for an upstream that is still starting, never hold up an
//! `execute` on any session, and arrival order is kept per session only.
//!
//! Requests are written raw, in one write, so their arrival order is known; the upstream is
//! the fixture gated on a file, so the catalogue requests are provably pending until the test
//! creates it.

use std::process::Stdio;

use mcpk_tests::upstream::{TempDir, fixture_entry, utf8, write_config};
use mcpk_tests::{REQUEST_DEADLINE, binary_path};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

/// Creates the gate file when dropped, so the gated fixture never outlives a failed test.
struct OpenOnDrop(std::path::PathBuf);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

async fn next_response(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> Value {
    let line = tokio::time::timeout(REQUEST_DEADLINE, lines.next_line())
        .await
        .expect("hang guard: a response within the request deadline")
        .expect("read a response")
        .expect("the server closed stdout early");
    serde_json::from_str(&line).expect("a JSON response")
}

fn call(id: u64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
}

#[tokio::test]
async fn execute_on_any_session_completes_while_catalogue_requests_wait_for_a_starting_upstream() {
    let dir = TempDir::new("cross-session");
    let gate = dir.join("gate");
    let _open_at_the_end = OpenOnDrop(gate.clone());
    let config = write_config(
        &dir,
        json!({"slow": fixture_entry(&["--start-after-file", utf8(&gate)])}),
    );
    let mut child = tokio::process::Command::new(binary_path())
        .args(["serve", "--config", utf8(&config)])
        .env_remove("REDIS_URL")
        // Long enough that a catalogue request cannot give up before the gate opens.
        .args(["--upstream-connect-timeout-ms", "600000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mcp-kernel serve");
    let requests = [
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "mcpk-tests", "version": "0"}
        }}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        call(1, "search_tools", json!({"query": "echo"})),
        json!({"jsonrpc": "2.0", "id": 2, "method": "resources/list"}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "resources/read",
               "params": {"uri": "tool://slow/echo.d.ts"}}),
        call(
            4,
            "execute",
            json!({"code": "return 'other'", "session": "other"}),
        ),
        call(5, "execute", json!({"code": "return 'default'"})),
        call(
            6,
            "execute",
            json!({"code": "return 'other again'", "session": "other"}),
        ),
    ];
    let mut input = String::new();
    for request in &requests {
        input.push_str(&request.to_string());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).await.expect("write");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(
        next_response(&mut lines).await["id"],
        0,
        "the initialize response comes first"
    );

    // The gate is closed: only the three executes can answer, in per-session order for
    // `other` (4 before 6); the default session's 5 may come anywhere among them.
    let mut answered = Vec::new();
    for _ in 0..3 {
        let response = next_response(&mut lines).await;
        let id = response["id"].as_u64().expect("a numeric id");
        assert!(
            (4..=6).contains(&id),
            "request {id} answered before the upstream started: {response}"
        );
        assert_eq!(response["result"]["isError"], false, "{response}");
        answered.push(id);
    }
    let position = |id| answered.iter().position(|&a| a == id).unwrap();
    assert!(position(4) < position(6), "per-session order: {answered:?}");
    assert!(
        !gate.exists(),
        "the catalogue requests were pending all along"
    );

    // Opening the gate lets the upstream start and the catalogue requests finish.
    std::fs::write(&gate, "").expect("open the gate");
    let mut rest = std::collections::HashMap::new();
    for _ in 0..3 {
        let response = next_response(&mut lines).await;
        rest.insert(response["id"].as_u64().expect("a numeric id"), response);
    }
    let search = &rest[&1]["result"]["content"][0]["text"];
    assert!(
        search.as_str().is_some_and(|text| text.contains(".echo(")),
        "search_tools waited for the upstream and found its tools: {search}"
    );
    assert!(rest[&2]["result"]["resources"].is_array(), "{:?}", rest[&2]);
    assert!(
        rest[&3]["result"]["contents"][0]["text"]
            .as_str()
            .is_some_and(|text| text.contains("echo")),
        "{:?}",
        rest[&3]
    );
    drop(stdin);
}
