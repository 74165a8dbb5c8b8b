//! Confinement of the worker process. Each mechanism and what it does NOT cover:
//!
//! - **parent-death signal** (`PR_SET_PDEATHSIG` = `SIGKILL`), set first: the worker dies with
//!   the supervisor's thread that started it, even when the supervisor is killed with
//!   `SIGKILL` and cannot stop its children.
//! - **rlimits** (`RLIMIT_AS` = `memory_mib`, `RLIMIT_CORE` = 0, `RLIMIT_FSIZE` = 0,
//!   `RLIMIT_NOFILE` = 64, `RLIMIT_STACK` = [`worker_stack_bytes`]). The stack limit is raised,
//!   not lowered: JavaScript runs on the worker's main thread, whose stack grows up to it, and
//!   the native recursion bound of Boa's parser and builtins
//!   (`boa_parser::native_stack`, see `vendor/README.md`) is set to it minus
//!   [`STACK_MARGIN_BYTES`], so deeper nesting throws a `RangeError` instead of overflowing. `RLIMIT_AS` caps address space, not resident memory, so the
//!   usable heap is somewhat below `memory_mib` (the binary, stacks and runtime are mapped
//!   too). An allocation past it fails and the worker aborts; the supervisor reports
//!   `MemoryLimitError`. No CPU limit: a worker serves many calls, so wall-clock kills by the
//!   supervisor bound CPU per call instead.
//! - **Landlock** (ABI up to V5, best effort): no filesystem access at all and, on kernels with
//!   ABI ≥ 4, no TCP bind/connect. It does not cover file descriptors already open (the
//!   stdin/stdout/stderr pipes), and on kernels without Landlock it is skipped with a warning
//!   on stderr; seccomp still applies.
//! - **seccomp** (installed on every thread, after the Context is built and before the first
//!   untrusted byte): an allowlist of the syscalls the worker really makes once running
//!   ([`allowed_syscalls`]: reading and writing its open descriptors, epoll, memory, time,
//!   signals to itself, exit). Any other syscall, or `mmap`/`mprotect` with `PROT_EXEC`,
//!   `ioctl` other than `FIONBIO`/`FIOCLEX`, `fcntl` other than the flag commands, or `tgkill`
//!   of another process, kills the worker with `SIGSYS` (`SECCOMP_RET_KILL_PROCESS`); no call
//!   is refused with an error code, because nothing the worker runs probes for a syscall after
//!   start-up. It does not limit `read`/`write` on the descriptors already open, memory
//!   (rlimits do) or CPU (the deadline does).
//!
//! `no_new_privs` is set by Landlock and seccomp both.

use std::collections::BTreeMap;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetStatus,
};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};

/// Why confinement could not be applied; the worker refuses to run without it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SandboxError {
    #[error("setrlimit({resource}): {source}")]
    Rlimit {
        resource: &'static str,
        source: rustix::io::Errno,
    },
    #[error("landlock: {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error("seccomp: {0}")]
    Seccomp(#[from] seccompiler::Error),
    #[error("seccomp: {0}")]
    SeccompBackend(#[from] seccompiler::BackendError),
    #[error("prctl(PR_SET_PDEATHSIG): {0}")]
    DeathSignal(rustix::io::Errno),
}

/// Largest native stack, in bytes, a worker's main thread may grow to: a quarter of
/// `memory_mib` (stack pages count against `RLIMIT_AS`), at least the Linux default of 8 MiB
/// and at most 64 MiB. With the default 256 MiB that is 64 MiB. Measured with a debug build
/// (Boa optimised): agent code then nests 2,000 to 3,000 brackets, `String()` of arrays 20,000
/// to 30,000 levels and `JSON.stringify` 20,000 to 100,000 levels before a `RangeError`; Node
/// 20 stops at 1,638, 3,210 and 4,173. With the 8 MiB default it was about 150 brackets.
/// `tests/tests/builtins.rs` checks Node's depths.
pub(crate) fn worker_stack_bytes(memory_mib: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    (memory_mib / 4).clamp(8, 64) * MIB
}

/// Stack, in bytes, kept beyond the native recursion budget: the frames above the first
/// recursion check (runtime, executor, engine entry) and the work between two checks. Half of
/// the 8 MiB default, as `boa_parser::native_stack::BUDGET_BYTES` assumes.
pub(crate) const STACK_MARGIN_BYTES: u64 = 4 << 20;

/// Raises the soft `RLIMIT_STACK` of the calling process (the supervisor) to
/// [`worker_stack_bytes`] for `memory_mib`, never lowering it and never above the hard limit,
/// so that workers inherit it at `exec`. Rust's runtime places the main thread's stack guard
/// from the limit in force at `exec`; raised only later, by the worker itself, an overflow past
/// the old guard was a bare `SIGSEGV` instead of Rust's "has overflowed its stack" report,
/// which the supervisor turns into a clear error. The supervisor's own main thread may then
/// grow as far, which it never needs.
///
/// # Errors
/// `setrlimit` failing, which leaves the limit as it was.
pub(crate) fn raise_stack_limit_for_workers(memory_mib: u64) -> Result<(), SandboxError> {
    let current = getrlimit(Resource::Stack);
    let wanted = worker_stack_bytes(memory_mib);
    let soft = current.current.unwrap_or(u64::MAX);
    let target = current.maximum.map_or(wanted, |hard| hard.min(wanted));
    if soft >= target {
        return Ok(());
    }
    let rlimit = Rlimit {
        current: Some(target),
        maximum: current.maximum,
    };
    setrlimit(Resource::Stack, rlimit).map_err(|source| SandboxError::Rlimit {
        resource: "RLIMIT_STACK",
        source,
    })
}

/// Applies rlimits and Landlock to the calling thread and every thread it starts later, and
/// sets Boa's native recursion budget from the stack limit.
pub(crate) fn confine_process(memory_mib: u64) -> Result<(), SandboxError> {
    let limit = |resource: Resource, name: &'static str, value: u64| {
        let rlimit = Rlimit {
            current: Some(value),
            maximum: Some(value),
        };
        setrlimit(resource, rlimit).map_err(|source| SandboxError::Rlimit {
            resource: name,
            source,
        })
    };
    limit(
        Resource::As,
        "RLIMIT_AS",
        memory_mib.saturating_mul(1 << 20),
    )?;
    limit(Resource::Core, "RLIMIT_CORE", 0)?;
    limit(Resource::Fsize, "RLIMIT_FSIZE", 0)?;
    limit(Resource::Nofile, "RLIMIT_NOFILE", 64)?;

    // The main thread's stack grows on demand up to RLIMIT_STACK, read at each fault, and the
    // kernel leaves at least 128 MiB below it for growth, so raising the limit after exec takes
    // effect. Never above the hard limit the supervisor was given.
    let hard = getrlimit(Resource::Stack).maximum;
    let stack = hard.map_or(worker_stack_bytes(memory_mib), |hard| {
        hard.min(worker_stack_bytes(memory_mib))
    });
    limit(Resource::Stack, "RLIMIT_STACK", stack)?;
    let budget = usize::try_from(stack.saturating_sub(STACK_MARGIN_BYTES)).unwrap_or(usize::MAX);
    boa_parser::native_stack::set_budget_bytes(budget.max(boa_parser::native_stack::BUDGET_BYTES));

    let abi = ABI::V5;
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))?
        .handle_access(AccessNet::from_all(abi))?
        .create()?
        .restrict_self()?;
    if status.ruleset == RulesetStatus::NotEnforced {
        eprintln!(
            "mcp-kernel worker: landlock is not supported by this kernel; relying on seccomp"
        );
    }
    Ok(())
}

/// What an allowed syscall may be called with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Args {
    /// Any arguments.
    Any,
    /// Argument 0 must be this process's own pid (`tgkill` from `abort()` and `raise()`).
    OwnPid,
    /// Argument `index` must have no bit of `mask` set (`mmap`/`mprotect` without
    /// `PROT_EXEC`).
    Without { index: u8, mask: u64 },
    /// Argument `index` must be one of `values` (`ioctl` requests, `fcntl` commands).
    OneOf { index: u8, values: &'static [u64] },
}

/// One allowed syscall: its `libc` constant's name, its number on this architecture, and the
/// arguments it may be called with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Allowed {
    /// `SYS_<name>`, as the `libc` constant is spelled.
    pub(crate) constant: &'static str,
    /// Its number on the architecture this binary was built for.
    pub(crate) nr: i64,
    /// What it may be called with.
    pub(crate) args: Args,
}

impl Allowed {
    /// The syscall's name, as in `man 2 syscalls`.
    pub(crate) fn name(&self) -> &'static str {
        self.constant.strip_prefix("SYS_").unwrap_or(self.constant)
    }
}

/// `Allowed` entries from `libc::SYS_*` constants, each with an optional argument filter.
macro_rules! allowed {
    ($($nr:ident $(($args:expr))?),* $(,)?) => {
        &[$(Allowed {
            constant: stringify!($nr),
            nr: libc::$nr,
            args: allowed!(@args $($args)?),
        }),*]
    };
    (@args) => { Args::Any };
    (@args $args:expr) => { $args };
}

/// `fcntl` commands: descriptor and status flags (non-blocking mode, close-on-exec; std checks
/// `F_GETFD` before closing a descriptor in debug builds) and `F_DUPFD_CLOEXEC` (an async
/// reader or writer taking over stdin/stdout); no locks, leases or pipe resizing.
const FCNTL_COMMANDS: &[u64] = &[
    libc::F_GETFD as u64,
    libc::F_SETFD as u64,
    libc::F_GETFL as u64,
    libc::F_SETFL as u64,
    libc::F_DUPFD_CLOEXEC as u64,
];

/// `ioctl` requests: non-blocking mode and close-on-exec, nothing else (no terminal or device
/// control).
#[allow(
    clippy::unnecessary_cast,
    reason = "libc::Ioctl is c_ulong on glibc but c_int on musl"
)]
const IOCTL_REQUESTS: &[u64] = &[libc::FIONBIO as u64, libc::FIOCLEX as u64];

/// No executable mappings: the engine is an interpreter and never generates code.
const NO_EXEC: Args = Args::Without {
    index: 2,
    mask: libc::PROT_EXEC as u64,
};

/// The syscalls a worker makes once its Context is built, on every architecture. Derived with
/// `strace -f` from workers running a mixed workload (host calls, timers, logs, big strings and
/// arrays, `mcp.state`, JSON, regexes, sorting, GC, recursion errors) and the paths that end a
/// worker (end of input, `RLIMIT_AS` allocation failure → `abort`, native stack overflow →
/// `SIGSEGV` handler → `abort`), plus the slow paths of calls seen there (`futex` under a
/// contended lock, `clock_gettime`/`gettimeofday` when the vDSO falls back to the kernel).
const ALLOWED_COMMON: &[Allowed] = allowed![
    // Frames, logs and panic messages on the descriptors the worker already holds.
    SYS_read,
    SYS_write,
    SYS_writev,
    SYS_close,
    SYS_fcntl(Args::OneOf {
        index: 1,
        values: FCNTL_COMMANDS
    }),
    SYS_ioctl(Args::OneOf {
        index: 1,
        values: IOCTL_REQUESTS
    }),
    // The current-thread runtime: epoll (timers are epoll timeouts) and its eventfd waker
    // (written with `write`).
    SYS_epoll_ctl,
    SYS_epoll_pwait,
    SYS_futex,
    SYS_clock_gettime,
    SYS_gettimeofday,
    // Memory: malloc, the engine's GC, large strings.
    SYS_brk,
    SYS_mmap(NO_EXEC),
    SYS_mprotect(NO_EXEC),
    SYS_munmap,
    SYS_mremap,
    SYS_madvise,
    SYS_getrandom,
    // Identity, signals to itself, and the abort, stack-overflow and exit paths.
    SYS_getpid,
    SYS_gettid,
    SYS_tgkill(Args::OwnPid),
    SYS_rt_sigaction,
    SYS_rt_sigprocmask,
    SYS_rt_sigreturn,
    SYS_sigaltstack,
    SYS_exit_group,
];

/// x86_64 also has the older `epoll_wait`, which mio calls there (aarch64 has only
/// `epoll_pwait`, above).
#[cfg(target_arch = "x86_64")]
const ALLOWED_ARCH: &[Allowed] = allowed![SYS_epoll_wait];

/// aarch64 needs nothing beyond the common list.
#[cfg(target_arch = "aarch64")]
const ALLOWED_ARCH: &[Allowed] = allowed![];

/// Every syscall the worker may make after `install_seccomp`, for the architecture this binary
/// was built for.
pub(crate) fn allowed_syscalls() -> impl Iterator<Item = &'static Allowed> {
    ALLOWED_COMMON.iter().chain(ALLOWED_ARCH)
}

fn rule(args: Args, own_pid: u32) -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
    let condition = |index: u8, op: SeccompCmpOp, value: u64| {
        SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value)
    };
    Ok(match args {
        Args::Any => Vec::new(),
        Args::OwnPid => vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            u64::from(own_pid),
        )?])?],
        Args::Without { index, mask } => {
            vec![SeccompRule::new(vec![condition(
                index,
                SeccompCmpOp::MaskedEq(mask),
                0,
            )?])?]
        }
        Args::OneOf { index, values } => values
            .iter()
            .map(|&value| {
                // Requests and commands are 32-bit in the kernel; compare only the low half
                // so a sign-extended value from C callers still matches.
                let low =
                    SeccompCondition::new(index, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)?;
                SeccompRule::new(vec![low])
            })
            .collect::<Result<_, _>>()?,
    })
}

/// The seccomp program for this process: the allowlist, with `KillProcess` for anything else.
pub(crate) fn seccomp_program() -> Result<seccompiler::BpfProgram, SandboxError> {
    let own_pid = std::process::id();
    let mut rules = BTreeMap::new();
    for allowed in allowed_syscalls() {
        rules.insert(allowed.nr, rule(allowed.args, own_pid)?);
    }
    let arch = TargetArch::try_from(std::env::consts::ARCH)?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch,
    )?;
    Ok(filter.try_into()?)
}

/// Installs the allowlist on every thread of the process (TSYNC). From then on a syscall
/// outside [`allowed_syscalls`], or with arguments its filter refuses, kills the whole process
/// with `SIGSYS`.
pub(crate) fn install_seccomp() -> Result<(), SandboxError> {
    let program = seccomp_program()?;
    seccompiler::apply_filter_all_threads(&program)?;
    Ok(())
}

/// Makes the kernel send `SIGKILL` to this process when the thread that started it exits (the
/// supervisor's runtime threads live as long as the supervisor). Set first thing at start-up;
/// a supervisor that died before this call closed the write end of the worker's stdin, so the
/// worker then reads end of file and exits by itself.
pub(crate) fn die_with_parent() -> Result<(), SandboxError> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(SandboxError::DeathSignal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_stack_is_a_quarter_of_memory_between_8_and_64_mib() {
        const MIB: u64 = 1 << 20;
        assert_eq!(
            worker_stack_bytes(16),
            8 * MIB,
            "never below the Linux default"
        );
        assert_eq!(worker_stack_bytes(32), 8 * MIB);
        assert_eq!(worker_stack_bytes(200), 50 * MIB);
        assert_eq!(worker_stack_bytes(256), 64 * MIB);
        assert_eq!(worker_stack_bytes(257), 64 * MIB);
        assert_eq!(worker_stack_bytes(u64::MAX), 64 * MIB, "never above 64 MiB");
    }

    #[test]
    fn the_allowlist_has_no_duplicates_and_compiles_to_bpf() {
        let mut seen = std::collections::BTreeSet::new();
        for allowed in allowed_syscalls() {
            assert!(seen.insert(allowed.nr), "{} listed twice", allowed.name());
        }
        let program = seccomp_program().expect("the filter compiles");
        assert!(!program.is_empty());
    }

    #[test]
    fn nothing_that_reaches_outside_the_process_is_allowed() {
        let names: Vec<&str> = allowed_syscalls().map(Allowed::name).collect();
        for denied in [
            "open",
            "openat",
            "openat2",
            "creat",
            "socket",
            "socketpair",
            "connect",
            "bind",
            "execve",
            "execveat",
            "fork",
            "vfork",
            "clone",
            "clone3",
            "kill",
            "tkill",
            "prlimit64",
            "setrlimit",
            "rt_sigqueueinfo",
            "rt_tgsigqueueinfo",
            "pidfd_open",
            "pidfd_send_signal",
            "pidfd_getfd",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "prctl",
            "seccomp",
            "mount",
            "unshare",
            "setns",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "io_uring_setup",
            "keyctl",
            "memfd_create",
            "setuid",
            "personality",
            "sendmsg",
            "recvmsg",
            "dup",
            "dup3",
            "pipe2",
            "unlinkat",
        ] {
            assert!(!names.contains(&denied), "{denied} must not be allowed");
        }
    }

    #[test]
    fn argument_filters_cover_the_risky_allowed_calls() {
        let args = |name: &str| {
            allowed_syscalls()
                .find(|a| a.name() == name)
                .map(|a| a.args)
                .unwrap_or_else(|| panic!("{name} is not in the allowlist"))
        };
        assert_eq!(args("tgkill"), Args::OwnPid);
        assert_eq!(args("mmap"), NO_EXEC);
        assert_eq!(args("mprotect"), NO_EXEC);
        assert!(matches!(args("ioctl"), Args::OneOf { index: 1, .. }));
        assert!(matches!(args("fcntl"), Args::OneOf { index: 1, .. }));
    }
}
