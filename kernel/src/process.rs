//! The supervisor's handle on one worker process.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{SinkExt, StreamExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::outcome::{CallError, CallOutcome, CallValue, ErrorKind, LogEntry, LogLevel};
use crate::protocol::{
    FromWorker, HostOp, MAX_FRAME_BYTES, MAX_HOST_MESSAGE_BYTES, PROTOCOL_VERSION, ToWorker,
    WorkerLimits,
};
use crate::state::{CommittedState, StateDelta};

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
    /// The worker broke the protocol or died while restoring a session.
    #[error("kernel worker protocol error: {0}")]
    Protocol(String),
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
}

/// Last lines of a worker's stderr, kept to classify its death.
type StderrTail = Arc<Mutex<VecDeque<String>>>;
const STDERR_TAIL_LINES: usize = 16;
/// How long the supervisor waits for a new worker's `Ready` frame.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// One worker process, owned by the pool or leased to one session. Dropping it kills the
/// process (`kill_on_drop`), which is how an abandoned execution is cancelled.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    pid: u32,
    tx: FramedWrite<ChildStdin, LengthDelimitedCodec>,
    rx: FramedRead<ChildStdout, LengthDelimitedCodec>,
    stderr: StderrTail,
    stderr_task: Option<JoinHandle<()>>,
    limits: WorkerLimits,
    next_id: u64,
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

impl Worker {
    /// Starts `exe worker`, sends `Init`, and waits for `Ready`.
    pub(crate) async fn spawn(
        exe: &std::path::Path,
        limits: WorkerLimits,
    ) -> Result<Self, KernelError> {
        let mut child = Command::new(exe)
            .arg("worker")
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
        let mut worker = Self {
            child,
            pid,
            tx: FramedWrite::new(stdin, codec()),
            rx: FramedRead::new(stdout, codec()),
            stderr: tail,
            stderr_task: Some(stderr_task),
            limits,
            next_id: 0,
        };
        let ready = tokio::time::timeout(STARTUP_TIMEOUT, async {
            worker
                .send(&ToWorker::Init {
                    version: PROTOCOL_VERSION,
                    limits,
                })
                .await?;
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

    /// Whether the process is still running (it may have been killed from outside).
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    async fn send(&mut self, message: &ToWorker) -> Result<(), String> {
        let body = serde_json::to_vec(message).map_err(|e| e.to_string())?;
        self.tx
            .send(Bytes::from(body))
            .await
            .map_err(|e| format!("writing to worker: {e}"))
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

    /// Replaces the worker's `mcp.state` with a session's committed state.
    ///
    /// # Errors
    /// [`KernelError::Protocol`] when the worker died or refused the state.
    pub async fn restore(&mut self, state: &CommittedState) -> Result<(), KernelError> {
        let entries = state
            .entries()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.send(&ToWorker::Restore { entries })
            .await
            .map_err(KernelError::Protocol)?;
        match self.recv().await {
            Some(FromWorker::Restored) => Ok(()),
            Some(FromWorker::Failed { error, .. }) => Err(KernelError::Protocol(error.message)),
            Some(other) => Err(KernelError::Protocol(format!(
                "expected Restored, got {other:?}"
            ))),
            None => {
                let status = self.reap().await;
                Err(KernelError::Protocol(format!(
                    "worker died while restoring state ({})",
                    self.death_summary(status)
                )))
            }
        }
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
    pub async fn execute(
        &mut self,
        code: &str,
        timeout: Duration,
        host: Arc<dyn HostHandler>,
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
        };
        if let Err(e) = self
            .send(&ToWorker::Execute {
                id,
                code: code.to_owned(),
            })
            .await
        {
            let status = self.reap().await;
            let (kind, summary) = self.classify_death(status);
            return lost(logs, kind, format!("{e}; {summary}"));
        }
        let mut host_calls = FuturesUnordered::new();
        loop {
            tokio::select! {
                frame = self.recv() => match frame {
                    Some(FromWorker::Log { id: call_id, entry }) if call_id == id => logs.push(entry),
                    Some(FromWorker::HostCall { id: call_id, call, op }) if call_id == id => {
                        let answer = host.call(op);
                        host_calls.push(async move { (call, answer.await) });
                    }
                    Some(FromWorker::Done { id: done_id, result, truncated_from_bytes, state, access }) if done_id == id => {
                        return Execution {
                            outcome: CallOutcome {
                                result: Ok(CallValue { json: result, truncated_from_bytes, state_access: access }),
                                logs: logs.entries,
                            },
                            state_delta: state,
                            worker_lost: false,
                        };
                    }
                    Some(FromWorker::Failed { id: failed_id, error, poisoned }) if failed_id == id => {
                        if poisoned {
                            let _ = self.child.start_kill();
                        }
                        return Execution {
                            outcome: CallOutcome { result: Err(error), logs: logs.entries },
                            state_delta: None,
                            worker_lost: poisoned,
                        };
                    }
                    Some(other) => {
                        let _ = self.child.start_kill();
                        let _ = self.reap().await;
                        return lost(logs, ErrorKind::Internal, format!("the worker broke the protocol with {other:?}"));
                    }
                    None => {
                        let status = self.reap().await;
                        let (kind, summary) = self.classify_death(status);
                        return lost(logs, kind, summary);
                    }
                },
                Some((call, result)) = host_calls.next(), if !host_calls.is_empty() => {
                    let result = result.and_then(|value| {
                        let bytes = serde_json::to_vec(&value).map_or(0, |v| v.len());
                        if bytes > MAX_HOST_MESSAGE_BYTES {
                            Err(format!("the answer is {bytes} bytes as JSON, over the {MAX_HOST_MESSAGE_BYTES}-byte limit for host replies; ask for less (a range, a filter, a page)"))
                        } else {
                            Ok(value)
                        }
                    });
                    if self.send(&ToWorker::HostReply { call, result }).await.is_err() {
                        // The worker is gone; the next `recv` reports how.
                        continue;
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    let _ = self.child.start_kill();
                    let _ = self.reap().await;
                    let message = format!(
                        "the call ran longer than timeout_ms={} and its worker was stopped",
                        timeout.as_millis()
                    );
                    return lost(logs, ErrorKind::Timeout, message);
                }
            }
        }
    }

    /// Waits for the process to exit (killing it if it has not within 2 s) and for its stderr to
    /// be drained.
    async fn reap(&mut self) -> Option<ExitStatus> {
        let status = match tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                let _ = self.child.start_kill();
                self.child.wait().await.ok()
            }
        };
        if let Some(task) = self.stderr_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
        status
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
        let _ = self.send(&ToWorker::Shutdown).await;
        if tokio::time::timeout(Duration::from_secs(1), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
        }
    }
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
