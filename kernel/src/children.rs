//! Child processes tracked through pidfds, so the supervisor can stop them and wait for them at
//! shutdown (nothing left running, no zombie) without ever signalling a reused pid.

use std::os::fd::{AsFd as _, OwnedFd};
use std::sync::Mutex;
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};
use tokio::io::unix::AsyncFd;

/// How long [`ChildSet::stop_all`] lets a child's owner reap it after it exited, before reaping
/// it itself.
const OWNER_REAP_GRACE: Duration = Duration::from_millis(500);
/// Poll interval while waiting for an owner to reap an exited child.
const REAP_POLL: Duration = Duration::from_millis(5);

/// A set of child processes of this process, each held as a pidfd.
///
/// It holds only children that have not been reaped yet: [`ChildSet::register`] drops the
/// entries whose process is gone, so the set stays as small as the number of live children.
#[derive(Debug, Default)]
pub struct ChildSet {
    children: Mutex<Vec<Child>>,
}

#[derive(Debug)]
struct Child {
    pid: u32,
    pidfd: OwnedFd,
}

/// Where a tracked child stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// Exited, not yet reaped.
    Zombie,
    /// Reaped by its owner (or by us): gone.
    Gone,
}

fn state(pidfd: &OwnedFd) -> State {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    match rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), options) {
        Ok(None) => State::Running,
        Ok(Some(_)) => State::Zombie,
        Err(_) => State::Gone,
    }
}

impl ChildSet {
    /// An empty set.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            children: Mutex::new(Vec::new()),
        }
    }

    /// Tracks `pid`, which must be a child of this process that has not been reaped yet (call
    /// it right after spawning, before anything waits on the child).
    ///
    /// # Errors
    /// `pidfd_open` failed (kernels before 5.3): the child is then not tracked, and only its
    /// owner's kill-on-drop stops it.
    pub fn register(&self, pid: u32) -> std::io::Result<()> {
        let raw = i32::try_from(pid).map_err(std::io::Error::other)?;
        let pid_value = Pid::from_raw(raw).ok_or_else(|| std::io::Error::other("pid 0"))?;
        let pidfd = rustix::process::pidfd_open(pid_value, PidfdFlags::empty())?;
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        children.retain(|child| state(&child.pidfd) != State::Gone);
        children.push(Child { pid, pidfd });
        Ok(())
    }

    /// Pids of the tracked children that have not been reaped.
    #[must_use]
    pub fn pids(&self) -> Vec<u32> {
        let children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        children
            .iter()
            .filter(|child| state(&child.pidfd) != State::Gone)
            .map(|child| child.pid)
            .collect()
    }

    /// Stops every tracked child and waits until each is gone: a child still running after
    /// `grace` gets `SIGKILL`; an exited child is left to its owner (the tokio `Child` that
    /// spawned it) for a moment, then reaped here. Returns once no tracked child is left running
    /// or as a zombie.
    pub async fn stop_all(&self, grace: Duration) {
        self.stop_all_with(grace, None).await;
    }

    /// [`ChildSet::stop_all`], but a child still running after `grace` first gets `SIGTERM`
    /// and `term_grace` more to exit (and, say, finish writing a cache) before `SIGKILL`.
    pub async fn stop_all_gently(&self, grace: Duration, term_grace: Duration) {
        self.stop_all_with(grace, Some(term_grace)).await;
    }

    async fn stop_all_with(&self, grace: Duration, term_grace: Option<Duration>) {
        let children =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(|e| e.into_inner()));
        let stops = children
            .into_iter()
            .map(|child| stop(child, grace, term_grace));
        futures::future::join_all(stops).await;
    }

    /// Sends `SIGTERM` to the tracked child `pid` at once and waits until it has exited,
    /// sending `SIGKILL` if it is still running after `term_grace`. The exited child stays
    /// tracked and unreaped, for its owner to reap (so the owner never signals a reused pid).
    /// Returns at once when `pid` is not tracked or already exited.
    pub async fn terminate(&self, pid: u32, term_grace: Duration) {
        let pidfd = {
            let children = self.children.lock().unwrap_or_else(|e| e.into_inner());
            children
                .iter()
                .find(|child| child.pid == pid)
                .and_then(|child| child.pidfd.try_clone().ok())
        };
        if let Some(pidfd) = pidfd
            && state(&pidfd) == State::Running
        {
            let _ = signal_and_wait(pid, pidfd, Duration::ZERO, Some(term_grace)).await;
        }
    }
}

/// Waits up to `grace` for the child to exit; then, if `term_grace` is set, sends `SIGTERM`
/// and waits up to `term_grace` more; then sends `SIGKILL` and waits for the exit. Returns the
/// pidfd of the exited (not reaped) child, or `None` when it could not be waited for.
#[allow(
    deprecated,
    reason = "AsyncFd::new is deprecated for types that do not own their fd; the AsyncFd owns \
              this OwnedFd, so it cannot be closed while registered, and the replacement is `unsafe`"
)]
async fn signal_and_wait(
    pid: u32,
    pidfd: OwnedFd,
    grace: Duration,
    term_grace: Option<Duration>,
) -> Option<OwnedFd> {
    // A pidfd is readable once its process has exited.
    let exited = match AsyncFd::new(pidfd) {
        Ok(fd) => fd,
        Err(error) => {
            tracing::warn!(pid, %error, "cannot wait for a child process");
            return None;
        }
    };
    let mut steps = Vec::with_capacity(2);
    if let Some(term_grace) = term_grace {
        steps.push((grace, Signal::TERM));
        steps.push((term_grace, Signal::KILL));
    } else {
        steps.push((grace, Signal::KILL));
    }
    for (wait, signal) in steps {
        if tokio::time::timeout(wait, exited.readable()).await.is_ok() {
            return Some(exited.into_inner());
        }
        if let Err(error) = rustix::process::pidfd_send_signal(exited.get_ref(), signal)
            && error != Errno::SRCH
        {
            tracing::warn!(pid, %error, ?signal, "cannot signal a child process");
            return None;
        }
    }
    let _ = exited.readable().await;
    Some(exited.into_inner())
}

async fn stop(child: Child, grace: Duration, term_grace: Option<Duration>) {
    let Child { pid, pidfd } = child;
    if state(&pidfd) == State::Gone {
        return;
    }
    let Some(pidfd) = signal_and_wait(pid, pidfd, grace, term_grace).await else {
        return;
    };
    let owner_deadline = tokio::time::Instant::now() + OWNER_REAP_GRACE;
    while state(&pidfd) == State::Zombie && tokio::time::Instant::now() < owner_deadline {
        tokio::time::sleep(REAP_POLL).await;
    }
    if state(&pidfd) == State::Zombie {
        let _ = rustix::process::waitid(
            WaitId::PidFd(pidfd.as_fd()),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok()
    }

    #[tokio::test]
    async fn stop_all_kills_a_child_that_ignores_the_grace_and_reaps_it() {
        let child = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let set = ChildSet::new();
        set.register(pid).expect("pidfd_open");
        assert_eq!(set.pids(), [pid]);
        // The std `Child` never waits: the set must reap it itself.
        set.stop_all(Duration::ZERO).await;
        assert!(
            !alive(pid),
            "pid {pid} is still there (running or a zombie)"
        );
        assert!(set.pids().is_empty());
        drop(child);
    }

    #[tokio::test]
    async fn terminate_sends_sigterm_first_and_leaves_the_exited_child_to_its_owner() {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "trap 'echo term; exit 0' TERM; echo ready; while :; do sleep 0.05; done",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let pid = child.id();
        let set = ChildSet::new();
        set.register(pid).expect("pidfd_open");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read");
        assert_eq!(line, "ready\n");
        // A grace long enough that only SIGTERM can have ended it.
        set.terminate(pid, Duration::from_secs(600)).await;
        line.clear();
        stdout.read_line(&mut line).expect("read");
        assert_eq!(line, "term\n");
        // Exited but not reaped: the owner's `wait` still gets the status.
        assert!(child.wait().expect("wait").success());
        assert!(set.pids().is_empty());
    }

    #[tokio::test]
    async fn a_child_reaped_by_its_owner_is_dropped_from_the_set() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        let set = ChildSet::new();
        set.register(pid).expect("pidfd_open");
        child.wait().expect("wait");
        assert!(set.pids().is_empty());
        set.stop_all(Duration::ZERO).await;
    }
}
