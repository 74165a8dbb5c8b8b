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
    // Lone surrogates in log messages are written as `\uXXXX` escapes (hex digits in either
    // case); everything else is kept as is.
    assert_eq!(logs[0].1.to_lowercase(), "😀\\ud800\u{0}\u{2028}");
    assert!(result.text().ends_with(&format!("\n[log] {}", logs[0].1)));
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
