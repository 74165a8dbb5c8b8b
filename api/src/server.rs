//! The MCP server: one `execute` tool over a [`SessionManager`].

use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use mcpk_session::{Call, SessionError, SessionKey, SessionManager};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, JsonObject,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::access::Access;
use crate::arrival::Arrival;
use crate::audit::{Audit, ExecuteRecord};
use crate::config::ServeConfig;
use crate::progress::Notifier;
use crate::response::{self, CallInfo};
use crate::tools::execute::ExecuteArgs;
use crate::tools::search_tools as search;
use crate::upstream::Upstreams;

/// The name of the one tool.
pub(crate) const EXECUTE: &str = "execute";

/// The audit status of a call whose arguments were refused before anything ran.
const REJECTED: &str = "rejected";
/// The audit status of a call the client cancelled.
const CANCELLED: &str = "cancelled";

const INSTRUCTIONS: &str = "Run JavaScript with `execute` to call upstream tools as \
`servers.<server>.<tool>(args)`, filter and join their data in code, and return only the small \
final answer. Find tools with `search_tools`. `mcp.state` persists per session.";

/// The tool description: the whole contract an agent needs to write a correct first call, in
/// at most 80 words (every token of it is paid on every request). Field details are in the
/// schema's descriptions.
fn execute_description() -> String {
    "Run strict JavaScript in a persistent sandbox. `code` is an async function body; \
     `return` the answer (else the last expression is). Tools: \
     `await servers.<server>.<tool>(args)` returns structuredContent or text; find them with \
     search_tools. Filter in code, return only the answer. Only `mcp.state` (JSON, rolled back \
     on error) and skills (`mcp.skills.save(name, fn)`) outlive a call. console.* is returned; \
     results follow JSON.stringify, cached if deterministic."
        .to_owned()
}

/// Handles MCP requests. Cheap to share: calls run concurrently, and nothing here is locked;
/// [`SessionManager`] orders the calls of one session and runs different sessions in parallel.
#[derive(Debug, Clone)]
pub(crate) struct KernelServer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ServeConfig,
    sessions: Arc<SessionManager>,
    /// This connection's own default session.
    binding: Binding,
    upstreams: Arc<Upstreams>,
    access: Arc<Access>,
    tool: Tool,
    search_tool: Tool,
    /// Over HTTP, this MCP session's place under `max_mcp_sessions`.
    _slot: Option<crate::http::SessionSlot>,
    /// Where each `execute` call ends up as one line (`--audit-log`).
    audit: Audit,
}

/// The connection's default session (which agent code names `"default"`), and so its tenant.
#[derive(Debug)]
pub(crate) enum Binding {
    /// stdio: one connection per process, of the `--tenant`.
    Fixed(SessionKey),
    /// Streamable HTTP: one server per MCP session (`Mcp-Session-Id`), bound by its first
    /// request to the tenant that request authenticated as; a request of another tenant on
    /// the same MCP session is refused. Its default session is closed when the MCP session
    /// ends.
    Http(Mutex<Option<SessionKey>>),
}

impl Drop for Inner {
    fn drop(&mut self) {
        let Binding::Http(bound) = &self.binding else {
            return;
        };
        let Some(key) = bound.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return;
        };
        let sessions = self.sessions.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = sessions.close(&key).await {
                    tracing::warn!(%error, "closing an HTTP client's default session failed");
                }
            });
        }
    }
}

impl KernelServer {
    pub(crate) fn new(
        config: ServeConfig,
        sessions: Arc<SessionManager>,
        upstreams: Arc<Upstreams>,
        access: Arc<Access>,
        binding: Binding,
        slot: Option<crate::http::SessionSlot>,
        audit: Audit,
    ) -> Self {
        let tool = execute_tool(&config);
        Self {
            inner: Arc::new(Inner {
                config,
                sessions,
                binding,
                upstreams,
                access,
                tool,
                search_tool: search::tool(),
                _slot: slot,
                audit,
            }),
        }
    }

    /// The default session of the connection `context` came on.
    ///
    /// # Errors
    /// Over HTTP: the request carries no authenticated tenant (an internal error: the auth
    /// layer always adds one), or its tenant is not the one the MCP session was opened by.
    fn connection(&self, context: &RequestContext<RoleServer>) -> Result<SessionKey, ErrorData> {
        match &self.inner.binding {
            Binding::Fixed(key) => Ok(key.clone()),
            Binding::Http(bound) => {
                let tenant = context
                    .extensions
                    .get::<http::request::Parts>()
                    .and_then(|parts| parts.extensions.get::<crate::http::Tenant>())
                    .ok_or_else(|| {
                        ErrorData::internal_error(
                            "the request carries no authenticated tenant",
                            None,
                        )
                    })?;
                let mut bound = bound.lock().unwrap_or_else(PoisonError::into_inner);
                match &*bound {
                    Some(key) if key.tenant == tenant.0 => Ok(key.clone()),
                    Some(_) => Err(ErrorData::invalid_request(
                        "this MCP session (Mcp-Session-Id) was opened with another tenant's token; \
                         initialize a session of your own",
                        None,
                    )),
                    None => {
                        let key = SessionKey::connection(tenant.0.as_str()).map_err(|e| {
                            ErrorData::internal_error(format!("invalid tenant: {e}"), None)
                        })?;
                        *bound = Some(key.clone());
                        Ok(key)
                    }
                }
            }
        }
    }

    async fn execute(
        &self,
        arguments: Option<JsonObject>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        // Taken before anything can fail: dropping it gives up this call's turn.
        let arrival = context.extensions.get::<Arc<Arrival>>().cloned();
        // Counted until answered or cancelled: a drain waits for it.
        let _in_flight = crate::ops::InFlight::start();
        let config = &self.inner.config;
        let connection = self.connection(&context)?;
        let audit = |session: Option<&str>, code: Option<&str>, result, duration| {
            self.inner.audit.record(ExecuteRecord::of_call(
                &connection.tenant,
                session,
                code,
                result,
                duration,
            ));
        };
        let args = match ExecuteArgs::parse(arguments, config) {
            Ok(args) => args,
            Err(error) => {
                audit(None, None, Err(REJECTED), Duration::ZERO);
                return Ok(error.into_result());
            }
        };
        if let Some(arrival) = &arrival {
            arrival.wait_turn().await;
        }
        let started = Instant::now();
        let key = match mcpk_session::resolve_name(&connection, &args.session) {
            Ok(key) => key,
            Err(error) => {
                let session = Some(args.session.as_str());
                audit(session, Some(&args.code), Err(REJECTED), started.elapsed());
                return Ok(crate::tools::ArgumentError(format!("execute: {error}")).into_result());
            }
        };
        let (notifier, progress) = match context.meta.get_progress_token() {
            Some(token) => {
                let (notifier, sink) = Notifier::start(context.peer.clone(), token);
                (Some(notifier), Some(sink))
            }
            None => (None, None),
        };
        let mut call = pin!(self.inner.sessions.execute(
            &key,
            Call {
                code: &args.code,
                timeout: args.timeout,
                mode: args.session_mode,
                cache: args.cache,
                connection: &connection,
                progress,
            }
        ));
        // The first poll puts the call in its session's FIFO queue; after that, the next
        // arrival may go.
        let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
        if let Some(arrival) = &arrival {
            arrival.release();
        }
        let outcome = match first {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => {
                tokio::select! {
                    outcome = call => outcome,
                    () = context.ct.cancelled() => {
                        // Dropping the call stops it; the session rolls back. rmcp drops the
                        // response of a cancelled request, so this error is never seen.
                        tracing::info!(session = %args.session, "execute cancelled by the client");
                        let session = Some(args.session.as_str());
                        audit(session, Some(&args.code), Err(CANCELLED), started.elapsed());
                        return Err(ErrorData::internal_error("the request was cancelled", None));
                    }
                }
            }
        };
        let duration = started.elapsed();
        if let Some(notifier) = notifier {
            notifier.finish().await;
        }
        audit(
            Some(&args.session),
            Some(&args.code),
            outcome.as_ref().map_err(SessionError::name),
            duration,
        );
        let answer = match outcome {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(session = %args.session, %error, "execute failed");
                record_execution("session_error", None, duration);
                return response::session_error(&error, &args.session);
            }
        };
        let status = match &answer.outcome.result {
            Ok(_) => "ok",
            Err(error) => error.kind.name(),
        };
        record_execution(status, answer.cached, duration);
        tracing::debug!(
            session = %args.session,
            ok = answer.outcome.result.is_ok(),
            cached = answer.cached,
            duration_ms = duration.as_millis(),
            "execute"
        );
        response::call_result(
            answer.outcome,
            CallInfo {
                session: &args.session,
                duration,
                max_result_bytes: config.max_result_bytes,
                cached: answer.cached,
                processed_tokens: answer.processed_tokens,
            },
        )
    }
}

/// Error names counted under their own `status` label; any other (agent code names its own
/// errors, which must not grow the label set) counts as `Error`.
const COUNTED_ERRORS: [&str; 15] = [
    "TimeoutError",
    "MemoryLimitError",
    "SerializationError",
    "StateError",
    "StateLimitError",
    "InternalError",
    "OutputLimitError",
    "ToolError",
    "TypeError",
    "RangeError",
    "ReferenceError",
    "SyntaxError",
    "URIError",
    "EvalError",
    "AggregateError",
];

/// Counts one answered `execute` in the metrics. `status` is `ok`, an error name or
/// `session_error`.
fn record_execution(status: &str, cached: Option<&'static str>, duration: std::time::Duration) {
    let status = match status {
        "ok" => "ok",
        "session_error" => "session_error",
        name => COUNTED_ERRORS
            .iter()
            .copied()
            .find(|known| *known == name)
            .unwrap_or("Error"),
    };
    metrics::counter!(crate::ops::EXECUTIONS_TOTAL, "status" => status, "cache" => cached.unwrap_or("none"))
        .increment(1);
    metrics::histogram!(crate::ops::EXECUTE_DURATION).record(duration.as_secs_f64());
}

fn execute_tool(config: &ServeConfig) -> Tool {
    Tool::new(
        EXECUTE,
        execute_description(),
        crate::tools::execute::input_schema(config),
    )
    .with_annotations(
        ToolAnnotations::with_title("Run JavaScript")
            .read_only(false)
            .idempotent(false)
            .open_world(false),
    )
}

impl ServerHandler for KernelServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("mcp-kernel", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    async fn initialize(
        &self,
        request: rmcp::model::InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::InitializeResult, ErrorData> {
        // Over HTTP the MCP session belongs to the tenant that opened it, from the start.
        if matches!(self.inner.binding, Binding::Http(_)) {
            self.connection(&context)?;
        }
        tracing::info!(
            client = %request.client_info.name,
            client_version = %request.client_info.version,
            protocol = %request.protocol_version,
            "client connected"
        );
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![
            self.inner.tool.clone(),
            self.inner.search_tool.clone(),
        ]))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        match name {
            EXECUTE => Some(self.inner.tool.clone()),
            search::SEARCH_TOOLS => Some(self.inner.search_tool.clone()),
            _ => None,
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let connection = self.connection(&context)?;
        let servers = self.inner.access.servers(&connection.tenant);
        let catalog = self.inner.upstreams.settled_catalog().await;
        let mut items = crate::resources::tools(&catalog, servers);
        items.extend(crate::resources::skills(&self.inner.sessions, &connection).await?);
        items.extend(crate::resources::sessions(&self.inner.sessions, &connection).await?);
        Ok(ListResourcesResult::with_all_items(items))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let connection = self.connection(&context)?;
        crate::resources::read(
            &self.inner.upstreams,
            &self.inner.sessions,
            &connection,
            self.inner.access.servers(&connection.tenant),
            &request.uri,
        )
        .await
        .map(ReadResourceResponse::from)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // Bad argument values are tool errors the model sees (SEP-1303); an unknown tool stays
        // a JSON-RPC error.
        match request.name.as_ref() {
            EXECUTE => self
                .execute(request.arguments, context)
                .await
                .map(CallToolResponse::from),
            search::SEARCH_TOOLS => {
                let tenant = self.connection(&context)?.tenant;
                let searched = match search::SearchArgs::parse(request.arguments) {
                    Ok(args) => {
                        search::search(
                            &self.inner.upstreams,
                            &self.inner.sessions,
                            &tenant,
                            self.inner.access.servers(&tenant),
                            &args,
                        )
                        .await
                    }
                    Err(error) => Err(error),
                };
                Ok(searched
                    .unwrap_or_else(crate::tools::ArgumentError::into_result)
                    .into())
            }
            _ => Err(response::unknown_tool(&request.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the tool surface costs a model on every request: `o200k_base` tokens of Python's
    /// `json.dumps` of each tool's name, description and input schema.
    fn surface_tokens(tools: &[Tool]) -> usize {
        tools.iter().map(crate::tokens::definition).sum()
    }

    #[test]
    fn the_tool_surface_is_at_most_350_tokens() {
        let config = ServeConfig::default();
        let tools = [execute_tool(&config), search::tool()];
        let tokens = surface_tokens(&tools);
        let dumped: Vec<String> = tools
            .iter()
            .map(|t| {
                format!(
                    "{}: {} tokens, description {}: {}",
                    t.name,
                    surface_tokens(std::slice::from_ref(t)),
                    crate::tokens::count(t.description.as_deref().unwrap_or_default()),
                    serde_json::to_string(&t.input_schema).unwrap_or_default()
                )
            })
            .collect();
        assert!(tokens <= 350, "{tokens} tokens: {dumped:#?}");
    }

    #[test]
    fn description_is_at_most_80_words() {
        let description = execute_description();
        let words = description.split_whitespace().count();
        assert!(words <= 80, "{words} words: {description}");
        for needle in [
            "async",
            "await",
            "return",
            "last expression",
            "mcp.state",
            "rolled back",
            "console",
            "JSON.stringify",
            "servers.<server>.<tool>(args)",
            "search_tools",
            "skills",
            "cached",
        ] {
            assert!(description.contains(needle), "missing {needle:?}");
        }
    }

    #[test]
    fn tool_is_annotated_as_a_closed_world_stateful_tool() {
        let tool = execute_tool(&ServeConfig::default());
        let annotations = tool.annotations.unwrap();
        assert_eq!(annotations.read_only_hint, Some(false));
        assert_eq!(annotations.idempotent_hint, Some(false));
        assert_eq!(annotations.open_world_hint, Some(false));
    }
}
