//! `mcp-kernel sandbox-probe <attempt> [path]`: a test-only entry point that confines itself
//! exactly as a worker does, in the same order (parent-death signal, rlimits and Landlock, the
//! current-thread runtime, seccomp), then makes one attempt, so the integration tests can prove
//! what the sandbox refuses.
//!
//! Attempts ([`Attempt`]): `control` (work the worker does all the time: must succeed),
//! `socket`, `kill-parent` (`SIGTERM` to the parent), `prlimit-parent` (lower the parent's
//! `RLIMIT_NOFILE` to 17), `execve` (`/bin/true`) and `open` (of `path`).
//!
//! Outcome: exit code 0 and `<attempt>: succeeded` on stdout when the attempt went through;
//! exit code 1 and `<attempt>: refused: <error>` when the kernel answered with an error; killed
//! by `SIGSYS` when seccomp stopped it; exit code 2 when confinement itself failed.

use std::io::Write as _;
use std::process::ExitCode;

use crate::sandbox;

/// What a probe tries once it is confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Timers on the runtime, allocation, randomness and a write to stdout: must succeed.
    Control,
    /// Create a UDP socket.
    Socket,
    /// Send `SIGTERM` to the parent process.
    KillParent,
    /// Lower the parent process's `RLIMIT_NOFILE` to 17 with `prlimit64`.
    PrlimitParent,
    /// Replace the process with `/bin/true`.
    Execve,
    /// Open the file given as `path` for reading.
    Open,
}

impl Attempt {
    /// The name the subcommand takes (`kill-parent`...).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Control => "control",
            Self::Socket => "socket",
            Self::KillParent => "kill-parent",
            Self::PrlimitParent => "prlimit-parent",
            Self::Execve => "execve",
            Self::Open => "open",
        }
    }
}

impl std::str::FromStr for Attempt {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Ok(match name {
            "control" => Self::Control,
            "socket" => Self::Socket,
            "kill-parent" => Self::KillParent,
            "prlimit-parent" => Self::PrlimitParent,
            "execve" => Self::Execve,
            "open" => Self::Open,
            _ => {
                return Err(format!(
                    "unknown attempt {name:?}: expected control, socket, kill-parent, \
                     prlimit-parent, execve or open"
                ));
            }
        })
    }
}

/// Memory limit the probe applies, as a worker with the default `memory_mib`.
const PROBE_MEMORY_MIB: u64 = 256;

/// Runs the probe: confines this process as a worker, makes `attempt`, and reports as the
/// module documentation says. `path` is the file `open` tries.
#[must_use]
pub fn run_sandbox_probe(attempt: Attempt, path: Option<&std::path::Path>) -> ExitCode {
    let fail = |message: String| {
        eprintln!("mcp-kernel sandbox-probe: {message}");
        ExitCode::from(2)
    };
    if let Err(e) = sandbox::die_with_parent() {
        return fail(format!("sandbox: {e}"));
    }
    // Read before seccomp: getppid is not on the worker's allowlist.
    let Some(parent) = rustix::process::getppid() else {
        return fail("no parent process".to_owned());
    };
    if let Err(e) = sandbox::confine_process(PROBE_MEMORY_MIB) {
        return fail(format!("sandbox: {e}"));
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(format!("starting the runtime: {e}")),
    };
    if let Err(e) = sandbox::install_seccomp() {
        return fail(format!("seccomp: {e}"));
    }
    eprintln!("mcp-kernel sandbox-probe: attempting {}", attempt.name());
    let outcome: std::io::Result<()> = match attempt {
        Attempt::Control => runtime.block_on(async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            let mut big = vec![0u8; 32 << 20];
            big[(32 << 20) - 1] = 1;
            let text = "x".repeat(1 << 20);
            let map: std::collections::HashMap<usize, u8> =
                [(text.len(), big[big.len() - 1])].into_iter().collect();
            std::hint::black_box((&big, &text, &map));
            Ok(())
        }),
        Attempt::Socket => std::net::UdpSocket::bind("127.0.0.1:0").map(drop),
        Attempt::KillParent => rustix::process::kill_process(parent, rustix::process::Signal::TERM)
            .map_err(std::io::Error::from),
        Attempt::PrlimitParent => {
            let limit = rustix::process::Rlimit {
                current: Some(17),
                maximum: Some(17),
            };
            rustix::process::prlimit(Some(parent), rustix::process::Resource::Nofile, limit)
                .map(drop)
                .map_err(std::io::Error::from)
        }
        Attempt::Execve => {
            use std::os::unix::process::CommandExt as _;
            // Returns only when the exec failed.
            Err(std::process::Command::new("/bin/true").exec())
        }
        Attempt::Open => match path {
            Some(path) => std::fs::File::open(path).map(drop),
            None => return fail("`open` needs a path".to_owned()),
        },
    };
    let mut stdout = std::io::stdout().lock();
    let (line, code) = match outcome {
        Ok(()) if attempt == Attempt::Control => (
            format!(
                "control: succeeded under an allowlist of {}",
                crate::seccomp_allowlist().join(" ")
            ),
            ExitCode::SUCCESS,
        ),
        Ok(()) => (format!("{}: succeeded", attempt.name()), ExitCode::SUCCESS),
        Err(e) => (
            format!("{}: refused: {e}", attempt.name()),
            ExitCode::from(1),
        ),
    };
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::from(2);
    }
    code
}
