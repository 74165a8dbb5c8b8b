//! The JavaScript kernel: a Boa interpreter in a sandboxed worker process, and the
//! supervisor-side [`WorkerPool`] that spawns, leases and replaces those workers.
//!
//! This is the only crate that links `boa_engine`. It knows nothing of MCP: host calls from
//! sandboxed code (tool calls, catalogue look-ups) reach the embedding application through the
//! [`HostHandler`] trait.
//!
//! - [`run_worker`] is the worker process's `main` (the hidden `mcp-kernel worker` subcommand);
//!   [`run_sandbox_probe`] confines a process the same way and makes one forbidden attempt (the
//!   hidden, test-only `mcp-kernel sandbox-probe`).
//! - [`WorkerPool`] keeps warm workers ready and hands out [`Worker`]s.
//! - [`Worker::execute`] runs one call with a wall-clock deadline enforced by killing the process.

mod children;
mod heap;
mod outcome;
mod pool;
mod probe;
mod process;
mod protocol;
mod sandbox;
mod state;
mod stderr;
mod worker;

pub use children::ChildSet;
pub use outcome::{
    CallError, CallOutcome, CallValue, Effects, ErrorKind, LogEntry, LogLevel, MAX_EFFECTS_TOOLS,
};
pub use pool::{KernelConfig, WORKER_STARTS_TOTAL, WorkerPool};
pub use probe::{Attempt as ProbeAttempt, run_sandbox_probe};
pub use process::{Execution, HostFuture, HostHandler, KernelError, Progress, Worker};
pub use protocol::{
    Detail, HostOp, MAX_FRAME_BYTES, MAX_SKILL_SOURCE_BYTES, SkillLibrary, SkillSource, ToolRef,
    is_skill_name,
};
pub use state::{CommittedState, StateAccess, StateDelta};
pub use stderr::{MAX_STDERR_LINE_BYTES, stderr_lines};
pub use worker::WorkerFault;

/// Worker process entry point (`mcp-kernel worker`): reads its limits from the supervisor's
/// `Init` frame on stdin, confines itself, and serves frames until stdin closes.
///
/// Exit codes: 0 after `Shutdown` or end of input; 2 when start-up or confinement failed (the
/// reason is on stderr); 3 when the supervisor stopped reading stdout. `fault` is a test-only
/// fault to inject ([`WorkerFault`]); `None` in production.
pub fn run_worker(fault: Option<WorkerFault>) -> std::process::ExitCode {
    worker::run(fault)
}

/// Names of the syscalls a worker may make once confined (the seccomp allowlist for the
/// architecture this binary was built for); anything else kills it with `SIGSYS`.
#[must_use]
pub fn seccomp_allowlist() -> Vec<&'static str> {
    sandbox::allowed_syscalls()
        .map(sandbox::Allowed::name)
        .collect()
}
