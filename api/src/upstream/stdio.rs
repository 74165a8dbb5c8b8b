//! Starting and stopping stdio upstream servers: the minimal environment they get, the
//! `exec-child` launcher that ties their life to the supervisor's, and the set of those
//! processes that [`shutdown`] stops and waits for.
//!
//! The state here is process-wide because child processes are: one `mcp-kernel serve` per
//! process.

use std::path::PathBuf;
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use mcpk_session::ChildSet;
use tokio_util::sync::CancellationToken;

/// Variables a stdio server inherits from the supervisor, when set: the set the MCP SDKs give
/// their stdio servers by default. Everything else (secrets included) stays in the supervisor;
/// a server gets more only through its configured `env`.
pub(crate) const INHERITED_ENV: [&str; 6] = ["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"];

/// How long [`shutdown`] gives servers to exit after their stdin closed before it sends them
/// `SIGTERM` (and `SIGKILL` [`super::start::TERM_GRACE`] later).
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// The running stdio servers (and, briefly, their launchers).
static CHILDREN: ChildSet = ChildSet::new();
/// Cancelled by [`shutdown`]: every connection closes, and no server starts any more.
static STOPPING: LazyLock<CancellationToken> = LazyLock::new(CancellationToken::new);
/// The `mcp-kernel` executable that runs `exec-child`.
static LAUNCHER: OnceLock<PathBuf> = OnceLock::new();

/// Sets the `mcp-kernel` executable used to launch servers (normally the running binary).
/// Without one, servers are started directly and do not die with a killed supervisor.
pub(crate) fn set_launcher(exe: PathBuf) {
    let _ = LAUNCHER.set(exe);
}

/// Whether [`shutdown`] has begun: connections closing now are expected, not failures.
pub(crate) fn stopping() -> bool {
    STOPPING.is_cancelled()
}

/// The cancellation token of one connection: a child of the shutdown token.
pub(crate) fn connection_token() -> Result<CancellationToken, String> {
    if STOPPING.is_cancelled() {
        return Err("mcp-kernel is shutting down".to_owned());
    }
    Ok(STOPPING.child_token())
}

/// The command that starts `command args` with the minimal environment plus `env`, in `cwd`,
/// through the launcher when there is one.
pub(crate) fn command(
    command: &str,
    args: &[String],
    env: &std::collections::BTreeMap<String, String>,
    cwd: Option<&std::path::Path>,
) -> tokio::process::Command {
    let mut cmd = match LAUNCHER.get() {
        Some(launcher) => {
            let mut cmd = tokio::process::Command::new(launcher);
            cmd.arg("exec-child")
                .arg("--parent-pid")
                .arg(std::process::id().to_string())
                .arg("--")
                .arg(command);
            cmd
        }
        None => tokio::process::Command::new(command),
    };
    cmd.args(args).env_clear();
    for name in INHERITED_ENV {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd.envs(env).kill_on_drop(true);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    cmd
}

/// Tracks a server process just spawned, for [`shutdown`].
pub(crate) fn track(pid: Option<u32>) {
    if let Some(pid) = pid
        && let Err(error) = CHILDREN.register(pid)
    {
        tracing::warn!(pid, %error, "cannot track an upstream server process");
    }
}

/// Closes every stdio connection (stdin first, then `SIGTERM` after [`EXIT_GRACE`], as the MCP
/// specification says), kills servers still running [`super::start::TERM_GRACE`] later, and
/// waits until every server process has exited and been reaped. No server starts afterwards.
pub(crate) async fn shutdown() {
    STOPPING.cancel();
    CHILDREN
        .stop_all_gently(EXIT_GRACE, super::start::TERM_GRACE)
        .await;
}

/// Stops the server process `pid` (tracked by [`track`]): `SIGTERM` at once, `SIGKILL` if it
/// is still running after `term_grace`; returns once it has exited. Its owner reaps it.
pub(crate) async fn terminate(pid: u32, term_grace: Duration) {
    CHILDREN.terminate(pid, term_grace).await;
}

/// Pids of the stdio server processes that have not been reaped.
pub(crate) fn pids() -> Vec<u32> {
    CHILDREN.pids()
}
