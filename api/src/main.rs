//! `mcp-kernel`: parse flags, set up tracing on stderr, and run the server.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mcpk_api::ServeConfig;
use tracing_subscriber::EnvFilter;

/// An MCP server that runs agent JavaScript in sandboxed, persistent kernels.
#[derive(Debug, Parser)]
#[command(name = "mcp-kernel", version, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve MCP over stdin/stdout (logs go to stderr).
    Serve(ServeArgs),
    /// Run one kernel worker process (started by `serve`; not for direct use).
    #[command(hide = true)]
    Worker,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Idle workers kept started so new sessions start fast.
    #[arg(long, env = "MCP_KERNEL_WARM_WORKERS", default_value_t = 2)]
    warm_workers: usize,
    /// Address-space limit of each worker process, in MiB.
    #[arg(long, env = "MCP_KERNEL_MEMORY_MIB", default_value_t = 256)]
    memory_mib: u64,
    /// Wall-clock limit of a call that sets no `timeout_ms`.
    #[arg(long, env = "MCP_KERNEL_DEFAULT_TIMEOUT_MS", default_value_t = 5_000)]
    default_timeout_ms: u64,
    /// The largest `timeout_ms` a call may ask for.
    #[arg(long, env = "MCP_KERNEL_MAX_TIMEOUT_MS", default_value_t = 60_000)]
    max_timeout_ms: u64,
    /// Results longer than this (JSON bytes) are truncated with a note.
    #[arg(long, env = "MCP_KERNEL_MAX_RESULT_BYTES", default_value_t = 32 * 1024)]
    max_result_bytes: usize,
    /// Console output captured per call, in bytes.
    #[arg(long, env = "MCP_KERNEL_MAX_LOG_BYTES", default_value_t = 16 * 1024)]
    max_log_bytes: usize,
    /// Largest `mcp.state` a call may commit, in JSON bytes.
    #[arg(long, env = "MCP_KERNEL_MAX_STATE_BYTES", default_value_t = 8 * 1024 * 1024)]
    max_state_bytes: usize,
    /// Sessions open at once; each holds one worker process.
    #[arg(long, env = "MCP_KERNEL_MAX_SESSIONS", default_value_t = 256)]
    max_sessions: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            init_tracing("info");
            serve(args)
        }
        Command::Worker => {
            init_tracing("warn");
            mcpk_kernel::run_worker()
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let worker_exe = match std::env::current_exe() {
        Ok(path) => path,
        Err(error) => {
            tracing::error!(%error, "cannot locate the mcp-kernel executable for workers");
            return ExitCode::FAILURE;
        }
    };
    let mut config = ServeConfig::default();
    config.worker_exe = worker_exe;
    config.warm_workers = args.warm_workers;
    config.memory_mib = args.memory_mib;
    config.default_timeout = Duration::from_millis(args.default_timeout_ms);
    config.max_timeout = Duration::from_millis(args.max_timeout_ms);
    config.max_result_bytes = args.max_result_bytes;
    config.max_log_bytes = args.max_log_bytes;
    config.max_state_bytes = args.max_state_bytes;
    config.max_sessions = args.max_sessions;

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the tokio runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(mcpk_api::run_stdio(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr only: stdout carries the MCP stream (and, in a worker, the protocol).
fn init_tracing(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}
