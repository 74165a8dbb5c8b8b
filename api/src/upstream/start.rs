//! Starting one upstream server: the budget of a start attempt, progress logs while it runs,
//! a gentle stop when it runs out, and the server's stderr (logged at INFO, rate-limited, and
//! kept to explain a failure).
//!
//! A stdio server is given [`UpstreamLimits::connect_timeout`] of *silence*: every line it
//! writes on stderr while starting (npm's warnings and notices while `npx` installs a package)
//! starts the wait over, up to [`MAX_START_FACTOR`] times that budget in all. A package runner
//! (`npx`, `uvx`, …) that has not started yet in this process gets at least
//! [`PACKAGE_RUNNER_FIRST_START`] of silence, since `npm` installs a package without a word
//! when its stderr is not a terminal. A server that runs out is stopped with `SIGTERM`, and
//! `SIGKILL` only [`TERM_GRACE`] later, so a package manager can leave its cache whole.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{ServerConfig, Transport, UpstreamLimits, stdio};

/// At most this many stderr lines of one server are logged per second; the others are counted
/// and the count is logged when the next second begins.
pub(crate) const MAX_STDERR_LINES_PER_SEC: u32 = 20;
/// Most recent stderr lines kept per server to explain a failed start.
const RECENT_STDERR_LINES: usize = 20;
/// Longest kept stderr line, in characters (the rest is cut).
const MAX_KEPT_LINE_CHARS: usize = 300;
/// How often a server still starting is reported.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// The least silence a package runner gets before its first successful start (a cold `npx -y`
/// cache: npm downloads the package and its dependencies without printing anything).
pub(crate) const PACKAGE_RUNNER_FIRST_START: Duration = Duration::from_secs(120);
/// A stdio server that keeps writing to stderr may start for at most this many times its
/// silence budget in all.
pub(crate) const MAX_START_FACTOR: u32 = 10;
/// How long a server gets to exit after `SIGTERM` before `SIGKILL`.
pub(crate) const TERM_GRACE: Duration = Duration::from_secs(3);
/// Commands that may download the server before running it.
const PACKAGE_RUNNERS: [&str; 8] = ["npx", "npm", "pnpm", "pnpx", "yarn", "bunx", "uvx", "pipx"];
/// The `tracing` target of upstream stderr lines (`RUST_LOG=info,mcpk_api::upstream::stderr=off`
/// hides them).
const STDERR_TARGET: &str = "mcpk_api::upstream::stderr";

/// How long one start attempt may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StartBudget {
    /// Longest stretch without a stderr line (the whole budget for an HTTP server).
    pub(crate) silence: Duration,
    /// Longest attempt, however much the server writes.
    pub(crate) total: Duration,
    /// Whether the command is a package runner (for the progress message).
    package_runner: bool,
}

impl StartBudget {
    /// The budget of `config`'s next attempt; `started_before` is whether it has started
    /// once in this process (its packages are then installed).
    pub(crate) fn new(config: &ServerConfig, limits: UpstreamLimits, started_before: bool) -> Self {
        let connect = limits.connect_timeout;
        match &config.transport {
            Transport::Stdio { command, .. } => {
                let package_runner = is_package_runner(command);
                let silence = if package_runner && !started_before {
                    connect.max(PACKAGE_RUNNER_FIRST_START)
                } else {
                    connect
                };
                Self {
                    silence,
                    total: silence.saturating_mul(MAX_START_FACTOR),
                    package_runner,
                }
            }
            Transport::Http { .. } => Self {
                silence: connect,
                total: connect,
                package_runner: false,
            },
        }
    }

    /// The longest any first attempt may take under `limits`.
    pub(crate) fn longest(limits: UpstreamLimits) -> Duration {
        limits
            .connect_timeout
            .max(PACKAGE_RUNNER_FIRST_START)
            .saturating_mul(MAX_START_FACTOR)
    }
}

/// Whether `command`'s file name is a package runner (`npx`, `/usr/bin/npx`, `npx.cmd`).
fn is_package_runner(command: &str) -> bool {
    let name = std::path::Path::new(command)
        .file_stem()
        .and_then(|n| n.to_str())
        .unwrap_or(command);
    PACKAGE_RUNNERS.contains(&name)
}

/// What one stdio server process writes on stderr, kept for its start: the recent lines and a
/// count that moves with each line.
#[derive(Debug)]
pub(crate) struct StartOutput {
    recent: Mutex<VecDeque<String>>,
    lines: watch::Sender<u64>,
    pid: Mutex<Option<u32>>,
}

impl StartOutput {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            recent: Mutex::new(VecDeque::with_capacity(RECENT_STDERR_LINES)),
            lines: watch::Sender::new(0),
            pid: Mutex::new(None),
        })
    }

    /// Records the server process, for a gentle stop.
    pub(crate) fn set_pid(&self, pid: Option<u32>) {
        *self.pid.lock().unwrap_or_else(|e| e.into_inner()) = pid;
    }

    fn push(&self, line: &str) {
        if !line.trim().is_empty() {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() == RECENT_STDERR_LINES {
                recent.pop_front();
            }
            recent.push_back(line.chars().take(MAX_KEPT_LINE_CHARS).collect());
        }
        self.lines.send_modify(|n| *n += 1);
    }

    /// The most informative recent stderr line (see [`informative_line`]).
    pub(crate) fn cause(&self) -> Option<String> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let lines: Vec<&str> = recent.iter().map(String::as_str).collect();
        informative_line(&lines).map(str::to_owned)
    }

    /// `reason`, followed by the most informative stderr line when there is one.
    pub(crate) fn explain(&self, reason: &str) -> String {
        match self.cause() {
            Some(line) => format!("{reason}; its stderr says: {line}"),
            None => reason.to_owned(),
        }
    }
}

/// The line of `lines` (oldest first) that best says why a server failed: the first
/// `npm error` line that is neither the `code` line nor the pointer to npm's log file; else the
/// first line that starts with an error word (`Error:`, `TypeError:`, `error:`, `fatal:`);
/// else the last line. `None` when there is no line.
pub(crate) fn informative_line<'a>(lines: &[&'a str]) -> Option<&'a str> {
    let npm = lines.iter().find(|line| {
        let rest = line
            .strip_prefix("npm error")
            .or_else(|| line.strip_prefix("npm ERR!"));
        rest.is_some_and(|rest| {
            let rest = rest.trim();
            !rest.is_empty()
                && !rest.starts_with("code ")
                && !rest.starts_with("A complete log of this run can be found in")
        })
    });
    let error_word = || {
        lines.iter().find(|line| {
            let first = line
                .trim_start()
                .split([':', ' ', '['])
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            first.ends_with("error") || first == "fatal" || first == "panic"
        })
    };
    npm.or_else(error_word)
        .or_else(|| lines.iter().rev().find(|l| !l.trim().is_empty()))
        .copied()
}

/// A fixed one-second window allowing [`MAX_STDERR_LINES_PER_SEC`] lines. A window rather than
/// the `governor` crate: it is one counter per server, and reporting how many lines it dropped
/// needs the window anyway.
#[derive(Debug)]
struct LineBudget {
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

impl LineBudget {
    fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            logged: 0,
            suppressed: 0,
        }
    }

    /// Whether a line arriving at `now` is logged, and how many lines the window that just
    /// closed dropped (to report before it).
    fn admit(&mut self, now: Instant) -> (bool, u64) {
        let mut dropped = 0;
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            dropped = std::mem::take(&mut self.suppressed);
            self.window_start = now;
            self.logged = 0;
        }
        if self.logged < MAX_STDERR_LINES_PER_SEC {
            self.logged += 1;
            (true, dropped)
        } else {
            self.suppressed += 1;
            (false, dropped)
        }
    }
}

fn log_suppressed(server: &str, count: u64) {
    if count > 0 {
        tracing::info!(
            target: STDERR_TARGET,
            server,
            suppressed = count,
            "{count} stderr lines not logged (over {MAX_STDERR_LINES_PER_SEC} per second)"
        );
    }
}

/// Reads `stderr` to its end: logs each line at INFO (target `mcpk_api::upstream::stderr`,
/// field `server`), at most [`MAX_STDERR_LINES_PER_SEC`] per second, and records it in
/// `output`. Lines are read bounded (`MAX_STDERR_LINE_BYTES`), so a flood without newlines
/// costs no memory.
pub(crate) async fn read_stderr<R>(server: String, stderr: R, output: Arc<StartOutput>)
where
    R: tokio::io::AsyncRead + Unpin + Send,
{
    let lines = mcpk_session::stderr_lines(stderr);
    futures::pin_mut!(lines);
    let mut budget = LineBudget::new(Instant::now());
    while let Some(line) = futures::StreamExt::next(&mut lines).await {
        let (log, dropped) = budget.admit(Instant::now());
        log_suppressed(&server, dropped);
        if log {
            tracing::info!(target: STDERR_TARGET, server = %server, "{line}");
        }
        output.push(&line);
    }
    log_suppressed(&server, budget.suppressed);
}

/// Runs `attempt` (connecting and listing the tools) within `budget`, logging progress every
/// [`PROGRESS_EVERY`] while it runs. When the budget runs out the server process is stopped
/// gently (`SIGTERM`, then `SIGKILL` after [`TERM_GRACE`]) before `attempt` is dropped.
///
/// # Errors
/// The attempt's own error, or the budget that ran out with the flag that sets it and the
/// server's most informative stderr line.
pub(crate) async fn within_budget<T>(
    name: &str,
    attempt: impl Future<Output = Result<T, String>>,
    output: &StartOutput,
    budget: StartBudget,
) -> Result<T, String> {
    let started = Instant::now();
    let total_deadline = started + budget.total;
    let mut silent_deadline = started + budget.silence;
    let mut lines = output.lines.subscribe();
    let mut progress = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
    let hint = if budget.package_runner {
        " (installing packages?)"
    } else {
        ""
    };
    // Boxed so it can be dropped (killing the process) only after the gentle stop below.
    let mut attempt = Box::pin(attempt);
    let reason = loop {
        tokio::select! {
            outcome = &mut attempt => return outcome,
            Ok(()) = lines.changed() => silent_deadline = Instant::now() + budget.silence,
            () = tokio::time::sleep_until(silent_deadline.min(total_deadline)) => {
                let flag = "raise --upstream-connect-timeout-ms for a server that needs longer";
                break if silent_deadline <= total_deadline {
                    format!(
                        "did not start: silent for {:?} while starting (the connect timeout; {flag})",
                        budget.silence
                    )
                } else {
                    format!(
                        "did not start within {:?} ({MAX_START_FACTOR} times the connect timeout, \
                         though it kept writing to stderr; {flag})",
                        budget.total
                    )
                };
            }
            _ = progress.tick() => {
                let secs = started.elapsed().as_secs();
                match output.cause() {
                    Some(line) => tracing::info!(server = name, "server {name} still starting{hint} — {secs} s; its stderr: {line}"),
                    None => tracing::info!(server = name, "server {name} still starting{hint} — {secs} s"),
                }
            }
        }
    };
    let pid = *output.pid.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pid) = pid {
        stdio::terminate(pid, TERM_GRACE).await;
    }
    drop(attempt);
    Err(output.explain(&reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_is_npms_first_real_error_not_its_log_file_line() {
        let lines = [
            "npm warn deprecated foo@1.0.0",
            "npm error code E404",
            "npm error 404 Not Found - GET https://registry.npmjs.org/@nope%2fserver - Not found",
            "npm error 404  '@nope/server@*' is not in this registry.",
            "npm error A complete log of this run can be found in: /root/.npm/_logs/x-debug-0.log",
        ];
        assert_eq!(
            informative_line(&lines),
            Some(
                "npm error 404 Not Found - GET https://registry.npmjs.org/@nope%2fserver - Not found"
            )
        );
    }

    #[test]
    fn the_cause_is_a_node_error_line_rather_than_the_stack_or_version() {
        let lines = [
            "node:internal/modules/cjs/loader:1228",
            "  throw err;",
            "  ^",
            "",
            "Error: Cannot find module '/nope.js'",
            "    at Module._resolveFilename (node:internal/modules/cjs/loader:1225:15)",
            "Node.js v20.19.2",
        ];
        assert_eq!(
            informative_line(&lines),
            Some("Error: Cannot find module '/nope.js'")
        );
        assert_eq!(
            informative_line(&["starting", "listening on stdio"]),
            Some("listening on stdio")
        );
        assert_eq!(informative_line(&[]), None);
    }

    #[test]
    fn package_runners_get_a_longer_first_start() {
        let config = |command: &str| ServerConfig {
            name: "s".into(),
            transport: Transport::Stdio {
                command: command.into(),
                args: Vec::new(),
                env: Default::default(),
                cwd: None,
            },
        };
        let limits = UpstreamLimits::default();
        let first = StartBudget::new(&config("/usr/bin/npx"), limits, false);
        assert_eq!(first.silence, PACKAGE_RUNNER_FIRST_START);
        assert_eq!(first.total, PACKAGE_RUNNER_FIRST_START * MAX_START_FACTOR);
        let again = StartBudget::new(&config("npx"), limits, true);
        assert_eq!(again.silence, limits.connect_timeout);
        let plain = StartBudget::new(&config("node"), limits, false);
        assert_eq!(plain.silence, limits.connect_timeout);
        assert!(StartBudget::longest(limits) >= first.total);
    }

    #[test]
    fn at_most_the_line_budget_is_logged_per_second_and_the_rest_is_counted() {
        let start = Instant::now();
        let mut budget = LineBudget::new(start);
        let logged = (0..MAX_STDERR_LINES_PER_SEC + 5)
            .filter(|_| budget.admit(start).0)
            .count();
        assert_eq!(logged, MAX_STDERR_LINES_PER_SEC as usize);
        // The next second logs again and reports the 5 dropped lines once.
        assert_eq!(budget.admit(start + Duration::from_secs(1)), (true, 5));
        assert_eq!(budget.admit(start + Duration::from_secs(1)), (true, 0));
    }
}
