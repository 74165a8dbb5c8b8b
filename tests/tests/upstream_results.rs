//! What code gets back from an upstream call: `isError` as a thrown `ToolError`, media blocks
//! with their base64 untouched, `structuredContent`, JSON text; argument checks before a call
//! is sent; and parallel calls that really overlap.

use mcpk_tests::upstream::{TempDir, call_directly, fixture_entry, fixture_path, write_config};
use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::{Value, json};

async fn fixture_server(dir: &TempDir) -> Server {
    let config = write_config(
        dir,
        json!({"fixture": fixture_entry(&[]), "other": fixture_entry(&["--name", "other"])}),
    );
    Server::start_with_upstreams(&config, &[], &[], &["fixture", "other"]).await
}

/// `[name, isToolError, server, tool, message]` of what `call` throws, or the value it returned.
fn caught(call: &str) -> String {
    format!(
        "try {{ return {{returned: await {call}}} }} catch (e) {{ \
           return [e.name, e instanceof ToolError, e.server ?? null, e.tool ?? null, e.message] }}"
    )
}

#[tokio::test]
async fn an_upstream_is_error_throws_a_tool_error_and_never_returns_data() {
    let dir = TempDir::new("is-error");
    let server = fixture_server(&dir).await;
    let result = server
        .execute(&caught("servers.fixture.fail({message: 'disk on fire'})"))
        .await;
    assert_eq!(
        result.value(),
        &json!([
            "ToolError",
            true,
            "fixture",
            "fail",
            "fixture.fail: disk on fire"
        ])
    );
    let result = server
        .execute(&caught("mcp.tools.call('fixture', 'fail', {})"))
        .await;
    assert_eq!(
        result.value(),
        &json!([
            "ToolError",
            true,
            "fixture",
            "fail",
            "fixture.fail: fixture failure"
        ])
    );

    // Uncaught, it fails the execute call, with its state rolled back.
    server.execute("mcp.state.n = 1").await;
    let result = server
        .execute("mcp.state.n = 2; await servers.fixture.fail({message: 'nope'}); 'unreachable'")
        .await;
    assert_eq!(result.error_name(), "ToolError");
    assert!(
        result.error_message().starts_with("fixture.fail: nope"),
        "{}",
        result.error_message()
    );
    assert!(
        result.text().starts_with("ToolError: fixture.fail: nope"),
        "{}",
        result.text()
    );
    assert_eq!(server.execute("mcp.state.n").await.value(), &json!(1));
}

#[tokio::test]
async fn images_audio_structured_content_and_json_text_arrive_as_the_upstream_sent_them() {
    let dir = TempDir::new("media");
    let server = fixture_server(&dir).await;
    let fixture = fixture_path();
    let direct_image = call_directly(&fixture, &[], "image", json!({})).await;
    let direct_audio = call_directly(&fixture, &[], "audio", json!({})).await;
    let direct_image = serde_json::to_value(&direct_image.content).expect("JSON");
    let direct_audio = serde_json::to_value(&direct_audio.content).expect("JSON");
    let png = direct_image[0]["data"].as_str().expect("image data");
    let wav = direct_audio[0]["data"].as_str().expect("audio data");
    // The base64 of a PNG and a RIFF/WAVE file, as the fixture sends them.
    assert!(png.starts_with("iVBORw0KGgo"), "{png}");
    assert!(wav.starts_with("UklGR"), "{wav}");

    let result = server
        .execute(
            "return {image: await servers.fixture.image(), audio: await servers.fixture.audio(), \
             structured: await servers.fixture.structured({n: 21}), \
             echo: await servers.fixture.echo({value: {a: [1, 'x', null], b: true}})}",
        )
        .await;
    assert_eq!(
        result.value(),
        &json!({
            "image": [{"type": "image", "mimeType": "image/png", "data": png}, "a 1x1 red PNG"],
            "audio": {"type": "audio", "mimeType": "audio/wav", "data": wav},
            "structured": {"n": 21, "doubled": 42},
            "echo": {"value": {"a": [1, "x", null], "b": true}},
        })
    );
    // The value is a plain object code can use.
    let result = server
        .execute(
            "const s = await servers.fixture.structured({n: -4}); \
             const img = (await servers.fixture.image())[0]; \
             [s.doubled + 1, typeof img.data, img.data.length]",
        )
        .await;
    assert_eq!(result.value(), &json!([-7, "string", png.len()]));
}

/// Overlap is proven by an event, not by timing: `rendezvous` answers only once `n` calls with
/// its key are in flight at once, so calls that ran one after another would never answer (the
/// execute's timeout is only a hang guard).
#[tokio::test]
async fn parallel_upstream_calls_overlap() {
    let dir = TempDir::new("overlap");
    let server = fixture_server(&dir).await;
    let result = server
        .execute_with(json!({
            "code": "const one = await servers.fixture.slow({ms: 1}); \
                     const both = await Promise.all([\
                       servers.fixture.rendezvous({key: 'a', n: 2}), \
                       servers.other.rendezvous({key: 'a', n: 1}), \
                       servers.fixture.rendezvous({key: 'a', n: 2})]); \
                     return {one, both}",
            "timeout_ms": 30000
        }))
        .await;
    assert_eq!(
        result.value(),
        &json!({"one": {"slept_ms": 1}, "both": [{"met": 2}, {"met": 1}, {"met": 2}]})
    );

    // The same through one `execute` call seen from outside: three overlapping calls.
    let result = server
        .execute_with(json!({
            "code": "await Promise.all([1, 2, 3].map(() => servers.fixture.rendezvous({key: 'b', n: 3})))",
            "timeout_ms": 30000
        }))
        .await;
    assert_eq!(result.value(), &json!([{"met": 3}, {"met": 3}, {"met": 3}]));
}

#[tokio::test]
async fn bad_arguments_are_refused_before_the_call_naming_the_field() {
    let dir = TempDir::new("bad-args");
    let server = fixture_server(&dir).await;
    let check = |value: &Value, tool: &str, needles: &[&str]| {
        assert_eq!(value[0], "ToolError", "{value}");
        assert_eq!(value[1], true, "{value}");
        assert_eq!(value[3], tool, "{value}");
        let message = value[4].as_str().unwrap();
        assert!(
            message.starts_with(&format!("fixture.{tool}: ")),
            "{message}"
        );
        for needle in needles {
            assert!(message.contains(needle), "{needle:?} not in {message}");
        }
    };
    for (call, tool, needles) in [
        (
            "servers.fixture.structured({n: 'two'})",
            "structured",
            &["`n`", "\"two\" is not of type \"integer\""][..],
        ),
        (
            "servers.fixture.structured({})",
            "structured",
            &["\"n\" is a required property"][..],
        ),
        (
            "servers.fixture.structured({n: 1, m: 2})",
            "structured",
            &["'m' was unexpected"][..],
        ),
        (
            "servers.fixture.slow({ms: -1})",
            "slow",
            &["`ms`", "minimum"][..],
        ),
    ] {
        let result = server.execute(&caught(call)).await;
        check(result.value(), tool, needles);
    }
    // These are the kernel's schema checks: the fixture itself would have answered
    // "`ms` must be a non-negative integer" or "`n` must be an integer".

    // Non-object arguments are the caller's TypeError, thrown before any host call.
    for args in ["[1]", "'x'", "null", "5"] {
        let result = server
            .execute(&format!(
                "try {{ await servers.fixture.echo({args}); return 'called' }} catch (e) {{ return [e.name, e.message] }}"
            ))
            .await;
        assert_eq!(
            result.value(),
            &json!(["TypeError", "fixture.echo: `args` must be an object"]),
            "{args}"
        );
    }
    // No arguments at all is an empty object.
    assert_eq!(
        server.execute("await servers.fixture.echo()").await.value(),
        &json!({})
    );
}

#[tokio::test]
async fn unknown_servers_and_tools_are_tool_errors_listing_what_exists() {
    let dir = TempDir::new("unknown");
    let server = fixture_server(&dir).await;
    let result = server.execute(&caught("servers.nope.echo({})")).await;
    assert_eq!(
        result.value(),
        &json!([
            "ToolError",
            true,
            "nope",
            "echo",
            "nope.echo: unknown server `nope`; configured servers: fixture, other"
        ])
    );

    // A near miss gets suggestions.
    let result = server
        .execute(&caught("servers.fixture.structure({n: 1})"))
        .await;
    let message = result.value()[4].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("fixture.structure: server `fixture` has no tool `structure`"),
        "{message}"
    );
    assert!(message.contains("structured"), "{message}");

    // A name like nothing there still says what there is.
    let result = server
        .execute(&caught("servers.fixture.frobnicate({})"))
        .await;
    let value = result.value();
    assert_eq!(value[0], "ToolError", "{value}");
    assert_eq!(value[2], "fixture", "{value}");
    assert_eq!(value[3], "frobnicate", "{value}");
    let message = value[4].as_str().unwrap();
    assert!(
        message.starts_with("fixture.frobnicate: server `fixture` has no tool `frobnicate`"),
        "{message}"
    );
    for tool in ["echo", "fail", "image", "slow", "structured"] {
        assert!(
            message.contains(tool),
            "the error for an unknown tool does not list the server's tools (no `{tool}`): {message}"
        );
    }
}

#[tokio::test]
async fn bad_search_arguments_are_tool_errors_naming_the_field() {
    let dir = TempDir::new("bad-search");
    let server = fixture_server(&dir).await;
    for (arguments, field) in [
        (json!({}), "`query`"),
        (json!({"query": 5}), "`query`"),
        (json!({"query": "x", "detail": "everything"}), "`detail`"),
        (json!({"query": "x", "limit": 0}), "`limit`"),
        (json!({"query": "x", "limit": "3"}), "`limit`"),
        (json!({"query": "x", "server": 1}), "`server`"),
        (
            json!({"query": "x", "server": "nope"}),
            "unknown server `nope`",
        ),
        (
            json!({"query": "x", "serverName": "fixture"}),
            "`serverName`",
        ),
    ] {
        let result = server.search_tools(arguments.clone()).await;
        assert!(
            result.is_error(),
            "bad arguments are a tool error: {arguments}"
        );
        assert_eq!(result.error_name(), "ArgumentError", "{arguments}");
        let message = result.error_message();
        assert!(
            message.starts_with("search_tools: ") && message.contains(field),
            "{arguments}: {message}"
        );
    }
    // And in code, TypeErrors naming the option.
    for (call, needle) in [
        ("mcp.tools.search(5)", "`query`"),
        ("mcp.tools.search('x', {detail: 'all'})", "`detail`"),
        ("mcp.tools.search('x', {limit: 0})", "`limit`"),
        (
            "mcp.tools.search('x', {serverName: 'fixture'})",
            "`serverName`",
        ),
        ("mcp.tools.list({server: 1})", "`server`"),
    ] {
        let result = server
            .execute(&format!(
                "try {{ await {call}; return 'ok' }} catch (e) {{ return [e.name, e.message] }}"
            ))
            .await;
        let value = result.value();
        assert_eq!(value[0], "TypeError", "{call}: {value}");
        assert!(
            value[1].as_str().unwrap().contains(needle),
            "{call}: {value}"
        );
    }
}
