//! The MCP face of mcp-kernel: an rmcp server with one tool, `execute`, that runs agent
//! JavaScript in per-session sandboxed kernels.
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

mod args;
mod arrival;
mod catalog;
mod config;
mod json_text;
mod response;
mod server;

pub use config::{ConfigError, ServeConfig};

use anyhow::Context as _;
use rmcp::ServiceExt as _;
use rmcp::transport::async_rw::AsyncRwTransport;
use tokio::io::{AsyncRead, AsyncWrite};

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
/// Starts the worker pool (its warm workers are started in the background) and one
/// session manager for the connection.
///
/// # Errors
/// An invalid `config`, or a failure of the MCP handshake or transport.
pub async fn run<R, W>(config: ServeConfig, read: R, write: W) -> anyhow::Result<()>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    config.validate().context("invalid configuration")?;
    let pool = mcpk_kernel::WorkerPool::start(config.kernel_config());
    let sessions = mcpk_session::SessionManager::new(
        pool,
        std::sync::Arc::new(mcpk_session::NoUpstreams),
        config.session_config(),
    );
    let server = server::KernelServer::new(config, sessions);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "serving MCP");
    let transport = arrival::Stamped::new(AsyncRwTransport::new_server(read, write));
    let running = server
        .serve(transport)
        .await
        .context("MCP initialisation failed")?;
    let reason = running.waiting().await.context("the MCP service failed")?;
    tracing::info!(?reason, "MCP connection closed");
    Ok(())
}
