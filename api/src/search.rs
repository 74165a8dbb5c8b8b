//! The `search_tools` MCP tool and the `tool://<server>/<tool>.d.ts` resources: the agent's
//! view of the upstream catalogue without loading every definition into its context.

use rmcp::ErrorData;
use rmcp::model::{
    CallToolResult, ContentBlock, JsonObject, ReadResourceResult, Resource, ResourceContents, Tool,
    ToolAnnotations,
};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::args::{ArgumentError, describe, shorten};

use crate::upstream::{Catalog, Detail, Upstreams};

/// The tool's name.
pub(crate) const SEARCH_TOOLS: &str = "search_tools";

/// Largest `limit`.
const MAX_LIMIT: u64 = 100;

/// `search_tools`' arguments as they arrive; the tool's input schema is derived from this
/// struct. Each field's deserialiser words its own rejection (see [`crate::args`]).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchInput {
    /// Words to look for in tool names and descriptions; empty lists every tool.
    #[serde(deserialize_with = "query")]
    query: String,
    /// Only this upstream server's tools.
    #[serde(default, deserialize_with = "server")]
    server: Option<String>,
    /// names: server.tool; signatures: one TypeScript line each; full: the .d.ts with docs.
    #[serde(default, deserialize_with = "detail")]
    #[schemars(with = "Option<DetailSchema>")]
    detail: Option<Detail>,
    /// How many tools at most.
    #[serde(default, deserialize_with = "limit")]
    #[schemars(range(min = 1, max = 100))]
    limit: Option<u64>,
}

/// The schema of `detail`.
#[derive(schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[expect(
    dead_code,
    reason = "only its schema is used; `detail()` reads the value"
)]
enum DetailSchema {
    Names,
    Signatures,
    Full,
}

fn query<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(query) => Ok(query),
        other => Err(serde::de::Error::custom(format!(
            "`query` must be a string, got {}",
            describe(&other)
        ))),
    }
}

fn server<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(server) => Ok(Some(server)),
        other => Err(serde::de::Error::custom(format!(
            "`server` must be a string, got {}",
            describe(&other)
        ))),
    }
}

fn detail<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Detail>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(d) if d == "names" => Ok(Some(Detail::Names)),
        Value::String(d) if d == "signatures" => Ok(Some(Detail::Signatures)),
        Value::String(d) if d == "full" => Ok(Some(Detail::Full)),
        other => Err(serde::de::Error::custom(format!(
            "`detail` must be \"names\", \"signatures\" or \"full\", got {}",
            describe(&other)
        ))),
    }
}

fn limit<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::Number(n) if n.as_u64().is_some_and(|l| (1..=MAX_LIMIT).contains(&l)) => {
            Ok(n.as_u64())
        }
        other => Err(serde::de::Error::custom(format!(
            "`limit` must be an integer from 1 to {MAX_LIMIT}, got {}",
            describe(&other)
        ))),
    }
}

/// The `search_tools` tool definition.
pub(crate) fn tool() -> Tool {
    let mut schema = rmcp::handler::server::tool::schema_for_input::<SearchInput>()
        .unwrap_or_else(|error| panic!("the search_tools schema is not an object schema: {error}"))
        .as_ref()
        .clone();
    let properties = schema.get_mut("properties").and_then(Value::as_object_mut);
    if let Some(properties) = properties {
        if let Some(Value::Object(detail)) = properties.get_mut("detail") {
            detail.insert("default".into(), "signatures".into());
        }
        if let Some(Value::Object(limit)) = properties.get_mut("limit") {
            limit.insert("default".into(), 10.into());
        }
    }
    Tool::new(
        SEARCH_TOOLS,
        "Find upstream MCP tools to call from `execute` code as `await servers.<server>.<tool>(args)`. \
         Ranked search over names and descriptions; returns TypeScript-style signatures. \
         The same search is `mcp.tools.search(query, {detail, limit})` in code.",
        std::sync::Arc::new(schema),
    )
    .with_annotations(ToolAnnotations::with_title("Search upstream tools").read_only(true).idempotent(true).open_world(false))
}

fn invalid(problem: String) -> ArgumentError {
    ArgumentError(format!("{SEARCH_TOOLS}: {problem}"))
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
    /// Deserialises raw arguments; nothing is coerced.
    ///
    /// # Errors
    /// An [`ArgumentError`] naming the field and the problem.
    pub(crate) fn parse(arguments: Option<JsonObject>) -> Result<Self, ArgumentError> {
        let input: SearchInput =
            serde_json::from_value(Value::Object(arguments.unwrap_or_default()))
                .map_err(|error| ArgumentError::from_serde(SEARCH_TOOLS, &error))?;
        Ok(Self {
            query: input.query,
            server: input.server,
            detail: input.detail.unwrap_or(Detail::Signatures),
            limit: input.limit.and_then(|l| usize::try_from(l).ok()),
        })
    }
}

/// Runs the search: text for the model, `structuredContent {tools, catalog_version}` for code.
///
/// # Errors
/// An [`ArgumentError`] when `server` names no configured server.
pub(crate) async fn search(
    upstreams: &Upstreams,
    args: &SearchArgs,
) -> Result<CallToolResult, ArgumentError> {
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
            "unknown server `{}`; configured servers: {known}",
            shorten(server)
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
    let mut contents = ResourceContents::text(t.declaration.clone(), uri);
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
        SearchArgs::parse(Some(m)).map_err(|e| e.0)
    }

    #[test]
    fn the_schema_is_derived_and_closed() {
        let tool = tool();
        let schema = Value::Object(tool.input_schema.as_ref().clone());
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["required"], json!(["query"]));
        assert_eq!(schema["properties"]["limit"]["maximum"], 100);
        assert_eq!(schema["properties"]["limit"]["default"], 10);
        assert_eq!(schema["properties"]["detail"]["default"], "signatures");
        let text = schema["properties"]["detail"].to_string();
        for detail in ["names", "signatures", "full"] {
            assert!(text.contains(detail), "{text}");
        }
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
            (
                json!({"query": "x", "detail": "y".repeat(1000)}),
                "`detail`",
            ),
        ] {
            let e = parse(args.clone()).unwrap_err();
            assert!(
                e.starts_with("search_tools: ") && e.contains(field) && e.len() < 200,
                "{args}: {e}"
            );
        }
    }
}
