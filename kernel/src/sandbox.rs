//! Confinement of the worker process. Each mechanism and what it does NOT cover:
//!
//! - **rlimits** (`RLIMIT_AS` = `memory_mib`, `RLIMIT_CORE` = 0, `RLIMIT_FSIZE` = 0,
//!   `RLIMIT_NOFILE` = 64). `RLIMIT_AS` caps address space, not resident memory, so the
//!   usable heap is somewhat below `memory_mib` (the binary, stacks and runtime are mapped
//!   too). An allocation past it fails and the worker aborts; the supervisor reports
//!   `MemoryLimitError`. No CPU limit: a worker serves many calls, so wall-clock kills by the
//!   supervisor bound CPU per call instead.
//! - **Landlock** (ABI up to V5, best effort): no filesystem access at all and, on kernels with
//!   ABI ≥ 4, no TCP bind/connect. It does not cover file descriptors already open (the
//!   stdin/stdout/stderr pipes), and on kernels without Landlock it is skipped with a warning
//!   on stderr; seccomp still applies.
//! - **seccomp** (installed on every thread, after the Context is built and before the first
//!   untrusted byte): denies with `EPERM` the syscalls that open files, create sockets, start
//!   processes or threads, signal other processes, trace, mount, load modules or change
//!   credentials. It is a deny list over an otherwise allowed set; it does not limit `mmap`,
//!   `read`/`write` on open descriptors or `getrandom`, which the engine needs.
//!
//! `no_new_privs` is set by Landlock and seccomp both.

use std::collections::BTreeMap;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetStatus,
};
use rustix::process::{Resource, Rlimit, setrlimit};
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
}

/// Applies rlimits and Landlock to the calling thread and every thread it starts later.
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

/// Syscalls the worker never needs once its Context is built.
const DENIED: &[i64] = &[
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_creat,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_truncate,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_rmdir,
    libc::SYS_link,
    libc::SYS_linkat,
    libc::SYS_symlink,
    libc::SYS_symlinkat,
    libc::SYS_chmod,
    libc::SYS_fchmodat,
    libc::SYS_chown,
    libc::SYS_fchownat,
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_fork,
    libc::SYS_vfork,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_kill,
    libc::SYS_tkill,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_getfd,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_setreuid,
    libc::SYS_setregid,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setgroups,
    libc::SYS_memfd_create,
    libc::SYS_personality,
];

/// Installs the seccomp filter on every thread of the process (TSYNC).
pub(crate) fn install_seccomp() -> Result<(), SandboxError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&nr| (nr, Vec::new())).collect();
    // `abort()` signals its own thread with tgkill; signalling any other process is denied.
    let own_pid = u64::from(std::process::id());
    rules.insert(
        libc::SYS_tgkill,
        vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Ne,
            own_pid,
        )?])?],
    );
    let arch = TargetArch::try_from(std::env::consts::ARCH)?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )?;
    let program: seccompiler::BpfProgram = filter.try_into()?;
    seccompiler::apply_filter_all_threads(&program)?;
    Ok(())
}
