//! Sessions: each agent session owns one kernel worker, runs its calls one at a time in arrival
//! order, and keeps the last committed `mcp.state` so that a worker killed at a deadline, or
//! one that crashed, is replaced without losing anything that was committed.
//!
//! ```text
//! execute(session, code) ──▶ Session (FIFO lock) ──▶ Worker (leased from the WorkerPool)
//!                                 │ committed_state: last good mcp.state, per top-level key
//!                                 └ on a lost worker: lease a new one, Restore, continue
//! ```
//! Different sessions never wait on each other: each has its own lock and its own process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use mcpk_kernel::{
    CallError, CallOutcome, CallValue, CommittedState, Detail, ErrorKind, HostFuture, HostHandler,
    HostOp, KernelError, LogEntry, LogLevel, StateAccess,
};
use mcpk_kernel::{Worker, WorkerPool};

mod host;
pub use host::NoUpstreams;

mod key;
pub use key::{
    CONNECTION_NAME_PREFIX, KeyError, MAX_SESSION_NAME_BYTES, MAX_TENANT_BYTES, SessionKey,
};

mod store;
pub use store::{
    Lease, Lookup, MemoryStore, RedisStore, SNAPSHOT_FORMAT, SessionMeta, Snapshot, Store,
    StoreConfig, StoreError, StoredSkill, ToolSchema,
};

/// Infrastructure failures of a call, as opposed to failures of the user's code, which are
/// [`CallOutcome`]s whose `result` is `Err`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// No worker could be started or restored for the session.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// Opening one more session would exceed `max_sessions`.
    #[error("too many live sessions: max_sessions={max_sessions} are open")]
    TooManySessions {
        /// The configured limit.
        max_sessions: usize,
    },
}

/// Limits of the session manager.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// Live sessions per server process (default 256); each holds one worker process.
    pub max_sessions: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self { max_sessions: 256 }
    }
}

#[derive(Debug)]
struct SessionInner {
    worker: Option<Worker>,
    /// The last committed `mcp.state`: each top-level key's JSON text, in key order. Each
    /// successful call applies its per-key delta; a new worker gets it whole in `Restore`.
    committed_state: CommittedState,
}

/// One session. `tokio::sync::Mutex` is fair (FIFO), which gives arrival-order execution.
#[derive(Debug)]
struct Session {
    inner: tokio::sync::Mutex<SessionInner>,
}

/// Owns every live session of one server process.
pub struct SessionManager {
    pool: Arc<WorkerPool>,
    host: Arc<dyn HostHandler>,
    config: SessionConfig,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SessionManager {
    /// A manager that leases workers from `pool` and answers host calls with `host`.
    #[must_use]
    pub fn new(pool: Arc<WorkerPool>, host: Arc<dyn HostHandler>, config: SessionConfig) -> Self {
        Self {
            pool,
            host,
            config,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn session(&self, name: &str) -> Result<Arc<Session>, SessionError> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(session) = sessions.get(name) {
            return Ok(session.clone());
        }
        if sessions.len() >= self.config.max_sessions {
            return Err(SessionError::TooManySessions {
                max_sessions: self.config.max_sessions,
            });
        }
        let session = Arc::new(Session {
            inner: tokio::sync::Mutex::new(SessionInner {
                worker: None,
                committed_state: CommittedState::new(),
            }),
        });
        sessions.insert(name.to_owned(), session.clone());
        Ok(session)
    }

    /// Runs `code` in session `session` (created on first use) with a wall-clock limit of
    /// `timeout` on the code itself. Leasing and restoring a worker are not counted in
    /// `timeout`; a restore has its own deadline ([`Worker::restore_timeout`]: 2 s plus 1 s
    /// per MiB of state). When a restore fails or passes that deadline, the call does not run
    /// and fails with an `InternalError` outcome that says so; the session keeps its
    /// committed state and the next call restores it into a fresh worker.
    ///
    /// Calls on one session run one at a time in arrival order. If this future is dropped
    /// mid-call (the MCP request was cancelled), the worker is killed and the session resumes
    /// from its last committed state on its next call.
    ///
    /// # Errors
    /// [`SessionError::Kernel`] when no worker could be started or restored;
    /// [`SessionError::TooManySessions`] at the `max_sessions` limit.
    pub async fn execute(
        &self,
        session: &str,
        code: &str,
        timeout: Duration,
    ) -> Result<CallOutcome, SessionError> {
        let session = self.session(session)?;
        let mut inner = session.inner.lock().await;
        // A worker that died between calls (killed from outside) is replaced transparently:
        // no call was running on it, so nothing but the committed state matters.
        let idle = inner
            .worker
            .take()
            .and_then(|mut w| w.is_alive().then_some(w));
        let mut worker = match idle {
            Some(worker) => worker,
            None => {
                let mut worker = self.pool.lease().await?;
                if !inner.committed_state.is_empty()
                    && let Err(error) = worker.restore(&inner.committed_state).await
                {
                    tracing::warn!(%error, "restore failed");
                    return Ok(CallOutcome {
                        result: Err(CallError {
                            kind: ErrorKind::Internal,
                            message: format!(
                                "{error}; the code did not run, and the session keeps its last committed mcp.state (the next call restores it into a fresh worker)"
                            ),
                            stack: None,
                        }),
                        logs: Vec::new(),
                    });
                }
                worker
            }
        };
        let execution = worker
            .execute(code, timeout, self.host.clone(), None)
            .await?;
        if let Some(delta) = execution.state_delta {
            inner.committed_state.apply(delta);
        }
        if !execution.worker_lost {
            inner.worker = Some(worker);
        }
        Ok(execution.outcome)
    }

    /// Number of open sessions.
    #[must_use]
    pub fn session_count(&self) -> usize {
        self.sessions.lock().map(|s| s.len()).unwrap_or_default()
    }
}
