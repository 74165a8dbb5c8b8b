//! The basic contract: async function body, last expression as the result, captured console.

use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::{Value, json};

/// A snippet beside the result it must produce.
const LAST_EXPRESSION_CASES: &[(&str, &str)] = &[
    ("1+1", "2"),
    ("let x = 3; x*2", "6"),
    ("'a' + 'b';", r#""ab""#),
    ("const o = {a: 1}; o", r#"{"a":1}"#),
    ("let y = 1;", "null"),
    ("function f() { return 1 }", "null"),
    ("", "null"),
    ("42; return 7", "7"),
    ("if (true) { return 'early' } 'late'", r#""early""#),
    ("return", "null"),
    ("const v = await Promise.resolve(5); v + 1", "6"),
    (
        "await null; [1, 'two', {three: 3}]",
        r#"[1,"two",{"three":3}]"#,
    ),
];

#[tokio::test]
async fn the_last_expression_is_the_result_unless_return_wins() {
    let server = Server::start().await;
    for (code, expected) in LAST_EXPRESSION_CASES {
        let result = server.execute(code).await;
        assert!(!result.is_error(), "{code}: {}", result.text());
        assert_eq!(result.text(), *expected, "{code}");
        let expected: Value = serde_json::from_str(expected).unwrap();
        assert_eq!(result.value(), &expected, "{code}");
    }
}

#[tokio::test]
async fn structured_content_has_result_logs_duration_and_session() {
    let server = Server::start().await;
    let result = server.execute("console.log('hi'); return {n: 1}").await;
    let structured = result.structured();
    assert_eq!(structured["result"], json!({"n": 1}));
    assert_eq!(
        structured["logs"],
        json!([{"level": "log", "message": "hi"}])
    );
    assert_eq!(structured["session"], "default");
    assert!(structured["duration_ms"].is_u64(), "{structured}");
    assert_eq!(result.text(), "{\"n\":1}\n[log] hi");

    let result = server.execute_in("other.session:1", "return 1").await;
    assert_eq!(result.structured()["session"], "other.session:1");
}

#[tokio::test]
async fn promise_chains_queued_before_return_run_before_the_call_ends() {
    let server = Server::start().await;
    let result = server
        .execute(
            "Promise.resolve().then(() => console.log('then 1')).then(() => console.log('then 2'));\n\
             (async () => { await null; console.log('async fn'); })();\n\
             return 'returned';",
        )
        .await;
    assert_eq!(result.value(), "returned");
    let messages: Vec<String> = result.logs().into_iter().map(|(_, m)| m).collect();
    assert_eq!(messages, ["then 1", "async fn", "then 2"]);
}

#[tokio::test]
async fn console_levels_are_captured_in_order() {
    let server = Server::start().await;
    let result = server
        .execute(
            "console.log('a', 1, {b: 2}); console.info('i'); console.warn('w');\n\
             console.error('e'); console.debug('d'); return null",
        )
        .await;
    let logs = result.logs();
    let levels: Vec<&str> = logs.iter().map(|(level, _)| level.as_str()).collect();
    assert_eq!(levels, ["log", "info", "warn", "error", "debug"]);
    assert!(logs[0].1.starts_with("a 1 "), "{:?}", logs[0]);
    assert_eq!(&logs[1].1, "i");
    assert!(
        result
            .text()
            .ends_with("\n[info] i\n[warn] w\n[error] e\n[debug] d"),
        "{}",
        result.text()
    );
}

#[tokio::test]
async fn console_output_past_max_log_bytes_is_cut_with_a_marker() {
    let server = Server::start_with(&["--max-log-bytes", "1000"]).await;
    let result = server
        .execute("for (let i = 0; i < 100; i++) console.log(String(i).padStart(3, '0') + 'x'.repeat(96)); return 'done'")
        .await;
    assert_eq!(result.value(), "done");
    let logs = result.logs();
    let (marker_level, marker) = logs.last().expect("logs");
    assert_eq!(marker_level, "warn");
    assert!(
        marker.contains("truncat") || marker.contains("dropped"),
        "{marker}"
    );
    let kept = &logs[..logs.len() - 1];
    assert!(
        !kept.is_empty() && kept.len() < 100,
        "{} lines kept",
        kept.len()
    );
    let kept_bytes: usize = kept.iter().map(|(_, m)| m.len()).sum();
    assert!(kept_bytes <= 1000, "{kept_bytes} bytes kept");
    // The first lines are the ones kept, in order.
    assert!(kept[0].1.starts_with("000x"), "{:?}", kept[0]);
    assert!(result.text().contains(marker.as_str()));
}

#[tokio::test]
async fn a_large_result_is_truncated_with_a_note() {
    let server = Server::start().await;
    let result = server.execute("return 'x'.repeat(100000)").await;
    assert!(!result.is_error(), "{}", result.text());
    let structured = result.structured();
    assert_eq!(
        structured["truncated"],
        json!({"total_bytes": 100_002, "limit_bytes": 32768})
    );
    let cut = structured["result"].as_str().expect("the cut JSON text");
    assert!(cut.len() <= 32768 && cut.len() > 32000, "{}", cut.len());
    assert!(cut.starts_with("\"xxx"));
    assert!(result.text().starts_with(cut));
    assert!(
        result.text().contains("Filter or summarise"),
        "{}",
        &result.text()[cut.len()..]
    );

    // A result under the limit is not marked.
    let result = server.execute("return 'x'.repeat(100)").await;
    assert!(result.structured().get("truncated").is_none());
}

#[tokio::test]
async fn a_thrown_error_reports_name_message_stack_and_logs() {
    let server = Server::start().await;
    let result = server
        .execute("console.log('before'); class MyError extends Error { constructor(m) { super(m); this.name = 'MyError' } }\nthrow new MyError('boom')")
        .await;
    assert!(result.is_error());
    assert_eq!(result.error_name(), "MyError");
    result.assert_message_contains(&["boom"]);
    assert!(
        result.text().starts_with("MyError: boom"),
        "{}",
        result.text()
    );
    assert!(
        result.text().ends_with("\n[log] before"),
        "{}",
        result.text()
    );
    assert_eq!(result.logs(), [("log".to_owned(), "before".to_owned())]);

    let result = server.execute("null.x").await;
    assert_eq!(result.error_name(), "TypeError");
    let result = server
        .execute("await Promise.reject(new RangeError('r'))")
        .await;
    assert_eq!(result.error_name(), "RangeError");
    let result = server.execute("this is not javascript").await;
    assert_eq!(result.error_name(), "SyntaxError");
    let result = server.execute("throw 'a string'").await;
    assert!(result.is_error());
    result.assert_message_contains(&["a string"]);
}

#[tokio::test]
async fn syntax_errors_point_into_the_users_code() {
    let server = Server::start().await;
    let result = server.execute("let x = 1;\nlet = = 2;").await;
    assert_eq!(result.error_name(), "SyntaxError", "{}", result.text());
    result.assert_message_contains(&["line 2"]);
    let result = server.execute("return ((").await;
    assert_eq!(result.error_name(), "SyntaxError");
    assert!(
        result
            .error_message()
            .contains("unexpected end of the code"),
        "{}",
        result.error_message()
    );
}

/// `_meta.tokens.returned` of a tool result.
fn returned_tokens(result: &rmcp::model::CallToolResult) -> u64 {
    result
        .meta
        .as_ref()
        .and_then(|meta| meta.get("tokens"))
        .and_then(|tokens| tokens["returned"].as_u64())
        .unwrap_or_else(|| panic!("no _meta.tokens.returned: {result:?}"))
}

#[tokio::test]
async fn each_result_says_in_meta_what_it_costs_the_model_in_tokens() {
    let server = Server::start().await;
    // Text plus structuredContent, estimated within 25% of the exact o200k_base count.
    let bpe = tiktoken_rs::o200k_base().expect("o200k_base");
    let within = |result: &rmcp::model::CallToolResult| {
        assert!(result.structured_content.is_some(), "{result:?}");
        let seen = result.seen_by_model();
        // Not in structuredContent, which the model reads.
        assert!(!seen.contains("tokens"), "{seen}");
        let exact = bpe.encode_ordinary(&seen).len() as f64;
        let reported = returned_tokens(result) as f64;
        assert!(
            (reported / exact - 1.0).abs() <= 0.25,
            "reported {reported}, exact {exact}: {seen}"
        );
    };
    within(&server.execute("return {answer: 42}").await);
    within(
        &server
            .execute("return Array.from({length: 400}, (_, i) => ({id: i, name: 'user-' + i, ok: i % 2 === 0}))")
            .await,
    );
    // Failures are counted too.
    let failed = server.execute("throw new Error('no')").await;
    assert!(failed.is_error());
    assert!(returned_tokens(&failed) > 0);
}

#[tokio::test]
async fn code_that_is_one_function_with_no_parameters_is_called() {
    let server = Server::start().await;
    // The form Cloudflare Code Mode sends: an async arrow function as the whole code.
    let called = server
        .execute("async () => {\n  const r = 6 * 7;\n  return r;\n}")
        .await;
    assert_eq!(called.value(), &json!(42), "{}", called.text());
    assert_eq!(
        server
            .execute("(function () { return 'plain'; });")
            .await
            .value(),
        &json!("plain")
    );
    // With parameters it is a value like any other (a function serialises to null).
    assert_eq!(server.execute("x => x").await.value(), &Value::Null);
    // A failure inside it reports the user's line.
    let failed = server.execute("async () => {\n  null.x;\n}").await;
    assert!(failed.is_error());
    assert!(failed.text().contains("code:2:"), "{}", failed.text());
}

#[tokio::test]
async fn reading_a_tool_call_without_await_says_to_add_await() {
    let dir = mcpk_tests::upstream::TempDir::new("missing-await");
    let config = mcpk_tests::upstream::write_config(
        &dir,
        json!({"fixture": mcpk_tests::upstream::fixture_entry(&[])}),
    );
    let server = Server::start_with_upstreams(&config, &[], &[], &["fixture"]).await;
    let missing = server
        .execute("servers.fixture.echo({value: [1, 2]}).value.length")
        .await;
    assert_eq!(missing.error_name(), "TypeError", "{}", missing.text());
    missing.assert_message_contains(&[
        "servers.fixture.echo(…) returns a Promise: add await",
        "(await servers.fixture.echo(…)).value",
    ]);
    // Awaited, chained, collected with Promise.all or returned as is, the promise works.
    let fine = server
        .execute(
            "const a = await servers.fixture.echo({value: 1}); \
             const [b, c] = await Promise.all([servers.fixture.echo({value: 2}), servers.fixture.echo({value: 3})]); \
             const d = await servers.fixture.echo({value: 4}).then(r => r.value); \
             return [a.value, b.value, c.value, d]",
        )
        .await;
    assert_eq!(fine.value(), &json!([1, 2, 3, 4]), "{}", fine.text());
    let returned = server
        .execute("return servers.fixture.echo({value: 5})")
        .await;
    assert_eq!(returned.value()["value"], json!(5), "{}", returned.text());
}

#[tokio::test]
async fn code_written_for_another_environment_gets_an_error_that_says_what_to_do_instead() {
    let server = Server::start().await;
    for (code, name, needles) in [
        (
            "const fs = require('fs')",
            "ReferenceError",
            &[
                "require is not defined — ",
                "not a module",
                "servers.<server>.<tool>(args)",
            ][..],
        ),
        (
            "import fs from 'fs'",
            "SyntaxError",
            &["not a module", "`return` the answer"][..],
        ),
        ("export default 1", "SyntaxError", &["not a module"][..]),
        (
            "await callTool('fs', 'read_file', {})",
            "ReferenceError",
            &["mcp.tools.call(server, tool, args)"][..],
        ),
        (
            "await search_tools('read')",
            "ReferenceError",
            &["mcp.tools.search(query)"][..],
        ),
        (
            "await fetch('https://example.com')",
            "ReferenceError",
            &["no network"][..],
        ),
    ] {
        let result = server.execute(code).await;
        assert_eq!(result.error_name(), name, "{code}: {}", result.text());
        result.assert_message_contains(needles);
    }
    // A name from an earlier call: locals do not persist.
    assert!(
        !server
            .execute("const rows = [1, 2]; rows.length")
            .await
            .is_error()
    );
    let later = server.execute("rows.length").await;
    assert_eq!(later.error_name(), "ReferenceError");
    later.assert_message_contains(&[
        "rows is not defined — names do not persist between calls",
        "mcp.state",
    ]);
}

#[tokio::test]
async fn meta_says_how_many_tokens_of_upstream_data_the_code_read_without_the_model() {
    let dir = mcpk_tests::upstream::TempDir::new("processed-tokens");
    // 2,000 log lines through server-filesystem; the code returns one number.
    let log: String = (0..2000)
        .map(|i| {
            format!(
                "2026-12-02T03:00:{:02}Z {} request {i} took {}ms\n",
                i % 60,
                ["INFO", "ERROR"][i % 2],
                i % 97
            )
        })
        .collect();
    dir.write("files/app.log", &log);
    let config = mcpk_tests::upstream::write_config(
        &dir,
        json!({"fs": mcpk_tests::upstream::filesystem_entry(&dir.join("files"))}),
    );
    let server = Server::start_with_upstreams(&config, &[], &[], &["fs"]).await;
    let path = mcpk_tests::upstream::utf8(&dir.join("files/app.log")).to_owned();
    let result = server
        .execute_with(json!({
            "code": format!("const {{content}} = await servers.fs.read_text_file({{path: {path:?}}}); \
                             return content.split('\\n').filter(l => l.includes('ERROR')).length"),
            "cache": "off",
        }))
        .await;
    assert_eq!(result.value(), &json!(1000), "{}", result.text());
    let tokens = &result
        .meta
        .as_ref()
        .and_then(|m| m.get("tokens"))
        .cloned()
        .expect("_meta.tokens");
    let processed = tokens["processed"].as_u64().expect("processed");
    let returned = tokens["returned"].as_u64().expect("returned");
    // The reply held the whole log (as JSON): within 25% of its exact token count.
    let bpe = tiktoken_rs::o200k_base().expect("o200k_base");
    let exact = bpe
        .encode_ordinary(&json!({"content": log}).to_string())
        .len() as f64;
    assert!(
        (processed as f64 / exact - 1.0).abs() <= 0.25,
        "processed {processed}, exact {exact}"
    );
    assert!(
        returned * 50 < processed,
        "returned {returned}, processed {processed}"
    );
    // A call that reads nothing upstream processed nothing.
    let plain = server.execute("return 1").await;
    assert_eq!(
        plain
            .meta
            .as_ref()
            .and_then(|m| m.get("tokens"))
            .map(|t| t["processed"].clone()),
        Some(json!(0))
    );
}

#[tokio::test]
async fn the_servers_proxies_turned_into_strings_say_how_to_use_them() {
    let server = Server::start().await;
    let described = server
        .execute("[String(servers), `${servers.fs}`, servers['my-server'] + '']")
        .await;
    assert_eq!(
        described.value(),
        &json!([
            "[servers: call upstream tools as await servers.<server>.<tool>(args); list them with await mcp.tools.list()]",
            "[servers.fs: call its tools as await servers.fs.<tool>(args); list them with await mcp.tools.list({server: \"fs\"})]",
            "[servers[\"my-server\"]: call its tools as await servers[\"my-server\"].<tool>(args); list them with await mcp.tools.list({server: \"my-server\"})]",
        ]),
        "{}",
        described.text()
    );
    // No tool named toString or valueOf was called (nothing was logged as an unhandled
    // rejection).
    assert!(described.logs().is_empty(), "{:?}", described.logs());
}
