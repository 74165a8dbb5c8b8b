//! The host-call router: answers what a session's sandboxed code asks of the host.
//!
//! ```text
//! worker ── HostCall{op} ──▶ Router ─┬─ skills.* ────────▶ Store (per tenant)
//!                                     ├─ sessions.* ──────▶ SessionManager (the tenant's)
//!                                     └─ tools / resources ▶ dyn Tools (api's upstream clients)
//! ```

use std::sync::{Arc, Weak};

use mcpk_kernel::{HostFuture, HostHandler, HostOp};
use serde_json::{Value, json};

use crate::key::SessionKey;
use crate::manager::Shared;
use crate::store::{StoredSkill, ToolSchema};

/// What a session needs from the embedding application's upstream MCP clients: answers to
/// the catalogue, tool and resource host calls, and the schema hash of a tool.
pub trait Tools: Send + Sync + std::fmt::Debug + 'static {
    /// Answers `HostOp::{ListTools, SearchTools, CallTool, ListResources, ReadResource}`; any
    /// other op is never passed. `tenant` is the calling session's: an implementation may
    /// limit each tenant to some servers. The error string is what agent code sees as the
    /// `ToolError` message.
    fn call(&self, tenant: &str, op: HostOp) -> HostFuture;

    /// SHA-256 (lowercase hex) of the input schema `server.tool` has now, or `None` when no
    /// ready upstream lists that tool. Skills record it when saved, and a call of a skill
    /// whose tool's hash changed since logs a warning naming the tool.
    fn schema_sha256(&self, server: &str, tool: &str) -> Option<String>;

    /// Whether `server.tool` is annotated `readOnlyHint: true` in the catalogue now; `false`
    /// for an unknown tool. Only calls whose tools are all read-only may be cached.
    fn read_only(&self, server: &str, tool: &str) -> bool;

    /// The upstream catalogue's version: it changes whenever any tool list changes. Cache
    /// entries of calls that used tools are keyed on it.
    fn catalog_version(&self) -> String;

    /// The upstream server names `tenant` may use, in order: what `Object.keys(servers)`
    /// lists.
    fn server_names(&self, tenant: &str) -> Vec<String>;
}

/// The host handler of one call: knows the calling session, so skills and sessions resolve
/// in its tenant.
pub(crate) struct Router {
    /// The session the call runs in.
    pub(crate) key: SessionKey,
    /// The calling connection's default session, which agent code names `"default"`.
    pub(crate) connection: SessionKey,
    pub(crate) shared: Weak<Shared>,
    pub(crate) tools: Arc<dyn Tools>,
    /// Estimated tokens of the upstream tool and resource replies this call read so far.
    pub(crate) processed: Arc<std::sync::atomic::AtomicUsize>,
    /// Where the call's console lines and `mcp.progress` reports go as they happen.
    pub(crate) progress: Option<ProgressSink>,
    /// The upstream tool calls this call made so far (bounded), for the audit log. Locked
    /// only to push one entry, never across an `.await`.
    pub(crate) tool_calls: Arc<std::sync::Mutex<crate::ToolCalls>>,
}

/// Receives a running call's console lines and `mcp.progress` reports as they arrive (see
/// [`mcpk_kernel::HostHandler::progress`]); it must return at once.
pub type ProgressSink = Arc<dyn Fn(mcpk_kernel::Progress<'_>) + Send + Sync>;

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("key", &self.key)
            .field("connection", &self.connection)
            .field("progress", &self.progress.is_some())
            .finish_non_exhaustive()
    }
}

impl HostHandler for Router {
    fn server_names(&self) -> Vec<String> {
        self.tools.server_names(&self.key.tenant)
    }

    fn progress(&self, event: mcpk_kernel::Progress<'_>) {
        if let Some(sink) = &self.progress {
            sink(event);
        }
    }

    fn call(&self, op: HostOp) -> HostFuture {
        match op {
            HostOp::SkillSave { .. }
            | HostOp::SkillList
            | HostOp::SkillGet { .. }
            | HostOp::SkillDelete { .. }
            | HostOp::SessionList
            | HostOp::SessionClose { .. } => {
                let key = self.key.clone();
                let connection = self.connection.clone();
                let shared = self.shared.clone();
                let tools = self.tools.clone();
                Box::pin(async move {
                    let shared = shared
                        .upgrade()
                        .ok_or_else(|| "the server is shutting down".to_owned())?;
                    answer(&shared, &tools, &key, &connection, op).await
                })
            }
            upstream @ (HostOp::CallTool { .. } | HostOp::ReadResource { .. }) => {
                if let HostOp::CallTool { server, tool, args } = &upstream {
                    self.tool_calls
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(server, tool, args);
                }
                let reply = self.tools.call(&self.key.tenant, upstream);
                let processed = self.processed.clone();
                Box::pin(async move {
                    let value = reply.await?;
                    let tokens = crate::estimate_tokens(&value.to_string());
                    processed.fetch_add(tokens, std::sync::atomic::Ordering::Relaxed);
                    Ok(value)
                })
            }
            other => self.tools.call(&self.key.tenant, other),
        }
    }
}

async fn answer(
    shared: &Shared,
    tools: &Arc<dyn Tools>,
    key: &SessionKey,
    connection: &SessionKey,
    op: HostOp,
) -> Result<Value, String> {
    let tenant = key.tenant.as_str();
    let store = &shared.store;
    match op {
        HostOp::SkillSave {
            name,
            source,
            description,
            params,
            tools: called,
        } => {
            let called = called
                .into_iter()
                .map(|t| ToolSchema {
                    schema_sha256: tools.schema_sha256(&t.server, &t.tool),
                    server: t.server,
                    tool: t.tool,
                })
                .collect();
            let now = crate::manager::unix_ms();
            let skill = StoredSkill {
                name: name.clone(),
                description,
                source,
                params,
                tools: called,
                revision: 0,
                created_ms: now,
                updated_ms: now,
            };
            let version = store
                .skill_save(tenant, skill)
                .await
                .map_err(|e| format!("mcp.skills.save: {e}"))?;
            shared.forget_library(tenant);
            Ok(json!({"name": name, "version": version}))
        }
        HostOp::SkillList => {
            let (_, skills) = store
                .skill_list(tenant)
                .await
                .map_err(|e| format!("mcp.skills.list: {e}"))?;
            Ok(Value::Array(
                skills.iter().map(|s| skill_json(s, false)).collect(),
            ))
        }
        HostOp::SkillGet { name } => {
            let skill = store
                .skill_get(tenant, &name)
                .await
                .map_err(|e| format!("mcp.skills.get: {e}"))?;
            Ok(skill.map_or(Value::Null, |s| skill_json(&s, true)))
        }
        HostOp::SkillDelete { name } => {
            let deleted = store
                .skill_delete(tenant, &name)
                .await
                .map_err(|e| format!("mcp.skills.delete: {e}"))?;
            shared.forget_library(tenant);
            Ok(Value::Bool(deleted.is_some()))
        }
        HostOp::SessionList => {
            let sessions = shared
                .list(connection)
                .await
                .map_err(|e| format!("mcp.sessions.list: {e}"))?;
            Ok(serde_json::to_value(sessions).unwrap_or(Value::Null))
        }
        HostOp::SessionClose { name } => {
            let target = crate::manager::resolve_name(connection, &name)
                .map_err(|e| format!("mcp.sessions.close: {e}"))?;
            if &target == key {
                return Err(
                    "mcp.sessions.close: cannot close the session this call runs in".to_owned(),
                );
            }
            shared
                .close(&target)
                .await
                .map(Value::Bool)
                .map_err(|e| format!("mcp.sessions.close: {e}"))
        }
        _ => Err("this host call is not supported by this server version".to_owned()),
    }
}

/// A skill as agent code sees it: `{name, description, params, tools: [{server, tool}],
/// revision, created_ms, updated_ms}`, plus `source` when `with_source`.
pub(crate) fn skill_json(skill: &StoredSkill, with_source: bool) -> Value {
    let mut value = json!({
        "name": skill.name,
        "description": skill.description,
        "params": skill.params,
        "tools": skill.tools.iter().map(|t| json!({"server": t.server, "tool": t.tool})).collect::<Vec<_>>(),
        "revision": skill.revision,
        "created_ms": skill.created_ms,
        "updated_ms": skill.updated_ms,
    });
    if with_source && let Value::Object(map) = &mut value {
        map.insert("source".into(), Value::String(skill.source.clone()));
    }
    value
}
