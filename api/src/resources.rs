//! The MCP resources this server lists: the "file tree" an agent or a person in the
//! Inspector can browse.
//!
//! - `tool://<server>/<tool>.d.ts`: an upstream tool's TypeScript declaration;
//! - `skill://<name>`: a saved skill of the connection's tenant, its description and source;
//! - `session://<name>`: a session of the tenant (last use, state bytes, live or hibernated).

use mcpk_session::{SessionKey, SessionManager};
use rmcp::ErrorData;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents};

use crate::access::Servers;
use crate::catalog::Catalog;
use crate::upstream::Upstreams;

const TOOL_SCHEME: &str = "tool://";
const SKILL_SCHEME: &str = "skill://";
const SESSION_SCHEME: &str = "session://";

/// One resource per upstream tool `servers` allows, `tool://<server>/<tool>.d.ts`.
pub(crate) fn tools(catalog: &Catalog, servers: Servers<'_>) -> Vec<Resource> {
    catalog
        .list(None, &servers)
        .into_iter()
        .map(|t| {
            Resource::new(
                format!("{TOOL_SCHEME}{}/{}.d.ts", t.server, t.tool.name),
                format!("{}.{}", t.server, t.tool.name),
            )
            .with_mime_type("application/typescript")
            .with_description(crate::upstream::summary(
                t.tool.description.as_deref().unwrap_or_default(),
            ))
        })
        .collect()
}

fn store_error(error: &mcpk_session::SessionError) -> ErrorData {
    ErrorData::internal_error(format!("listing resources failed: {error}"), None)
}

/// One resource per saved skill of `connection`'s tenant, `skill://<name>`.
///
/// # Errors
/// An internal error when the store failed.
pub(crate) async fn skills(
    sessions: &SessionManager,
    connection: &SessionKey,
) -> Result<Vec<Resource>, ErrorData> {
    let (_, skills) = sessions
        .skills(&connection.tenant)
        .await
        .map_err(|e| store_error(&e))?;
    Ok(skills
        .iter()
        .map(|s| {
            Resource::new(
                format!("{SKILL_SCHEME}{}", s.name),
                format!("skills.{}", s.name),
            )
            .with_mime_type("text/javascript")
            .with_description(crate::upstream::summary(&s.description))
        })
        .collect())
}

/// One resource per session of `connection`'s tenant, `session://<name>`.
///
/// # Errors
/// An internal error when the store failed.
pub(crate) async fn sessions(
    sessions: &SessionManager,
    connection: &SessionKey,
) -> Result<Vec<Resource>, ErrorData> {
    let list = sessions
        .list(connection)
        .await
        .map_err(|e| store_error(&e))?;
    Ok(list
        .iter()
        .map(|s| {
            let status = if s.live { "live" } else { "hibernated" };
            Resource::new(format!("{SESSION_SCHEME}{}", s.name), s.name.clone())
                .with_mime_type("application/json")
                .with_description(format!("{status}, {} bytes of mcp.state", s.state_bytes))
        })
        .collect())
}

/// Reads one resource of any of the three schemes.
///
/// # Errors
/// `resource_not_found` (-32002) naming the URI and the forms expected; an internal error
/// when the store failed.
pub(crate) async fn read(
    upstreams: &Upstreams,
    sessions: &SessionManager,
    connection: &SessionKey,
    servers: Servers<'_>,
    uri: &str,
) -> Result<ReadResourceResult, ErrorData> {
    let not_found = |what: &str| {
        ErrorData::resource_not_found(format!("no resource `{uri}`: expected {what}"), None)
    };
    if let Some(path) = uri.strip_prefix(TOOL_SCHEME) {
        let catalog = upstreams.settled_catalog().await;
        let expected = "tool://<server>/<tool>.d.ts for a tool in the catalogue";
        let (server, tool) = path
            .strip_suffix(".d.ts")
            .and_then(|p| p.split_once('/'))
            .ok_or_else(|| not_found(expected))?;
        let t = catalog
            .find(server, tool)
            .filter(|t| servers.allows(&t.server))
            .ok_or_else(|| not_found(expected))?;
        return Ok(text(
            uri,
            t.current_declaration(&connection.tenant).into_owned(),
            "application/typescript",
        ));
    }
    if let Some(name) = uri.strip_prefix(SKILL_SCHEME) {
        let skill = sessions
            .skill(&connection.tenant, name)
            .await
            .map_err(|e| store_error(&e))?
            .ok_or_else(|| not_found("skill://<name> for a saved skill"))?;
        let body = format!(
            "/**\n * {}\n * revision {}; calls: {}\n */\n{}\n",
            skill.description.replace("*/", "* /"),
            skill.revision,
            if skill.tools.is_empty() {
                "no upstream tools".to_owned()
            } else {
                skill
                    .tools
                    .iter()
                    .map(|t| format!("{}.{}", t.server, t.tool))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            skill.source
        );
        return Ok(text(uri, body, "text/javascript"));
    }
    if let Some(name) = uri.strip_prefix(SESSION_SCHEME) {
        let list = sessions
            .list(connection)
            .await
            .map_err(|e| store_error(&e))?;
        let info = list
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| not_found("session://<name> for a session of this tenant"))?;
        let body = serde_json::to_string_pretty(&info).unwrap_or_default();
        return Ok(text(uri, body, "application/json"));
    }
    Err(not_found(
        "tool://<server>/<tool>.d.ts, skill://<name> or session://<name>",
    ))
}

fn text(uri: &str, body: String, mime: &str) -> ReadResourceResult {
    let mut contents = ResourceContents::text(body, uri);
    if let ResourceContents::TextResourceContents { mime_type, .. } = &mut contents {
        *mime_type = Some(mime.to_owned());
    }
    ReadResourceResult::new(vec![contents])
}
