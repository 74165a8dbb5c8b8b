//! Sessions: each agent session owns one kernel worker, runs its calls one at a time in arrival
//! order, and keeps the last committed `mcp.state` so a killed or crashed worker can be
//! replaced without losing anything that was committed.

use std::sync::Arc;
use std::time::Duration;

pub use mcpk_kernel::{CallError, CallOutcome, CallValue, ErrorKind, LogEntry, LogLevel};
use mcpk_kernel::WorkerPool;

/// Infrastructure failures of a call (not failures of the user's code, which are
/// [`CallOutcome`]s with an `Err` result).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// No worker could be started for the session.
    #[error("no kernel worker available: {0}")]
    Kernel(#[from] mcpk_kernel::KernelError),
}

/// Owns every live session of one server process.
#[derive(Debug)]
pub struct SessionManager {
    pool: Arc<WorkerPool>,
}

impl SessionManager {
    /// A manager that leases workers from `pool`.
    #[must_use]
    pub fn new(pool: Arc<WorkerPool>) -> Self {
        Self { pool }
    }

    /// Runs `code` in session `session` (created on first use) with a wall-clock limit of
    /// `timeout`. Calls on one session run one at a time in arrival order.
    ///
    /// # Errors
    /// [`SessionError::Kernel`] when no worker could be started.
    pub async fn execute(
        &self,
        session: &str,
        code: &str,
        timeout: Duration,
    ) -> Result<CallOutcome, SessionError> {
        let _ = (&self.pool, session, code, timeout);
        Err(SessionError::Kernel(mcpk_kernel::KernelError::Spawn(
            std::io::Error::other("not yet implemented"),
        )))
    }
}
