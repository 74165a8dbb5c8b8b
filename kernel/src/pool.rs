//! The warm pool: workers spawned ahead of demand, each with its Context already built, so a
//! new session's first call does not wait for a process to start.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::children::ChildSet;
use crate::process::{Faults, KernelError, Worker};
use crate::protocol::WorkerLimits;
use crate::worker::WorkerFault;

/// Configuration of the kernel workers. Units are in the field names; the defaults are the
/// limits table of DESIGN.md.
#[derive(Debug, Clone)]
pub struct KernelConfig {
    /// Executable started as `<worker_exe> worker`; normally the running `mcp-kernel` binary.
    pub worker_exe: PathBuf,
    /// Idle workers kept ready (default 2). 0 disables the pool: every lease spawns.
    pub warm_workers: usize,
    /// Address-space limit of each worker, in MiB (default 256).
    pub memory_mib: u64,
    /// Console output captured per call, in bytes (default 16 KiB).
    pub max_log_bytes: usize,
    /// Largest `mcp.state` as JSON, in bytes (default 8 MiB).
    pub max_state_bytes: usize,
    /// Result JSON beyond this many bytes is truncated (default 32 KiB).
    pub max_result_bytes: usize,
    /// Deepest nesting of arrays/objects in a result or in `mcp.state`, in levels (default 100).
    /// A result goes back inside a JSON-RPC response (3 more levels), and serde_json, which
    /// rmcp uses on both ends, refuses input nested deeper than 128 levels by default.
    pub max_json_depth: u32,
    /// Host calls (`mcp.tools.*`, `servers.*`, `mcp.resources.*`) of one call that may wait
    /// for their answers at once (default 256). Later calls wait in the worker, in call
    /// order, for a free slot; they do not fail. A worker that sends more is stopped with an
    /// error naming the limit. Does not bound how long a call may take (`timeout_ms` does).
    pub max_host_calls_in_flight: usize,
    /// Test-only fault injection (the hidden `--worker-fault` flag); `None` in production.
    pub worker_fault: Option<WorkerFault>,
}

impl KernelConfig {
    /// The defaults, with `worker_exe` as given.
    #[must_use]
    pub fn new(worker_exe: PathBuf) -> Self {
        Self {
            worker_exe,
            warm_workers: 2,
            memory_mib: 256,
            max_log_bytes: 16 << 10,
            max_state_bytes: 8 << 20,
            max_result_bytes: 32 << 10,
            max_json_depth: 100,
            max_host_calls_in_flight: 256,
            worker_fault: None,
        }
    }

    /// The largest frame these limits can make, in bytes: a `Done` (or `Restore`) frame whose
    /// state and result are at their limits and made only of characters that JSON escaping
    /// doubles (`"` and `\\`; a JSON text has no raw control characters), plus the frame's own
    /// fields. It must not exceed [`MAX_FRAME_BYTES`](crate::MAX_FRAME_BYTES).
    #[must_use]
    pub fn worst_case_frame_bytes(&self) -> usize {
        /// The frame's type, id and field names, with room to spare.
        const FRAME_FIELDS_BYTES: usize = 1024;
        self.max_state_bytes
            .saturating_add(self.max_result_bytes)
            .saturating_mul(2)
            .saturating_add(FRAME_FIELDS_BYTES)
    }

    pub(crate) fn limits(&self) -> WorkerLimits {
        WorkerLimits {
            memory_mib: self.memory_mib,
            max_log_bytes: self.max_log_bytes,
            max_state_bytes: self.max_state_bytes,
            max_result_bytes: self.max_result_bytes,
            max_json_depth: self.max_json_depth,
            max_host_calls_in_flight: self.max_host_calls_in_flight,
        }
    }
}

/// Spawns workers, keeps `warm_workers` of them idle and ready, and leases one to each live
/// session. A background task refills the pool after each lease and every
/// [`WorkerPool::CHECK_INTERVAL`] drops idle workers that have exited (killed from outside,
/// crashed) and replaces them.
#[derive(Debug)]
pub struct WorkerPool {
    config: KernelConfig,
    idle: Mutex<VecDeque<Worker>>,
    refill: Arc<Notify>,
    /// Every worker process this pool started that has not been reaped, leased or not.
    children: ChildSet,
    /// Set by [`WorkerPool::shutdown`]: no more workers are started.
    closed: AtomicBool,
    faults: Arc<Faults>,
    /// Why the last attempt to start a worker failed, until one starts again.
    spawn_error: Mutex<Option<String>>,
}

/// `mcpk_worker_starts_total`: worker processes started (warm or on demand).
pub const WORKER_STARTS_TOTAL: &str = "mcpk_worker_starts_total";

impl WorkerPool {
    /// How often idle workers are checked for liveness.
    pub const CHECK_INTERVAL: Duration = Duration::from_millis(500);

    /// Starts the pool and its refill task. Must be called inside a tokio runtime; the task
    /// ends when the last `Arc` is dropped.
    #[must_use]
    pub fn start(config: KernelConfig) -> Arc<Self> {
        if let Err(e) = crate::sandbox::raise_stack_limit_for_workers(config.memory_mib) {
            tracing::warn!(
                "workers keep the inherited stack limit: {e}; a native stack overflow may show as SIGSEGV"
            );
        }
        let faults = Arc::new(Faults::new(config.worker_fault));
        let pool = Arc::new(Self {
            config,
            faults,
            idle: Mutex::new(VecDeque::new()),
            refill: Arc::new(Notify::new()),
            children: ChildSet::new(),
            closed: AtomicBool::new(false),
            spawn_error: Mutex::new(None),
        });
        tokio::spawn(maintain(Arc::downgrade(&pool), pool.refill.clone()));
        pool
    }

    /// The pool's configuration.
    #[must_use]
    pub fn config(&self) -> &KernelConfig {
        &self.config
    }

    /// Spawns a worker with this pool's limits, bypassing the idle queue.
    ///
    /// # Errors
    /// [`KernelError::Spawn`] or [`KernelError::Startup`] when the process cannot start, or
    /// the pool has been shut down.
    pub async fn spawn(&self) -> Result<Worker, KernelError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(KernelError::Startup {
                reason: "the kernel is shutting down".to_owned(),
            });
        }
        let worker = Worker::spawn(
            &self.config.worker_exe,
            self.config.limits(),
            self.faults.clone(),
        )
        .await;
        let worker = match worker {
            Ok(worker) => {
                self.set_spawn_error(None);
                worker
            }
            Err(error) => {
                self.set_spawn_error(Some(error.to_string()));
                return Err(error);
            }
        };
        metrics::counter!(WORKER_STARTS_TOTAL).increment(1);
        if let Err(error) = self.children.register(worker.pid()) {
            tracing::warn!(pid = worker.pid(), %error, "cannot track a worker process");
        }
        if self.closed.load(Ordering::SeqCst) {
            // Started while the pool shut down: dropping it kills it.
            return Err(KernelError::Startup {
                reason: "the kernel is shutting down".to_owned(),
            });
        }
        Ok(worker)
    }

    /// Stops every worker this pool started, idle or leased, and waits until each process has
    /// exited and been reaped. No worker is started afterwards ([`WorkerPool::lease`] fails).
    /// Leased workers die mid-call if a call is still running; the supervisor is exiting.
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.refill.notify_one();
        let idle: Vec<Worker> = self
            .idle
            .lock()
            .map(|mut q| q.drain(..).collect())
            .unwrap_or_default();
        drop(idle);
        self.children.stop_all(Duration::ZERO).await;
    }

    /// Pids of the worker processes this pool started that have not been reaped yet.
    #[must_use]
    pub fn worker_pids(&self) -> Vec<u32> {
        self.children.pids()
    }

    /// Hands out an idle, live worker, or spawns one when none is ready. The worker belongs to
    /// the caller until dropped (which kills it).
    ///
    /// # Errors
    /// As [`WorkerPool::spawn`], when no idle worker was ready.
    pub async fn lease(&self) -> Result<Worker, KernelError> {
        loop {
            let idle = self
                .idle
                .lock()
                .map(|mut q| q.pop_front())
                .unwrap_or_default();
            let Some(mut worker) = idle else { break };
            self.refill.notify_one();
            if worker.is_alive() {
                return Ok(worker);
            }
            tracing::info!(pid = worker.pid(), "dropping an idle worker that exited");
        }
        self.refill.notify_one();
        self.spawn().await
    }

    /// Whether workers can be started: `Err` with the last start's error while starting them
    /// fails (the pool keeps retrying in the background), `Ok` once one starts again.
    ///
    /// # Errors
    /// The last start failure's message.
    pub fn health(&self) -> Result<(), String> {
        match self.spawn_error.lock().map(|e| e.clone()) {
            Ok(Some(error)) => Err(error),
            _ => Ok(()),
        }
    }

    fn set_spawn_error(&self, error: Option<String>) {
        if let Ok(mut slot) = self.spawn_error.lock() {
            *slot = error;
        }
    }

    /// Number of idle workers ready now.
    #[must_use]
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|q| q.len()).unwrap_or_default()
    }

    fn prune_dead(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain_mut(|w| {
                let alive = w.is_alive();
                if !alive {
                    tracing::info!(pid = w.pid(), "idle worker exited; replacing it");
                }
                alive
            });
        }
    }
}

async fn maintain(pool: Weak<WorkerPool>, refill: Arc<Notify>) {
    let mut failures = 0u32;
    loop {
        let Some(strong) = pool.upgrade() else { return };
        if strong.closed.load(Ordering::SeqCst) {
            return;
        }
        strong.prune_dead();
        let missing = strong
            .config
            .warm_workers
            .saturating_sub(strong.idle_count());
        if missing > 0 {
            match strong.spawn().await {
                Ok(worker) => {
                    failures = 0;
                    if let Ok(mut idle) = strong.idle.lock() {
                        idle.push_back(worker);
                    }
                    continue;
                }
                // Shut down while this worker was starting: not a failure.
                Err(_) if strong.closed.load(Ordering::SeqCst) => return,
                Err(e) => {
                    failures += 1;
                    tracing::error!(error = %e, "could not spawn a warm worker");
                }
            }
        }
        // Back off after failures (up to 10 s) so a broken worker binary does not spin.
        let wait = WorkerPool::CHECK_INTERVAL * 2u32.saturating_pow(failures.min(4));
        drop(strong);
        let notified = refill.notified();
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}
