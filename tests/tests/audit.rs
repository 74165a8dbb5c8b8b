//! The audit log (`serve --audit-log FILE`) and `mcp-kernel audit verify|report`, through the
//! real binary: one chained line per `execute`, tampering named by line, the report's counts.

use std::path::Path;

use mcpk_tests::upstream::{TempDir, fixture_entry, run_binary, utf8, write_config};
use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The log's lines, as text.
fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_else(|e| panic!("read {}: {e}", log.display()))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `mcp-kernel audit <args>`: exit code and stdout.
fn audit(args: &[&str]) -> (i32, String) {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    let output = run_binary(&all, &[]);
    (
        output.status.code().expect("exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// `lines` written to a new file `name` in `dir`, each with its newline.
fn copy_with(dir: &TempDir, name: &str, lines: &[String]) -> String {
    let path = dir.write(
        name,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    );
    utf8(&path).to_owned()
}

/// Checks that `line` is sealed (its `hash` is the SHA-256 of its bytes without the `hash`
/// member) and links to `prev`; returns its hash.
fn check_link(line: &str, prev: &str) -> String {
    let (body, hash) = line
        .rsplit_once(",\"hash\":\"")
        .unwrap_or_else(|| panic!("no hash member last: {line}"));
    let hash = hash.strip_suffix("\"}").expect("hash is the last member");
    assert_eq!(sha256_hex(format!("{body}}}").as_bytes()), hash, "{line}");
    let parsed: Value = serde_json::from_str(line).expect("a line is JSON");
    assert_eq!(parsed["prev"], json!(prev), "{line}");
    hash.to_owned()
}

#[tokio::test]
async fn every_execute_is_one_chained_line_that_verify_and_report_read() {
    let dir = TempDir::new("audit");
    let config = write_config(&dir, json!({"fixture": fixture_entry(&[])}));
    let log = dir.join("audit.jsonl");
    let mut server =
        Server::start_with_upstreams(&config, &["--audit-log", utf8(&log)], &[], &["fixture"])
            .await;
    assert_eq!(server.execute("return 1 + 1").await.value(), &json!(2));
    let thrown = server.execute("throw new TypeError('boom')").await;
    assert_eq!(thrown.error_name(), "TypeError");
    // `echo` is read-only, so the second identical call is a cache hit.
    let code = "return (await servers.fixture.echo({value: {z: 7, a: [1, 2]}})).value.z";
    let ran = server.execute_in("reports", code).await;
    assert_eq!(ran.value(), &json!(7), "{}", ran.text());
    let hit = server.execute_in("reports", code).await;
    assert_eq!(hit.structured()["cached"], json!("l1"));
    let rejected = server.execute_with(json!({"code": 5})).await;
    assert_eq!(rejected.error_name(), "ArgumentError");
    server.stop().await;

    let written = lines(&log);
    assert_eq!(written.len(), 5, "{written:#?}");
    let records: Vec<Value> = written
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut prev = GENESIS.to_owned();
    for (i, (line, record)) in written.iter().zip(&records).enumerate() {
        prev = check_link(line, &prev);
        assert_eq!(record["seq"], json!(i + 1));
        assert_eq!(record["event"], json!("execute"));
        assert_eq!(record["tenant"], json!("local"));
        assert!(record["duration_ms"].is_u64(), "{line}");
        // RFC 3339 UTC with milliseconds: 2025-01-02T03:04:05.678Z.
        let time = record["time"].as_str().unwrap();
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.as_bytes()[19] == b'.',
            "{time}"
        );
    }
    let field = |i: usize, name: &str| records[i][name].clone();
    let statuses: Vec<Value> = (0..5).map(|i| field(i, "status")).collect();
    assert_eq!(
        statuses,
        [
            json!("ok"),
            json!("TypeError"),
            json!("ok"),
            json!("ok"),
            json!("rejected")
        ]
    );
    let sessions: Vec<Value> = (0..5).map(|i| field(i, "session")).collect();
    assert_eq!(
        sessions,
        [
            json!("default"),
            json!("default"),
            json!("reports"),
            json!("reports"),
            Value::Null
        ]
    );
    assert_eq!(field(0, "code_sha256"), json!(sha256_hex(b"return 1 + 1")));
    assert_eq!(field(2, "code_sha256"), json!(sha256_hex(code.as_bytes())));
    assert_eq!(field(4, "code_sha256"), Value::Null);
    assert_eq!(
        (field(0, "result_bytes"), field(1, "result_bytes")),
        (json!(1), json!(0))
    );
    // The run called the tool (arguments hashed in canonical form: keys sorted, no
    // whitespace); the cache hit called nothing and says which tier answered.
    assert_eq!(
        field(2, "tools"),
        json!([{
            "server": "fixture",
            "tool": "echo",
            "args_sha256": sha256_hex(br#"{"value":{"a":[1,2],"z":7}}"#),
        }])
    );
    assert_eq!(
        (field(2, "cache"), field(3, "cache")),
        (Value::Null, json!("l1"))
    );
    assert_eq!(field(3, "tools"), json!([]));

    // A restart continues the chain from the last line, here as another tenant.
    let mut again = Server::start_with(&["--audit-log", utf8(&log), "--tenant", "acme"]).await;
    assert_eq!(again.execute("return 'x'").await.value(), &json!("x"));
    again.stop().await;
    let written = lines(&log);
    assert_eq!(written.len(), 6);
    check_link(&written[5], &prev);
    let last: Value = serde_json::from_str(&written[5]).unwrap();
    assert_eq!((&last["seq"], &last["tenant"]), (&json!(6), &json!("acme")));

    let (code, out) = audit(&["verify", utf8(&log)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact: 6 lines"), "{out}");
    assert!(out.contains("cannot be detected"), "{out}");

    // Each kind of tampering, in a copy, names its first bad line.
    let mut altered = written.clone();
    altered[1] = altered[1].replace("TypeError", "RangeError");
    let mut removed = written.clone();
    removed.remove(2);
    let mut swapped = written.clone();
    swapped.swap(3, 4);
    for (name, copy, line, why) in [
        ("altered.jsonl", altered, 2, "altered"),
        ("removed.jsonl", removed, 3, "removed"),
        (
            "swapped.jsonl",
            swapped,
            4,
            "seq 4 is at line 5: lines were reordered",
        ),
    ] {
        let path = copy_with(&dir, name, &copy);
        let (code, out) = audit(&["verify", &path]);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(
            out.contains(&format!("broken at line {line}: ")),
            "{name}: {out}"
        );
        assert!(out.contains(why), "{name}: {out}");
    }
    let (code, _) = audit(&["verify", utf8(&dir.join("missing.jsonl"))]);
    assert_eq!(code, 2);

    let (code, out) = audit(&["report", utf8(&log)]);
    assert_eq!(code, 0, "{out}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(rows.contains(&vec!["acme", "1", "0", "0"]), "{out}");
    assert!(rows.contains(&vec!["local", "5", "2", "1"]), "{out}");
    assert!(
        rows.contains(&vec!["local", "fixture", "echo", "1"]),
        "{out}"
    );

    // --since (inclusive) and --until (exclusive), on a copy whose times are set apart: day
    // i for line i (the report reads times, not hashes).
    let dated: Vec<String> = written
        .iter()
        .zip(&records)
        .enumerate()
        .map(|(i, (line, record))| {
            let time = record["time"].as_str().unwrap_or_default();
            line.replace(time, &format!("2020-01-0{}T00:00:00.000Z", i + 1))
        })
        .chain(std::iter::once(written[5].clone()))
        .collect();
    let dated = copy_with(&dir, "dated.jsonl", &dated);
    let (code, out) = audit(&[
        "report",
        &dated,
        "--since",
        "2020-01-03T01:00:00+01:00",
        "--until",
        "2020-01-05T00:00:00Z",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(report["executions"], json!(2), "{report:#}");
    assert_eq!(
        report["tenants"],
        json!([{
            "tenant": "local",
            "executions": 2,
            "errors": 0,
            "cache_hits": 1,
            "tools": [{"server": "fixture", "tool": "echo", "calls": 1}],
            "tools_unlisted": 0,
        }])
    );
    let (code, out) = audit(&["report", &dated, "--since", "last tuesday"]);
    assert_eq!(code, 2, "{out}");
}

#[tokio::test]
async fn a_log_that_ends_inside_a_line_stops_the_server_naming_verify() {
    let dir = TempDir::new("audit-cut");
    let log = dir.write("audit.jsonl", "{\"seq\":1,\"time\":");
    let output = run_binary(&["serve", "--audit-log", utf8(&log)], &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("incomplete") && stderr.contains("mcp-kernel audit verify"),
        "{stderr}"
    );
}
