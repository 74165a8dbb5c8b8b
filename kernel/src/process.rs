//! The supervisor's handle on one worker process.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{SinkExt, StreamExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::outcome::{CallError, CallOutcome, CallValue, Effects, ErrorKind, LogEntry, LogLevel};
use crate::protocol::{
    FromWorker, HostOp, MAX_HOST_MESSAGE_BYTES, PROTOCOL_VERSION, SkillLibrary, ToWorker,
    WorkerLimits, codec,
};
use crate::state::{CommittedState, StateDelta};
use crate::worker::WorkerFault;

/// Infrastructure failures: a worker could not be started or stopped answering outside a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// The worker executable could not be started.
    #[error("could not start a kernel worker ({exe}): {source}")]
    Spawn {
        /// The executable that was run.
        exe: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The worker exited, or sent no `Ready` frame within 10 s, while starting.
    #[error("kernel worker failed to start: {reason}")]
    Startup {
        /// What went wrong, with the worker's telling stderr line when there was one.
        reason: String,
    },
    /// The worker broke the protocol outside a call.
    #[error("kernel worker protocol error: {0}")]
    Protocol(String),
    /// The worker refused the committed state, died, or broke the protocol while restoring
    /// it; the worker was stopped.
    #[error(
        "restoring the session's committed mcp.state ({state_bytes} bytes) into a new worker failed: {reason}"
    )]
    Restore {
        /// Size of the state, as JSON text.
        state_bytes: usize,
        /// What went wrong.
        reason: String,
    },
    /// The worker did not confirm the restore within its deadline
    /// ([`Worker::restore_timeout`]); the worker was stopped.
    #[error(
        "restoring the session's committed mcp.state ({state_bytes} bytes) into a new worker took longer than its {timeout:?} deadline, and the worker was stopped"
    )]
    RestoreTimeout {
        /// Size of the state, as JSON text.
        state_bytes: usize,
        /// The deadline that passed.
        timeout: Duration,
    },
    /// The skills library given to [`Worker::execute`] is bigger, as JSON, than one frame to
    /// a worker may carry; nothing was sent and the worker is unchanged.
    #[error(
        "the skills library is {library_bytes} bytes as JSON, over the {max_bytes}-byte limit for sending it to a worker; delete skills that are no longer needed (mcp.skills.delete)"
    )]
    SkillLibraryTooLarge {
        /// Size of the library as JSON, in bytes.
        library_bytes: usize,
        /// The limit, in bytes.
        max_bytes: usize,
    },
}

/// The future a [`HostHandler`] returns: the JSON answer, or an error message that sandboxed
/// code receives as a thrown `ToolError`.
pub type HostFuture = Pin<Box<dyn Future<Output = Result<serde_json::Value, String>> + Send>>;

/// Answers host calls from sandboxed code (`mcp.tools.*`). Implemented by the embedding
/// application; calls of one execution may be in flight concurrently.
pub trait HostHandler: Send + Sync {
    /// Starts answering `op`. The future is dropped, cancelling the work, if the execution ends
    /// first (deadline, crash).
    fn call(&self, op: HostOp) -> HostFuture;

    /// The names code finds on `servers` (`Object.keys(servers)`, `'fs' in servers`), sent
    /// with each call; none by default. A call that enumerates them records a `list_tools`
    /// host operation, so a cached answer is keyed on the catalogue.
    fn server_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// Called, in order, for each console line and `mcp.progress` report of the call as it
    /// arrives, while the call runs; does nothing by default. Must not block: it runs on the
    /// loop that also watches the deadline.
    fn progress(&self, _event: Progress<'_>) {}
}

/// What a running call reports before it ends (see [`HostHandler::progress`]).
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A console line; it is also in the call's logs.
    Log(&'a LogEntry),
    /// `mcp.progress(fraction, message)`: `fraction` is in `[0, 1]` (the worker clamps it),
    /// `message` at most 1,024 bytes.
    Report {
        /// Share of the work done, from 0 to 1.
        fraction: f64,
        /// What the code says it is doing; may be empty.
        message: &'a str,
    },
}

/// What [`Worker::execute`] produced.
#[derive(Debug)]
pub struct Execution {
    /// The result or error, and the logs.
    pub outcome: CallOutcome,
    /// The keys of `mcp.state` the call changed, when it succeeded and changed any; apply it
    /// to the session's [`CommittedState`] with [`CommittedState::apply`].
    pub state_delta: Option<StateDelta>,
    /// The worker is gone (killed at the deadline, crashed, or poisoned by a runtime limit) and
    /// must not be used again; the session restores its committed state into a new one.
    pub worker_lost: bool,
    /// The names the call looked up on `skills` (`skills.x`, `'x' in skills`, and every name
    /// when it enumerated `skills`), whether or not the library had them, deduplicated, in
    /// first-use order; names that cannot be skills are left out, and at most 1,024 are kept.
    /// Empty when the call used no skill, or when the worker was lost. The result of a call
    /// with a non-empty list depends on the skills library version.
    pub skills_used: Vec<String>,
    /// What the call did that a cached answer could not reproduce (clock, randomness, timers,
    /// upstream tools, other host operations), recorded by the worker as it ran; also for a
    /// failed call. The default (nothing) when the worker was lost.
    pub effects: Effects,
}

/// Last lines of a worker's stderr, kept to classify its death.
type StderrTail = Arc<Mutex<VecDeque<String>>>;
const STDERR_TAIL_LINES: usize = 16;
/// How long the supervisor waits for a new worker's `Ready` frame.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Restore deadline for any state, however small (see [`Worker::restore_timeout`]).
const RESTORE_TIMEOUT_FLOOR: Duration = Duration::from_secs(2);
/// Restore deadline added per MiB of state JSON.
const RESTORE_TIMEOUT_PER_MIB: Duration = Duration::from_secs(1);
/// How long a killed worker's exit status, and then its stderr, may take before the call's
/// answer goes out anyway: the grace after `timeout_ms` is at most twice this.
const REAP_GRACE: Duration = Duration::from_millis(500);
/// Frames queued for the writer task beyond the host replies a conforming worker can be owed.
const WRITE_QUEUE_SLACK_FRAMES: usize = 4;

/// Test-only fault injection shared by the workers of one pool.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// A fault the worker processes apply themselves (`stop-reading-stdin`,
    /// `ignore-host-call-limit`), passed to each as `--fault`.
    pub(crate) in_worker: Option<WorkerFault>,
    /// `hang-on-first-restore`: cleared by the first restore, which then hangs.
    pub(crate) hang_next_restore: AtomicBool,
}

impl Faults {
    pub(crate) fn new(fault: Option<WorkerFault>) -> Self {
        Self {
            in_worker: fault.filter(|f| *f != WorkerFault::HangOnFirstRestore),
            hang_next_restore: AtomicBool::new(fault == Some(WorkerFault::HangOnFirstRestore)),
        }
    }
}

/// One worker process, owned by the pool or leased to one session. Dropping it kills the
/// process (`kill_on_drop`), which is how an abandoned execution is cancelled.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    pid: u32,
    /// Frames for the writer task, which alone owns the child's stdin: no write ever sits in
    /// a `select!` branch, so a worker that stops reading cannot hold up a deadline.
    tx: mpsc::Sender<Bytes>,
    writer: JoinHandle<()>,
    rx: FramedRead<ChildStdout, LengthDelimitedCodec>,
    stderr: StderrTail,
    stderr_task: Option<JoinHandle<()>>,
    limits: WorkerLimits,
    faults: Arc<Faults>,
    next_id: u64,
    /// Version of the last skills library sent to the worker.
    skills_version: Option<u64>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // The process is killed by `kill_on_drop`; the writer would end on the broken pipe,
        // but need not wait for it.
        self.writer.abort();
    }
}

/// Owns the child's stdin and writes the queued frames in order, until the queue closes or
/// a write fails (the worker is gone).
async fn write_frames(stdin: ChildStdin, mut frames: mpsc::Receiver<Bytes>) {
    let mut out = FramedWrite::new(stdin, codec());
    while let Some(frame) = frames.recv().await {
        if out.send(frame).await.is_err() {
            return;
        }
    }
}

/// Why a frame could not be queued for the worker.
enum QueueError {
    /// More frames wait than a conforming worker can be owed: it stopped reading stdin.
    Full,
    /// The writer ended: the worker closed stdin or died.
    Closed,
}

/// `Debug` of a frame, cut short: a frame can be 64 MiB.
fn brief(frame: &FromWorker) -> String {
    let mut text = format!("{frame:?}");
    if text.len() > 200 {
        text.truncate(text.floor_char_boundary(200));
        text.push('…');
    }
    text
}

impl Worker {
    /// Starts `exe worker`, sends `Init`, and waits for `Ready`.
    pub(crate) async fn spawn(
        exe: &std::path::Path,
        limits: WorkerLimits,
        faults: Arc<Faults>,
    ) -> Result<Self, KernelError> {
        let mut command = Command::new(exe);
        command.arg("worker");
        if let Some(fault) = faults.in_worker {
            command.arg("--fault").arg(fault.as_str());
        }
        let mut child = command
            .env_clear()
            // One malloc arena: per-thread arenas reserve 64 MiB of address space each.
            .env("MALLOC_ARENA_MAX", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| KernelError::Spawn {
                exe: exe.display().to_string(),
                source,
            })?;
        let pid = child.id().unwrap_or_default();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(KernelError::Protocol("worker pipes missing".to_owned()));
        };
        let tail: StderrTail = Arc::default();
        let stderr_task = tokio::spawn(collect_stderr(stderr, tail.clone(), pid));
        let (tx, frames) =
            mpsc::channel(limits.max_host_calls_in_flight + WRITE_QUEUE_SLACK_FRAMES);
        let mut worker = Self {
            child,
            pid,
            tx,
            writer: tokio::spawn(write_frames(stdin, frames)),
            rx: FramedRead::new(stdout, codec()),
            stderr: tail,
            stderr_task: Some(stderr_task),
            limits,
            faults,
            next_id: 0,
            skills_version: None,
        };
        let ready = tokio::time::timeout(STARTUP_TIMEOUT, async {
            worker
                .queue(&ToWorker::Init {
                    version: PROTOCOL_VERSION,
                    limits,
                })
                .map_err(|_| "the worker closed its stdin".to_owned())?;
            match worker.recv().await {
                Some(FromWorker::Ready { version, .. }) if version == PROTOCOL_VERSION => Ok(()),
                Some(FromWorker::Ready { version, .. }) => Err(format!(
                    "worker speaks protocol {version}, supervisor speaks {PROTOCOL_VERSION}"
                )),
                Some(other) => Err(format!("expected Ready, got {other:?}")),
                None => Err("worker exited".to_owned()),
            }
        })
        .await;
        let reason = match ready {
            Ok(Ok(())) => return Ok(worker),
            Ok(Err(reason)) => reason,
            Err(_) => format!("no Ready frame within {STARTUP_TIMEOUT:?}"),
        };
        let status = worker.reap().await;
        Err(KernelError::Startup {
            reason: format!("{reason} ({})", worker.death_summary(status)),
        })
    }

    /// The worker's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Version of the last skills library sent to this worker with [`Worker::execute`], or
    /// `None` for a worker that was never sent one. A session sends its tenant's library
    /// again whenever this differs from the library's current version. What the worker's
    /// own calls saved or deleted since is not counted: those calls bumped the library's
    /// version, so the next call sends it again anyway.
    #[must_use]
    pub fn skills_version(&self) -> Option<u64> {
        self.skills_version
    }

    /// Whether the process is still running (it may have been killed from outside).
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Queues a frame for the writer task; never waits.
    fn queue(&self, message: &ToWorker) -> Result<(), QueueError> {
        let body = serde_json::to_vec(message).map_err(|_| QueueError::Closed)?;
        self.queue_bytes(Bytes::from(body))
    }

    fn queue_bytes(&self, frame: Bytes) -> Result<(), QueueError> {
        self.tx.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => QueueError::Full,
            mpsc::error::TrySendError::Closed(_) => QueueError::Closed,
        })
    }

    /// The next frame, or `None` when the worker closed stdout or sent garbage.
    async fn recv(&mut self) -> Option<FromWorker> {
        let frame = self.rx.next().await?.ok()?;
        match serde_json::from_slice(&frame) {
            Ok(message) => Some(message),
            Err(e) => {
                tracing::warn!(pid = self.pid, error = %e, "undecodable frame from worker");
                None
            }
        }
    }

    /// The deadline of restoring `state_bytes` of state JSON: 2 s, plus 1 s per MiB (10 s at
    /// the default 8 MiB `max_state_bytes`).
    #[must_use]
    pub fn restore_timeout(state_bytes: usize) -> Duration {
        let mib = u32::try_from(state_bytes.div_ceil(1 << 20)).unwrap_or(u32::MAX);
        RESTORE_TIMEOUT_FLOOR.saturating_add(RESTORE_TIMEOUT_PER_MIB.saturating_mul(mib))
    }

    /// Replaces the worker's `mcp.state` with a session's committed state, within
    /// [`Worker::restore_timeout`] of the state's size.
    ///
    /// # Errors
    /// [`KernelError::RestoreTimeout`] when the worker did not confirm in time, and
    /// [`KernelError::Restore`] when it refused the state, died or broke the protocol. The
    /// worker is stopped in both cases and must be dropped.
    pub async fn restore(&mut self, state: &CommittedState) -> Result<(), KernelError> {
        let state_bytes = state.json_bytes();
        let timeout = Self::restore_timeout(state_bytes);
        if self.faults.hang_next_restore.swap(false, Ordering::SeqCst) {
            tracing::warn!(
                pid = self.pid,
                "test fault: stopping the worker before its restore"
            );
            if let Some(pid) = rustix::process::Pid::from_raw(self.pid.cast_signed()) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::STOP);
            }
        }
        let failed = |reason: String| KernelError::Restore {
            state_bytes,
            reason,
        };
        let sizes = state.entries().map(|(k, v)| (k.len(), v.len())).collect();
        let mut raw = Vec::with_capacity(state.entries().map(|(k, v)| k.len() + v.len()).sum());
        for (k, v) in state.entries() {
            raw.extend_from_slice(k.as_bytes());
            raw.extend_from_slice(v.as_bytes());
        }
        let queued = self
            .queue(&ToWorker::Restore { sizes })
            .and_then(|()| self.queue_bytes(Bytes::from(raw)));
        if queued.is_err() {
            let status = self.reap().await;
            return Err(failed(format!(
                "the worker is gone ({})",
                self.death_summary(status)
            )));
        }
        let reply = tokio::time::timeout(timeout, self.recv()).await;
        let error = match reply {
            Ok(Some(FromWorker::Restored)) => return Ok(()),
            Ok(Some(FromWorker::Failed { error, .. })) => failed(error.message),
            Ok(Some(other)) => failed(format!("the worker answered {}", brief(&other))),
            Ok(None) => {
                let status = self.reap().await;
                failed(format!("the worker died ({})", self.death_summary(status)))
            }
            Err(_) => KernelError::RestoreTimeout {
                state_bytes,
                timeout,
            },
        };
        let _ = self.kill_and_reap().await;
        Err(error)
    }

    /// Runs `code` with a wall-clock limit of `timeout`, answering its host calls with `host`.
    ///
    /// At the deadline the process is killed: that is the only way to stop a loop that never
    /// yields or a long native call (a catastrophic regex ran 94 s in Boa 0.22 here). The
    /// returned [`Execution`] then has `worker_lost` set and a `TimeoutError`; a crash gives
    /// `MemoryLimitError` (allocation failure) or `InternalError`. In every failure the worker's
    /// `mcp.state` was rolled back, or the worker is gone.
    ///
    /// Logs are capped at `max_log_bytes` here too, so a misbehaving worker cannot flood the
    /// supervisor.
    ///
    /// `skills`, when set, replaces the worker's skills library (`skills.<name>`) before the
    /// code runs, and [`Worker::skills_version`] becomes its version; `None` keeps the library
    /// the worker has (none, for a fresh worker).
    ///
    /// # Errors
    /// [`KernelError::SkillLibraryTooLarge`] when `skills` is more than 32 MiB as JSON (the
    /// limit of a host message, so the frame stays within [`crate::MAX_FRAME_BYTES`]); nothing
    /// is sent, and the worker can still be used. Every failure of the call itself is an
    /// [`Execution`] whose outcome says what happened.
    pub async fn execute(
        &mut self,
        code: &str,
        timeout: Duration,
        host: Arc<dyn HostHandler>,
        skills: Option<SkillLibrary>,
    ) -> Result<Execution, KernelError> {
        let skills_version = skills.as_ref().map(check_library).transpose()?;
        Ok(self.run(code, timeout, host, skills, skills_version).await)
    }

    /// [`Worker::execute`] once the library passed its check.
    async fn run(
        &mut self,
        code: &str,
        timeout: Duration,
        host: Arc<dyn HostHandler>,
        skills: Option<SkillLibrary>,
        skills_version: Option<u64>,
    ) -> Execution {
        self.next_id += 1;
        let id = self.next_id;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut logs = LogBuffer::new(self.limits.max_log_bytes);
        let lost = |logs: LogBuffer, kind, message: String| Execution {
            outcome: CallOutcome {
                result: Err(CallError {
                    kind,
                    message: format!(
                        "{message} (mcp.state was rolled back to its last committed value)"
                    ),
                    stack: None,
                }),
                logs: logs.entries,
            },
            state_delta: None,
            worker_lost: true,
            skills_used: Vec::new(),
            effects: Effects::default(),
        };
        if self
            .queue(&ToWorker::Execute {
                id,
                code: code.to_owned(),
                skills,
                servers: host.server_names(),
            })
            .is_err()
        {
            let until = deadline.min(tokio::time::Instant::now() + Duration::from_secs(2));
            let status = self.reap_until(until).await;
            let (kind, summary) = self.classify_death(status);
            return lost(logs, kind, format!("the worker is gone; {summary}"));
        }
        if skills_version.is_some() {
            self.skills_version = skills_version;
        }
        let max_in_flight = self.limits.max_host_calls_in_flight;
        let mut host_calls = FuturesUnordered::new();
        let deadline_passed = tokio::time::sleep_until(deadline);
        tokio::pin!(deadline_passed);
        // No branch writes to the worker (replies are queued for the writer task), so the
        // deadline is polled on every turn; `biased` puts it first, ahead of a frame flood.
        loop {
            tokio::select! {
                biased;
                () = &mut deadline_passed => {
                    let _ = self.kill_and_reap().await;
                    let message = format!(
                        "the call ran longer than timeout_ms={} and its worker was stopped",
                        timeout.as_millis()
                    );
                    return lost(logs, ErrorKind::Timeout, message);
                }
                frame = self.recv() => match frame {
                    Some(FromWorker::Log { id: call_id, entry }) if call_id == id => {
                        host.progress(Progress::Log(&entry));
                        logs.push(entry);
                    }
                    Some(FromWorker::Progress { id: call_id, fraction, message }) if call_id == id => {
                        host.progress(Progress::Report { fraction, message: &message });
                    }
                    Some(FromWorker::HostCall { id: call_id, call, op }) if call_id == id => {
                        if host_calls.len() >= max_in_flight {
                            let _ = self.kill_and_reap().await;
                            let message = format!(
                                "the worker sent more host calls than max_host_calls_in_flight={max_in_flight} allows and was stopped"
                            );
                            return lost(logs, ErrorKind::Internal, message);
                        }
                        let answer = host.call(op);
                        host_calls.push(async move { (call, answer.await) });
                    }
                    Some(FromWorker::Done { id: done_id, result, truncated_from_bytes, state, access, skills_used, effects }) if done_id == id => {
                        return Execution {
                            outcome: CallOutcome {
                                result: Ok(CallValue { json: result, truncated_from_bytes, state_access: access }),
                                logs: logs.entries,
                            },
                            state_delta: state,
                            worker_lost: false,
                            skills_used,
                            effects,
                        };
                    }
                    Some(FromWorker::Failed { id: failed_id, error, poisoned, skills_used, effects }) if failed_id == id => {
                        if poisoned {
                            let _ = self.child.start_kill();
                        }
                        return Execution {
                            outcome: CallOutcome { result: Err(error), logs: logs.entries },
                            state_delta: None,
                            worker_lost: poisoned,
                            skills_used,
                            effects,
                        };
                    }
                    Some(other) => {
                        let _ = self.kill_and_reap().await;
                        return lost(logs, ErrorKind::Internal, format!("the worker broke the protocol with {}", brief(&other)));
                    }
                    None => {
                        // It closed its stdout: it is exiting. Its status tells how, but the
                        // deadline still holds.
                        let until = deadline.min(tokio::time::Instant::now() + Duration::from_secs(2));
                        let status = self.reap_until(until).await;
                        let (kind, summary) = self.classify_death(status);
                        return lost(logs, kind, summary);
                    }
                },
                Some((call, result)) = host_calls.next(), if !host_calls.is_empty() => {
                    match self.queue_bytes(host_reply(call, result)) {
                        // A closed queue means the worker is gone; the next `recv` says how.
                        Ok(()) | Err(QueueError::Closed) => {}
                        Err(QueueError::Full) => {
                            let _ = self.kill_and_reap().await;
                            let message = format!(
                                "the worker stopped reading its input while owed more than max_host_calls_in_flight={max_in_flight} host replies, and was stopped"
                            );
                            return lost(logs, ErrorKind::Internal, message);
                        }
                    }
                }
            }
        }
    }

    /// Waits for the process to exit (killing it if it has not within 2 s) and for its stderr to
    /// be drained (at most [`REAP_GRACE`]).
    async fn reap(&mut self) -> Option<ExitStatus> {
        self.reap_until(tokio::time::Instant::now() + Duration::from_secs(2))
            .await
    }

    /// As [`Worker::reap`], but kills the process at `until` if it has not exited by then.
    async fn reap_until(&mut self, until: tokio::time::Instant) -> Option<ExitStatus> {
        let status = match tokio::time::timeout_at(until, self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => return self.kill_and_reap().await,
        };
        self.drain_stderr().await;
        status
    }

    /// Kills the process and waits at most [`REAP_GRACE`] for its exit status and again for
    /// its stderr: the grace a call may take after its deadline.
    async fn kill_and_reap(&mut self) -> Option<ExitStatus> {
        let _ = self.child.start_kill();
        let status = tokio::time::timeout(REAP_GRACE, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok);
        self.drain_stderr().await;
        status
    }

    async fn drain_stderr(&mut self) {
        if let Some(task) = self.stderr_task.take() {
            let _ = tokio::time::timeout(REAP_GRACE, task).await;
        }
    }

    fn death_summary(&self, status: Option<ExitStatus>) -> String {
        use std::os::unix::process::ExitStatusExt;
        let how = match status {
            Some(s) if s.signal().is_some() => {
                format!("killed by signal {}", s.signal().unwrap_or_default())
            }
            Some(s) => format!("exit code {}", s.code().unwrap_or_default()),
            None => "exit status unknown".to_owned(),
        };
        let tail = self
            .stderr
            .lock()
            .map(|t| telling_line(&t))
            .unwrap_or_default();
        match tail {
            Some(line) => format!("worker pid {} {how}: {line}", self.pid),
            None => format!("worker pid {} {how}", self.pid),
        }
    }

    fn classify_death(&self, status: Option<ExitStatus>) -> (ErrorKind, String) {
        let out_of_memory = self.stderr.lock().is_ok_and(|tail| {
            tail.iter()
                .any(|l| l.contains("memory allocation of") || l.contains("out of memory"))
        });
        let stack_overflow = self.stderr.lock().is_ok_and(|tail| {
            tail.iter()
                .any(|l| l.contains("overflowed its stack") || l.contains("stack overflow"))
        });
        let summary = self.death_summary(status);
        if stack_overflow {
            let message = format!(
                "the worker overflowed its native stack (code or data nested too deeply for the engine) and was stopped; {summary}"
            );
            return (ErrorKind::Internal, message);
        }
        if out_of_memory {
            let message = format!(
                "the worker ran out of memory (memory_mib={}) and was stopped; {summary}",
                self.limits.memory_mib
            );
            (ErrorKind::MemoryLimit, message)
        } else {
            (
                ErrorKind::Internal,
                format!("the worker process died unexpectedly; {summary}"),
            )
        }
    }

    /// Asks the worker to exit; it is killed if it has not within 1 s.
    pub async fn shutdown(mut self) {
        let _ = self.queue(&ToWorker::Shutdown);
        if tokio::time::timeout(Duration::from_secs(1), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
        }
    }
}

/// The version of a library small enough to send, or [`KernelError::SkillLibraryTooLarge`].
fn check_library(library: &SkillLibrary) -> Result<u64, KernelError> {
    let library_bytes = json_bytes(library);
    if library_bytes > MAX_HOST_MESSAGE_BYTES {
        return Err(KernelError::SkillLibraryTooLarge {
            library_bytes,
            max_bytes: MAX_HOST_MESSAGE_BYTES,
        });
    }
    Ok(library.version)
}

/// Bytes of `value` as JSON, counted without building the text.
fn json_bytes<T: serde::Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to `Count` cannot fail, and these types always serialise.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// The encoded `HostReply` frame. An answer bigger than [`MAX_HOST_MESSAGE_BYTES`] as JSON is
/// replaced by an error naming its size, so no reply frame can exceed the frame limit.
fn host_reply(call: u64, result: Result<serde_json::Value, String>) -> Bytes {
    let encode = |result| {
        serde_json::to_vec(&ToWorker::HostReply { call, result }).unwrap_or_else(|e| {
            serde_json::to_vec(&ToWorker::HostReply {
                call,
                result: Err(format!("the answer cannot be encoded: {e}")),
            })
            .unwrap_or_default()
        })
    };
    let frame = encode(result);
    if frame.len() <= MAX_HOST_MESSAGE_BYTES {
        return Bytes::from(frame);
    }
    let bytes = frame.len();
    Bytes::from(encode(Err(format!(
        "the answer is {bytes} bytes as JSON, over the {MAX_HOST_MESSAGE_BYTES}-byte limit for host replies; ask for less (a range, a filter, a page)"
    ))))
}

/// The stderr line that best explains a death: an allocation failure, a panic or a stack
/// overflow when there is one, else the last line that is not a backtrace hint.
fn telling_line(tail: &VecDeque<String>) -> Option<String> {
    const TELLING: [&str; 5] = [
        "memory allocation of",
        "stack overflow",
        "panicked at",
        "overflowed its stack",
        "mcp-kernel worker:",
    ];
    tail.iter()
        .find(|l| TELLING.iter().any(|t| l.contains(t)))
        .or_else(|| {
            tail.iter()
                .rev()
                .find(|l| !l.starts_with("note:") && !l.starts_with("stack backtrace"))
        })
        .cloned()
}

/// Keeps the last [`STDERR_TAIL_LINES`] lines of a worker's stderr (each cut to 512 bytes), read
/// line-bounded so a worker cannot make the supervisor buffer a huge line.
async fn collect_stderr(stderr: tokio::process::ChildStderr, tail: StderrTail, pid: u32) {
    let lines = crate::stderr::stderr_lines(stderr);
    futures::pin_mut!(lines);
    while let Some(mut line) = lines.next().await {
        tracing::debug!(pid, "worker stderr: {line}");
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            line.truncate(line.floor_char_boundary(512));
            tail.push_back(line);
        }
    }
}

/// Logs of one call, capped at `max_log_bytes` (the worker caps them too; this is the
/// supervisor's own bound).
struct LogBuffer {
    entries: Vec<LogEntry>,
    bytes: usize,
    max_bytes: usize,
    capped: bool,
}

impl LogBuffer {
    fn new(max_bytes: usize) -> Self {
        Self {
            entries: Vec::new(),
            bytes: 0,
            max_bytes,
            capped: false,
        }
    }

    fn push(&mut self, entry: LogEntry) {
        // The worker's own truncation marker may exceed the budget by its length.
        const SLACK_BYTES: usize = 256;
        if self.capped {
            return;
        }
        if self.bytes + entry.message.len() > self.max_bytes + SLACK_BYTES {
            self.capped = true;
            self.entries.push(LogEntry {
                level: LogLevel::Warn,
                message: format!(
                    "[console output truncated by the supervisor at max_log_bytes={}]",
                    self.max_bytes
                ),
            });
            return;
        }
        self.bytes += entry.message.len();
        self.entries.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(frame: &[u8]) -> Result<serde_json::Value, String> {
        match serde_json::from_slice::<ToWorker>(frame) {
            Ok(ToWorker::HostReply { call: 7, result }) => result,
            other => panic!("not the HostReply of call 7: {other:?}"),
        }
    }

    #[test]
    fn host_replies_up_to_the_limit_pass_and_bigger_ones_become_errors() {
        // `{"type":"HostReply","call":7,"result":{"Ok":"…"}}` is 44 bytes around the string.
        let envelope = host_reply(7, Ok(serde_json::Value::String(String::new()))).len();
        let at_limit = "x".repeat(MAX_HOST_MESSAGE_BYTES - envelope);
        let frame = host_reply(7, Ok(serde_json::Value::String(at_limit.clone())));
        assert_eq!(frame.len(), MAX_HOST_MESSAGE_BYTES);
        assert_eq!(decoded(&frame), Ok(serde_json::Value::String(at_limit)));

        let over = "x".repeat(MAX_HOST_MESSAGE_BYTES - envelope + 1);
        let frame = host_reply(7, Ok(serde_json::Value::String(over)));
        let error = decoded(&frame).expect_err("an error reply");
        assert_eq!(
            error,
            format!(
                "the answer is {} bytes as JSON, over the {MAX_HOST_MESSAGE_BYTES}-byte limit for host replies; ask for less (a range, a filter, a page)",
                MAX_HOST_MESSAGE_BYTES + 1
            )
        );
    }

    #[test]
    fn skill_libraries_up_to_the_limit_pass_and_bigger_ones_are_refused() {
        let library = |source_bytes: usize| SkillLibrary {
            version: 9,
            skills: vec![crate::protocol::SkillSource {
                name: "s".to_owned(),
                source: "x".repeat(source_bytes),
            }],
        };
        let envelope = serde_json::to_vec(&library(0))
            .map(|v| v.len())
            .unwrap_or_default();
        let at_limit = library(MAX_HOST_MESSAGE_BYTES - envelope);
        assert_eq!(json_bytes(&at_limit), MAX_HOST_MESSAGE_BYTES);
        assert_eq!(check_library(&at_limit).ok(), Some(9));
        let over = library(MAX_HOST_MESSAGE_BYTES - envelope + 1);
        let error = check_library(&over).expect_err("too large");
        assert_eq!(
            error.to_string(),
            format!(
                "the skills library is {} bytes as JSON, over the {MAX_HOST_MESSAGE_BYTES}-byte limit for sending it to a worker; delete skills that are no longer needed (mcp.skills.delete)",
                MAX_HOST_MESSAGE_BYTES + 1
            )
        );
    }

    #[test]
    fn restore_deadline_grows_with_the_state() {
        assert_eq!(Worker::restore_timeout(0), Duration::from_secs(2));
        assert_eq!(Worker::restore_timeout(7), Duration::from_secs(3));
        assert_eq!(Worker::restore_timeout(1 << 20), Duration::from_secs(3));
        assert_eq!(
            Worker::restore_timeout((1 << 20) + 1),
            Duration::from_secs(4)
        );
        assert_eq!(Worker::restore_timeout(8 << 20), Duration::from_secs(10));
    }
}
