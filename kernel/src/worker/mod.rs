//! The worker process (`mcp-kernel worker`): one Boa Context on a current-thread tokio runtime,
//! driven by frames on stdin and answering on stdout.
//!
//! Start-up order matters for the sandbox: set the parent-death signal, start the
//! current-thread runtime and register stdin (`inbound.rs`) and stdout (`outbound.rs`) with it,
//! read `Init`, apply rlimits and Landlock, build the Context, then install seccomp on every
//! thread and only then announce `Ready`. No untrusted byte is evaluated before that. Both
//! directions use the supervisor's own `LengthDelimitedCodec` (`protocol::codec`), and neither
//! ever blocks the thread.

mod engine;
mod executor;
mod hints;
mod inbound;
mod outbound;
pub(crate) mod shape;
mod skills;
mod typescript;

use std::process::ExitCode;

use crate::protocol::{FromWorker, PROTOCOL_VERSION, ToWorker};
use crate::sandbox;
use engine::Engine;
use inbound::Inbound;

/// Faults a test can inject into a worker (`mcp-kernel worker --fault <name>`, passed down
/// from the hidden `serve --worker-fault` flag). Never used outside tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerFault {
    /// `stop-reading-stdin`: while a call runs, the worker never reads stdin, so host replies
    /// back up in the supervisor's pipe and the call can only end at its deadline.
    StopReadingStdin,
    /// `hang-on-first-restore`: the supervisor stops (`SIGSTOP`) the first worker it restores
    /// a session into, before sending `Restore`, so that restore hangs. Applied by the
    /// supervisor; the worker process is never told.
    HangOnFirstRestore,
    /// `ignore-host-call-limit`: the worker sends every host call at once, ignoring
    /// `max_host_calls_in_flight`, so the supervisor's own check of that limit can be seen.
    IgnoreHostCallLimit,
    /// `overflow-native-stack`: an `execute` whose code is exactly [`OVERFLOW_CODE`] makes the
    /// worker recurse natively without bound, as a recursion in the engine that no check
    /// bounds would (every one known throws a `RangeError`), so the supervisor's report of a
    /// native stack overflow can be seen.
    OverflowNativeStack,
}

/// The code that triggers [`WorkerFault::OverflowNativeStack`].
pub(crate) const OVERFLOW_CODE: &str = "/* overflow-native-stack */";

impl WorkerFault {
    /// The flag value, e.g. `stop-reading-stdin`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StopReadingStdin => "stop-reading-stdin",
            Self::HangOnFirstRestore => "hang-on-first-restore",
            Self::IgnoreHostCallLimit => "ignore-host-call-limit",
            Self::OverflowNativeStack => "overflow-native-stack",
        }
    }
}

impl std::str::FromStr for WorkerFault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stop-reading-stdin" => Ok(Self::StopReadingStdin),
            "hang-on-first-restore" => Ok(Self::HangOnFirstRestore),
            "ignore-host-call-limit" => Ok(Self::IgnoreHostCallLimit),
            "overflow-native-stack" => Ok(Self::OverflowNativeStack),
            _ => Err(format!(
                "unknown worker fault `{s}` (expected stop-reading-stdin, hang-on-first-restore, \
                 ignore-host-call-limit or overflow-native-stack)"
            )),
        }
    }
}

fn fatal(message: &str) -> ExitCode {
    eprintln!("mcp-kernel worker: {message}");
    ExitCode::from(2)
}

/// Entry point of the hidden `worker` subcommand.
pub(crate) fn run(fault: Option<WorkerFault>) -> ExitCode {
    if let Err(e) = sandbox::die_with_parent() {
        return fatal(&format!("sandbox: {e}"));
    }
    // The runtime is current-thread (no worker threads); stdin and stdout are registered with
    // its reactor before the sandbox, which forbids creating threads.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fatal(&format!("starting the runtime: {e}")),
    };
    let started = runtime.block_on(async {
        let inbound = Inbound::stdin().map_err(|e| format!("reading stdin: {e}"))?;
        outbound::install_stdout().map_err(|e| format!("writing stdout: {e}"))?;
        Ok::<_, String>(inbound)
    });
    let mut inbound = match started {
        Ok(inbound) => inbound,
        Err(e) => return fatal(&e),
    };
    let mut limits = match runtime.block_on(inbound.recv()) {
        Some(ToWorker::Init { version, limits }) if version == PROTOCOL_VERSION => limits,
        Some(ToWorker::Init { version, .. }) => {
            return fatal(&format!(
                "supervisor speaks protocol {version}, this worker speaks {PROTOCOL_VERSION}"
            ));
        }
        Some(_) => return fatal("expected an Init frame first"),
        None => return fatal("reading Init: end of input or a malformed frame"),
    };
    if fault == Some(WorkerFault::IgnoreHostCallLimit) {
        limits.max_host_calls_in_flight = tokio::sync::Semaphore::MAX_PERMITS;
    }
    if let Err(e) = sandbox::confine_process(limits.memory_mib) {
        return fatal(&format!("sandbox: {e}"));
    }
    let engine = match Engine::new(limits, fault == Some(WorkerFault::StopReadingStdin)) {
        Ok(engine) => engine,
        Err(e) => return fatal(&format!("building the Context: {e}")),
    };
    if let Err(e) = sandbox::install_seccomp() {
        return fatal(&format!("seccomp: {e}"));
    }
    outbound::push(&FromWorker::Ready {
        version: PROTOCOL_VERSION,
        pid: std::process::id(),
    });
    runtime.block_on(async {
        outbound::flush().await;
        serve(
            engine,
            inbound,
            fault == Some(WorkerFault::OverflowNativeStack),
        )
        .await;
    });
    ExitCode::SUCCESS
}

async fn serve(mut engine: Engine, mut inbound: Inbound, overflow_fault: bool) {
    while let Some(message) = inbound.recv().await {
        let mut ran_code = false;
        match message {
            ToWorker::Execute { code, .. } if overflow_fault && code == OVERFLOW_CODE => {
                recurse_without_bound(0);
            }
            ToWorker::Execute {
                id,
                code,
                skills,
                servers,
            } => {
                match engine
                    .execute(id, &code, skills, &servers, &mut inbound)
                    .await
                {
                    Some(reply) => {
                        outbound::push(&reply);
                        ran_code = true;
                    }
                    None => return,
                }
            }
            ToWorker::Restore { sizes } => {
                let Some(raw) = inbound.recv_raw().await else {
                    return;
                };
                outbound::push(&engine.restore(&sizes, &raw));
            }
            // A late reply to a host call of a call that has already finished.
            ToWorker::HostReply { .. } => {}
            ToWorker::Shutdown | ToWorker::Init { .. } => return,
        }
        outbound::flush().await;
        if ran_code {
            // The answer is out: collect the call's garbage while the supervisor reads it.
            engine::collect_garbage();
        }
    }
}

/// Test fault `overflow-native-stack`: recurses until the native stack overflows.
#[allow(
    unconditional_recursion,
    reason = "the fault is the overflow; the process dies of it"
)]
fn recurse_without_bound(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    recurse_without_bound(frame[0] + 1) + frame[63]
}
