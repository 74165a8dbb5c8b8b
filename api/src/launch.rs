//! `mcp-kernel exec-child --parent-pid PID -- COMMAND [ARGS...]`: how the supervisor starts a
//! stdio upstream server so that the server dies with the supervisor, even when the supervisor
//! is killed with `SIGKILL` and cannot stop it.
//!
//! The supervisor spawns its own binary with this hidden subcommand (environment, working
//! directory and pipes already set). It asks the kernel for `SIGKILL` when its parent thread
//! exits (`PR_SET_PDEATHSIG`, which survives `execve`), checks that the parent is still the
//! supervisor (closing the race with a supervisor that died before the request), and then
//! replaces itself with `COMMAND` (`execvp`, `PATH` from the environment it was given). All
//! without `unsafe`: no `pre_exec` hook is needed.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::process::ExitCode;

/// Exit status when the server could not be started (as a shell's "command not found").
const CANNOT_START: u8 = 127;

/// Runs the `exec-child` subcommand; returns only when `COMMAND` could not be started, after
/// printing `cannot start `COMMAND`: <reason>` on stderr (which the supervisor reports).
#[must_use]
pub fn exec_child(parent_pid: u32, command: &[OsString]) -> ExitCode {
    #[allow(
        clippy::print_stderr,
        reason = "stderr is how the supervisor hears why"
    )]
    let fail = |message: String| {
        eprintln!("{message}");
        ExitCode::from(CANNOT_START)
    };
    let Some((program, args)) = command.split_first() else {
        return fail("exec-child: no command given".to_owned());
    };
    let name = program.to_string_lossy();
    if let Err(error) =
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
    {
        return fail(format!(
            "cannot start `{name}`: prctl(PR_SET_PDEATHSIG): {error}"
        ));
    }
    let parent = rustix::process::getppid().map(|pid| pid.as_raw_nonzero().get());
    if parent.and_then(|pid| u32::try_from(pid).ok()) != Some(parent_pid) {
        return fail(format!(
            "cannot start `{name}`: the supervisor (pid {parent_pid}) has already exited"
        ));
    }
    let error = std::process::Command::new(program).args(args).exec();
    fail(format!("cannot start `{name}`: {error}"))
}
