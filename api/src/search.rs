//! The `search_tools` MCP tool and the `tool://<server>/<tool>.d.ts` resources: the agent's
//! view of the upstream catalogue without loading every definition into its context.

use rmcp::ErrorData;
use rmcp::model::{
    CallToolResult, ContentBlock, JsonObject, ReadResourceResult, Resource, ResourceContents, Tool,
    ToolAnnotations,
};
use serde_json::{Value, json};

use crate::catalog::declaration;
use crate::upstream::{Catalog, Detail, Upstreams};

/// The tool's name.
pub(crate) const SEARCH_TOOLS: &str = "search_tools";

const FIELDS: [&str; 4] = ["query", "server", "detail", "limit"];
/// Largest `limit`.
const MAX_LIMIT: u64 = 100;

/// The `search_tools` tool definition.
pub(crate) fn tool() -> Tool {
    let schema = json!({
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "Words to look for in tool names and descriptions; empty lists every tool."},
            "server": {"type": ["string", "null"], "description": "Only this upstream server's tools."},
            "detail": {"enum": ["names", "signatures", "full", null], "default": "signatures",
                       "description": "names: server.tool; signatures: one TypeScript line each; full: the .d.ts with docs."},
            "limit": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_LIMIT, "default": 10}
        },
        "required": ["query"],
        "additionalProperties": false
    });
    let Value::Object(schema) = schema else {
        unreachable!("a JSON object literal")
    };
    Tool::new(
        SEARCH_TOOLS,
        "Find upstream MCP tools to call from `execute` code as `await servers.<server>.<tool>(args)`. \
         Ranked search over names and descriptions; returns TypeScript-style signatures. \
         The same search is `mcp.tools.search(query, {detail, limit})` in code.",
        std::sync::Arc::new(schema as JsonObject),
    )
    .with_annotations(ToolAnnotations::with_title("Search upstream tools").read_only(true).idempotent(true).open_world(false))
}

fn invalid(problem: String) -> ErrorData {
    ErrorData::invalid_params(format!("{SEARCH_TOOLS}: {problem}"), None)
}

/// Validated arguments.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SearchArgs {
    query: String,
    server: Option<String>,
    detail: Detail,
    limit: Option<usize>,
}

impl SearchArgs {
    /// Validates raw arguments; nothing is coerced.
    ///
    /// # Errors
    /// `invalid_params` (-32602) naming the field and the problem.
    pub(crate) fn parse(arguments: Option<&JsonObject>) -> Result<Self, ErrorData> {
        let empty = JsonObject::new();
        let arguments = arguments.unwrap_or(&empty);
        if let Some(unknown) = arguments.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(invalid(format!(
                "unknown field `{unknown}`, expected one of `query`, `server`, `detail`, `limit`"
            )));
        }
        let query = match arguments.get("query") {
            Some(Value::String(q)) => q.clone(),
            None => return Err(invalid("missing required field `query`".to_owned())),
            Some(other) => return Err(invalid(format!("`query` must be a string, got {other}"))),
        };
        let server = match arguments.get("server") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(invalid(format!("`server` must be a string, got {other}"))),
        };
        let detail = match arguments.get("detail") {
            None | Some(Value::Null) => Detail::Signatures,
            Some(Value::String(d)) if d == "names" => Detail::Names,
            Some(Value::String(d)) if d == "signatures" => Detail::Signatures,
            Some(Value::String(d)) if d == "full" => Detail::Full,
            Some(other) => {
                return Err(invalid(format!(
                    "`detail` must be \"names\", \"signatures\" or \"full\", got {other}"
                )));
            }
        };
        let limit = match arguments.get("limit") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_u64().is_some_and(|l| (1..=MAX_LIMIT).contains(&l)) => {
                n.as_u64().and_then(|l| usize::try_from(l).ok())
            }
            Some(other) => {
                return Err(invalid(format!(
                    "`limit` must be an integer from 1 to {MAX_LIMIT}, got {other}"
                )));
            }
        };
        Ok(Self {
            query,
            server,
            detail,
            limit,
        })
    }
}

/// Runs the search: text for the model, `structuredContent {tools, catalog_version}` for code.
pub(crate) async fn search(
    upstreams: &Upstreams,
    args: &SearchArgs,
) -> Result<CallToolResult, ErrorData> {
    if let Some(server) = &args.server
        && !upstreams.servers().contains_key(server)
    {
        let known: Vec<&str> = upstreams.servers().keys().map(String::as_str).collect();
        let known = if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        };
        return Err(invalid(format!(
            "unknown server `{server}`; configured servers: {known}"
        )));
    }
    let catalog = upstreams.settled_catalog().await;
    let tools = if args.query.trim().is_empty() {
        let mut all = catalog.list(args.server.as_deref());
        all.truncate(args.limit.unwrap_or(10));
        all
    } else {
        catalog.search(&args.query, args.server.as_deref(), args.limit)
    };
    let mut text = crate::upstream::render(&tools, args.detail);
    if tools.is_empty() {
        text = if catalog.tools.is_empty() {
            "No upstream tools are available (no server is configured or ready).".to_owned()
        } else {
            format!(
                "No tool matches {:?}. Try other words, or an empty query to list tools.",
                args.query
            )
        };
    }
    let entries: Vec<Value> = tools
        .iter()
        .map(|t| crate::upstream::entry(t, args.detail))
        .collect();
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(json!({"tools": entries, "catalog_version": catalog.version}));
    Ok(result)
}

const SCHEME: &str = "tool://";

/// One resource per upstream tool, `tool://<server>/<tool>.d.ts`.
pub(crate) fn resources(catalog: &Catalog) -> Vec<Resource> {
    catalog
        .tools
        .iter()
        .map(|t| {
            Resource::new(
                format!("{SCHEME}{}/{}.d.ts", t.server, t.tool.name),
                format!("{}.{}", t.server, t.tool.name),
            )
            .with_mime_type("application/typescript")
            .with_description(crate::upstream::summary(
                t.tool.description.as_deref().unwrap_or_default(),
            ))
        })
        .collect()
}

/// The `.d.ts` text of `tool://<server>/<tool>.d.ts`.
///
/// # Errors
/// `resource_not_found` (-32002) naming the URI when it is not a catalogue tool.
pub(crate) fn read(catalog: &Catalog, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let not_found = || {
        ErrorData::resource_not_found(
            format!(
                "no resource `{uri}`: expected tool://<server>/<tool>.d.ts for a tool in the catalogue"
            ),
            None,
        )
    };
    let path = uri
        .strip_prefix(SCHEME)
        .and_then(|p| p.strip_suffix(".d.ts"))
        .ok_or_else(not_found)?;
    let (server, tool) = path.split_once('/').ok_or_else(not_found)?;
    let t = catalog.find(server, tool).ok_or_else(not_found)?;
    let mut contents = ResourceContents::text(declaration(&t.server, &t.tool), uri);
    if let ResourceContents::TextResourceContents { mime_type, .. } = &mut contents {
        *mime_type = Some("application/typescript".to_owned());
    }
    Ok(ReadResourceResult::new(vec![contents]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<SearchArgs, String> {
        let Value::Object(m) = v else { unreachable!() };
        SearchArgs::parse(Some(&m)).map_err(|e| e.message.into_owned())
    }

    #[test]
    fn arguments_are_checked_without_coercion() {
        assert_eq!(
            parse(json!({"query": "read", "detail": "names", "limit": 3})).unwrap(),
            SearchArgs {
                query: "read".into(),
                server: None,
                detail: Detail::Names,
                limit: Some(3)
            }
        );
        for (args, field) in [
            (json!({}), "`query`"),
            (json!({"query": 1}), "`query`"),
            (json!({"query": "x", "detail": "all"}), "`detail`"),
            (json!({"query": "x", "limit": "3"}), "`limit`"),
            (json!({"query": "x", "limit": 0}), "`limit`"),
            (json!({"query": "x", "limit": 2.5}), "`limit`"),
            (json!({"query": "x", "serv": "a"}), "`serv`"),
        ] {
            let e = parse(args.clone()).unwrap_err();
            assert!(
                e.starts_with("search_tools: ") && e.contains(field),
                "{args}: {e}"
            );
        }
    }
}
