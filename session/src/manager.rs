//! The session lifecycle: live sessions, idle TTL, hibernation, expiry, and one call's path
//! from lease to commit.
//!
//! ```text
//!            call                      idle TTL / LRU at max_live_sessions
//!  (new) ───────────▶ live ─────────────────────────────▶ hibernated ── retention TTL ──▶ expired
//!                      ▲  worker + committed state          snapshot in the Store         tombstone only
//!                      └──────────── next call restores it ◀──┘                           (SessionExpired)
//! ```
//!
//! Every committed call writes its state delta to the [`Store`] before its result is returned,
//! so hibernating a session only releases its worker: nothing has to be written then, and a
//! killed server loses nothing that was acknowledged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use mcpk_kernel::{
    CallError, CallOutcome, CommittedState, ErrorKind, KernelConfig, LogEntry, LogLevel,
    SkillLibrary, SkillSource, StateDelta, Worker, WorkerPool,
};
use serde::Serialize;
use tokio::time::Instant;

use crate::cached::{self, Entry, Limits};
use crate::flight::{self, Flights, Role};
use crate::key::SessionKey;
use crate::router::{ProgressSink, Router, Tools};
use crate::store::{Lease, Lookup, SessionMeta, Snapshot, Store, StoreError, StoredSkill};

/// The name agent code and tool arguments use for the connection's own session.
pub const DEFAULT_SESSION: &str = "default";

/// Infrastructure failures of a call, as opposed to failures of the user's code, which are
/// [`CallOutcome`]s whose `result` is `Err`. [`SessionError::name`] gives the error name
/// agent code sees.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// No worker could be started or restored for the session.
    #[error(transparent)]
    Kernel(#[from] mcpk_kernel::KernelError),
    /// The snapshot store failed (Redis unreachable, snapshot over its cap, lease lost).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Every one of `max_live_sessions` live sessions is running a call, so none could be
    /// hibernated to make room.
    #[error(
        "too many busy sessions: all max_live_sessions={max_live_sessions} live sessions are running a call; retry when one finishes"
    )]
    TooManySessions {
        /// The configured limit.
        max_live_sessions: usize,
    },
    /// The named session existed but its snapshot passed the retention TTL.
    #[error(
        "session `{name}` expired: it was idle longer than the retention TTL ({retention_secs} s) and its state is gone; pass session_mode \"new\" to start a new session under this name"
    )]
    Expired {
        /// The session name.
        name: String,
        /// The retention TTL, in seconds.
        retention_secs: u64,
    },
    /// `session_mode: "resume"` named a session that never existed (or was closed).
    #[error("session `{name}` does not exist (session_mode \"resume\" never creates one)")]
    NotFound {
        /// The session name.
        name: String,
    },
    /// `session_mode: "new"` named a session that exists.
    #[error("session `{name}` already exists (session_mode \"new\" only starts a session)")]
    Exists {
        /// The session name.
        name: String,
    },
    /// The session is running a call (here or on another replica) past the caller's deadline.
    #[error("session `{name}` is busy: {reason}")]
    Busy {
        /// The session name.
        name: String,
        /// What holds it.
        reason: String,
    },
    /// The session name or tenant is not valid.
    #[error(transparent)]
    Key(#[from] crate::key::KeyError),
}

impl SessionError {
    /// The error name agent code and clients see: `SessionExpired`, `SessionNotFound`,
    /// `SessionExists`, `SessionBusy`, `SessionLimitError`, `StoreError`, `ArgumentError`
    /// (a bad name) or `InternalError`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Kernel(_) => "InternalError",
            Self::Store(StoreError::TooLarge { .. }) => "StateLimitError",
            Self::Store(StoreError::Busy { .. } | StoreError::Fenced { .. }) => "SessionBusy",
            Self::Store(_) => "StoreError",
            Self::TooManySessions { .. } => "SessionLimitError",
            Self::Expired { .. } => "SessionExpired",
            Self::NotFound { .. } => "SessionNotFound",
            Self::Exists { .. } => "SessionExists",
            Self::Busy { .. } => "SessionBusy",
            Self::Key(_) => "ArgumentError",
        }
    }
}

/// How a call treats a session that is not live.
///
/// JSON: `"auto" | "resume" | "new"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionMode {
    /// Resume the session, or create it when it never existed; an expired one is an error.
    #[default]
    Auto,
    /// Resume only: a session that does not exist is [`SessionError::NotFound`].
    Resume,
    /// Start a new session under this name, also over an expired one; one that exists is
    /// [`SessionError::Exists`].
    New,
}

/// Whether a call may be answered from the result cache.
///
/// JSON: `"auto" | "off" | "refresh"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// Answer from the cache when an entry matches; cache the answer when it may be.
    #[default]
    Auto,
    /// Neither read nor write the cache.
    Off,
    /// Run the code, and cache the answer when it may be (replacing an entry).
    Refresh,
}

/// What a call produced, and whether the result cache answered it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The result or error, and the logs.
    pub outcome: CallOutcome,
    /// The cache tier that answered (`"l1"` or `"l2"`), or `None` when the code ran.
    pub cached: Option<&'static str>,
    /// Estimated `o200k_base` tokens of what the code read from upstream tools and resources
    /// in this call ([`crate::estimate_tokens`] of each reply's JSON): the data the model
    /// never had to read. 0 for an answer from the cache.
    pub processed_tokens: usize,
    /// The upstream tool calls the code made in this call (bounded; see
    /// [`crate::ToolCalls`]), also when it failed afterwards. Empty for an answer from the
    /// cache: that call made no tool call, whatever the run it replays made.
    pub tool_calls: crate::ToolCalls,
}

/// Limits and TTLs of the session manager. Durations are tokio time, so tests can pause it.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Live sessions (each holding one worker process) per server process (default 256). At
    /// the limit the least recently used idle one hibernates.
    pub max_live_sessions: usize,
    /// A live session idle this long hibernates: its worker is released (default 30 min).
    pub idle_ttl: Duration,
    /// How long a hibernated session's snapshot is kept after its last use (default 7 days).
    /// Set on the [`Store`]; here for the error messages.
    pub retention_ttl: Duration,
    /// How long a cacheable answer is cached (default 10 min).
    pub cache_ttl: Duration,
    /// How long an answer whose only impurity is tools annotated `readOnlyHint: true` is
    /// cached (default 60 s).
    pub readonly_tool_ttl: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_live_sessions: 256,
            idle_ttl: Duration::from_secs(30 * 60),
            retention_ttl: Duration::from_secs(7 * 24 * 3600),
            cache_ttl: Duration::from_secs(600),
            readonly_tool_ttl: Duration::from_secs(60),
        }
    }
}

/// One session as [`SessionManager::list`] reports it.
///
/// JSON: `{"name", "last_used_ms", "state_bytes", "live"}`; `last_used_ms` is Unix time in ms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// The session name (`"default"` for the caller's own connection session).
    pub name: String,
    /// Last call, Unix time in milliseconds.
    pub last_used_ms: u64,
    /// Size of its committed `mcp.state` as JSON, in bytes.
    pub state_bytes: u64,
    /// Whether it holds a worker now (otherwise it is hibernated).
    pub live: bool,
}

#[derive(Debug)]
struct SessionInner {
    worker: Option<Worker>,
    /// The last committed `mcp.state`, per top-level key; a new worker gets it in `Restore`.
    state: CommittedState,
    meta: SessionMeta,
    /// Hibernated or closed: this entry left the live map, and a caller that got it before
    /// must look the session up again.
    retired: bool,
}

#[derive(Debug)]
struct Session {
    /// `tokio::sync::Mutex` is fair (FIFO), which gives arrival-order execution.
    inner: tokio::sync::Mutex<SessionInner>,
    /// Calls holding or waiting for `inner`: never hibernated while above 0.
    users: AtomicUsize,
    /// Last call start or end, for the idle TTL and LRU.
    last_used: Mutex<Instant>,
}

impl Session {
    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn last_used(&self) -> Instant {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts a call as a user of its session for as long as it lives.
struct Using(Arc<Session>);

impl Using {
    fn new(session: Arc<Session>) -> Self {
        session.users.fetch_add(1, Ordering::SeqCst);
        session.touch();
        Self(session)
    }
}

impl Drop for Using {
    fn drop(&mut self) {
        self.0.touch();
        self.0.users.fetch_sub(1, Ordering::SeqCst);
    }
}

/// State shared by the manager, its sweeper task and the routers of running calls.
#[derive(Debug)]
pub(crate) struct Shared {
    pool: Arc<WorkerPool>,
    pub(crate) store: Store,
    cache: mcpk_cache::TieredCache,
    /// The limits that shape a result, part of every cache key.
    limits: Limits,
    tools: Arc<dyn Tools>,
    config: SessionConfig,
    live: Mutex<HashMap<SessionKey, Arc<Session>>>,
    /// The skills library per tenant as last loaded, by library version.
    libraries: Mutex<HashMap<String, Arc<SkillLibrary>>>,
    /// Identical calls in flight (single-flight across the tenant's sessions).
    flights: Flights,
    /// This value's own `Arc`, for the routers of running calls.
    me: Weak<Shared>,
}

/// Owns the sessions of one server process: runs calls, hibernates idle sessions, and
/// answers their host calls (see `router`). Dropping it stops the idle sweeper.
#[derive(Debug)]
pub struct SessionManager {
    shared: Arc<Shared>,
    sweeper: tokio::task::JoinHandle<()>,
}

impl Drop for SessionManager {
    fn drop(&mut self) {
        self.sweeper.abort();
    }
}

/// One `execute` call.
#[derive(Clone)]
pub struct Call<'a> {
    /// JavaScript, the body of an async function.
    pub code: &'a str,
    /// Wall-clock limit of the code itself. Waiting for another replica's lease counts
    /// against it; leasing and restoring a worker do not (a restore has its own deadline).
    pub timeout: Duration,
    /// How a session that is not live is treated.
    pub mode: SessionMode,
    /// Whether the result cache may answer or keep this call.
    pub cache: CacheMode,
    /// The calling connection's default session, which agent code names `"default"` in
    /// `mcp.sessions.*`.
    pub connection: &'a SessionKey,
    /// Receives the call's console lines and `mcp.progress` reports while it runs (none when
    /// the result cache answers).
    pub progress: Option<ProgressSink>,
}

/// `mcpk_queue_depth`: `execute` calls waiting for their session's turn (calls on one
/// session run one at a time), the signal an autoscaler scales on.
pub const QUEUE_DEPTH: &str = "mcpk_queue_depth";
/// `mcpk_worker_deaths_total{cause}`: workers lost during a call, by the error the call got
/// (`TimeoutError` for a deadline kill, `MemoryLimitError`, `InternalError`, …).
pub const WORKER_DEATHS_TOTAL: &str = "mcpk_worker_deaths_total";
/// `mcpk_session_hibernations_total`: live sessions whose worker was released (idle TTL or
/// the live-session limit); their snapshots stay in the store.
pub const HIBERNATIONS_TOTAL: &str = "mcpk_session_hibernations_total";

/// One call counted in [`QUEUE_DEPTH`] while it waits; dropping it (the turn came, or the
/// call was cancelled) takes it out.
struct Waiting;

impl Waiting {
    fn new() -> Self {
        metrics::gauge!(QUEUE_DEPTH).increment(1.0);
        Self
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        metrics::gauge!(QUEUE_DEPTH).decrement(1.0);
    }
}

impl std::fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("code", &self.code)
            .field("timeout", &self.timeout)
            .field("mode", &self.mode)
            .field("cache", &self.cache)
            .field("connection", &self.connection)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl SessionManager {
    /// Starts the worker pool (its warm workers in the background) and the idle sweeper.
    /// Must be called inside a tokio runtime.
    #[must_use]
    pub fn start(
        kernel: KernelConfig,
        store: Store,
        cache: mcpk_cache::TieredCache,
        tools: Arc<dyn Tools>,
        config: SessionConfig,
    ) -> Self {
        let limits = Limits {
            max_result_bytes: kernel.max_result_bytes,
            max_log_bytes: kernel.max_log_bytes,
        };
        let pool = WorkerPool::start(kernel);
        let flights = Flights::new(cache.config().max_in_flight_keys);
        let shared = Arc::new_cyclic(|me| Shared {
            pool,
            store,
            flights,
            cache,
            limits,
            tools,
            config,
            live: Mutex::new(HashMap::new()),
            libraries: Mutex::new(HashMap::new()),
            me: me.clone(),
        });
        let sweeper = tokio::spawn(sweep(Arc::downgrade(&shared)));
        Self { shared, sweeper }
    }

    /// Runs `call` in session `key`: resumes it when live or hibernated, creates it as
    /// `call.mode` allows, and commits its state change to the store before returning.
    ///
    /// Calls on one session run one at a time in arrival order. If this future is dropped
    /// mid-call (the MCP request was cancelled), the worker is killed and the session resumes
    /// from its last committed state on its next call.
    ///
    /// # Errors
    /// [`SessionError::Expired`], [`SessionError::NotFound`], [`SessionError::Exists`] as
    /// `call.mode` decides; [`SessionError::TooManySessions`] when every live session is busy;
    /// [`SessionError::Store`] when the store failed (the call's effect on `mcp.state` is then
    /// not committed, and says so); [`SessionError::Kernel`] when no worker could be started.
    pub async fn execute(&self, key: &SessionKey, call: Call<'_>) -> Result<Answer, SessionError> {
        self.shared.execute(key, call).await
    }

    /// The sessions of `connection`'s tenant, most recently used first. Other connections'
    /// default sessions are left out; `connection`'s own shows as `"default"`.
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store failed.
    pub async fn list(&self, connection: &SessionKey) -> Result<Vec<SessionInfo>, SessionError> {
        self.shared.list(connection).await
    }

    /// Closes session `key`: stops its worker and deletes its snapshot (its name can be used
    /// again at once). `Ok(false)` when it did not exist.
    ///
    /// # Errors
    /// [`SessionError::Busy`] when a call is running on it; [`SessionError::Store`].
    pub async fn close(&self, key: &SessionKey) -> Result<bool, SessionError> {
        self.shared.close(key).await
    }

    /// The tenant's skills library: its version and every skill.
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store failed.
    pub async fn skills(&self, tenant: &str) -> Result<(u64, Vec<StoredSkill>), SessionError> {
        Ok(self.shared.store.skill_list(tenant).await?)
    }

    /// One skill of the tenant, with its source.
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store failed.
    pub async fn skill(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<StoredSkill>, SessionError> {
        Ok(self.shared.store.skill_get(tenant, name).await?)
    }

    /// Whether this server can run calls: workers can be started, and the store and the
    /// result cache's Redis answer when Redis is configured. `/readyz` reports it.
    ///
    /// # Errors
    /// What is wrong, naming the part.
    pub async fn readiness(&self) -> Result<(), String> {
        self.shared
            .pool
            .health()
            .map_err(|e| format!("workers cannot be started: {e}"))?;
        self.shared
            .store
            .ping()
            .await
            .map_err(|e| format!("the session store is unreachable: {e}"))
    }

    /// Number of live sessions (each holding a worker).
    #[must_use]
    pub fn live_count(&self) -> usize {
        self.shared.live.lock().map(|l| l.len()).unwrap_or_default()
    }

    /// Process ids of every worker started and not yet reaped.
    #[must_use]
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared.pool.worker_pids()
    }

    /// Releases every live session's worker (their snapshots stay in the store), then stops
    /// every worker process and waits until each has been reaped.
    pub async fn shutdown(&self) {
        let sessions: Vec<Arc<Session>> = {
            let mut live = self.shared.live.lock().unwrap_or_else(|e| e.into_inner());
            live.drain().map(|(_, s)| s).collect()
        };
        drop(sessions);
        self.shared.pool.shutdown().await;
    }
}

impl SessionMeta {
    fn created_at(now_ms: u64) -> Self {
        Self {
            created_ms: now_ms,
            last_used_ms: now_ms,
            ..Self::default()
        }
    }
}

/// The name agent code knows a session by: `"default"` for a connection's own session.
fn display_name(key: &SessionKey) -> String {
    if key.is_connection() {
        DEFAULT_SESSION.to_owned()
    } else {
        key.name.clone()
    }
}

/// Unix time now, in milliseconds.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The key a connection means by `name`: `"default"` is its own default session
/// (`connection`), any other name a named session of the same tenant.
///
/// # Errors
/// A name that is not a valid session name.
pub fn resolve_name(
    connection: &SessionKey,
    name: &str,
) -> Result<SessionKey, crate::key::KeyError> {
    if name == DEFAULT_SESSION {
        Ok(connection.clone())
    } else {
        SessionKey::named(&connection.tenant, name)
    }
}

fn failed(kind: ErrorKind, message: String) -> CallOutcome {
    CallOutcome {
        result: Err(CallError {
            kind,
            message,
            stack: None,
        }),
        logs: Vec::new(),
    }
}

impl Shared {
    /// The live session `key`, loading it from the store when it is not live.
    async fn open(
        &self,
        key: &SessionKey,
        mode: SessionMode,
    ) -> Result<Arc<Session>, SessionError> {
        if let Some(session) = self.live.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
            if mode == SessionMode::New {
                return Err(SessionError::Exists {
                    name: display_name(key),
                });
            }
            return Ok(session.clone());
        }
        let (state, meta) = match self.store.load(key).await? {
            Lookup::Found(snapshot) => {
                if mode == SessionMode::New {
                    return Err(SessionError::Exists {
                        name: display_name(key),
                    });
                }
                let Snapshot { state, meta, .. } = snapshot;
                (state, meta)
            }
            Lookup::Expired if mode == SessionMode::New => {
                self.store.forget_tombstone(key).await?;
                (CommittedState::new(), SessionMeta::created_at(unix_ms()))
            }
            Lookup::Expired => {
                return Err(SessionError::Expired {
                    name: display_name(key),
                    retention_secs: self.config.retention_ttl.as_secs(),
                });
            }
            Lookup::NotFound if mode == SessionMode::Resume => {
                return Err(SessionError::NotFound {
                    name: display_name(key),
                });
            }
            Lookup::NotFound => (CommittedState::new(), SessionMeta::created_at(unix_ms())),
        };
        let session = Arc::new(Session {
            inner: tokio::sync::Mutex::new(SessionInner {
                worker: None,
                state,
                meta,
                retired: false,
            }),
            users: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
        });
        let mut evicted = None;
        let session = {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(existing) = live.get(key) {
                // Another call loaded it meanwhile.
                return Ok(existing.clone());
            }
            if live.len() >= self.config.max_live_sessions {
                evicted = Some(evict_lru(&mut live).ok_or(SessionError::TooManySessions {
                    max_live_sessions: self.config.max_live_sessions,
                })?);
            }
            live.insert(key.clone(), session.clone());
            session
        };
        // The evicted session's worker is stopped outside the map lock.
        drop(evicted);
        Ok(session)
    }

    async fn execute(&self, key: &SessionKey, call: Call<'_>) -> Result<Answer, SessionError> {
        let deadline = Instant::now() + call.timeout;
        let mut mode = call.mode;
        loop {
            let session = self.open(key, mode).await?;
            let using = Using::new(session);
            let waiting = Waiting::new();
            let mut inner = using.0.inner.lock().await;
            drop(waiting);
            if inner.retired {
                // Hibernated or closed between the look-up and the lock: look it up again
                // (a fresh load, so `new` must not refuse the session it just created).
                mode = if mode == SessionMode::New {
                    SessionMode::Auto
                } else {
                    mode
                };
                continue;
            }
            let result = self.run(key, &mut inner, &call, deadline).await;
            drop(inner);
            drop(using);
            return result;
        }
    }

    /// One call on a locked, live session: two store round trips in all (acquire, which also
    /// reads the generation and the skills version; and `finish`, which commits or touches
    /// and releases).
    async fn run(
        &self,
        key: &SessionKey,
        inner: &mut SessionInner,
        call: &Call<'_>,
        deadline: Instant,
    ) -> Result<Answer, SessionError> {
        let lease = self.store.acquire(key, deadline).await?;
        let mut held = Held {
            shared: self.me.clone(),
            key: key.clone(),
            lease: Some(lease.clone()),
        };
        // The lease lasts `lease_ttl` past its last renewal; a call may run longer, so it is
        // renewed at a third of that while the call runs.
        let every = self.store.config().lease_ttl / 3;
        let renew = async {
            loop {
                tokio::time::sleep(every).await;
                if let Err(error) = self.store.renew(key, &lease).await {
                    tracing::warn!(session = %key.name, %error, "renewing the session lease failed");
                }
            }
        };
        let mut released = false;
        let result = tokio::select! {
            result = self.run_leased(key, inner, call, &lease, &mut released, deadline) => result,
            never = renew => never,
        };
        held.lease = None;
        if !released && let Err(error) = self.store.release(key, &lease).await {
            tracing::warn!(session = %key.name, %error, "releasing the session lease failed; it expires by itself");
        }
        result
    }

    async fn run_leased(
        &self,
        key: &SessionKey,
        inner: &mut SessionInner,
        call: &Call<'_>,
        lease: &Lease,
        released: &mut bool,
        deadline: Instant,
    ) -> Result<Answer, SessionError> {
        if lease.generation != inner.meta.generation {
            // Another replica committed this session since this one last ran it: the live
            // worker's state is stale.
            tracing::debug!(session = %key.name, "session moved replicas; reloading its snapshot");
            inner.worker = None;
            match self.store.load(key).await? {
                Lookup::Found(snapshot) => {
                    inner.state = snapshot.state;
                    inner.meta = snapshot.meta;
                }
                // Closed on another replica (or the store lost it): this live copy is gone
                // too, and the call is treated as one on a session that is not there.
                Lookup::NotFound if call.mode == SessionMode::Resume => {
                    inner.state = CommittedState::new();
                    inner.meta = SessionMeta::created_at(unix_ms());
                    return Err(SessionError::NotFound {
                        name: display_name(key),
                    });
                }
                Lookup::NotFound => {
                    tracing::info!(session = %key.name, "the session was closed elsewhere; this call starts it anew");
                    inner.state = CommittedState::new();
                    inner.meta = SessionMeta::created_at(unix_ms());
                }
                Lookup::Expired => {
                    inner.state = CommittedState::new();
                    inner.meta = SessionMeta::created_at(unix_ms());
                    if call.mode != SessionMode::New {
                        return Err(SessionError::Expired {
                            name: display_name(key),
                            retention_secs: self.config.retention_ttl.as_secs(),
                        });
                    }
                    self.store.forget_tombstone(key).await?;
                }
            }
        }
        let base =
            (call.cache != CacheMode::Off).then(|| cached::base_key(key, call.code, self.limits));
        // Held until this call's result is stored (or it fails): identical calls wait for it.
        let mut _leading = None;
        if call.cache == CacheMode::Auto
            && let Some(base) = &base
        {
            if let Some((entry, tier)) = self.cached_entry(base, inner, lease).await {
                return self
                    .answer_from_cache(key, inner, lease, released, entry, tier)
                    .await;
            }
            match self.flights.enter(*base) {
                Role::Lead(leader) => _leading = Some(leader),
                Role::Alone => {}
                Role::Follow(done) => {
                    tracing::debug!(session = %key.name, "result cache: waiting for the identical call in flight");
                    if !flight::wait(done, deadline).await {
                        return Ok(Answer {
                            outcome: failed(
                                ErrorKind::Timeout,
                                format!(
                                    "the call timed out after timeout_ms={} while an identical call (same code) in another session of this tenant was still running: the result cache runs identical calls once; pass cache: \"off\" to run it anyway",
                                    call.timeout.as_millis()
                                ),
                            ),
                            cached: None,
                            processed_tokens: 0,
                            tool_calls: crate::ToolCalls::default(),
                        });
                    }
                    // The leader's entry, if it stored one that fits this session's state.
                    if let Some((entry, tier)) = self.cached_entry(base, inner, lease).await {
                        return self
                            .answer_from_cache(key, inner, lease, released, entry, tier)
                            .await;
                    }
                }
            }
        }
        // A worker that died between calls (killed from outside) is replaced transparently:
        // no call was running on it, so nothing but the committed state matters.
        let idle = inner
            .worker
            .take()
            .and_then(|mut w| w.is_alive().then_some(w));
        let mut worker = match idle {
            Some(worker) => worker,
            None => {
                let started = Instant::now();
                let mut worker = self.pool.lease().await?;
                let leased = started.elapsed();
                let restored = if inner.state.is_empty() {
                    Ok(())
                } else {
                    worker.restore(&inner.state).await
                };
                tracing::debug!(
                    session = %key.name,
                    lease_us = leased.as_micros(),
                    restore_us = (started.elapsed() - leased).as_micros(),
                    state_bytes = inner.meta.state_bytes,
                    "worker leased and restored"
                );
                if let Err(error) = restored {
                    tracing::warn!(%error, "restore failed");
                    return Ok(Answer {
                        outcome: failed(
                            ErrorKind::Internal,
                            format!(
                                "{error}; the code did not run, and the session keeps its last committed mcp.state (the next call restores it into a fresh worker)"
                            ),
                        ),
                        cached: None,
                        processed_tokens: 0,
                        tool_calls: crate::ToolCalls::default(),
                    });
                }
                worker
            }
        };
        let library = self.library(&key.tenant, lease.skills_version).await?;
        let skills = (worker.skills_version() != Some(library.version))
            .then(|| SkillLibrary::clone(&library));
        let processed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tool_calls = Arc::new(Mutex::new(crate::ToolCalls::default()));
        let router: Arc<dyn mcpk_kernel::HostHandler> = Arc::new(Router {
            key: key.clone(),
            connection: call.connection.clone(),
            shared: self.weak(),
            tools: self.tools.clone(),
            processed: processed.clone(),
            progress: call.progress.clone(),
            tool_calls: tool_calls.clone(),
        });
        // The catalogue this run starts with keys its entry: one that changes mid-run must not
        // file a result computed from the old tools under the new version.
        let catalog_version = self.tools.catalog_version();
        let execution = match worker
            .execute(call.code, call.timeout, router, skills)
            .await
        {
            Ok(execution) => execution,
            Err(error) => {
                // Refused before anything was sent: the worker is as it was.
                inner.worker = Some(worker);
                return Err(error.into());
            }
        };
        let mut outcome = execution.outcome;
        // Decided before the commit: the entry's key covers the state before the call.
        let to_cache = match (&base, &outcome.result) {
            (Some(base), Ok(value)) if !execution.worker_lost => cached::cacheable(
                &execution.effects,
                value.state_access,
                &execution.skills_used,
                |server, tool| self.tools.read_only(server, tool),
                self.config.cache_ttl,
                self.config.readonly_tool_ttl,
            )
            .map(|(ttl, vary)| {
                let entry_key = cached::entry_key(
                    base,
                    vary,
                    &inner.state,
                    lease.skills_version,
                    &catalog_version,
                );
                let entry = Entry {
                    result: value.json.clone(),
                    truncated_from_bytes: value.truncated_from_bytes,
                    logs: outcome.logs.clone(),
                    delta: execution.state_delta.clone(),
                    state_access: value.state_access,
                };
                (cached::vary_key(base), vary, entry_key, entry, ttl)
            }),
            _ => None,
        };
        let committed = self
            .commit(key, inner, lease, execution.state_delta.as_ref())
            .await;
        *released = committed.is_ok();
        if let Err(error) = committed {
            // The worker holds state the store refused: stop it, so the next call restores
            // what was committed.
            tracing::warn!(session = %key.name, %error, "commit to the store failed; the call is rolled back");
            return Err(error.into());
        }
        if execution.worker_lost {
            let cause = outcome
                .result
                .as_ref()
                .err()
                .map_or("unknown", |e| e.kind.name())
                .to_owned();
            metrics::counter!(WORKER_DEATHS_TOTAL, "cause" => cause).increment(1);
        } else {
            inner.worker = Some(worker);
        }
        if let Some((vary_key, vary, entry_key, entry, ttl)) = to_cache {
            self.keep(&vary_key, vary, &entry_key, &entry, ttl).await;
        }
        if !execution.skills_used.is_empty() {
            self.warn_changed_tools(&key.tenant, &execution.skills_used, &mut outcome)
                .await;
        }
        Ok(Answer {
            outcome,
            cached: None,
            processed_tokens: processed.load(std::sync::atomic::Ordering::Relaxed),
            tool_calls: std::mem::take(&mut *tool_calls.lock().unwrap_or_else(|e| e.into_inner())),
        })
    }

    /// Writes the end of a call to the store (its state `delta`, or only its use) and releases
    /// the lease; on success the session takes the new state and metadata, on failure it
    /// keeps both as they were.
    async fn commit(
        &self,
        key: &SessionKey,
        inner: &mut SessionInner,
        lease: &Lease,
        delta: Option<&StateDelta>,
    ) -> Result<(), StoreError> {
        let mut meta = inner.meta.clone();
        meta.last_used_ms = unix_ms();
        let state = delta.map(|delta| {
            let mut state = inner.state.clone();
            state.apply(delta.clone());
            meta.state_bytes = state.json_bytes() as u64;
            meta.generation += 1;
            state
        });
        self.store.finish(key, lease, delta, &meta).await?;
        if let Some(state) = state {
            inner.state = state;
        }
        inner.meta = meta;
        Ok(())
    }

    /// The cached entry for this call in this session's present state, if any.
    async fn cached_entry(
        &self,
        base: &mcpk_cache::CacheKey,
        inner: &SessionInner,
        lease: &Lease,
    ) -> Option<(Entry, mcpk_cache::Tier)> {
        let (vary, _) = self.cache.get(&cached::vary_key(base)).await?;
        let vary: cached::Vary = serde_json::from_slice(&vary).ok()?;
        let entry_key = cached::entry_key(
            base,
            vary,
            &inner.state,
            lease.skills_version,
            &self.tools.catalog_version(),
        );
        let (entry, tier) = self.cache.get(&entry_key).await?;
        let entry: Entry = serde_json::from_slice(&entry).ok()?;
        Some((entry, tier))
    }

    /// Stores a cacheable answer and the vary record that finds it.
    async fn keep(
        &self,
        vary_key: &mcpk_cache::CacheKey,
        vary: cached::Vary,
        entry_key: &mcpk_cache::CacheKey,
        entry: &Entry,
        ttl: Duration,
    ) {
        let (Ok(vary), Ok(entry)) = (serde_json::to_vec(&vary), serde_json::to_vec(entry)) else {
            return;
        };
        self.cache.insert(entry_key, entry.into(), ttl).await;
        self.cache.insert(vary_key, vary.into(), ttl).await;
    }

    /// Answers a call from a cache entry: applies its state change exactly as the run did
    /// (commit under the lease), so a hit cannot be told from a run but by `cached`.
    async fn answer_from_cache(
        &self,
        key: &SessionKey,
        inner: &mut SessionInner,
        lease: &Lease,
        released: &mut bool,
        entry: Entry,
        tier: mcpk_cache::Tier,
    ) -> Result<Answer, SessionError> {
        self.commit(key, inner, lease, entry.delta.as_ref()).await?;
        *released = true;
        if entry.delta.is_some() {
            // The worker still holds the old state: the next run restores the new one.
            inner.worker = None;
        }
        Ok(Answer {
            outcome: CallOutcome {
                result: Ok(mcpk_kernel::CallValue {
                    json: entry.result,
                    truncated_from_bytes: entry.truncated_from_bytes,
                    state_access: entry.state_access,
                }),
                logs: entry.logs,
            },
            cached: Some(tier.label()),
            processed_tokens: 0,
            tool_calls: crate::ToolCalls::default(),
        })
    }

    fn weak(&self) -> Weak<Shared> {
        self.me.clone()
    }

    /// The tenant's skills library at `version` (read with the lease) or later, loaded once
    /// per version.
    async fn library(&self, tenant: &str, version: u64) -> Result<Arc<SkillLibrary>, SessionError> {
        if let Some(library) = self
            .libraries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .filter(|l| l.version == version)
        {
            return Ok(library.clone());
        }
        let (version, skills) = self.store.skill_list(tenant).await?;
        let library = Arc::new(SkillLibrary {
            version,
            skills: skills
                .into_iter()
                .map(|s| SkillSource {
                    name: s.name,
                    source: s.source,
                })
                .collect(),
        });
        self.libraries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant.to_owned(), library.clone());
        Ok(library)
    }

    /// Drops the cached library of `tenant` after a change made here.
    pub(crate) fn forget_library(&self, tenant: &str) {
        self.libraries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tenant);
    }

    /// Adds a warning log for each tool a used skill calls whose schema changed since the
    /// skill was saved.
    async fn warn_changed_tools(&self, tenant: &str, used: &[String], outcome: &mut CallOutcome) {
        for name in used {
            let Ok(Some(skill)) = self.store.skill_get(tenant, name).await else {
                continue;
            };
            for tool in &skill.tools {
                let now = self.tools.schema_sha256(&tool.server, &tool.tool);
                if now != tool.schema_sha256 {
                    let what = if now.is_none() {
                        "is no longer listed by any ready upstream"
                    } else {
                        "changed its input schema"
                    };
                    outcome.logs.push(LogEntry {
                        level: LogLevel::Warn,
                        message: format!(
                            "skill `{name}` calls {}.{}, which {what} since the skill was saved (revision {}); check the skill with mcp.skills.get('{name}')",
                            tool.server, tool.tool, skill.revision
                        ),
                    });
                }
            }
        }
    }

    pub(crate) async fn list(&self, own: &SessionKey) -> Result<Vec<SessionInfo>, SessionError> {
        let stored = self.store.list(&own.tenant).await?;
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let mut sessions: Vec<SessionInfo> = stored
            .into_iter()
            .filter_map(|(name, meta)| {
                let key = SessionKey {
                    tenant: own.tenant.clone(),
                    name,
                };
                let shown = if key.is_connection() {
                    if &key != own {
                        return None;
                    }
                    DEFAULT_SESSION.to_owned()
                } else {
                    key.name.clone()
                };
                Some(SessionInfo {
                    live: live.contains_key(&key),
                    name: shown,
                    last_used_ms: meta.last_used_ms,
                    state_bytes: meta.state_bytes,
                })
            })
            .collect();
        sessions.sort_by_key(|s| std::cmp::Reverse(s.last_used_ms));
        Ok(sessions)
    }

    pub(crate) async fn close(&self, key: &SessionKey) -> Result<bool, SessionError> {
        let session = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned();
        let mut was_live = false;
        if let Some(session) = session {
            let Ok(mut inner) = session.inner.try_lock() else {
                return Err(SessionError::Busy {
                    name: display_name(key),
                    reason: "a call is running on it".to_owned(),
                });
            };
            inner.retired = true;
            inner.worker = None;
            self.live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(key);
            was_live = true;
        }
        // A call running on another replica holds the lease: refuse, as for a local one.
        let lease = match self.store.acquire(key, Instant::now()).await {
            Ok(lease) => lease,
            Err(StoreError::Busy { .. }) => {
                return Err(SessionError::Busy {
                    name: display_name(key),
                    reason: "a call is running on it on another replica".to_owned(),
                });
            }
            Err(error) => return Err(error.into()),
        };
        // Deleting removes the lease with everything else.
        let deleted = self.store.delete(key).await;
        if deleted.is_err() {
            let _ = self.store.release(key, &lease).await;
        }
        Ok(deleted? || was_live)
    }

    /// Hibernates every live session idle for at least the idle TTL; returns when the next
    /// one would be due.
    fn hibernate_idle(&self) -> Instant {
        let now = Instant::now();
        let ttl = self.config.idle_ttl;
        let mut next = now + ttl;
        let mut retired = Vec::new();
        {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            live.retain(|key, session| {
                let due = session.last_used() + ttl;
                if due > now || session.users.load(Ordering::SeqCst) > 0 {
                    next = next.min(due.max(now + Duration::from_millis(1)));
                    return true;
                }
                match hibernate(session) {
                    Some(worker) => {
                        tracing::debug!(session = %key.name, "idle TTL passed: hibernated");
                        retired.push(worker);
                        false
                    }
                    None => true,
                }
            });
        }
        drop(retired);
        next
    }
}

/// A lease the running call holds. If the call's future is dropped (the request was
/// cancelled) before it released the lease, the lease is released from a task, so the next
/// call need not wait for it to expire.
struct Held {
    shared: Weak<Shared>,
    key: SessionKey,
    lease: Option<Lease>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let (Some(lease), Some(shared)) = (self.lease.take(), self.shared.upgrade()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let key = self.key.clone();
        runtime.spawn(async move {
            if let Err(error) = shared.store.release(&key, &lease).await {
                tracing::warn!(session = %key.name, %error, "releasing the lease of a cancelled call failed; it expires by itself");
            }
        });
    }
}

/// Retires `session` if no call holds it, and returns its worker to stop.
fn hibernate(session: &Session) -> Option<Option<Worker>> {
    if session.users.load(Ordering::SeqCst) > 0 {
        return None;
    }
    let mut inner = session.inner.try_lock().ok()?;
    inner.retired = true;
    metrics::counter!(HIBERNATIONS_TOTAL).increment(1);
    Some(inner.worker.take())
}

/// Removes the least recently used idle session from `live` and returns its worker to stop,
/// or `None` when every live session is busy.
fn evict_lru(live: &mut HashMap<SessionKey, Arc<Session>>) -> Option<Option<Worker>> {
    let mut idle: Vec<(Instant, SessionKey)> = live
        .iter()
        .filter(|(_, s)| s.users.load(Ordering::SeqCst) == 0)
        .map(|(k, s)| (s.last_used(), k.clone()))
        .collect();
    idle.sort();
    for (_, key) in idle {
        if let Some(worker) = live.get(&key).and_then(|s| hibernate(s)) {
            tracing::debug!(session = %key.name, "max_live_sessions reached: hibernated the least recently used idle session");
            live.remove(&key);
            return Some(worker);
        }
    }
    None
}

/// The idle sweeper: hibernates sessions as their idle TTL passes, until the manager is gone.
async fn sweep(shared: Weak<Shared>) {
    loop {
        let next = match shared.upgrade() {
            Some(shared) => shared.hibernate_idle(),
            None => return,
        };
        tokio::time::sleep_until(next).await;
    }
}
