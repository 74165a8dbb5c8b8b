//! The process's allocator, wrapped by the `cap` crate so the worker can read how many bytes
//! are live (`cap::Cap::allocated`, one atomic counter; no syscall, so it works under seccomp).
//!
//! The worker uses it to decide when a call left enough garbage to collect: Boa's collector
//! counts only its object headers, not the storage they own (a dropped 100,000-entry `Map`
//! leaves ~12 MB it never sees), while a full collection after every call costs more than the
//! rest of a trivial call (measured with `perf`: marking the realm's intrinsics dominated a
//! `return 1`). See [`grew_since_last_collection`].

use std::alloc::System;
use std::sync::atomic::{AtomicUsize, Ordering};

#[global_allocator]
static ALLOCATOR: cap::Cap<System> = cap::Cap::new(System, usize::MAX);

/// Live heap bytes after the last collection the worker forced (or the lowest seen since).
static BASELINE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Growth of the live heap, in bytes, past which the worker collects after a call (8 MiB).
/// Below it, garbage is left to Boa's own threshold; above it, a call's garbage is collected
/// before the next call, so memory cannot grow call by call by more than this.
pub(crate) const COLLECT_AFTER_GROWTH_BYTES: usize = 8 << 20;

/// Bytes currently allocated by the whole process.
pub(crate) fn live_bytes() -> usize {
    ALLOCATOR.allocated()
}

/// Whether the live heap grew by more than [`COLLECT_AFTER_GROWTH_BYTES`] since the last
/// forced collection; the baseline follows the heap down when it shrinks on its own.
pub(crate) fn grew_since_last_collection() -> bool {
    let now = live_bytes();
    let baseline = BASELINE_BYTES.fetch_min(now, Ordering::Relaxed).min(now);
    now > baseline + COLLECT_AFTER_GROWTH_BYTES
}

/// Records the live heap after a forced collection.
pub(crate) fn collected() {
    BASELINE_BYTES.store(live_bytes(), Ordering::Relaxed);
}
