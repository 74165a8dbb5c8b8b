//! Operating the HTTP server: `/healthz` (liveness), `/readyz` (readiness), `/metrics`
//! (Prometheus text), and the count of `execute` calls in progress that draining waits for.
//!
//! Metrics come from the `metrics` crate's macros wherever the event happens (this module,
//! `server.rs`, `upstream/host.rs`, the session manager, the worker pool, the result cache);
//! `run_http` installs the one Prometheus recorder of the process. Over stdio no recorder is
//! installed and the macros do nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpk_session::SessionManager;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::Notify;

use crate::audit::Audit;
use crate::upstream::{Status, Upstreams};

/// `mcpk_executions_total{status,cache}`: `execute` calls answered. `status` is `ok`, the
/// error's name (`TimeoutError`, `TypeError`, …) or `session_error`; `cache` is `l1`, `l2` or
/// `none` (the code ran).
pub(crate) const EXECUTIONS_TOTAL: &str = "mcpk_executions_total";
/// `mcpk_execute_duration_seconds`: time from an `execute` call's arrival to its answer.
pub(crate) const EXECUTE_DURATION: &str = "mcpk_execute_duration_seconds";
/// `mcpk_execute_in_progress`: `execute` calls accepted and not yet answered.
pub(crate) const IN_PROGRESS: &str = "mcpk_execute_in_progress";
/// `mcpk_sessions{state="live"}`: sessions holding a worker (set when `/metrics` is read).
pub(crate) const SESSIONS: &str = "mcpk_sessions";
/// `mcpk_host_calls_total{server,tool,outcome}`: upstream tool calls made by agent code;
/// `outcome` is `ok` or `error`. Names not in the configuration or catalogue are counted as
/// `(unknown)`, so agent code cannot grow the label set.
pub(crate) const HOST_CALLS_TOTAL: &str = "mcpk_host_calls_total";
/// `mcpk_upstream_up{server}`: 1 while the upstream is connected with its tools, else 0 (set
/// when `/metrics` is read).
pub(crate) const UPSTREAM_UP: &str = "mcpk_upstream_up";
/// `mcpk_draining`: 1 once SIGTERM (or Ctrl-C) started the drain.
pub(crate) const DRAINING: &str = "mcpk_draining";

/// Upper bounds of the duration histogram's buckets, in seconds.
const DURATION_BUCKETS_SECONDS: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 60.0,
];

/// One `execute` call in progress, counted in `mcpk_execute_in_progress` until dropped
/// (answered or cancelled).
#[derive(Debug)]
pub(crate) struct InFlight;

impl InFlight {
    pub(crate) fn start() -> Self {
        metrics::gauge!(IN_PROGRESS).increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(IN_PROGRESS).decrement(1.0);
    }
}

/// MCP `POST`s in this process whose responses are not yet fully sent (every request that
/// can carry a call; a client's long-lived `GET` stream is not one), and a wake-up when the
/// count drops to zero. The drain waits for these, so a call's answer is on the wire before
/// the MCP sessions end.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static IDLE: Notify = Notify::const_new();

/// One MCP request in progress until its response body has been sent or dropped.
#[derive(Debug)]
pub(crate) struct Busy;

impl Busy {
    pub(crate) fn start() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        Self
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if IN_FLIGHT.fetch_sub(1, Ordering::SeqCst) == 1 {
            IDLE.notify_waiters();
        }
    }
}

/// Waits until no MCP request is in progress, or `grace` has passed; returns how many were
/// still in progress (0 when all finished).
pub(crate) async fn wait_for_calls(grace: Duration) -> usize {
    let idle = async {
        loop {
            let notified = IDLE.notified();
            if IN_FLIGHT.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    };
    let _ = tokio::time::timeout(grace, idle).await;
    IN_FLIGHT.load(Ordering::SeqCst)
}

/// What the health routes read.
#[derive(Debug)]
pub(crate) struct Ops {
    draining: AtomicBool,
    prometheus: Option<PrometheusHandle>,
    sessions: Arc<SessionManager>,
    upstreams: Arc<Upstreams>,
    audit: Audit,
}

impl Ops {
    /// The health routes' state; `prometheus` is what [`install_recorder`] returned.
    pub(crate) fn new(
        prometheus: Option<PrometheusHandle>,
        sessions: Arc<SessionManager>,
        upstreams: Arc<Upstreams>,
        audit: Audit,
    ) -> Arc<Self> {
        Arc::new(Self {
            draining: AtomicBool::new(false),
            prometheus,
            sessions,
            upstreams,
            audit,
        })
    }

    /// From now on `/readyz` answers 503 and new requests are refused.
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        metrics::gauge!(DRAINING).set(1.0);
    }

    /// Whether the drain has started.
    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        EXECUTIONS_TOTAL,
        "execute calls answered, by status and cache tier"
    );
    describe_histogram!(
        EXECUTE_DURATION,
        Unit::Seconds,
        "execute call time, arrival to answer"
    );
    describe_gauge!(IN_PROGRESS, "execute calls accepted and not yet answered");
    describe_gauge!(
        mcpk_session::QUEUE_DEPTH,
        "execute calls waiting for their session's turn"
    );
    describe_gauge!(SESSIONS, "sessions holding a worker (state=live)");
    describe_counter!(
        mcpk_session::HIBERNATIONS_TOTAL,
        "live sessions hibernated (worker released, snapshot kept)"
    );
    describe_counter!(
        mcpk_session::WORKER_STARTS_TOTAL,
        "worker processes started"
    );
    describe_counter!(
        mcpk_session::WORKER_DEATHS_TOTAL,
        "workers lost during a call, by the error the call got"
    );
    describe_counter!(
        HOST_CALLS_TOTAL,
        "upstream tool calls made by agent code, by server, tool and outcome"
    );
    describe_gauge!(
        UPSTREAM_UP,
        "1 while the upstream server is connected with its tools"
    );
    describe_gauge!(DRAINING, "1 once shutdown has started draining");
    mcpk_session::describe_cache_metrics();
}

/// Installs the process's Prometheus recorder, before anything (worker starts included) is
/// counted; `None` when one is installed already (a second server in one process shares the
/// first one's metrics but serves no `/metrics`).
pub(crate) fn install_recorder() -> Option<PrometheusHandle> {
    let prometheus = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(EXECUTE_DURATION.to_owned()), &DURATION_BUCKETS_SECONDS)
            .and_then(PrometheusBuilder::install_recorder)
            .map_err(|error| tracing::warn!(%error, "no /metrics: the Prometheus recorder could not be installed"))
            .ok();
    if prometheus.is_some() {
        describe();
        // Series without labels exist from the start (at 0), so alerts and the HPA see
        // them before anything happens.
        metrics::gauge!(DRAINING).set(0.0);
        metrics::gauge!(IN_PROGRESS).set(0.0);
        metrics::gauge!(mcpk_session::QUEUE_DEPTH).set(0.0);
        metrics::counter!(mcpk_session::HIBERNATIONS_TOTAL).absolute(0);
        metrics::counter!(mcpk_session::WORKER_STARTS_TOTAL).increment(0);
    }
    prometheus
}

/// `GET /healthz`: 200 while the process serves HTTP at all.
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 `ready` when the server can take calls: not draining, workers can be
/// started, Redis answers when configured (store `PING` within 1 s), and the audit log's last
/// write succeeded; else 503 with the reason, one per line.
pub(crate) async fn readyz(State(ops): State<Arc<Ops>>) -> Response {
    let mut problems = Vec::new();
    if ops.draining() {
        problems.push("draining: the server is shutting down".to_owned());
    }
    if let Err(problem) = ops.sessions.readiness().await {
        problems.push(problem);
    }
    if let Err(problem) = ops.audit.health() {
        problems.push(problem);
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n") + "\n").into_response()
    }
}

/// `GET /metrics`: the Prometheus text format; sets the gauges read on demand first.
pub(crate) async fn metrics(State(ops): State<Arc<Ops>>) -> Response {
    let Some(prometheus) = &ops.prometheus else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are served by the process's first server\n",
        )
            .into_response();
    };
    #[allow(clippy::cast_precision_loss, reason = "a count of sessions")]
    metrics::gauge!(SESSIONS, "state" => "live").set(ops.sessions.live_count() as f64);
    for (name, upstream) in ops.upstreams.servers() {
        let up = matches!(upstream.status(), Status::Ready { .. });
        metrics::gauge!(UPSTREAM_UP, "server" => name.clone()).set(if up { 1.0 } else { 0.0 });
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        prometheus.render(),
    )
        .into_response()
}
