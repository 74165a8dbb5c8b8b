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
//! of a build are. The budget assumes the checks run on a thread with at least 8 MiB of stack
//! (the Linux main-thread default, where mcp-kernel's worker runs JavaScript): it leaves half
//! of it for the frames above the first check and for the work between two checks.

use std::cell::Cell;

/// Stack, in bytes, that recursion between checks may use below the highest check seen.
pub const BUDGET_BYTES: usize = 4 * 1024 * 1024;

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
            top - here > BUDGET_BYTES
        }
    })
}
