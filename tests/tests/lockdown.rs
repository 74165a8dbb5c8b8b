//! Nothing but `mcp.state` and skills outlives a call: agent code runs in strict mode, and the
//! global object and every intrinsic are frozen after the prelude (the prelude's `lockdown`),
//! so a write to a global or to a built-in prototype throws and leaves nothing for the next
//! call to see. The overrides code commonly makes on its own objects still work.

use mcpk_tests::{ExecuteResult as _, Server};
use serde_json::json;

#[tokio::test]
async fn a_global_assigned_by_one_call_is_refused_and_absent_from_the_next() {
    let server = Server::start().await;
    let result = server.execute("globalThis.x = 1").await;
    assert_eq!(result.error_name(), "TypeError", "{}", result.text());
    result.assert_message_contains(&["cannot set non-writable property: x"]);
    assert_eq!(
        server.execute("typeof x").await.value(),
        &json!("undefined")
    );
    assert_eq!(
        server.execute("typeof globalThis.x").await.value(),
        &json!("undefined")
    );
}

#[tokio::test]
async fn an_undeclared_assignment_is_a_reference_error_in_strict_mode() {
    let server = Server::start().await;
    let result = server.execute("x = 1").await;
    assert_eq!(result.error_name(), "ReferenceError", "{}", result.text());
    result.assert_message_contains(&["`x`"]);
    assert_eq!(
        server.execute("typeof x").await.value(),
        &json!("undefined")
    );
    // Strict-only syntax is refused with positions in the user's code.
    let result = server.execute("let a = 1;\nwith ({}) {}").await;
    assert_eq!(result.error_name(), "SyntaxError", "{}", result.text());
    result.assert_message_contains(&["strict mode", "line 2"]);
}

#[tokio::test]
async fn prototypes_and_hidden_intrinsics_are_frozen() {
    let server = Server::start().await;
    for (code, property) in [
        ("Array.prototype.f = 1", "f"),
        ("Object.prototype.polluted = true", "polluted"),
        ("Object.prototype.toString = () => 'x'", "toString"),
        ("JSON.stringify = () => 'x'", "stringify"),
        ("Math.random = () => 4", "random"),
        ("Date.now = () => 0", "now"),
        ("console.log = () => {}", "log"),
        // Behind the getter that records its use, and frozen all the same.
        ("crypto.randomUUID = () => 'fixed'", "randomUUID"),
        ("crypto.note = 1", "note"),
        ("URL.prototype.x = 1", "x"),
        ("URLSearchParams.prototype.get = () => 'x'", "get"),
        ("JSON.parse = () => 1", "parse"),
        ("mcp.tools = null", "tools"),
        ("Object.getPrototypeOf(async function () {}).x = 1", "x"),
        (
            "Object.getPrototypeOf(function* () {}).prototype.x = 1",
            "x",
        ),
        ("Object.getPrototypeOf([].values()).x = 1", "x"),
        (
            "Object.getPrototypeOf(Object.getPrototypeOf([].values())).x = 1",
            "x",
        ),
        ("Object.getPrototypeOf(new Map().entries()).x = 1", "x"),
        ("Object.getPrototypeOf(Int8Array).prototype.x = 1", "x"),
    ] {
        let result = server.execute(code).await;
        assert_eq!(
            result.error_name(),
            "TypeError",
            "{code}: {}",
            result.text()
        );
        result.assert_message_contains(&[&format!("non-writable property: {property}")]);
    }
    for code in [
        "Object.defineProperty(Object.prototype, 'p', { value: 1 })",
        "Object.defineProperty(globalThis, 'g', { value: 1 })",
        "Object.setPrototypeOf(Array.prototype, null)",
        "delete Array.prototype.map",
        "delete globalThis.JSON",
        "(0, eval)('var declared = 1')",
    ] {
        let result = server.execute(code).await;
        assert_eq!(
            result.error_name(),
            "TypeError",
            "{code}: {}",
            result.text()
        );
    }
    // Nothing leaked into the next call.
    let result = server
        .execute(
            "[[].f, ({}).polluted, String({}), JSON.stringify(1), typeof Array.prototype.map, \
             typeof JSON, typeof declared, typeof p, typeof g, Object.isFrozen(Array.prototype), \
             Object.isFrozen(globalThis)]",
        )
        .await;
    assert_eq!(
        result.value(),
        &json!([
            null,
            null,
            "[object Object]",
            "1",
            "function",
            "object",
            "undefined",
            "undefined",
            "undefined",
            true,
            true
        ]),
        "{}",
        result.text()
    );
}

#[tokio::test]
async fn own_overrides_of_frozen_inherited_properties_still_work() {
    let server = Server::start().await;
    let result = server
        .execute(
            "class NotFound extends Error { constructor(m) { super(m); this.name = 'NotFound'; } }\n\
             const e = new NotFound('gone'); const t = new TypeError('a'); t.message = 'b';\n\
             const o = { }; o.toString = () => 'custom'; o.constructor = 'c'; o.valueOf = () => 7;\n\
             const f = function () {}; f.toString = () => 'src';\n\
             [e.name, String(e), t.message, String(o), o.constructor, o + 0, f.toString(), \
              Object.keys(o), e instanceof Error, new ToolError('m').name]",
        )
        .await;
    assert_eq!(
        result.value(),
        &json!([
            "NotFound",
            "NotFound: gone",
            "b",
            "custom",
            "c",
            7,
            "src",
            ["toString", "constructor", "valueOf"],
            true,
            "ToolError"
        ]),
        "{}",
        result.text()
    );
    // The inherited values themselves are unchanged.
    let result = server
        .execute("[Error.prototype.name, TypeError.prototype.message, ({}).toString === Object.prototype.toString]")
        .await;
    assert_eq!(
        result.value(),
        &json!(["Error", "", true]),
        "{}",
        result.text()
    );
}

#[tokio::test]
async fn state_skills_and_timers_keep_working_under_lockdown() {
    let server = Server::start().await;
    let result = server
        .execute(
            "mcp.state.n = (mcp.state.n ?? 0) + 1;\n\
             await mcp.skills.save('twice', (x) => x * 2);\n\
             await new Promise((r) => setTimeout(r, 1));\n\
             queueMicrotask(() => {});\n\
             [mcp.state.n, skills.twice(21)]",
        )
        .await;
    assert_eq!(result.value(), &json!([1, 42]), "{}", result.text());
    let result = server.execute("mcp.state = { m: 2 }; mcp.state.m").await;
    assert_eq!(result.value(), &json!(2), "{}", result.text());
    // A sloppy-looking skill runs in strict mode too.
    let result = server
        .execute(
            "await mcp.skills.save('leak', function () { leaked = 1; return 1; });\n\
             skills.leak()",
        )
        .await;
    assert_eq!(result.error_name(), "ReferenceError", "{}", result.text());
    assert_eq!(
        server.execute("typeof leaked").await.value(),
        &json!("undefined")
    );
}
