//! What to do instead, appended to the errors agents hit when they write code for another
//! environment: Node's modules, other code-mode dialects (`callTool`, `codemode.x`,
//! `search_tools` inside code), browser or Node globals, or a name from an earlier call.
//!
//! Only the error's message changes (`<message> — <hint>`); its name and stack stay the
//! engine's. Matched on Boa 0.22's wording: `X is not defined` (ReferenceError), `unexpected
//! token 'export'` and `… in import.meta` (SyntaxError), `module resolution is disabled`
//! (TypeError, from `import()`); a TypeError in code that reads `.content[0]` of a result is
//! taken for code that expected an MCP result envelope.

/// Where to find upstream tools, said in every hint.
const TOOLS: &str = "call upstream tools as `await servers.<server>.<tool>(args)` (find them with `await mcp.tools.search(query)`)";

/// String methods whose absence on a tool call's result means the code took an object result
/// for its text.
const STRING_METHODS: &[&str] = &[
    "split",
    "trim",
    "toLowerCase",
    "toUpperCase",
    "includes",
    "startsWith",
    "endsWith",
    "match",
    "matchAll",
    "replace",
    "replaceAll",
    "slice",
    "indexOf",
];

/// `message` with a hint appended when the error is one of the classes above.
/// `code` is the user's code, for the hints that depend on how a result was read; `servers`
/// the upstream server names of the call, which an undefined name may have meant.
pub(crate) fn with_hint(name: &str, message: String, code: &str, servers: &[String]) -> String {
    match hint(name, &message, code, servers) {
        Some(hint) => format!("{message} — {hint}"),
        None => message,
    }
}

fn hint(name: &str, message: &str, code: &str, servers: &[String]) -> Option<String> {
    let module = "the code is the body of an async function, not a module: there is no import, export or require";
    match name {
        "ReferenceError" => {
            let identifier = message.strip_suffix(" is not defined")?;
            if servers.iter().any(|s| s == identifier) {
                return Some(format!(
                    "`{identifier}` is an upstream server: call its tools as `await servers.{identifier}.<tool>(args)`"
                ));
            }
            let known = if servers.is_empty() {
                String::new()
            } else {
                format!("; the upstream servers are {}", servers.join(", "))
            };
            Some(match identifier {
                "require" | "module" | "exports" | "define" | "__dirname" | "__filename" => {
                    format!("{module}; {TOOLS}")
                }
                "callTool" | "call_tool" | "codemode" | "tools" | "client" | "mcp_call" => {
                    format!("{TOOLS}, or use `await mcp.tools.call(server, tool, args)`")
                }
                "search_tools" | "searchTools" | "list_tools" | "listTools" => {
                    "in code, search with `await mcp.tools.search(query)` and list with `await mcp.tools.list()`".to_owned()
                }
                "fetch" | "process" | "Deno" | "Bun" | "window" | "document" | "XMLHttpRequest" => {
                    format!(
                        "this sandbox has no network, process or DOM: reach data through the upstream tools; {TOOLS}"
                    )
                }
                "Buffer" => "there is no Buffer: use `btoa`/`atob` for base64 and `TextEncoder`/`TextDecoder` for bytes".to_owned(),
                "Intl" => "there is no Intl: format numbers with `toFixed` and dates with `toISOString`".to_owned(),
                "performance" => "there is no performance clock: use `Date.now()`".to_owned(),
                _ => format!(
                    "names do not persist between calls: keep values in `mcp.state` and helpers as skills; {TOOLS}{known}"
                ),
            })
        }
        "SyntaxError"
            if message.contains("'export'")
                || message.contains("'import'")
                || message.contains("import.meta") =>
        {
            Some(format!("{module}; {TOOLS}, and `return` the answer"))
        }
        "TypeError" if message.contains("module resolution is disabled") => {
            Some(format!("{module}; {TOOLS}"))
        }
        "TypeError"
            if code.contains("servers.")
                && STRING_METHODS
                    .iter()
                    .any(|m| message.ends_with(&format!(".{m} is not a function"))) =>
        {
            Some(
                "it is not a string here: a tool call resolves to its structuredContent when it \
                 sends one (server-filesystem sends `{content: \"…\"}`), so take the text from \
                 its field, e.g. `(await servers.fs.read_text_file({path})).content`"
                    .to_owned(),
            )
        }
        "TypeError" if code.contains(".content[0]") || code.contains(".content?.[0]") => Some(
            "a tool call resolves to the result itself, not to an MCP `{content: [...]}` envelope: its \
             structuredContent when it sends one, else its text (parsed when it is JSON)"
                .to_owned(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_gets_its_hint_and_other_errors_none() {
        let hinted = |name: &str, message: &str| with_hint(name, message.to_owned(), "", &[]);
        assert!(hinted("ReferenceError", "require is not defined").contains("not a module"));
        assert!(hinted("ReferenceError", "callTool is not defined").contains("mcp.tools.call"));
        assert!(
            hinted("ReferenceError", "search_tools is not defined").contains("mcp.tools.search")
        );
        assert!(hinted("ReferenceError", "fetch is not defined").contains("no network"));
        assert!(hinted("ReferenceError", "Buffer is not defined").contains("btoa"));
        assert!(hinted("ReferenceError", "Intl is not defined").contains("toFixed"));
        let servers = ["fs".to_owned(), "memory".to_owned()];
        assert!(
            with_hint(
                "ReferenceError",
                "fs is not defined".to_owned(),
                "",
                &servers
            )
            .ends_with(
                "`fs` is an upstream server: call its tools as `await servers.fs.<tool>(args)`"
            )
        );
        assert!(
            with_hint(
                "ReferenceError",
                "filesystem is not defined".to_owned(),
                "",
                &servers
            )
            .ends_with("; the upstream servers are fs, memory")
        );
        assert!(
            with_hint(
                "TypeError",
                "r.split is not a function".to_owned(),
                "const r = await servers.fs.read_text_file({path}); r.split('\\n')",
                &[]
            )
            .contains("take the text from its field")
        );
        assert!(
            with_hint(
                "TypeError",
                "cannot read property '0' of undefined".to_owned(),
                "(await servers.e.echo({})).content[0].text",
                &[]
            )
            .contains("resolves to the result itself")
        );
        assert!(hinted("ReferenceError", "rows is not defined").contains("mcp.state"));
        assert!(
            hinted(
                "SyntaxError",
                "unexpected token 'export', primary expression at line 1, col 1"
            )
            .contains("not a module")
        );
        assert!(
            hinted(
                "TypeError",
                "module resolution is disabled for this context"
            )
            .contains("not a module")
        );
        for (name, message) in [
            ("TypeError", "not a callable function"),
            ("ReferenceError", "cannot access 'x' before initialization"),
            ("SyntaxError", "unexpected token ')'"),
            ("Error", "require is not defined"),
        ] {
            assert_eq!(hinted(name, message), message);
        }
    }
}
