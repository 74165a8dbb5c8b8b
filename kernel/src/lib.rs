//! The JavaScript kernel.
#![allow(missing_docs)]
mod outcome;
pub use outcome::{CallError, CallOutcome, CallValue, ErrorKind, LogEntry, LogLevel};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    #[error("could not start a kernel worker: {0}")]
    Spawn(#[source] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct KernelConfig {
    pub worker_exe: PathBuf,
    pub warm_workers: usize,
    pub memory_mib: u64,
    pub max_log_bytes: usize,
    pub max_state_bytes: usize,
    pub max_result_bytes: usize,
}

#[derive(Debug)]
pub struct WorkerPool {}
impl WorkerPool {
    pub fn start(_config: KernelConfig) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {})
    }
}

/// Worker process entry point (`mcp-kernel worker`); reads its configuration from the
/// supervisor's `Init` frame on stdin and returns the process exit code.
pub fn run_worker() -> std::process::ExitCode {
    std::process::ExitCode::FAILURE
}
