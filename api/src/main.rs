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
    /// Log lines on stderr: `text`, or `json` (one JSON object per line, for log collectors).
    /// `RUST_LOG` sets the levels (e.g. `RUST_LOG=debug`, `RUST_LOG=mcpk_api=debug`).
    #[arg(long, global = true, value_enum, env = "MCP_KERNEL_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// The format of log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// `2026-12-02T14:00:00Z  INFO target: message key=value`.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`, `span`s.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve MCP over stdin/stdout (logs go to stderr), or over streamable HTTP with --http.
    Serve(ServeCommand),
    /// Run one script exactly as an agent's `execute` call would, print its logs and result.
    Run(RunArgs),
    /// Check or summarise an audit log written by `serve --audit-log`.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Run one kernel worker process (started by `serve`; not for direct use).
    #[command(hide = true)]
    Worker(WorkerArgs),
    /// Start a stdio upstream server that dies with the supervisor (started by `serve`; not
    /// for direct use).
    #[command(hide = true)]
    ExecChild {
        /// The supervisor's pid: the launcher refuses to start the server if its parent is
        /// no longer this process.
        #[arg(long)]
        parent_pid: u32,
        /// The server's command and arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// Confine this process as a worker, then make one attempt the sandbox should refuse
    /// (test-only; see `mcpk_session::run_sandbox_probe`).
    #[command(hide = true)]
    SandboxProbe {
        /// control, socket, kill-parent, prlimit-parent, execve or open.
        attempt: mcpk_session::ProbeAttempt,
        /// The file `open` tries.
        path: Option<std::path::PathBuf>,
    },
}

/// `mcp-kernel audit …`.
#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain: print the first line that was altered, removed or reordered.
    /// Exit 0 when intact, 1 when broken, 2 when the file cannot be read. Lines removed from
    /// the end cannot be detected by the chain alone: keep the last hash it prints elsewhere.
    Verify {
        /// The audit log.
        file: std::path::PathBuf,
    },
    /// Executions, errors and upstream tool calls per tenant, as tables (or JSON).
    Report {
        /// The audit log.
        file: std::path::PathBuf,
        /// Count lines at or after this RFC 3339 time (e.g. 2025-01-31T00:00:00Z).
        #[arg(long, value_name = "RFC3339")]
        since: Option<String>,
        /// Count lines before this RFC 3339 time.
        #[arg(long, value_name = "RFC3339")]
        until: Option<String>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct ServeCommand {
    #[command(flatten)]
    serve: ServeArgs,
    #[command(flatten)]
    sessions: SessionArgs,
    #[command(flatten)]
    http: HttpArgs,
}

/// The flags of a long-running server's session pool, which `run` (one script, one session)
/// has no use for; every default comes from [`ServeConfig::default`].
#[derive(Debug, Args)]
struct SessionArgs {
    /// Idle workers kept started so new sessions start fast.
    #[arg(long, env = "MCP_KERNEL_WARM_WORKERS", default_value_t = defaults().warm_workers)]
    warm_workers: usize,
    /// Live sessions at once; each holds one worker process. At the limit the least recently
    /// used idle session hibernates.
    #[arg(
        long,
        alias = "max-sessions",
        env = "MCP_KERNEL_MAX_LIVE_SESSIONS",
        default_value_t = defaults().max_live_sessions
    )]
    max_live_sessions: usize,
    /// Seconds a live session may stay idle before it hibernates (its worker is released).
    #[arg(long, env = "MCP_KERNEL_IDLE_TTL_SECS", default_value_t = defaults().idle_ttl.as_secs())]
    idle_ttl_secs: u64,
    /// Seconds a hibernated session's snapshot is kept after its last use.
    #[arg(
        long,
        env = "MCP_KERNEL_RETENTION_TTL_SECS",
        default_value_t = defaults().retention_ttl.as_secs()
    )]
    retention_ttl_secs: u64,
}

/// The flags of `serve --http`; every default comes from [`mcpk_api::HttpConfig::new`].
#[derive(Debug, Args)]
struct HttpArgs {
    /// Serve MCP over streamable HTTP at http://ADDR/mcp (e.g. 127.0.0.1:8080; port 0 picks a
    /// free one) instead of stdio.
    #[arg(long, value_name = "ADDR", env = "MCP_KERNEL_HTTP")]
    http: Option<std::net::SocketAddr>,
    /// Bearer tokens: JSON mapping each tenant to the SHA-256 of its tokens and an optional
    /// allowlist of upstream servers (see the README). Required when --http is not loopback.
    #[arg(long, env = "MCP_KERNEL_AUTH_FILE", requires = "http")]
    auth_file: Option<std::path::PathBuf>,
    /// Serve a non-loopback --http address without authentication.
    #[arg(
        long,
        env = "MCP_KERNEL_INSECURE_NO_AUTH",
        requires = "http",
        conflicts_with = "auth_file"
    )]
    insecure_no_auth: bool,
    /// A Host header value to accept besides localhost, 127.0.0.1 and ::1 (repeatable): the
    /// names clients use to reach this server.
    #[arg(
        long = "allowed-host",
        value_name = "HOST",
        env = "MCP_KERNEL_ALLOWED_HOSTS",
        value_delimiter = ',',
        requires = "http"
    )]
    allowed_hosts: Vec<String>,
    /// A browser Origin to accept besides loopback ones, with scheme (repeatable), e.g.
    /// https://app.example.com:443.
    #[arg(
        long = "allowed-origin",
        value_name = "ORIGIN",
        env = "MCP_KERNEL_ALLOWED_ORIGINS",
        value_delimiter = ',',
        requires = "http"
    )]
    allowed_origins: Vec<String>,
    /// Largest HTTP request body, in bytes.
    #[arg(long, env = "MCP_KERNEL_MAX_REQUEST_BODY_BYTES", default_value_t = http_defaults().max_request_body_bytes)]
    max_request_body_bytes: usize,
    /// HTTP requests handled at once; more get 503.
    #[arg(long, env = "MCP_KERNEL_MAX_CONCURRENT_REQUESTS", default_value_t = http_defaults().max_concurrent_requests)]
    max_concurrent_requests: usize,
    /// Open TCP connections; more wait until one closes.
    #[arg(long, env = "MCP_KERNEL_MAX_CONNECTIONS", default_value_t = http_defaults().max_connections)]
    max_connections: usize,
    /// On SIGTERM, seconds the calls in progress get to finish before they are stopped.
    #[arg(long, env = "MCP_KERNEL_SHUTDOWN_GRACE_SECS", default_value_t = http_defaults().shutdown_grace.as_secs())]
    shutdown_grace_secs: u64,
    /// Live MCP sessions (Mcp-Session-Id) at once.
    #[arg(long, env = "MCP_KERNEL_MAX_MCP_SESSIONS", default_value_t = http_defaults().max_mcp_sessions)]
    max_mcp_sessions: usize,
}

fn http_defaults() -> mcpk_api::HttpConfig {
    mcpk_api::HttpConfig::new(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
}

impl HttpArgs {
    /// The HTTP configuration, when --http was given.
    fn config(self) -> Result<Option<mcpk_api::HttpConfig>, String> {
        let Some(addr) = self.http else {
            return Ok(None);
        };
        for (flag, value) in [
            ("--max-request-body-bytes", self.max_request_body_bytes),
            ("--max-concurrent-requests", self.max_concurrent_requests),
            ("--max-connections", self.max_connections),
            ("--max-mcp-sessions", self.max_mcp_sessions),
        ] {
            if value == 0 {
                return Err(format!("{flag} must be at least 1"));
            }
        }
        let mut config = mcpk_api::HttpConfig::new(addr);
        config.auth_file = self.auth_file;
        config.insecure_no_auth = self.insecure_no_auth;
        config.allowed_hosts = self.allowed_hosts;
        config.allowed_origins = self.allowed_origins;
        config.max_request_body_bytes = self.max_request_body_bytes;
        config.max_concurrent_requests = self.max_concurrent_requests;
        config.max_connections = self.max_connections;
        config.max_mcp_sessions = self.max_mcp_sessions;
        config.shutdown_grace = std::time::Duration::from_secs(self.shutdown_grace_secs);
        Ok(Some(config))
    }
}

#[derive(Debug, Args)]
struct WorkerArgs {
    /// Test-only: a fault to inject (see `--worker-fault`).
    #[arg(long, hide = true)]
    fault: Option<mcpk_session::WorkerFault>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The JavaScript file (`-`: standard input): the body of an async function, as
    /// `execute`'s `code`.
    script: std::path::PathBuf,
    /// Wall-clock limit of the script, in milliseconds (default: --default-timeout-ms).
    #[arg(long)]
    timeout_ms: Option<u64>,
    #[command(flatten)]
    serve: ServeArgs,
}

/// The one source of defaults; the flags below show and use its values.
fn defaults() -> ServeConfig {
    ServeConfig::default()
}

/// A duration in whole milliseconds, as the `_ms` flags take it.
fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The flags `serve` and `run` share. Every default comes from [`ServeConfig::default`]; every
/// check is [`ServeConfig::validate`], run at start-up.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Upstream MCP servers, in Claude Desktop's `{"mcpServers": {...}}` format.
    #[arg(long, env = "MCP_KERNEL_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Address-space limit of each worker process, in MiB.
    #[arg(long, env = "MCP_KERNEL_MEMORY_MIB", default_value_t = defaults().memory_mib)]
    memory_mib: u64,
    /// Wall-clock limit of a call that sets no `timeout_ms`.
    #[arg(long, env = "MCP_KERNEL_DEFAULT_TIMEOUT_MS", default_value_t = ms(defaults().default_timeout))]
    default_timeout_ms: u64,
    /// The largest `timeout_ms` a call may ask for.
    #[arg(long, env = "MCP_KERNEL_MAX_TIMEOUT_MS", default_value_t = ms(defaults().max_timeout))]
    max_timeout_ms: u64,
    /// Results longer than this (JSON bytes) are truncated with a note.
    #[arg(long, env = "MCP_KERNEL_MAX_RESULT_BYTES", default_value_t = defaults().max_result_bytes)]
    max_result_bytes: usize,
    /// Console output captured per call, in bytes.
    #[arg(long, env = "MCP_KERNEL_MAX_LOG_BYTES", default_value_t = defaults().max_log_bytes)]
    max_log_bytes: usize,
    /// Largest `mcp.state` a call may commit, in JSON bytes.
    #[arg(long, env = "MCP_KERNEL_MAX_STATE_BYTES", default_value_t = defaults().max_state_bytes)]
    max_state_bytes: usize,
    /// Longest wait for an upstream server to start and list its tools. For a stdio server,
    /// the longest it may go without writing to stderr (up to 10 times this in all); `npx`,
    /// `uvx` and other package runners get at least 120 s before their first start.
    #[arg(
        long,
        env = "MCP_KERNEL_UPSTREAM_CONNECT_TIMEOUT_MS",
        default_value_t = ms(defaults().upstream_limits.connect_timeout)
    )]
    upstream_connect_timeout_ms: u64,
    /// Longest wait for one upstream tool call or resource read.
    #[arg(
        long,
        env = "MCP_KERNEL_UPSTREAM_CALL_TIMEOUT_MS",
        default_value_t = ms(defaults().upstream_limits.call_timeout)
    )]
    upstream_call_timeout_ms: u64,
    /// The tenant this server's sessions and skills belong to.
    #[arg(long, env = "MCP_KERNEL_TENANT", default_value_t = defaults().tenant)]
    tenant: String,
    /// Redis for snapshots, skills and leases (e.g. redis://127.0.0.1:6379); without it they
    /// live in this process's memory.
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
    /// Prefix of every Redis key this server writes.
    #[arg(long, env = "MCP_KERNEL_REDIS_KEY_PREFIX", default_value_t = defaults().redis_key_prefix)]
    redis_key_prefix: String,
    /// The result cache's namespace version, in every cache key: change it (on every replica)
    /// to invalidate everything cached before, in memory and in Redis, without a scan.
    #[arg(long, env = "MCP_KERNEL_CACHE_NAMESPACE", default_value_t = defaults().cache_namespace)]
    cache_namespace: u64,
    /// The largest session snapshot (its state as JSON bytes) the store accepts
    /// [default: --max-state-bytes].
    #[arg(long, env = "MCP_KERNEL_MAX_SNAPSHOT_BYTES")]
    max_snapshot_bytes: Option<usize>,
    /// Host calls of one `execute` call that may wait for answers at once; later ones wait
    /// their turn in the worker.
    #[arg(
        long,
        env = "MCP_KERNEL_MAX_HOST_CALLS_IN_FLIGHT",
        default_value_t = defaults().max_host_calls_in_flight
    )]
    max_host_calls_in_flight: usize,
    /// Append one hash-chained JSON line per `execute` call to FILE (created mode 0600; an
    /// existing log's chain is continued). Check it with `mcp-kernel audit verify FILE`.
    #[arg(long, value_name = "FILE", env = "MCP_KERNEL_AUDIT_LOG")]
    audit_log: Option<std::path::PathBuf>,
    /// TEST ONLY: inject a fault into the kernel workers (`stop-reading-stdin`: workers
    /// never read stdin while a call runs; `hang-on-first-restore`: the first restore hangs;
    /// `ignore-host-call-limit`: workers send host calls past --max-host-calls-in-flight;
    /// `overflow-native-stack`: the code `/* overflow-native-stack */` overflows the worker's
    /// native stack).
    #[arg(long, hide = true)]
    worker_fault: Option<mcpk_session::WorkerFault>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.log_format;
    match cli.command {
        Command::Serve(args) => {
            init_tracing("info", format);
            serve(args)
        }
        Command::Run(args) => {
            // Upstream start-up progress ("still starting (npx installing?)") shows; the
            // servers' own stderr does not.
            init_tracing("warn,mcpk_api::upstream::start=info", format);
            run(args)
        }
        Command::Worker(args) => {
            // Text always: the supervisor reads a worker's stderr lines to tell why it died.
            init_tracing("warn", LogFormat::Text);
            mcpk_session::run_worker(args.fault)
        }
        Command::ExecChild {
            parent_pid,
            command,
        } => mcpk_api::exec_child(parent_pid, &command),
        Command::SandboxProbe { attempt, path } => {
            mcpk_session::run_sandbox_probe(attempt, path.as_deref())
        }
        Command::Audit(command) => audit(command),
    }
}

/// Writes `text` to stdout; a reader that stopped reading (`| head`) ends the command quietly
/// instead of panicking as `print!` would.
fn write_stdout(text: &str) -> ExitCode {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mcp-kernel: cannot write to stdout: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `mcp-kernel audit verify|report`: the result on stdout; exit 0 (intact, or reported), 1
/// (broken chain), 2 (unreadable file or bad arguments).
#[allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the CLI prints its result"
)]
fn audit(command: AuditCommand) -> ExitCode {
    match command {
        AuditCommand::Verify { file } => match mcpk_api::audit_verify(&file) {
            Ok(verdict) => {
                println!("{}: {verdict}", file.display());
                ExitCode::from(verdict.exit_code())
            }
            Err(error) => {
                eprintln!(
                    "mcp-kernel audit verify: cannot read {}: {error}",
                    file.display()
                );
                ExitCode::from(2)
            }
        },
        AuditCommand::Report {
            file,
            since,
            until,
            json,
        } => match mcpk_api::audit_report(&file, since.as_deref(), until.as_deref()) {
            Ok(report) if json => write_stdout(&format!(
                "{}\n",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            )),
            Ok(report) => write_stdout(&report.to_string()),
            Err(error) => {
                eprintln!("mcp-kernel audit report: {error}");
                ExitCode::from(2)
            }
        },
    }
}

/// The configuration of `serve` (`sessions` given) or `run` (`None`: one worker started
/// beside the upstream servers, the other session defaults unused).
fn serve_config(args: ServeArgs, sessions: Option<SessionArgs>) -> Result<ServeConfig, String> {
    let worker_exe = std::env::current_exe()
        .map_err(|error| format!("cannot locate the mcp-kernel executable for workers: {error}"))?;
    let mut config = ServeConfig::default();
    config.worker_exe = worker_exe;
    match sessions {
        Some(sessions) => {
            config.warm_workers = sessions.warm_workers;
            config.max_live_sessions = sessions.max_live_sessions;
            config.idle_ttl = Duration::from_secs(sessions.idle_ttl_secs);
            config.retention_ttl = Duration::from_secs(sessions.retention_ttl_secs);
        }
        None => config.warm_workers = 1,
    }
    config.memory_mib = args.memory_mib;
    config.default_timeout = Duration::from_millis(args.default_timeout_ms);
    config.max_timeout = Duration::from_millis(args.max_timeout_ms);
    config.max_result_bytes = args.max_result_bytes;
    config.max_log_bytes = args.max_log_bytes;
    config.max_state_bytes = args.max_state_bytes;
    config.tenant = args.tenant;
    config.redis_url = args.redis_url.filter(|url| !url.is_empty());
    config.redis_key_prefix = args.redis_key_prefix;
    config.cache_namespace = args.cache_namespace;
    config.max_snapshot_bytes = args.max_snapshot_bytes;
    config.max_host_calls_in_flight = args.max_host_calls_in_flight;
    config.audit_log = args.audit_log;
    config.worker_fault = args.worker_fault;
    config.upstream_config = args.config;
    config.upstream_limits = mcpk_api::UpstreamLimits {
        connect_timeout: Duration::from_millis(args.upstream_connect_timeout_ms),
        call_timeout: Duration::from_millis(args.upstream_call_timeout_ms),
    };
    Ok(config)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the tokio runtime: {error}"))
}

fn serve(args: ServeCommand) -> ExitCode {
    let started = serve_config(args.serve, Some(args.sessions))
        .and_then(|config| Ok((config, args.http.config()?, runtime()?)));
    let (config, http, runtime) = match started {
        Ok(started) => started,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let served = match http {
        Some(http) => runtime.block_on(mcpk_api::run_http(config, http)),
        None => runtime.block_on(mcpk_api::run_stdio(config)),
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `mcp-kernel run`: logs go to stderr as `[level] message`, the result to stdout as pretty
/// JSON. Exit code 0 on success, 1 when the script failed (its error on stderr), 2 when it
/// could not run at all.
#[allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the CLI prints its result"
)]
fn run(args: RunArgs) -> ExitCode {
    let read = if args.script.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(&args.script)
    };
    let code = match read {
        Ok(code) => code,
        Err(error) => {
            let script = match args.script.to_str() {
                Some("-") => "the script from stdin".into(),
                _ => args.script.display().to_string(),
            };
            eprintln!("mcp-kernel run: cannot read {script}: {error}");
            return ExitCode::from(2);
        }
    };
    let prepared = serve_config(args.serve, None).and_then(|config| Ok((config, runtime()?)));
    let (config, runtime) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!("mcp-kernel run: {error}");
            return ExitCode::from(2);
        }
    };
    let max_result_bytes = config.max_result_bytes;
    let max_ms = config.max_timeout.as_millis();
    let timeout = match args.timeout_ms {
        None => config.default_timeout,
        Some(ms) if ms >= 1 && u128::from(ms) <= max_ms => Duration::from_millis(ms),
        Some(ms) => {
            eprintln!(
                "mcp-kernel run: --timeout-ms must be from 1 to {max_ms} (--max-timeout-ms), got {ms}"
            );
            return ExitCode::from(2);
        }
    };
    let ran = runtime.block_on(mcpk_api::run_script(config, &code, timeout));
    // Upstream child processes and workers are killed when the runtime drops.
    drop(runtime);
    let ran = match ran {
        Ok(ran) => ran,
        Err(error) => {
            eprintln!("mcp-kernel run: {error:#}");
            return ExitCode::from(2);
        }
    };
    for entry in &ran.outcome.logs {
        let level = serde_json::to_value(entry.level).ok();
        let level = level.as_ref().and_then(|l| l.as_str()).unwrap_or("log");
        eprintln!("[{level}] {}", entry.message);
    }
    let (duration, processed) = (ran.duration, ran.processed_tokens);
    match ran.outcome.result {
        Ok(value) => {
            // A string result prints as its text; anything else as pretty JSON.
            let printed = match serde_json::from_str::<serde_json::Value>(&value.json) {
                Ok(serde_json::Value::String(text)) => text,
                Ok(other) => serde_json::to_string_pretty(&other).unwrap_or(value.json),
                Err(_) => value.json,
            };
            println!("{printed}");
            if let Some(total) = value.truncated_from_bytes {
                eprintln!(
                    "(result truncated: {total} bytes, over --max-result-bytes={max_result_bytes}; \
                     filter in code or raise the limit)"
                );
            }
            print_tokens(duration, processed, &printed);
            ExitCode::SUCCESS
        }
        Err(error) => {
            let mut printed = format!("{}: {}", error.kind.name(), error.message);
            if let Some(stack) = error.stack {
                printed.push('\n');
                printed.push_str(&stack);
            }
            eprintln!("{printed}");
            print_tokens(duration, processed, &printed);
            ExitCode::FAILURE
        }
    }
}

/// The last stderr line of `run`: the time, what the printed result or error costs the
/// model, and what the code read from upstream tools without the model seeing it.
fn print_tokens(duration: std::time::Duration, processed: usize, printed: &str) {
    eprintln!(
        "({} ms) tokens: {} returned to the model; {} read by the code from upstream tools and \
         never shown to it (o200k_base)",
        duration.as_millis(),
        mcpk_api::tokens_in(printed),
        processed
    );
}

/// Logs go to stderr only: stdout carries the MCP stream (and, in a worker, the protocol).
/// `RUST_LOG`, when set, replaces `default_filter` whole (`RUST_LOG=debug` shows rmcp's
/// messages too). Every default keeps rmcp at `warn`: at `info` it logs each connection's
/// whole `initialize` request and every notification as multi-line debug structs, where
/// `serve` logs one line of its own per connection.
fn init_tracing(default_filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_filter},rmcp=warn")));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}
