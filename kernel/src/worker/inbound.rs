//! Frames from the supervisor, read on the worker's own runtime.
//!
//! Stdin is a pipe; it is made non-blocking and registered with the current-thread runtime's
//! reactor (`AsyncFd`), so a frame wakes the thread that runs the engine directly. (A reader
//! thread handing frames over a channel cost one extra cross-thread wake-up per frame.)

use std::fs::File;
use std::io::Read as _;
use std::os::fd::AsFd as _;

use tokio::io::unix::AsyncFd;

use crate::protocol::{MAX_FRAME_BYTES, ToWorker};

/// Reads [`ToWorker`] frames. `recv` is cancel-safe: bytes read before a cancellation stay in
/// the buffer for the next call.
pub(crate) struct Inbound {
    fd: AsyncFd<File>,
    buffer: Vec<u8>,
}

impl Inbound {
    /// Takes over stdin (a duplicate of fd 0), non-blocking. Must run inside the runtime.
    #[allow(
        deprecated,
        reason = "AsyncFd::new is deprecated for types that do not own their fd; the File owns \
                  this duplicate and the AsyncFd owns the File, so it cannot be closed while \
                  registered, and the safe constructor's replacement is `unsafe`"
    )]
    pub(crate) fn stdin() -> std::io::Result<Self> {
        let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
        rustix::io::ioctl_fionbio(&fd, true)?;
        Ok(Self {
            fd: AsyncFd::new(File::from(fd))?,
            buffer: Vec::with_capacity(64 << 10),
        })
    }

    /// The next frame; `None` at end of input or on a malformed frame (the supervisor is gone
    /// or broken, so the worker should exit).
    pub(crate) async fn recv(&mut self) -> Option<ToWorker> {
        loop {
            if self.buffer.len() >= 4 {
                let len = u32::from_be_bytes(self.buffer[..4].try_into().ok()?) as usize;
                if len > MAX_FRAME_BYTES {
                    return None;
                }
                if self.buffer.len() >= 4 + len {
                    let frame = serde_json::from_slice(&self.buffer[4..4 + len]);
                    self.buffer.drain(..4 + len);
                    return frame.ok();
                }
            }
            let mut guard = self.fd.readable().await.ok()?;
            let mut chunk = [0u8; 64 << 10];
            match guard.try_io(|fd| fd.get_ref().read(&mut chunk)) {
                Ok(Ok(0)) => return None,
                Ok(Ok(n)) => self.buffer.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Ok(Err(_)) => return None,
                Err(_would_block) => {}
            }
        }
    }
}
