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
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::access::Access;
use crate::config::ServeConfig;
use crate::ops::Ops;
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
    /// On SIGTERM, how long `execute` calls in progress may take to finish before they are
    /// stopped.
    pub shutdown_grace: Duration,
}

impl HttpConfig {
    /// The defaults for `addr`: 4 MiB bodies, 256 concurrent requests, 1,024 connections,
    /// 1,024 MCP sessions, a 25 s shutdown grace, no extra hosts or origins, no auth file.
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
            shutdown_grace: Duration::from_secs(25),
        }
    }
}

/// Loopback `Origin`s always accepted.
const LOOPBACK_ORIGINS: [&str; 3] = ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"];
/// Loopback `Host` names always accepted.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Serves MCP over streamable HTTP (and `/healthz`, `/readyz`, `/metrics`) until SIGINT or
/// SIGTERM, then drains: new requests get 503, calls in progress get `shutdown_grace` to
/// finish, every MCP session ends, and every worker and upstream server is stopped.
///
/// # Errors
/// A non-loopback `addr` without `auth_file` or `insecure_no_auth`, an invalid auth file
/// (named), an allowlist naming a server the `--config` does not define, an invalid
/// `config`, Redis unreachable, or the address cannot be bound.
pub async fn run_http(config: ServeConfig, http: HttpConfig) -> anyhow::Result<()> {
    let (auth, access) = authentication(&config, &http)?;
    let prometheus = crate::ops::install_recorder();
    let started = crate::start(&config, access.clone()).await?;
    let sessions = started.sessions.clone();
    let shutdown = CancellationToken::new();
    let ops = Ops::new(
        prometheus,
        sessions.clone(),
        started.upstreams.clone(),
        started.audit.clone(),
    );
    let served = async {
        let listener = TcpListener::bind(http.addr)
            .await
            .with_context(|| format!("cannot listen on {} (--http)", http.addr))?;
        let local = listener.local_addr()?;
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            "listening on http://{local}/mcp"
        );
        let app = router(&config, &http, &started, access, auth, ops.clone(), shutdown.clone());
        let listener = ConnectionLimit::new(listener, http.max_connections);
        tokio::spawn(drain_on_signal(ops.clone(), http.shutdown_grace, shutdown.clone()));
        let serving = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future();
        tokio::pin!(serving);
        tokio::select! {
            served = &mut serving => served.context("the HTTP server failed"),
            // Connections that outlive the MCP sessions' end (a client that keeps a stream
            // open) get a short while to close, then the server stops anyway.
            () = async {
                shutdown.cancelled().await;
                tokio::time::sleep(CONNECTIONS_CLOSE_TIMEOUT).await;
            } => {
                tracing::warn!("connections still open {CONNECTIONS_CLOSE_TIMEOUT:?} after the drain; closing them");
                Ok(())
            }
        }
    }
    .await;
    shutdown.cancel();
    crate::shutdown(&sessions).await;
    started.audit.close().await;
    served
}

/// How long connections may stay open once every MCP session has been ended.
const CONNECTIONS_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// On SIGTERM or Ctrl-C: refuse new requests (503) and report not ready, let the `execute`
/// calls in progress finish within `grace`, then end every MCP session, which stops the HTTP
/// server. Sessions' state is already in the store: each call commits before it answers.
async fn drain_on_signal(ops: Arc<Ops>, grace: Duration, shutdown: CancellationToken) {
    tokio::select! {
        () = wait_for_signal() => {}
        () = shutdown.cancelled() => return,
    }
    ops.start_draining();
    tracing::info!(
        grace_secs = grace.as_secs_f64(),
        "draining: new requests are refused; waiting for calls in progress"
    );
    match crate::ops::wait_for_calls(grace).await {
        0 => tracing::info!("every call in progress finished; stopping"),
        left => tracing::warn!(
            left,
            "the grace period is over; stopping the calls still running"
        ),
    }
    shutdown.cancel();
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
    ops: Arc<Ops>,
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
    let audit = started.audit.clone();
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
            audit.clone(),
        ))
    };
    let mcp_sessions = Arc::new(LocalSessionManager::default());
    let owners = Arc::new(Owners {
        tenants: std::sync::Mutex::new(std::collections::HashMap::new()),
        sessions: mcp_sessions.clone(),
        max: http.max_mcp_sessions,
    });
    let service = StreamableHttpService::new(factory, mcp_sessions, transport);
    let gate = Arc::new(Gate {
        requests: Arc::new(Semaphore::new(http.max_concurrent_requests)),
        ops: ops.clone(),
    });
    let health = axum::Router::new()
        .route("/healthz", get(crate::ops::healthz))
        .route("/readyz", get(crate::ops::readyz))
        .route("/metrics", get(crate::ops::metrics))
        .with_state(ops);
    axum::Router::new()
        .route_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(gate, limit_requests))
        .layer(axum::middleware::from_fn_with_state(owners, keep_to_owner))
        .layer(axum::middleware::from_fn_with_state(
            auth,
            auth::authenticate,
        ))
        .merge(health)
}

/// What admits a request to `/mcp`: not draining, and a free place under
/// `max_concurrent_requests`.
struct Gate {
    requests: Arc<Semaphore>,
    ops: Arc<Ops>,
}

/// The tenant that opened each MCP session (`Mcp-Session-Id`), so that a request carrying
/// another tenant's token on that session is refused before rmcp sees it, whatever its method
/// (a call, `tools/list`, the GET stream, a DELETE that would end it).
struct Owners {
    tenants: std::sync::Mutex<std::collections::HashMap<String, String>>,
    sessions: Arc<LocalSessionManager>,
    /// Entries past which the ones of ended sessions are dropped (`max_mcp_sessions`).
    max: usize,
}

impl Owners {
    fn owner(&self, session: &str) -> Option<String> {
        self.tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(session)
            .cloned()
    }

    /// Records `tenant` as the owner of `session`; once there are more than `max` entries,
    /// drops those of sessions rmcp no longer has (ended by DELETE or its keep-alive).
    async fn record(&self, session: String, tenant: String) {
        let ids: Vec<String> = {
            let mut tenants = self
                .tenants
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            tenants.insert(session, tenant);
            if tenants.len() <= self.max {
                return;
            }
            tenants.keys().cloned().collect()
        };
        let mut ended = Vec::new();
        for id in ids {
            let live =
                rmcp::transport::streamable_http_server::session::SessionManager::has_session(
                    self.sessions.as_ref(),
                    &id.as_str().into(),
                )
                .await
                .unwrap_or(false);
            if !live {
                ended.push(id);
            }
        }
        let mut tenants = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for id in ended {
            tenants.remove(&id);
        }
    }

    fn forget(&self, session: &str) {
        self.tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(session);
    }
}

/// Refuses (404, as for an unknown session) a request on an MCP session another tenant
/// opened; records the owner of each session an `initialize` opens.
async fn keep_to_owner(
    State(owners): State<Arc<Owners>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(tenant) = request.extensions().get::<Tenant>().map(|t| t.0.clone()) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no authenticated tenant").into_response();
    };
    let session = request
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let deleting = request.method() == axum::http::Method::DELETE;
    if let Some(id) = &session
        && owners.owner(id).is_some_and(|owner| owner != tenant)
    {
        return (
            StatusCode::NOT_FOUND,
            "no such MCP session for this token (Mcp-Session-Id)",
        )
            .into_response();
    }
    let response = next.run(request).await;
    match (&session, response.headers().get("mcp-session-id")) {
        (None, Some(opened)) => {
            if let Ok(opened) = opened.to_str() {
                owners.record(opened.to_owned(), tenant).await;
            }
        }
        (Some(id), _) if deleting && response.status().is_success() => owners.forget(id),
        _ => {}
    }
    response
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

/// At most `max_concurrent_requests` requests at once, each counted until its response has
/// been sent (so a POST that runs a call counts until the call's result is out); a request
/// over the limit gets 503 at once (a client retries) rather than waiting in an unbounded
/// queue. While draining, every new request gets 503.
async fn limit_requests(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    if gate.ops.draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "the server is shutting down; retry on another replica",
        )
            .into_response();
    }
    let Ok(permit) = gate.requests.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "too many concurrent requests (max_concurrent_requests); retry shortly",
        )
            .into_response();
    };
    if request.method() != axum::http::Method::POST {
        // A GET is a client's long-lived stream (bounded by max_mcp_sessions), a DELETE ends
        // a session: neither runs a call, so neither keeps its place after its headers.
        return next.run(request).await;
    }
    let busy = crate::ops::Busy::start();
    let response = next.run(request).await;
    // rmcp answers a POST with a stream that ends after the call's result: the request keeps
    // its place under max_concurrent_requests, and counts for the drain, until the last byte
    // of that stream is sent (or the client goes away).
    response.map(|body| {
        axum::body::Body::from_stream(futures::StreamExt::map(
            body.into_data_stream(),
            move |chunk| {
                let _held = (&permit, &busy);
                chunk
            },
        ))
    })
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
