//! Frames to the supervisor, written without ever blocking the JavaScript thread.
//!
//! Stdout is a pipe, registered non-blocking with the worker's current-thread runtime
//! (`tokio::net::unix::pipe::Sender`: no extra thread, which seccomp would forbid anyway).
//! Native functions (`console.*`, host calls) and the call loop [`push`] frames: each is
//! encoded with the supervisor's own [`codec`] into one buffer and written at once as far as
//! the pipe takes it. What the pipe does not take waits in the buffer until the event loop
//! [`flush`]es it when the pipe becomes writable, so a supervisor that is slow to read never
//! blocks the engine, and the engine keeps reading host replies meanwhile (the two sides can
//! no longer fill each other's pipes and wait forever).
//!
//! The buffer is bounded by what can be in it: console output is capped per call
//! (`max_log_bytes`), host calls by `max_host_calls_in_flight` (later ones wait before they
//! are encoded), and a call ends with one `Done`/`Failed` frame.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::net::unix::pipe;
use tokio::sync::Notify;
use tokio_util::codec::{Encoder as _, LengthDelimitedCodec};

use crate::protocol::{FromWorker, codec};

struct Outbox {
    pipe: Rc<pipe::Sender>,
    codec: LengthDelimitedCodec,
    pending: BytesMut,
    /// Signalled when [`push`] leaves bytes the pipe did not take, for [`write_some`].
    more: Rc<Notify>,
}

thread_local! {
    static OUTBOX: RefCell<Option<Outbox>> = const { RefCell::new(None) };
}

/// Takes over stdout (a duplicate of fd 1), non-blocking. Must run inside the runtime, before
/// seccomp (registration uses `epoll_ctl` and `fcntl`).
pub(crate) fn install_stdout() -> std::io::Result<()> {
    use std::os::fd::AsFd as _;
    let fd = std::io::stdout().as_fd().try_clone_to_owned()?;
    let pipe = pipe::Sender::from_owned_fd(fd)?;
    OUTBOX.with(|o| {
        *o.borrow_mut() = Some(Outbox {
            pipe: Rc::new(pipe),
            codec: codec(),
            pending: BytesMut::with_capacity(64 << 10),
            more: Rc::new(Notify::new()),
        });
    });
    Ok(())
}

/// The supervisor stopped reading or a frame cannot be encoded: either way this worker is
/// abandoned or broken, and exits (code 3) with the reason on stderr.
fn abandon(reason: &str) -> ! {
    eprintln!("mcp-kernel worker: {reason}");
    std::process::exit(3)
}

/// Queues `message` after every frame queued before it and writes as much as the pipe takes
/// now, without waiting. Exits the process when the frame is over `MAX_FRAME_BYTES` (limits
/// are validated so that this cannot happen) or stdout is closed.
pub(crate) fn push(message: &FromWorker) {
    let body = serde_json::to_vec(message).expect("protocol frames always serialise");
    OUTBOX.with(|o| {
        let mut guard = o.borrow_mut();
        let Some(outbox) = guard.as_mut() else {
            abandon("stdout was not set up before the first frame")
        };
        let len = body.len();
        if let Err(e) = outbox.codec.encode(Bytes::from(body), &mut outbox.pending) {
            abandon(&format!("cannot send a frame of {len} bytes: {e}"));
        }
        write_now(outbox);
        if !outbox.pending.is_empty() {
            outbox.more.notify_one();
        }
    });
}

/// Writes pending bytes until the pipe is full (would block) or nothing is left.
fn write_now(outbox: &mut Outbox) {
    while !outbox.pending.is_empty() {
        match outbox.pipe.try_write(&outbox.pending) {
            Ok(n) => outbox.pending.advance(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => abandon(&format!("writing to the supervisor: {e}")),
        }
    }
}

/// Whether frames wait for the pipe to drain.
pub(crate) fn has_pending() -> bool {
    OUTBOX.with(|o| o.borrow().as_ref().is_some_and(|o| !o.pending.is_empty()))
}

/// Waits until frames are pending and the pipe is writable, then writes what it takes. The
/// call loop keeps this in its `select!` unconditionally: a host call future pushes its frame
/// while being polled, after the loop's branches were chosen, and [`push`] wakes this then.
/// Cancel-safe: nothing is lost when the future is dropped. Holds no borrow across `.await`.
pub(crate) async fn write_some() {
    let Some((pipe, more)) = OUTBOX.with(|o| {
        o.borrow()
            .as_ref()
            .map(|o| (o.pipe.clone(), o.more.clone()))
    }) else {
        return std::future::pending().await;
    };
    while !has_pending() {
        more.notified().await;
    }
    if let Err(e) = pipe.writable().await {
        abandon(&format!("waiting for stdout: {e}"));
    }
    OUTBOX.with(|o| {
        if let Some(outbox) = o.borrow_mut().as_mut() {
            write_now(outbox);
        }
    });
}

/// Writes every pending frame, waiting for the supervisor to read as needed.
pub(crate) async fn flush() {
    while has_pending() {
        write_some().await;
    }
}
