//! The `search_tools` MCP tool: the agent's view of the upstream catalogue and its saved
//! skills without loading every definition into its context.

use mcpk_session::SessionManager;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
#[cfg(test)]
use serde_json::json;

use crate::tools::{ArgumentError, describe, shorten};

use crate::access::Servers;
use crate::upstream::{Detail, Upstreams};

/// The tool's name.
pub(crate) const SEARCH_TOOLS: &str = "search_tools";

/// The most saved skills one search lists before the tools.
pub(crate) const MAX_SKILL_HITS: usize = 5;

/// Largest `limit`.
const MAX_LIMIT: u64 = 100;

/// `search_tools`' arguments as they arrive; the tool's input schema is derived from this
/// struct. Each field's deserialiser words its own rejection (see [`crate::tools`]).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchInput {
    /// Words to look for in tool names and descriptions; empty lists every tool.
    #[serde(deserialize_with = "query")]
    #[schemars(description = "Empty lists all.")]
    query: String,
    /// Only this upstream server's tools.
    #[serde(default, deserialize_with = "server")]
    #[schemars(description = "")]
    server: Option<String>,
    /// names: server.tool; signatures (default): a TypeScript line each; full: .d.ts with docs.
    #[serde(default, deserialize_with = "detail")]
    #[schemars(with = "Option<DetailSchema>", description = "")]
    detail: Option<Detail>,
    /// How many tools at most (default 10, max 100).
    #[serde(default, deserialize_with = "limit")]
    #[schemars(description = "")]
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
    super::compact_schema(&mut schema);
    Tool::new(
        SEARCH_TOOLS,
        "Find upstream tools and saved skills: signatures to call in `execute` (whole \
         types: detail full). In code: `mcp.tools.search(query)`.",
        std::sync::Arc::new(schema),
    )
    .with_annotations(
        ToolAnnotations::with_title("Search upstream tools")
            .read_only(true)
            .idempotent(true)
            .open_world(false),
    )
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

/// Runs the search over the upstream tools and the tenant's saved skills, as text only: the
/// model reads every token of a result, text and `structuredContent` alike, so nothing is said
/// twice (code gets the same entries as values from `mcp.tools.search`). Matching skills come
/// first (at most [`MAX_SKILL_HITS`]), so an agent finds a saved skill before it rewrites it;
/// a search scoped to one `server` leaves skills out. A listing (empty query) that does not
/// show every tool says how many there are on which servers.
///
/// # Errors
/// An [`ArgumentError`] when `server` names no configured server.
pub(crate) async fn search(
    upstreams: &Upstreams,
    sessions: &SessionManager,
    tenant: &str,
    servers: Servers<'_>,
    args: &SearchArgs,
) -> Result<CallToolResult, ArgumentError> {
    if let Some(server) = &args.server
        && !(upstreams.servers().contains_key(server) && servers.allows(server))
    {
        return Err(invalid(crate::upstream::unknown_server(
            upstreams,
            servers,
            &shorten(server),
        )));
    }
    let catalog = upstreams.settled_catalog().await;
    let listing = args.query.trim().is_empty();
    let tools = if listing {
        let mut all = catalog.list(args.server.as_deref(), &servers);
        all.truncate(args.limit.unwrap_or(10));
        all
    } else {
        catalog.search(&args.query, args.server.as_deref(), args.limit, &servers)
    };
    let skills = if args.server.is_some() {
        Vec::new()
    } else {
        match sessions.skills(tenant).await {
            Ok((_, skills)) => skills,
            Err(error) => {
                tracing::warn!(%error, "search_tools: listing skills failed");
                Vec::new()
            }
        }
    };
    let skills = crate::catalog::rank_skills(&skills, &args.query, MAX_SKILL_HITS);
    let mut text = String::new();
    if !skills.is_empty() {
        text.push_str("Saved skills:\n");
        for skill in &skills {
            text.push_str(&crate::catalog::skill_signature(skill));
            text.push('\n');
        }
    }
    if listing {
        let total = catalog.list(args.server.as_deref(), &servers).len();
        if tools.len() < total {
            text.push_str(&listing_header(
                &catalog,
                args.server.as_deref(),
                servers,
                tools.len(),
                total,
            ));
        }
    }
    text.push_str(&crate::upstream::render(&tools, args.detail, tenant));
    if tools.is_empty() && skills.is_empty() {
        text = if catalog.list(None, &servers).is_empty() {
            "No upstream tools are available (no server is configured or ready).".to_owned()
        } else {
            format!(
                "No tool matches {:?}. Try other words, or an empty query to list tools.",
                shorten(&args.query)
            )
        };
    }
    Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
}

/// `"Showing 10 of 23 tools (everything: 13, fs: 10); pass a query, `server` or a higher `limit`."`
fn listing_header(
    catalog: &crate::catalog::Catalog,
    server: Option<&str>,
    servers: Servers<'_>,
    shown: usize,
    total: usize,
) -> String {
    let mut per_server: Vec<(&str, usize)> = Vec::new();
    for tool in catalog.list(server, &servers) {
        match per_server.last_mut() {
            Some((name, count)) if *name == tool.server => *count += 1,
            _ => per_server.push((&tool.server, 1)),
        }
    }
    let servers: Vec<String> = per_server
        .iter()
        .map(|(name, count)| format!("{name}: {count}"))
        .collect();
    format!(
        "Showing {shown} of {total} tools ({}); pass a query, `server` or a higher `limit`.\n",
        servers.join(", ")
    )
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
        assert_eq!(schema["properties"]["limit"]["type"], "integer");
        assert_eq!(schema["properties"]["query"]["type"], "string");
        assert!(schema.get("$schema").is_none() && schema.get("$defs").is_none());
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
