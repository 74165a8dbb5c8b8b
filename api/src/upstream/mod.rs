//! Upstream MCP servers: connections through rmcp clients, the tool catalogue, and the
//! [`Tools`](mcpk_session::Tools) that answers sandboxed code's `mcp.tools.*`,
//! `servers.*` and `mcp.resources.*` calls.
//!
//! Each configured server has a supervising task. It connects (spawning the stdio process or
//! opening the streamable-HTTP session), lists the tools, and then waits for the connection to
//! close or for `notifications/tools/list_changed`. A server that fails to start or exits is
//! marked unavailable with the reason, and reconnected with exponential backoff (1 s doubling
//! to 30 s). `list_changed` notifications coalesce into one pending re-listing; a re-listing
//! runs under the connect timeout while the connection is still watched, and a listing is
//! capped at 100 pages and 10,000 tools per server. Calls in flight when it dies fail with a clear error and are never retried, since
//! tools may have side effects. Startup never waits for a slow or dead server.

pub(crate) mod config;
mod host;
mod result;
pub(crate) mod start;
pub(crate) mod stdio;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use rmcp::model::{ClientConfig, Implementation, Resource, Tool};
use rmcp::service::{NotificationContext, Peer, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt as _};
use tokio::sync::{Notify, watch};

pub(crate) use crate::catalog::{Catalog, Detail, render, summary};
pub use config::UpstreamConfigError;
pub(crate) use config::{ServerConfig, Transport};
pub(crate) use host::{UpstreamHost, unknown_server};

/// Timeouts of upstream connections and calls. Units in the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamLimits {
    /// Longest wait for a server to start and answer `initialize` + `tools/list` (default
    /// 30 s). For a stdio server it is the longest stretch of *silence*: each line it writes on
    /// stderr starts the wait over, up to 10 times this in all, and a package runner (`npx`,
    /// `uvx`, …) gets at least 120 s before its first start (see `upstream::start`). Also
    /// bounds the `tools/list` that follows `notifications/tools/list_changed`: a server that
    /// does not answer it in time is restarted.
    pub connect_timeout: Duration,
    /// Longest wait for one upstream tool call or resource read (default 60 s). A call is also
    /// cancelled (`notifications/cancelled`) when the `execute` call that made it ends first.
    pub call_timeout: Duration,
}

impl Default for UpstreamLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(60),
        }
    }
}

type CachedValidator = (
    Arc<rmcp::model::JsonObject>,
    Option<Arc<jsonschema::Validator>>,
);

const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Most `tools/list` pages read from one server; a server that pages on past this is marked
/// unavailable with an error naming the cap.
const MAX_TOOL_LIST_PAGES: usize = 100;
/// Most tools accepted from one server.
const MAX_TOOLS_PER_SERVER: usize = 10_000;

/// Every page of `tools/list`, at most [`MAX_TOOL_LIST_PAGES`] pages and
/// [`MAX_TOOLS_PER_SERVER`] tools (rmcp's `list_all_tools` follows cursors without a bound).
async fn list_tools_capped(peer: &Peer<RoleClient>) -> Result<Vec<Tool>, String> {
    let mut tools = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_TOOL_LIST_PAGES {
        let params = cursor.map(|cursor| {
            let mut params = rmcp::model::PaginatedRequestParams::default();
            params.cursor = Some(cursor);
            params
        });
        let page = peer
            .list_tools(params)
            .await
            .map_err(|e| format!("tools/list failed: {e}"))?;
        tools.extend(page.tools);
        if tools.len() > MAX_TOOLS_PER_SERVER {
            return Err(format!(
                "tools/list returned more than {MAX_TOOLS_PER_SERVER} tools (the per-server cap)"
            ));
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(tools),
        }
    }
    Err(format!(
        "tools/list went on for more than {MAX_TOOL_LIST_PAGES} pages (the per-server cap)"
    ))
}

/// Where one upstream stands.
#[derive(Debug, Clone)]
pub(crate) enum Status {
    /// Not yet connected (first attempt in progress).
    Starting,
    /// Connected, with its tools.
    Ready {
        peer: Peer<RoleClient>,
        tools: Arc<Vec<Tool>>,
    },
    /// The last attempt failed or the connection closed; a retry is scheduled.
    Unavailable { reason: String },
}

/// One configured upstream and its current status.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub(crate) config: ServerConfig,
    status: watch::Sender<Status>,
}

impl Upstream {
    /// The status now.
    pub(crate) fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// The peer and tools once the server is ready, waiting up to `wait` while it is still
    /// starting.
    pub(crate) async fn ready(
        &self,
        wait: Duration,
    ) -> Result<(Peer<RoleClient>, Arc<Vec<Tool>>), String> {
        let mut rx = self.status.subscribe();
        let settled =
            tokio::time::timeout(wait, rx.wait_for(|s| !matches!(s, Status::Starting))).await;
        let status = match settled {
            Ok(Ok(status)) => status.clone(),
            _ => {
                return Err(format!(
                    "server `{}` is still starting after {wait:?}",
                    self.config.name
                ));
            }
        };
        match status {
            Status::Ready { peer, tools } => Ok((peer, tools)),
            Status::Unavailable { reason } => Err(format!(
                "server `{}` is unavailable ({reason}); it is being restarted with backoff",
                self.config.name
            )),
            Status::Starting => unreachable!("waited for a settled status"),
        }
    }
}

/// All configured upstreams and the catalogue built from their tool lists.
#[derive(Debug)]
pub(crate) struct Upstreams {
    servers: BTreeMap<String, Arc<Upstream>>,
    catalog: RwLock<Arc<Catalog>>,
    /// Compiled input-schema validators by (server, tool), with the schema they were compiled
    /// from: a refreshed tool list brings new schema `Arc`s, which miss the cache.
    validators: std::sync::Mutex<BTreeMap<(String, String), CachedValidator>>,
    pub(crate) limits: UpstreamLimits,
}

impl Upstreams {
    /// Starts a supervising task per server (in parallel; none is awaited) and returns at once.
    pub(crate) fn start(configs: Vec<ServerConfig>, limits: UpstreamLimits) -> Arc<Self> {
        let servers: BTreeMap<String, Arc<Upstream>> = configs
            .into_iter()
            .map(|config| {
                let (status, _) = watch::channel(Status::Starting);
                (config.name.clone(), Arc::new(Upstream { config, status }))
            })
            .collect();
        let this = Arc::new(Self {
            servers,
            catalog: RwLock::new(Arc::new(Catalog::default())),
            validators: std::sync::Mutex::new(BTreeMap::new()),
            limits,
        });
        for upstream in this.servers.values() {
            tokio::spawn(supervise(upstream.clone(), Arc::downgrade(&this)));
        }
        this
    }

    /// The configured servers, by name.
    pub(crate) fn servers(&self) -> &BTreeMap<String, Arc<Upstream>> {
        &self.servers
    }

    /// The compiled input-schema validator of `tool` on `server`, compiled once per tool list.
    pub(crate) fn validator(
        &self,
        server: &str,
        tool: &Tool,
    ) -> Option<Arc<jsonschema::Validator>> {
        let key = (server.to_owned(), tool.name.to_string());
        let mut cache = self.validators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((schema, validator)) = cache.get(&key)
            && Arc::ptr_eq(schema, &tool.input_schema)
        {
            return validator.clone();
        }
        let validator = result::compile(tool).map(Arc::new);
        cache.insert(key, (tool.input_schema.clone(), validator.clone()));
        validator
    }

    /// The catalogue once every server has connected or failed its first attempt (waiting at
    /// most the connect timeout), so a search right after start-up does not see an empty
    /// catalogue while a direct call would have waited for its server.
    pub(crate) async fn settled_catalog(&self) -> Arc<Catalog> {
        let starting = self
            .servers
            .values()
            .any(|u| matches!(u.status(), Status::Starting));
        if starting {
            self.settled(self.limits.connect_timeout).await;
        }
        self.catalog()
    }

    /// The current catalogue (tools of every ready server) and its version hash.
    pub(crate) fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// Waits until every server has either connected or failed its first attempt, at most
    /// `wait`. Used by `mcp-kernel run`, which should not start a script while its servers
    /// are still starting.
    pub(crate) async fn settled(&self, wait: Duration) {
        let all = self.servers.values().map(|u| {
            let mut rx = u.status.subscribe();
            async move {
                let _ = rx.wait_for(|s| !matches!(s, Status::Starting)).await;
            }
        });
        let _ = tokio::time::timeout(wait, futures::future::join_all(all)).await;
        // A supervisor publishes a status before it rebuilds the catalogue; make sure the
        // catalogue reflects the statuses just observed.
        self.rebuild_catalog();
    }

    /// Rebuilds the catalogue from the statuses. Statuses are read and the snapshot stored
    /// under the write lock, so two supervisors rebuilding at once cannot store a snapshot older
    /// than the statuses the other one saw. When the version is unchanged the old snapshot is
    /// kept, so signatures are generated once per catalogue version.
    fn rebuild_catalog(&self) {
        let Ok(mut slot) = self.catalog.write() else {
            return;
        };
        let mut tools: Vec<(String, Tool)> = self
            .servers
            .values()
            .flat_map(|u| match u.status() {
                Status::Ready { tools, .. } => tools
                    .iter()
                    .map(|tool| (u.config.name.clone(), tool.clone()))
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            })
            .collect();
        if Catalog::version_of(&mut tools) == slot.version {
            return;
        }
        let catalog = Arc::new(Catalog::new(tools));
        tracing::info!(version = %catalog.version, tools = catalog.tools.len(), "tool catalogue changed");
        *slot = catalog;
    }
}

/// The rmcp client handler of one upstream connection: signals `tools/list_changed`.
/// Notifications coalesce (a `Notify` stores at most one permit), so a server that floods
/// them costs one re-listing at a time, never a growing queue.
#[derive(Debug, Clone)]
struct UpstreamClient {
    changed: Arc<Notify>,
}

impl ClientHandler for UpstreamClient {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changed.notify_one();
    }

    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::default();
        info.client_info = Implementation::new("mcp-kernel", env!("CARGO_PKG_VERSION"));
        info
    }
}

type Connection = RunningService<RoleClient, UpstreamClient>;

/// Connects to `config`'s server; a stdio server's pid and stderr go to `output`.
async fn connect(
    config: &ServerConfig,
    handler: UpstreamClient,
    output: &Arc<start::StartOutput>,
) -> Result<Connection, String> {
    match &config.transport {
        Transport::Stdio {
            command,
            args,
            env,
            cwd,
        } => {
            let ct = stdio::connection_token()?;
            let cmd = stdio::command(command, args, env, cwd.as_deref());
            let (transport, stderr) = TokioChildProcess::builder(cmd)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start `{command}`: {e}"))?;
            stdio::track(transport.id());
            output.set_pid(transport.id());
            // Stderr is logged and kept for the whole life of the process; its most
            // informative recent line explains a server that dies while starting.
            let stderr_done = stderr.map(|stderr| {
                tokio::spawn(start::read_stderr(
                    config.name.clone(),
                    stderr,
                    output.clone(),
                ))
            });
            match handler.serve_with_ct(transport, ct).await {
                Ok(connection) => Ok(connection),
                Err(e) => {
                    // The process is exiting: let its last lines arrive.
                    if let Some(done) = stderr_done {
                        let _ = tokio::time::timeout(Duration::from_millis(500), done).await;
                    }
                    Err(output.explain(&format!("MCP handshake failed: {e}")))
                }
            }
        }
        Transport::Http { url, headers } => {
            use rmcp::transport::StreamableHttpClientTransport;
            use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
            let mut transport_config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
            for (name, value) in headers {
                let name = http::HeaderName::try_from(name.as_str())
                    .map_err(|e| format!("header `{name}`: {e}"))?;
                let value = http::HeaderValue::try_from(value.as_str())
                    .map_err(|e| format!("header `{name}`: {e}"))?;
                transport_config.custom_headers.insert(name, value);
            }
            let transport = StreamableHttpClientTransport::with_client(
                reqwest::Client::new(),
                transport_config,
            );
            handler
                .serve(transport)
                .await
                .map_err(|e| format!("MCP handshake with {url} failed: {e}"))
        }
    }
}

/// Connects, lists tools, waits for the connection to end, and starts over with backoff.
async fn supervise(upstream: Arc<Upstream>, owner: Weak<Upstreams>) {
    let name = upstream.config.name.clone();
    let mut backoff = BACKOFF_START;
    let mut started_before = false;
    loop {
        let Some(limits) = owner.upgrade().map(|o| o.limits) else {
            return;
        };
        let changed = Arc::new(Notify::new());
        let output = start::StartOutput::new();
        let attempt = async {
            let connection = connect(
                &upstream.config,
                UpstreamClient {
                    changed: changed.clone(),
                },
                &output,
            )
            .await?;
            let tools = list_tools_capped(connection.peer()).await?;
            Ok::<_, String>((connection, tools))
        };
        let budget = start::StartBudget::new(&upstream.config, limits, started_before);
        let outcome = start::within_budget(&name, attempt, &output, budget).await;
        match outcome {
            Ok((connection, tools)) => {
                started_before = true;
                tracing::info!(server = %name, tools = tools.len(), "upstream ready");
                backoff = BACKOFF_START;
                let peer = connection.peer().clone();
                upstream.status.send_replace(Status::Ready {
                    peer: peer.clone(),
                    tools: Arc::new(tools),
                });
                if let Some(owner) = owner.upgrade() {
                    owner.rebuild_catalog();
                }
                let closed = connection.waiting();
                tokio::pin!(closed);
                // A re-listing runs under the connect timeout and beside the close watch, so
                // a server that stops answering or goes away mid-listing is noticed.
                let reason = loop {
                    tokio::select! {
                        quit = &mut closed => {
                            if stdio::stopping() {
                                tracing::debug!(server = %name, ?quit, "upstream connection closed at shutdown");
                            } else {
                                tracing::warn!(server = %name, ?quit, "upstream connection closed");
                            }
                            break "its connection closed (the process exited or the session ended)".to_owned();
                        }
                        () = changed.notified() => {
                            let listed = tokio::select! {
                                quit = &mut closed => {
                                    tracing::warn!(server = %name, ?quit, "upstream connection closed while listing tools");
                                    break "its connection closed (the process exited or the session ended)".to_owned();
                                }
                                listed = tokio::time::timeout(limits.connect_timeout, list_tools_capped(&peer)) => listed,
                            };
                            match listed {
                                Ok(Ok(tools)) => {
                                    tracing::info!(server = %name, tools = tools.len(), "upstream tool list changed");
                                    upstream.status.send_replace(Status::Ready { peer: peer.clone(), tools: Arc::new(tools) });
                                    if let Some(owner) = owner.upgrade() {
                                        owner.rebuild_catalog();
                                    }
                                }
                                Ok(Err(e)) => tracing::warn!(server = %name, error = %e, "tools/list after list_changed failed"),
                                Err(_) => {
                                    let reason = format!(
                                        "tools/list after notifications/tools/list_changed did not answer within {:?} (the connect timeout)",
                                        limits.connect_timeout
                                    );
                                    tracing::warn!(server = %name, %reason, "restarting the upstream");
                                    break reason;
                                }
                            }
                        }
                    }
                };
                // `closed` owns the connection; dropping it at the end of this block cancels
                // the service, which kills a stdio server's process.
                upstream.status.send_replace(Status::Unavailable { reason });
            }
            Err(reason) if stdio::stopping() => {
                tracing::debug!(server = %name, %reason, "upstream start cancelled at shutdown");
                upstream.status.send_replace(Status::Unavailable { reason });
            }
            Err(reason) => {
                tracing::warn!(server = %name, %reason, retry_in = ?backoff, "upstream unavailable");
                upstream.status.send_replace(Status::Unavailable { reason });
            }
        }
        match owner.upgrade() {
            Some(owner) => owner.rebuild_catalog(),
            None => return,
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Resources of every ready server, for `mcp.resources.list()`.
pub(crate) async fn list_resources(upstreams: &Upstreams) -> Vec<(String, Resource)> {
    let mut out = Vec::new();
    for (name, upstream) in upstreams.servers() {
        if let Status::Ready { peer, .. } = upstream.status() {
            if peer
                .peer_info()
                .is_some_and(|info| info.capabilities.resources.is_none())
            {
                continue;
            }
            let listed =
                tokio::time::timeout(upstreams.limits.call_timeout, peer.list_all_resources())
                    .await;
            if let Ok(Ok(resources)) = listed {
                out.extend(resources.into_iter().map(|r| (name.clone(), r)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_rebuild_with_the_same_version_keeps_the_snapshot_and_its_signatures() {
        let upstreams = Upstreams::start(Vec::new(), UpstreamLimits::default());
        upstreams.rebuild_catalog();
        let first = upstreams.catalog();
        upstreams.rebuild_catalog();
        upstreams.settled(Duration::from_secs(1)).await;
        assert!(Arc::ptr_eq(&first, &upstreams.catalog()));
    }
}
