//! The MCP face of mcp-kernel: an rmcp server whose tools, `execute` and `search_tools`, run
//! agent JavaScript in per-session sandboxed kernels and search the upstream tools and saved
//! skills.
//!
//! This is the only crate that knows rmcp and JSON-RPC. It validates tool arguments, hands the
//! call to [`mcpk_session::SessionManager`], and maps what came back to an MCP response:
//!
//! - the user's code failed (threw, timed out, hit a limit) → a tool result with
//!   `isError: true`, `structuredContent.error = {name, message, stack}` and the logs;
//! - the request or the infrastructure failed (bad arguments, unknown tool, no worker) → a
//!   JSON-RPC error (`-32602` invalid params, `-32603` internal error).
//!
//! Requests are handled concurrently (rmcp runs each on its own task) and nothing in this crate
//! holds a lock across a call, so one slow call never delays another session's call. Calls do
//! join their session's queue in the order they arrived on the connection (see `arrival.rs`).
//! A call whose request the client cancels is dropped, which stops it and rolls its session
//! back to the last committed state.
//!
//! The binary (`src/main.rs`) only parses flags, sets up tracing on stderr and calls
//! [`run_stdio`]; tests can drive [`run`] over any byte stream.

mod access;
mod arrival;
mod audit;
mod catalog;
mod config;
mod http;
mod json_text;
mod launch;
mod ops;
mod progress;
mod resources;
mod response;
mod server;
mod tokens;
mod tools;
mod upstream;

pub use audit::{
    AuditReport, AuditReportError, AuditVerdict, TenantReport, ToolUse, audit_report, audit_verify,
};
pub use config::{ConfigError, ServeConfig};
pub use http::{HttpConfig, run_http};

/// What `text` costs a model that reads it, in OpenAI `o200k_base` tokens: exact up to 512
/// bytes, estimated above (within 25%; see the `tokens` module). `mcp-kernel run` prints it.
#[must_use]
pub fn tokens_in(text: &str) -> usize {
    tokens::count_or_estimate(text)
}
/// Exact `o200k_base` tokens of `text` (tiktoken-rs; ~50 µs per KiB in a release build).
#[must_use]
pub fn exact_tokens(text: &str) -> usize {
    tokens::count(text)
}

/// What one tool definition costs a model on every request, the way issue 9 counts a tool
/// surface: exact `o200k_base` tokens of Python's `json.dumps` of its name, description and
/// input schema.
#[must_use]
pub fn definition_tokens(tool: &rmcp::model::Tool) -> usize {
    tokens::definition(tool)
}
pub use launch::exec_child;
pub use upstream::{UpstreamConfigError, UpstreamLimits};

use std::sync::Arc;

use anyhow::Context as _;
use mcpk_session::{SessionKey, SessionManager, Store};
use rmcp::ServiceExt as _;
use rmcp::transport::async_rw::AsyncRwTransport;
use tokio::io::{AsyncRead, AsyncWrite};

/// Makes rustls's `ring` provider the process's default, which every HTTPS client (reqwest,
/// for streamable-HTTP upstreams) uses; a no-op when one is already installed. [`run`],
/// [`run_http`] and [`run_script`] call it.
pub fn install_tls_provider() {
    // Err means a provider is already installed, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Serves MCP over this process's stdin and stdout until the client disconnects.
///
/// Must be called inside a multi-threaded tokio runtime. Nothing else may write to stdout.
///
/// # Errors
/// An invalid `config`, or a failure of the MCP handshake or transport.
pub async fn run_stdio(config: ServeConfig) -> anyhow::Result<()> {
    let (stdin, stdout) = rmcp::transport::stdio_pipes();
    run(config, stdin, stdout).await
}

/// Serves MCP, one JSON-RPC message per line, over `read` and `write` until `read` ends.
///
/// Starts the worker pool (its warm workers are started in the background), the snapshot
/// store (Redis when `config.redis_url` is set, else memory) and one session manager; the
/// connection gets its own default session. When `read` ends, closes that session, stops
/// every worker and stdio upstream server and waits until every one of those processes has
/// exited before returning. Named sessions stay in the store.
///
/// # Errors
/// An invalid `config`, Redis unreachable at start-up, or a failure of the MCP handshake or
/// transport.
pub async fn run<R, W>(config: ServeConfig, read: R, write: W) -> anyhow::Result<()>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let access = Arc::new(access::Access::default());
    let started = start(&config, access.clone()).await?;
    let sessions = started.sessions.clone();
    let connection = SessionKey::connection(config.tenant.as_str()).context("invalid --tenant")?;
    let server = server::KernelServer::new(
        config,
        started.sessions,
        started.upstreams,
        access,
        server::Binding::Fixed(connection.clone()),
        None,
        started.audit.clone(),
    );
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "serving MCP");
    let transport = arrival::Stamped::new(AsyncRwTransport::new_server(read, write));
    let served = async {
        let running = server
            .serve(transport)
            .await
            .context("MCP initialisation failed")?;
        let reason = running.waiting().await.context("the MCP service failed")?;
        tracing::info!(?reason, "MCP connection closed");
        Ok(())
    }
    .await;
    if let Err(error) = sessions.close(&connection).await {
        tracing::warn!(%error, "closing the connection's default session failed");
    }
    shutdown(&sessions).await;
    started.audit.close().await;
    served
}

/// Stops every worker and stdio upstream server and waits until each process has exited and
/// been reaped (upstreams get their stdin closed and a short grace first; workers are killed).
async fn shutdown(sessions: &SessionManager) {
    let upstream_pids = upstream::stdio::pids();
    let worker_pids = sessions.worker_pids();
    futures::join!(upstream::stdio::shutdown(), sessions.shutdown());
    tracing::info!(
        workers = ?worker_pids,
        upstreams = ?upstream_pids,
        "stopped every child process"
    );
}

/// What [`start`] started.
struct Started {
    sessions: Arc<SessionManager>,
    upstreams: Arc<upstream::Upstreams>,
    /// The audit log (`--audit-log`), or a handle that records nothing. Close it after the
    /// last call, so everything queued is written.
    audit: audit::Audit,
}

/// Validates `config`, loads the upstream configuration, connects the snapshot store, and
/// starts the upstreams (in the background) and the session manager with its worker pool.
/// `access` limits tenants to servers; each server it names must be configured.
async fn start(config: &ServeConfig, access: Arc<access::Access>) -> anyhow::Result<Started> {
    install_tls_provider();
    config.validate().context("invalid configuration")?;
    upstream::stdio::set_launcher(config.worker_exe.clone());
    let servers = match &config.upstream_config {
        Some(path) => upstream::config::load(path)?,
        None => Vec::new(),
    };
    let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    if let Some((tenant, server)) = access.unknown_server(&names) {
        anyhow::bail!(
            "--auth-file: tenants.{tenant}.servers names `{server}`, which the upstream \
             configuration (--config) does not define; defined: {}",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
    }
    let store = match &config.redis_url {
        Some(url) => Store::redis(url, config.store_config())
            .await
            .with_context(|| format!("connecting to Redis at {url} (--redis-url / REDIS_URL)"))?,
        None => Store::memory(config.store_config()),
    };
    let mut cache_config = mcpk_session::CacheConfig::default();
    cache_config.key_prefix.clone_from(&config.redis_key_prefix);
    cache_config.namespace_version = config.cache_namespace;
    let cache = match &config.redis_url {
        Some(url) => mcpk_session::TieredCache::connect(cache_config, url).await,
        None => mcpk_session::TieredCache::new(cache_config),
    }
    .context("configuring the result cache")?;
    let upstreams = upstream::Upstreams::start(servers, config.upstream_limits);
    let tools: Arc<dyn mcpk_session::Tools> =
        Arc::new(upstream::UpstreamHost::new(upstreams.clone(), access));
    let sessions = Arc::new(SessionManager::start(
        config.kernel_config(),
        store,
        cache,
        tools,
        config.session_config(),
    ));
    let audit = match &config.audit_log {
        Some(path) => audit::Audit::open(path)?,
        None => audit::Audit::disabled(),
    };
    Ok(Started {
        sessions,
        upstreams,
        audit,
    })
}

/// What [`run_script`] produced.
#[derive(Debug)]
pub struct ScriptRun {
    /// The call's result or error, and its logs.
    pub outcome: mcpk_session::CallOutcome,
    /// Wall-clock time of the call itself, excluding start-up.
    pub duration: std::time::Duration,
    /// Estimated `o200k_base` tokens of the upstream replies the code read inside the kernel,
    /// which the model never saw (`_meta.tokens.processed` of an `execute`).
    pub processed_tokens: usize,
}

/// Runs `code` once, exactly as an agent's `execute` call would run it (same kernel, same
/// limits, same upstreams, same store), in a default session of its own, after waiting for
/// the configured upstream servers to connect or fail their first attempt (at most the
/// connect timeout).
///
/// # Errors
/// An invalid `config` or upstream configuration file, Redis unreachable, or no worker could
/// be started.
pub async fn run_script(
    config: ServeConfig,
    code: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<ScriptRun> {
    let Started {
        sessions,
        upstreams,
        audit,
    } = start(&config, Arc::new(access::Access::default())).await?;
    // A first start may outlast the connect timeout (a cold `npx` cache, a server that keeps
    // writing progress): wait for every first attempt to end either way.
    upstreams
        .settled(upstream::start::StartBudget::longest(
            config.upstream_limits,
        ))
        .await;
    for (name, server) in upstreams.servers() {
        if let upstream::Status::Unavailable { reason } = server.status() {
            tracing::warn!(server = %name, %reason, "upstream unavailable; the script runs without it");
        }
    }
    let connection = SessionKey::connection(config.tenant.as_str()).context("invalid --tenant")?;
    let started = std::time::Instant::now();
    let outcome = sessions
        .execute(
            &connection,
            mcpk_session::Call {
                code,
                timeout,
                mode: mcpk_session::SessionMode::Auto,
                cache: mcpk_session::CacheMode::Auto,
                connection: &connection,
                progress: None,
            },
        )
        .await
        .context("running the script");
    let duration = started.elapsed();
    audit.record(audit::ExecuteRecord::of_call(
        &connection.tenant,
        Some(mcpk_session::DEFAULT_SESSION),
        Some(code),
        outcome.as_ref().map_err(|e| {
            e.downcast_ref::<mcpk_session::SessionError>()
                .map_or("InternalError", mcpk_session::SessionError::name)
        }),
        duration,
    ));
    if let Err(error) = sessions.close(&connection).await {
        tracing::warn!(%error, "closing the script's session failed");
    }
    shutdown(&sessions).await;
    audit.close().await;
    let answer = outcome?;
    Ok(ScriptRun {
        outcome: answer.outcome,
        duration,
        processed_tokens: answer.processed_tokens,
    })
}

#[cfg(test)]
mod tls_tests {
    #[test]
    fn https_clients_build_on_the_ring_provider() {
        super::install_tls_provider();
        super::install_tls_provider();
        // reqwest is built without a provider of its own: without one installed, building a
        // client panics.
        assert!(reqwest::Client::builder().https_only(true).build().is_ok());
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
