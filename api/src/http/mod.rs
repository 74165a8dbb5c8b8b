//! `serve --http ADDR`: MCP over streamable HTTP at `/mcp`, for many clients at once.
//!
//! ```text
//! TCP ─ ConnectionLimit (max_connections) ─ axum Router
//!         /mcp: authenticate (401 + WWW-Authenticate) → request limit (503) →
//!               rmcp StreamableHttpService (Host/Origin allowlists, body limit,
//!               one KernelServer per MCP session, bound to its tenant)
//! ```
//!
//! Each MCP session (`Mcp-Session-Id`) gets its own [`KernelServer`] and so its own default
//! session, closed when the MCP session ends (DELETE, or rmcp's 5-minute keep-alive). All of
//! them share one [`SessionManager`], worker pool, store, result cache and set of upstreams.
//! Health, readiness and metrics routes attach to [`router`]'s `Router`.

pub(crate) mod auth;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use anyhow::Context as _;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::access::Access;
use crate::config::ServeConfig;
use crate::server::{Binding, KernelServer};
use auth::{Auth, AuthFile};

/// The tenant a request authenticated as (an `http::Request` extension set by
/// [`auth::authenticate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tenant(pub(crate) String);

/// The flags of `serve --http`. Every limit is enforced per server process.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where to listen; port 0 picks a free port (the log line `listening on http://…/mcp`
    /// says which).
    pub addr: SocketAddr,
    /// Bearer tokens and tenants (see [`auth`]); required unless `addr` is loopback or
    /// `insecure_no_auth` is set.
    pub auth_file: Option<PathBuf>,
    /// Serve a non-loopback address without authentication (every request is `--tenant`'s).
    pub insecure_no_auth: bool,
    /// `Host` values accepted besides `localhost`, `127.0.0.1` and `::1` (DNS-rebinding
    /// protection): the names clients use to reach a non-loopback address.
    pub allowed_hosts: Vec<String>,
    /// Browser `Origin`s accepted besides `http://localhost:*`, `http://127.0.0.1:*` and
    /// `http://[::1]:*`, with scheme (e.g. `https://app.example.com:443`). A request with no
    /// `Origin` (any non-browser client) is not affected.
    pub allowed_origins: Vec<String>,
    /// Largest request body, in bytes; larger ones get 413.
    pub max_request_body_bytes: usize,
    /// Requests handled at once; more get 503 with `Retry-After: 1`.
    pub max_concurrent_requests: usize,
    /// Open TCP connections; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Live MCP sessions (each holds a default kernel session once it executes); more
    /// `initialize` requests fail with 500 until one ends.
    pub max_mcp_sessions: usize,
}

impl HttpConfig {
    /// The defaults for `addr`: 4 MiB bodies, 256 concurrent requests, 1,024 connections,
    /// 1,024 MCP sessions, no extra hosts or origins, no auth file.
    #[must_use]
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            auth_file: None,
            insecure_no_auth: false,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            max_request_body_bytes: 4 * 1024 * 1024,
            max_concurrent_requests: 256,
            max_connections: 1024,
            max_mcp_sessions: 1024,
        }
    }
}

/// Loopback `Origin`s always accepted.
const LOOPBACK_ORIGINS: [&str; 3] = ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"];
/// Loopback `Host` names always accepted.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Serves MCP over streamable HTTP until SIGINT or SIGTERM, then stops accepting requests,
/// ends every MCP session, and stops every worker and upstream server.
///
/// # Errors
/// A non-loopback `addr` without `auth_file` or `insecure_no_auth`, an invalid auth file
/// (named), an allowlist naming a server the `--config` does not define, an invalid
/// `config`, Redis unreachable, or the address cannot be bound.
pub async fn run_http(config: ServeConfig, http: HttpConfig) -> anyhow::Result<()> {
    let (auth, access) = authentication(&config, &http)?;
    let started = crate::start(&config, access.clone()).await?;
    let sessions = started.sessions.clone();
    let shutdown = CancellationToken::new();
    let served = async {
        let listener = TcpListener::bind(http.addr)
            .await
            .with_context(|| format!("cannot listen on {} (--http)", http.addr))?;
        let local = listener.local_addr()?;
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            "listening on http://{local}/mcp"
        );
        let app = router(&config, &http, &started, access, auth, shutdown.clone());
        let listener = ConnectionLimit::new(listener, http.max_connections);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: no new requests; ending MCP sessions");
            stop.cancel();
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await
            .context("the HTTP server failed")
    }
    .await;
    shutdown.cancel();
    crate::shutdown(&sessions).await;
    served
}

/// Who may call, and which servers each tenant may use.
fn authentication(
    config: &ServeConfig,
    http: &HttpConfig,
) -> anyhow::Result<(Arc<Auth>, Arc<Access>)> {
    let Some(path) = &http.auth_file else {
        if !http.addr.ip().is_loopback() && !http.insecure_no_auth {
            anyhow::bail!(
                "--http {} is not a loopback address: give --auth-file FILE (bearer tokens), \
                 or --insecure-no-auth to serve it without authentication",
                http.addr
            );
        }
        let tenant = Tenant(config.tenant.clone());
        return Ok((Arc::new(Auth::Open(tenant)), Arc::new(Access::default())));
    };
    let file = AuthFile::load(path)?;
    Ok((
        Arc::new(Auth::Tokens(file.tokens)),
        Arc::new(Access::new(file.allowlists)),
    ))
}

/// The app: `/mcp` behind authentication and the request limit.
fn router(
    config: &ServeConfig,
    http: &HttpConfig,
    started: &crate::Started,
    access: Arc<Access>,
    auth: Arc<Auth>,
    shutdown: CancellationToken,
) -> axum::Router {
    let mut hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| (*h).to_owned()).collect();
    hosts.extend(http.allowed_hosts.iter().cloned());
    let mut origins: Vec<String> = LOOPBACK_ORIGINS.iter().map(|o| (*o).to_owned()).collect();
    origins.extend(http.allowed_origins.iter().cloned());
    let transport = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .enforce_origin_validation()
        .with_max_request_body_bytes(http.max_request_body_bytes)
        .with_cancellation_token(shutdown);
    let live = Arc::new(AtomicUsize::new(0));
    let max_sessions = http.max_mcp_sessions;
    let (config, sessions, upstreams) = (
        config.clone(),
        started.sessions.clone(),
        started.upstreams.clone(),
    );
    let factory = move || {
        let slot = SessionSlot::take(&live, max_sessions).ok_or_else(|| {
            std::io::Error::other(format!(
                "this server already has max_mcp_sessions={max_sessions} MCP sessions"
            ))
        })?;
        Ok(KernelServer::new(
            config.clone(),
            sessions.clone(),
            upstreams.clone(),
            access.clone(),
            Binding::Http(std::sync::Mutex::new(None)),
            Some(slot),
        ))
    };
    let service =
        StreamableHttpService::new(factory, Arc::new(LocalSessionManager::default()), transport);
    let requests = Arc::new(Semaphore::new(http.max_concurrent_requests));
    axum::Router::new()
        .route_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(
            requests,
            limit_requests,
        ))
        .layer(axum::middleware::from_fn_with_state(
            auth,
            auth::authenticate,
        ))
}

/// One live MCP session counted against `max_mcp_sessions`; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct SessionSlot(Arc<AtomicUsize>);

impl SessionSlot {
    fn take(live: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        live.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| Self(live.clone()))
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// At most `max_concurrent_requests` requests at once; a request over the limit gets 503 at
/// once (a client retries) rather than waiting in an unbounded queue.
async fn limit_requests(
    State(requests): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_permit) = requests.try_acquire() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "too many concurrent requests (max_concurrent_requests); retry shortly",
        )
            .into_response();
    };
    next.run(request).await
}

async fn wait_for_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// A TCP listener that holds at most `max` connections open: `accept` waits for one to close
/// first (the kernel's listen backlog holds the rest).
struct ConnectionLimit {
    listener: TcpListener,
    open: Arc<Semaphore>,
}

impl ConnectionLimit {
    fn new(listener: TcpListener, max: usize) -> Self {
        Self {
            listener,
            open: Arc::new(Semaphore::new(max)),
        }
    }
}

impl axum::serve::Listener for ConnectionLimit {
    type Io = Limited;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let permit = match self.open.clone().acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => std::future::pending().await,
        };
        let (stream, addr) = axum::serve::Listener::accept(&mut self.listener).await;
        (
            Limited {
                stream,
                _permit: permit,
            },
            addr,
        )
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// A connection that frees its place under [`ConnectionLimit`] when dropped.
struct Limited {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Limited {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
