//! Strings that are hard to carry: astral characters, lone surrogates, NUL, U+2028.

use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::json;

/// 😀, a lone high surrogate, NUL and LINE SEPARATOR, as a JS string literal.
const HARD: &str = r"'\ud83d\ude00\ud800\u0000\u2028'";

#[tokio::test]
async fn hard_strings_survive_in_results() {
    let server = Server::start().await;
    let result = server.execute(&format!("return {HARD}")).await;
    // The text block is the engine's exact JSON: the emoji and U+2028 as characters, the lone
    // surrogate and NUL as escapes.
    assert_eq!(result.text(), "\"😀\\ud800\\u0000\u{2028}\"");
    // The structured result is parsed JSON: the lone surrogate becomes U+FFFD.
    assert_eq!(result.value(), "😀\u{fffd}\u{0}\u{2028}");

    let result = server
        .execute(&format!("return {{[{HARD}]: [{HARD}]}}"))
        .await;
    assert_eq!(
        result.value(),
        &json!({"😀\u{fffd}\u{0}\u{2028}": ["😀\u{fffd}\u{0}\u{2028}"]})
    );
    let result = server.execute(r"return '\udc00' + 'x' + '\ud800'").await;
    assert_eq!(result.text(), r#""\udc00x\ud800""#);
    assert_eq!(result.value(), "\u{fffd}x\u{fffd}");
}

#[tokio::test]
async fn hard_strings_survive_in_logs() {
    let server = Server::start().await;
    let result = server
        .execute(&format!("console.log({HARD}); return 0"))
        .await;
    let logs = result.logs();
    assert_eq!(logs.len(), 1);
    // A log line is text, not JSON: a lone surrogate becomes U+FFFD there, as in the
    // structured result (six literal characters `\ud800` would be indistinguishable from code
    // that logged exactly those).
    assert_eq!(logs[0].1, "😀\u{fffd}\u{0}\u{2028}");
    assert!(result.text().ends_with(&format!("\n[log] {}", logs[0].1)));
    // Objects are logged as JSON text, which keeps the escape, as the result's text block does.
    let result = server
        .execute(r"console.log({s: '\ud800'}); return 0")
        .await;
    assert_eq!(result.logs()[0].1, r#"{"s":"\ud800"}"#);
}

#[tokio::test]
async fn hard_strings_in_errors_follow_the_text_rule() {
    let server = Server::start().await;
    let result = server
        .execute(r"class E extends Error { constructor() { super('m\ud800'); this.name = 'N\udc00' } } throw new E()")
        .await;
    assert!(result.is_error());
    assert_eq!(result.error_name(), "N\u{fffd}");
    assert!(
        result.error_message().starts_with("m\u{fffd}"),
        "{}",
        result.error_message()
    );
    assert!(
        result.text().starts_with("N\u{fffd}: m\u{fffd}"),
        "{}",
        result.text()
    );
    let result = server.execute(r"throw '\ud800'").await;
    // A thrown string is described as JSON text: its escape is kept.
    result.assert_message_contains(&[r#"uncaught "\ud800""#]);
}

#[tokio::test]
async fn hard_strings_survive_as_state_keys_through_a_restore() {
    let server = Server::start_with(&["--warm-workers", "0"]).await;
    server
        .execute(&format!("mcp.state[{HARD}] = {HARD}; return 0"))
        .await;
    let worker = server.workers()[0];
    let status = std::process::Command::new("kill")
        .args(["-9", &worker.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let deadline = tokio::time::Instant::now() + mcpk_tests::REQUEST_DEADLINE;
    while server.workers().contains(&worker) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker {worker} did not exit"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let result = server
        .execute(&format!(
            "return [mcp.state[{HARD}] === {HARD}, Object.keys(mcp.state)[0] === {HARD}]"
        ))
        .await;
    assert_eq!(result.value(), &json!([true, true]));
    assert_ne!(server.workers(), [worker]);
}

#[tokio::test]
async fn hard_strings_survive_in_state() {
    let server = Server::start().await;
    server
        .execute(&format!("mcp.state.s = {HARD}; return 0"))
        .await;
    let result = server
        .execute(&format!(
            "return [mcp.state.s === {HARD}, mcp.state.s.length]"
        ))
        .await;
    assert_eq!(result.value(), &json!([true, 5]));
    // After a rolled-back call, the committed state still holds the exact string.
    server
        .execute("mcp.state.s = 'changed'; throw new Error('x')")
        .await;
    let result = server
        .execute(&format!("return mcp.state.s === {HARD}"))
        .await;
    assert_eq!(result.value(), &json!(true));
}

#[tokio::test]
async fn hard_strings_survive_in_code() {
    let server = Server::start().await;
    // The code itself carries the characters (not escapes) through JSON-RPC.
    let result = server
        .execute("const s = '😀\u{0}\u{2028}'; return [s.length, s.codePointAt(0)]")
        .await;
    assert_eq!(result.value(), &json!([4, 0x1F600]));
}
