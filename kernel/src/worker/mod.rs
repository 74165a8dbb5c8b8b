//! The worker process (`mcp-kernel worker`): one Boa Context on a current-thread tokio runtime,
//! driven by frames on stdin and answering on stdout.
//!
//! Start-up order matters for the sandbox: set the parent-death signal, read `Init`, apply
//! rlimits and Landlock, start the
//! runtime and its stdin reader (`inbound.rs`), build the Context, then install seccomp on every
//! thread and only then announce `Ready`. No untrusted byte is evaluated before that.

mod engine;
mod executor;
mod inbound;
pub(crate) mod shape;

use std::io::{Read, Write};
use std::os::fd::AsFd as _;
use std::process::ExitCode;

use crate::protocol::{FromWorker, MAX_FRAME_BYTES, PROTOCOL_VERSION, ToWorker};
use crate::sandbox;
use engine::Engine;
use inbound::Inbound;

/// Reads one frame; `Ok(None)` at a clean end of stream.
fn read_frame(input: &mut impl Read) -> std::io::Result<Option<ToWorker>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes exceeds {MAX_FRAME_BYTES}"
        )));
    }
    let mut body = vec![0u8; len];
    input.read_exact(&mut body)?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(std::io::Error::other)
}

/// Writes one frame to stdout. A supervisor that stopped reading has abandoned this worker, so
/// a failed write ends the process.
pub(crate) fn send(message: &FromWorker) {
    let body = serde_json::to_vec(message).expect("protocol frames always serialise");
    let mut out = std::io::stdout().lock();
    let ok = u32::try_from(body.len()).is_ok_and(|len| {
        out.write_all(&len.to_be_bytes()).is_ok()
            && out.write_all(&body).is_ok()
            && out.flush().is_ok()
    });
    if !ok {
        std::process::exit(3);
    }
}

fn fatal(message: &str) -> ExitCode {
    eprintln!("mcp-kernel worker: {message}");
    ExitCode::from(2)
}

/// Entry point of the hidden `worker` subcommand.
pub(crate) fn run() -> ExitCode {
    if let Err(e) = sandbox::die_with_parent() {
        return fatal(&format!("sandbox: {e}"));
    }
    // Unbuffered: std's locked stdin would buffer bytes past the Init frame that the
    // runtime's reader (`Inbound`) then never sees.
    let mut raw_stdin = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => std::fs::File::from(fd),
        Err(e) => return fatal(&format!("stdin: {e}")),
    };
    let limits = match read_frame(&mut raw_stdin) {
        Ok(Some(ToWorker::Init { version, limits })) if version == PROTOCOL_VERSION => limits,
        Ok(Some(ToWorker::Init { version, .. })) => {
            return fatal(&format!(
                "supervisor speaks protocol {version}, this worker speaks {PROTOCOL_VERSION}"
            ));
        }
        Ok(_) => return fatal("expected an Init frame first"),
        Err(e) => return fatal(&format!("reading Init: {e}")),
    };
    if let Err(e) = sandbox::confine_process(limits.memory_mib) {
        return fatal(&format!("sandbox: {e}"));
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fatal(&format!("starting the runtime: {e}")),
    };
    let inbound = match runtime.block_on(async { Inbound::stdin() }) {
        Ok(inbound) => inbound,
        Err(e) => return fatal(&format!("reading stdin: {e}")),
    };
    let engine = match Engine::new(limits) {
        Ok(engine) => engine,
        Err(e) => return fatal(&format!("building the Context: {e}")),
    };
    if let Err(e) = sandbox::install_seccomp() {
        return fatal(&format!("seccomp: {e}"));
    }
    send(&FromWorker::Ready {
        version: PROTOCOL_VERSION,
        pid: std::process::id(),
    });
    runtime.block_on(serve(engine, inbound));
    ExitCode::SUCCESS
}

async fn serve(mut engine: Engine, mut inbound: Inbound) {
    while let Some(message) = inbound.recv().await {
        match message {
            ToWorker::Execute { id, code } => match engine.execute(id, &code, &mut inbound).await {
                Some(reply) => send(&reply),
                None => return,
            },
            ToWorker::Restore { entries } => send(&engine.restore(entries)),
            // A late reply to a host call of a call that has already finished.
            ToWorker::HostReply { .. } => {}
            ToWorker::Shutdown | ToWorker::Init { .. } => return,
        }
    }
}
