//! [`Tools`] over the upstream clients: answers sandboxed code's catalogue, tool and resource
//! calls (the session's router sends them here).

use std::sync::Arc;

use mcpk_session::{HostFuture, HostOp, Tools};
use rmcp::ServiceError;
use rmcp::model::{CallToolRequestParams, ReadResourceRequestParams, ResourceContents};
use serde_json::{Value, json};

use super::{Status, Upstreams, list_resources, result};
use crate::access::{Access, Servers};
use crate::catalog::entry;

/// Answers `HostOp`s with the configured upstreams. Every error message starts with
/// `server.tool:` (or names the server) so the `ToolError` agent code sees says where it came
/// from.
/// A tenant sees only the servers [`Access`] allows it: the others answer as unknown.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamHost {
    upstreams: Arc<Upstreams>,
    access: Arc<Access>,
}

impl UpstreamHost {
    pub(crate) fn new(upstreams: Arc<Upstreams>, access: Arc<Access>) -> Self {
        Self { upstreams, access }
    }
}

impl Tools for UpstreamHost {
    fn call(&self, tenant: &str, op: HostOp) -> HostFuture {
        let upstreams = self.upstreams.clone();
        let access = self.access.clone();
        let tenant = tenant.to_owned();
        Box::pin(async move { answer(&upstreams, &access, &tenant, op).await })
    }

    fn schema_sha256(&self, server: &str, tool: &str) -> Option<String> {
        self.upstreams.catalog().schema_sha256(server, tool)
    }

    fn read_only(&self, server: &str, tool: &str) -> bool {
        self.upstreams
            .catalog()
            .find(server, tool)
            .is_some_and(|t| {
                t.tool
                    .annotations
                    .as_ref()
                    .and_then(|a| a.read_only_hint)
                    .unwrap_or(false)
            })
    }

    fn catalog_version(&self) -> String {
        self.upstreams.catalog().version.clone()
    }

    fn server_names(&self, tenant: &str) -> Vec<String> {
        let servers = self.access.servers(tenant);
        self.upstreams
            .servers()
            .keys()
            .filter(|s| servers.allows(s))
            .cloned()
            .collect()
    }
}

/// The error for a server that is not configured, or that `servers` does not allow: the two
/// read the same, so a tenant cannot learn which servers others may use.
pub(crate) fn unknown_server(upstreams: &Upstreams, servers: Servers<'_>, server: &str) -> String {
    let known: Vec<&str> = upstreams
        .servers()
        .keys()
        .map(String::as_str)
        .filter(|s| servers.allows(s))
        .collect();
    if known.is_empty() {
        format!("unknown server `{server}`: no upstream MCP servers are configured")
    } else {
        format!(
            "unknown server `{server}`; configured servers: {}",
            known.join(", ")
        )
    }
}

/// The upstream `server`, when it is configured and `servers` allows it.
///
/// # Errors
/// [`unknown_server`]'s message otherwise.
fn allowed<'a>(
    upstreams: &'a Upstreams,
    servers: Servers<'_>,
    server: &str,
) -> Result<&'a Arc<super::Upstream>, String> {
    upstreams
        .servers()
        .get(server)
        .filter(|_| servers.allows(server))
        .ok_or_else(|| unknown_server(upstreams, servers, server))
}

async fn answer(
    upstreams: &Upstreams,
    access: &Access,
    tenant: &str,
    op: HostOp,
) -> Result<Value, String> {
    let servers = access.servers(tenant);
    match op {
        HostOp::ListTools { server, detail } => {
            if let Some(s) = server.as_deref() {
                allowed(upstreams, servers, s)?;
            }
            let catalog = upstreams.settled_catalog().await;
            let tools = catalog.list(server.as_deref(), &servers);
            Ok(Value::Array(
                tools
                    .into_iter()
                    .map(|t| entry(t, detail, tenant))
                    .collect(),
            ))
        }
        HostOp::SearchTools {
            query,
            server,
            detail,
            limit,
        } => {
            let catalog = upstreams.settled_catalog().await;
            let limit = limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
            let tools = catalog.search(&query, server.as_deref(), limit, &servers);
            Ok(Value::Array(
                tools
                    .into_iter()
                    .map(|t| entry(t, detail, tenant))
                    .collect(),
            ))
        }
        HostOp::CallTool { server, tool, args } => {
            let called = call_tool(upstreams, servers, tenant, &server, &tool, args).await;
            count_host_call(upstreams, &server, &tool, called.is_ok());
            called.map_err(|message| format!("{server}.{tool}: {message}"))
        }
        HostOp::ListResources => Ok(Value::Array(
            list_resources(upstreams)
                .await
                .into_iter()
                .filter(|(server, _)| servers.allows(server))
                .map(|(server, r)| {
                    json!({
                        "server": server,
                        "uri": r.uri,
                        "name": r.name,
                        "mimeType": r.mime_type,
                        "description": r.description,
                    })
                })
                .collect(),
        )),
        HostOp::ReadResource { uri, server } => {
            read_resource(upstreams, servers, &uri, server.as_deref()).await
        }
        _ => Err("this host call is not supported by this server version".to_owned()),
    }
}

/// `mcpk_host_calls_total{server,tool,outcome}`; names the catalogue does not hold count as
/// `(unknown)`, so agent code cannot grow the label set.
fn count_host_call(upstreams: &Upstreams, server: &str, tool: &str, ok: bool) {
    let catalog = upstreams.catalog();
    let known = catalog.find(server, tool);
    let (server, tool) = known.map_or_else(
        || ("(unknown)".to_owned(), "(unknown)".to_owned()),
        |t| (t.server.clone(), t.tool.name.to_string()),
    );
    let outcome = if ok { "ok" } else { "error" };
    metrics::counter!(crate::ops::HOST_CALLS_TOTAL, "server" => server, "tool" => tool, "outcome" => outcome)
        .increment(1);
}

async fn call_tool(
    upstreams: &Upstreams,
    servers: Servers<'_>,
    tenant: &str,
    server: &str,
    tool: &str,
    args: Value,
) -> Result<Value, String> {
    let upstream = allowed(upstreams, servers, server)?;
    let (peer, tools) = upstream.ready(upstreams.limits.connect_timeout).await?;
    let Some(definition) = tools
        .iter()
        .find(|t| t.name == tool)
        .or_else(|| spelled_alike(&tools, tool))
    else {
        let catalog = upstreams.catalog();
        let near: Vec<String> = catalog
            .search(tool, Some(server), Some(3), &servers)
            .into_iter()
            .map(|t| t.tool.name.to_string())
            .collect();
        let hint = if near.is_empty() {
            // No near match: list what exists (capped), so the agent can pick without a
            // second round trip.
            const MAX_LISTED: usize = 20;
            let names: Vec<&str> = tools
                .iter()
                .take(MAX_LISTED)
                .map(|t| t.name.as_ref())
                .collect();
            let more = tools.len().saturating_sub(MAX_LISTED);
            let more = if more > 0 {
                format!(" and {more} more (mcp.tools.list({{server: '{server}'}}))")
            } else {
                String::new()
            };
            format!("; its tools: {}{more}", names.join(", "))
        } else {
            format!("; did you mean {}?", near.join(", "))
        };
        return Err(format!("server `{server}` has no tool `{tool}`{hint}"));
    };
    // The tool's own name from here on (`getSum` written for `get-sum`).
    let tool: &str = &definition.name;
    let Value::Object(args) = args else {
        return Err("`args` must be an object".to_owned());
    };
    if let Some(validator) = upstreams.validator(server, definition) {
        result::check(&validator, &args)?;
    }
    let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(args);
    // Dropping this future (the execute call ended) makes rmcp send notifications/cancelled.
    let call = tokio::time::timeout(upstreams.limits.call_timeout, peer.call_tool(params)).await;
    let outcome = match call {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => {
            let closed = peer.is_transport_closed()
                || matches!(
                    e,
                    ServiceError::TransportClosed | ServiceError::TransportSend(_)
                )
                || matches!(upstream.status(), Status::Unavailable { .. });
            return Err(if closed {
                format!(
                    "the server closed the connection during the call (it may have crashed); the call was not retried: {e}"
                )
            } else {
                format!("the call failed: {e}")
            });
        }
        Err(_) => {
            return Err(format!(
                "no answer within {:?}; the call was cancelled",
                upstreams.limits.call_timeout
            ));
        }
    };
    if outcome.is_error == Some(true) {
        return Err(result::error_message(&outcome));
    }
    let value = result::value_of(&outcome);
    if definition.output_schema.is_none()
        && let Some(t) = upstreams.catalog().find(server, tool)
    {
        t.observe(tenant, &value);
    }
    Ok(value)
}

/// The one tool whose name equals `written` once case, `-`, `_` and `.` are ignored: code
/// cannot write `servers.everything.get-sum`, so it writes `getSum` or `get_sum`. `None` when
/// no tool or more than one matches.
fn spelled_alike<'a>(
    tools: &'a [rmcp::model::Tool],
    written: &str,
) -> Option<&'a rmcp::model::Tool> {
    let wanted = crate::catalog::spelling_key(written);
    let mut matching = tools
        .iter()
        .filter(|t| crate::catalog::spelling_key(&t.name) == wanted);
    match (matching.next(), matching.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

async fn read_resource(
    upstreams: &Upstreams,
    servers: Servers<'_>,
    uri: &str,
    server: Option<&str>,
) -> Result<Value, String> {
    let server = match server {
        Some(s) => s.to_owned(),
        None => list_resources(upstreams)
            .await
            .into_iter()
            .find(|(s, r)| r.uri == uri && servers.allows(s))
            .map(|(s, _)| s)
            .ok_or_else(|| {
                format!("no upstream lists a resource `{uri}`; pass {{server}} to ask one directly")
            })?,
    };
    let upstream = allowed(upstreams, servers, &server)?;
    let (peer, _) = upstream.ready(upstreams.limits.connect_timeout).await?;
    let read = tokio::time::timeout(
        upstreams.limits.call_timeout,
        peer.read_resource(ReadResourceRequestParams::new(uri.to_owned())),
    )
    .await
    .map_err(|_| {
        format!(
            "{server}: reading `{uri}` took longer than {:?}",
            upstreams.limits.call_timeout
        )
    })?
    .map_err(|e| format!("{server}: reading `{uri}` failed: {e}"))?;
    Ok(Value::Array(
        read.contents
            .into_iter()
            .map(|c| match c {
                ResourceContents::TextResourceContents {
                    uri,
                    mime_type,
                    text,
                    ..
                } => {
                    json!({"uri": uri, "mimeType": mime_type, "text": text})
                }
                ResourceContents::BlobResourceContents {
                    uri,
                    mime_type,
                    blob,
                    ..
                } => {
                    json!({"uri": uri, "mimeType": mime_type, "blob": blob})
                }
                other => serde_json::to_value(other).unwrap_or(Value::Null),
            })
            .collect(),
    ))
}
