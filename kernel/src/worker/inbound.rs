//! Frames from the supervisor, read on the worker's own runtime.
//!
//! Stdin is a pipe, registered non-blocking with the current-thread runtime's reactor
//! (`tokio::net::unix::pipe::Receiver`), so a frame wakes the thread that runs the engine
//! directly, with no reader thread. Frames are split by a `FramedRead` with the supervisor's
//! own [`codec`].

use futures::StreamExt as _;
use tokio::net::unix::pipe;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use crate::protocol::{ToWorker, codec};

/// Reads [`ToWorker`] frames. `recv` is cancel-safe: bytes read before a cancellation stay in
/// the buffer for the next call.
pub(crate) struct Inbound {
    frames: FramedRead<pipe::Receiver, LengthDelimitedCodec>,
}

impl Inbound {
    /// Takes over stdin (a duplicate of fd 0), non-blocking. Must run inside the runtime,
    /// before seccomp.
    pub(crate) fn stdin() -> std::io::Result<Self> {
        use std::os::fd::AsFd as _;
        let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
        let pipe = pipe::Receiver::from_owned_fd(fd)?;
        Ok(Self {
            frames: FramedRead::with_capacity(pipe, codec(), 64 << 10),
        })
    }

    /// The next frame; `None` at end of input or on a malformed or oversized frame (the
    /// supervisor is gone or broken, so the worker should exit).
    pub(crate) async fn recv(&mut self) -> Option<ToWorker> {
        let frame = self.recv_raw().await?;
        serde_json::from_slice(&frame).ok()
    }

    /// The next frame's bytes, undecoded (the entries after a `Restore`).
    pub(crate) async fn recv_raw(&mut self) -> Option<bytes::BytesMut> {
        self.frames.next().await?.ok()
    }
}
