//! mcp-kernel patch: a bound on native recursion, shared by the parser and `boa_engine`'s
//! recursive builtins (`JSON.stringify`, `Array.prototype.join`, ...).
//!
//! Deeply nested input (an object 200,000 levels deep, 100,000 nested parentheses) recursed
//! natively until the thread's stack overflowed, which kills the process instead of throwing.
//! Each recursive step now calls [`exhausted`] first and fails with "Maximum call stack size
//! exceeded" (a `RangeError` in the engine, as in V8) once the stack below the highest point
//! at which any check ran on this thread has grown by more than [`BUDGET_BYTES`].
//!
//! Measuring bytes rather than counting levels keeps the bound right whatever the frame sizes
//! of a build are. The default budget, [`BUDGET_BYTES`], assumes the checks run on a thread
//! with at least 8 MiB of stack (the Linux main-thread default): it leaves half of it for the
//! frames above the first check and for the work between two checks. A program that gives its
//! thread a larger stack (mcp-kernel's worker raises `RLIMIT_STACK` for its main thread, where
//! it runs JavaScript) sets a larger budget with [`set_budget_bytes`].

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Default stack, in bytes, that recursion between checks may use below the highest check seen.
pub const BUDGET_BYTES: usize = 4 * 1024 * 1024;

/// The budget in force, in bytes; [`BUDGET_BYTES`] until [`set_budget_bytes`] changes it.
static BUDGET: AtomicUsize = AtomicUsize::new(BUDGET_BYTES);

/// Sets the stack, in bytes, that recursion may use below the highest check seen, for every
/// thread. The caller must leave enough stack beyond it for the frames above the first check
/// and the work between two checks (a few MiB).
pub fn set_budget_bytes(bytes: usize) {
    BUDGET.store(bytes, Ordering::Relaxed);
}

/// The budget in force, in bytes.
#[must_use]
pub fn budget_bytes() -> usize {
    BUDGET.load(Ordering::Relaxed)
}

/// The message of the error a check failure becomes (V8's words).
pub const MESSAGE: &str = "Maximum call stack size exceeded";

thread_local! {
    /// The highest stack address seen at a check on this thread (the stack grows down).
    static HIGHEST: Cell<usize> = const { Cell::new(0) };
}

/// Whether the recursion that is about to go one level deeper must stop instead.
#[inline(never)]
#[must_use]
pub fn exhausted() -> bool {
    let marker = 0u8;
    let here = std::ptr::from_ref(std::hint::black_box(&marker)) as usize;
    HIGHEST.with(|highest| {
        let top = highest.get();
        if here > top {
            highest.set(here);
            false
        } else {
            top - here > BUDGET.load(Ordering::Relaxed)
        }
    })
}
