//! mcp-kernel patch: appendable strings, so that `s += x` in a loop is amortised linear.
//!
//! Boa's strings are flat and immutable, so `s = s + x` copied all of `s` every time and a
//! loop of `+=` was quadratic. An [`AppendString`] is a view `(buffer, len)` of the first
//! `len` code units of a shared [`AppendBuffer`], which has spare capacity and a "used" count.
//! [`concat_onto`] of a view whose `len` equals its buffer's used count (the *tip* of the
//! chain) writes the new parts after it, in place, bumps the used count and returns a new,
//! longer view of the same buffer. Code units below the used count are never written again,
//! so every existing view stays valid and immutable: `a = s + 'x'; b = s + 'y'` appends `x` in
//! place for `a`, and `b` (no longer the tip) gets a buffer of its own.
//!
//! Memory bound: a buffer made for a result of `n` code units holds at most `2n` (spare
//! capacity never exceeds the result it was made for). Only a view at the tip of a full buffer
//! (evidence of a chain) gets the doubled capacity; any other concatenation at or above
//! [`APPEND_MIN_LEN`] gets a buffer of exactly its length (so `prefix + item` over many items
//! costs what it did), and shorter results stay plain sequence strings. Every view is at least
//! half as long as the capacity of the buffer it keeps alive. If the doubled buffer cannot be
//! allocated (address-space cap), the exact length is tried before giving up.
use crate::iter::CodePointsIter;
use crate::vtable::JsStringVTable;
use crate::{JsStr, JsStrVariant, JsString, JsStringKind, alloc_overflow};
use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::cell::Cell;
use std::process::abort;
use std::ptr::{self, NonNull};

/// Results shorter than this many code units are plain sequence strings, as before the patch.
pub(crate) const APPEND_MIN_LEN: usize = 1024;

/// The shared storage of an append chain: this header, then `capacity` code units (bytes for
/// Latin1, `u16` for UTF-16) at [`DATA_OFFSET`].
#[repr(C)]
struct AppendBuffer {
    /// Number of [`AppendString`] views holding this buffer.
    refcount: Cell<usize>,
    /// Code units written so far. It only grows, and units below it never change.
    used: Cell<usize>,
    /// Code units the allocation has room for.
    capacity: usize,
    /// Latin1 (one byte per unit) or UTF-16 (two bytes per unit).
    latin1: bool,
}

/// Offset of the code units from the start of an [`AppendBuffer`] allocation (a multiple of
/// its alignment, so `u16` data is aligned).
const DATA_OFFSET: usize = size_of::<AppendBuffer>();

impl AppendBuffer {
    /// The layout of a buffer of `capacity` units, or `None` on overflow.
    fn layout(capacity: usize, latin1: bool) -> Option<Layout> {
        let unit = if latin1 { 1 } else { 2 };
        let size = capacity.checked_mul(unit)?.checked_add(DATA_OFFSET)?;
        Layout::from_size_align(size, align_of::<AppendBuffer>()).ok()
    }

    /// Allocates a buffer with room for `capacity` units, none used, no views yet.
    ///
    /// # Errors
    /// `Err(None)` on size overflow, `Err(Some(layout))` when the allocator refuses.
    fn try_allocate(capacity: usize, latin1: bool) -> Result<NonNull<Self>, Option<Layout>> {
        let layout = Self::layout(capacity, latin1).ok_or(None)?;
        // SAFETY: the layout is never zero-sized (it holds the header).
        let ptr = unsafe { alloc(layout) }.cast::<Self>();
        let ptr = NonNull::new(ptr).ok_or(Some(layout))?;
        // SAFETY: freshly allocated with room and alignment for the header.
        unsafe {
            ptr.as_ptr().write(Self {
                refcount: Cell::new(0),
                used: Cell::new(0),
                capacity,
                latin1,
            });
        }
        Ok(ptr)
    }

    /// Pointer to the first code unit.
    fn data(this: NonNull<Self>) -> *mut u8 {
        // SAFETY: the allocation is at least `DATA_OFFSET` bytes long.
        unsafe { this.as_ptr().cast::<u8>().add(DATA_OFFSET) }
    }

    /// Copies `part` to unit `at` of the buffer, widening Latin1 to UTF-16 if needed.
    ///
    /// # Safety
    /// `at + part.len() <= capacity`, no view covers units `at..at + part.len()`, and `part`
    /// is Latin1 if the buffer is. `part` may lie in this buffer, below `at` (units there are
    /// never written, so the ranges are disjoint).
    unsafe fn write(this: NonNull<Self>, at: usize, part: JsStr<'_>) {
        // SAFETY: live buffer (caller).
        let latin1 = unsafe { this.as_ref() }.latin1;
        let data = Self::data(this);
        // SAFETY: in bounds and disjoint from `part` (caller); `data` is aligned for `u16`.
        unsafe {
            #[allow(clippy::cast_ptr_alignment)]
            match (latin1, part.variant()) {
                (true, JsStrVariant::Latin1(s)) => {
                    ptr::copy_nonoverlapping(s.as_ptr(), data.add(at), s.len());
                }
                (false, JsStrVariant::Latin1(s)) => {
                    let dst = data.cast::<u16>().add(at);
                    for (i, &b) in s.iter().enumerate() {
                        dst.add(i).write(u16::from(b));
                    }
                }
                (false, JsStrVariant::Utf16(s)) => {
                    ptr::copy_nonoverlapping(s.as_ptr(), data.cast::<u16>().add(at), s.len());
                }
                (true, JsStrVariant::Utf16(_)) => {
                    unreachable!("a UTF-16 part is never written to a Latin1 buffer")
                }
            }
        }
    }

    /// Drops one view's hold on the buffer, freeing it with the last.
    ///
    /// # Safety
    /// The caller held one count of `this`, and gives it up.
    unsafe fn release(this: NonNull<Self>) {
        // SAFETY: live buffer (caller).
        let buffer = unsafe { this.as_ref() };
        let Some(count) = buffer.refcount.get().checked_sub(1) else {
            abort();
        };
        buffer.refcount.set(count);
        if count == 0 {
            let layout = Self::layout(buffer.capacity, buffer.latin1)
                .expect("the layout was valid at allocation");
            // SAFETY: no view is left, and the layout is the one it was allocated with.
            unsafe { dealloc(this.as_ptr().cast(), layout) };
        }
    }
}

/// A view of the first `len` code units of an [`AppendBuffer`].
#[repr(C)]
pub(crate) struct AppendString {
    /// Embedded `VTable` - must be the first field for vtable dispatch. `len` is the view's.
    vtable: JsStringVTable,
    refcount: Cell<usize>,
    /// The buffer, held (one count) for as long as this view lives.
    buffer: NonNull<AppendBuffer>,
    /// Units `0..len` of the buffer; valid while `buffer` is held, and never written again.
    inner: JsStr<'static>,
}

impl AppendString {
    /// A new view of units `0..len` of `buffer` (which must have `len <= used`).
    fn view(buffer: NonNull<AppendBuffer>, len: usize) -> JsString {
        // SAFETY: live buffer, held by the caller.
        let header = unsafe { buffer.as_ref() };
        debug_assert!(len <= header.used.get());
        let Some(count) = header.refcount.get().checked_add(1) else {
            abort();
        };
        header.refcount.set(count);
        let data = AppendBuffer::data(buffer);
        // SAFETY: units `0..len <= used` are initialised and never written again; the slice
        // lives as long as the view, which holds the buffer.
        #[allow(clippy::cast_ptr_alignment)]
        let inner = unsafe {
            if header.latin1 {
                JsStr::latin1(std::slice::from_raw_parts(data, len))
            } else {
                JsStr::utf16(std::slice::from_raw_parts(data.cast::<u16>(), len))
            }
        };
        let view = Box::new(AppendString {
            vtable: JsStringVTable {
                clone: append_clone,
                drop: append_drop,
                as_str: append_as_str,
                code_points: append_code_points,
                refcount: append_refcount,
                len,
                kind: JsStringKind::Append,
            },
            refcount: Cell::new(1),
            buffer,
            inner,
        });
        // SAFETY: a valid string struct whose first field is its vtable.
        unsafe { JsString::from_ptr(NonNull::from(Box::leak(view)).cast()) }
    }
}

/// The string-concatenation of `prefix` and every part of `rest`, appended in place when
/// `prefix` is the tip of an append buffer with room (see the module documentation).
pub(crate) fn concat_onto(prefix: &JsString, rest: &[JsStr<'_>]) -> JsString {
    let mut rest_len = 0usize;
    let mut rest_latin1 = true;
    for part in rest {
        rest_len = rest_len
            .checked_add(part.len())
            .unwrap_or_else(|| alloc_overflow());
        rest_latin1 &= part.is_latin1();
    }
    if rest_len == 0 {
        return prefix.clone();
    }
    let len = prefix.len();
    let total = len
        .checked_add(rest_len)
        .unwrap_or_else(|| alloc_overflow());
    if total < APPEND_MIN_LEN {
        return match rest {
            [part] => JsString::concat(prefix.as_str(), *part),
            _ => {
                let parts: Vec<JsStr<'_>> = std::iter::once(prefix.as_str())
                    .chain(rest.iter().copied())
                    .collect();
                JsString::concat_array(&parts)
            }
        };
    }

    let mut at_tip = false;
    if prefix.kind() == JsStringKind::Append {
        // SAFETY: the kind says so.
        let view: &AppendString = unsafe { prefix.as_inner() };
        let buffer = view.buffer;
        // SAFETY: held by `view`.
        let header = unsafe { buffer.as_ref() };
        at_tip = header.used.get() == len;
        if at_tip && total <= header.capacity && (rest_latin1 || !header.latin1) {
            let mut at = len;
            for &part in rest {
                // SAFETY: `at + part.len() <= total <= capacity`; units from `used` up are
                // covered by no view; the encodings fit (checked above).
                unsafe { AppendBuffer::write(buffer, at, part) };
                at += part.len();
            }
            header.used.set(total);
            return AppendString::view(buffer, total);
        }
    }

    // A buffer of its own: doubled for the tip of a chain, exact otherwise.
    let latin1 = prefix.as_str().is_latin1() && rest_latin1;
    let wanted = if at_tip {
        total.saturating_mul(2)
    } else {
        total
    };
    let buffer = match AppendBuffer::try_allocate(wanted, latin1) {
        Ok(buffer) => buffer,
        Err(_) if wanted > total => match AppendBuffer::try_allocate(total, latin1) {
            Ok(buffer) => buffer,
            Err(None) => alloc_overflow(),
            Err(Some(layout)) => handle_alloc_error(layout),
        },
        Err(None) => alloc_overflow(),
        Err(Some(layout)) => handle_alloc_error(layout),
    };
    let mut at = 0;
    for part in std::iter::once(prefix.as_str()).chain(rest.iter().copied()) {
        // SAFETY: the parts add up to `total <= capacity`; the buffer is new, so no view
        // covers it and no part lies in it; Latin1 only if every part is.
        unsafe { AppendBuffer::write(buffer, at, part) };
        at += part.len();
    }
    // SAFETY: just allocated, not yet shared.
    unsafe { buffer.as_ref() }.used.set(total);
    AppendString::view(buffer, total)
}

#[inline]
fn append_clone(vtable: NonNull<JsStringVTable>) -> JsString {
    // SAFETY: This is part of the correct vtable which is validated on construction.
    let this: &AppendString = unsafe { vtable.cast().as_ref() };
    let Some(strong) = this.refcount.get().checked_add(1) else {
        abort();
    };
    this.refcount.set(strong);
    // SAFETY: validated the string outside this function.
    unsafe { JsString::from_ptr(vtable) }
}

#[inline]
fn append_drop(vtable: NonNull<JsStringVTable>) {
    // SAFETY: This is part of the correct vtable which is validated on construction.
    let this: &AppendString = unsafe { vtable.cast().as_ref() };
    let Some(new) = this.refcount.get().checked_sub(1) else {
        abort();
    };
    this.refcount.set(new);
    if new != 0 {
        return;
    }
    let buffer = this.buffer;
    // SAFETY: the last reference to the view, which was leaked from a `Box`.
    unsafe { drop(Box::from_raw(vtable.cast::<AppendString>().as_ptr())) };
    // SAFETY: the view held one count of its buffer.
    unsafe { AppendBuffer::release(buffer) };
}

#[inline]
fn append_as_str(vtable: NonNull<JsStringVTable>) -> JsStr<'static> {
    // SAFETY: This is part of the correct vtable which is validated on construction.
    let this: &AppendString = unsafe { vtable.cast().as_ref() };
    this.inner
}

#[inline]
fn append_code_points(vtable: NonNull<JsStringVTable>) -> CodePointsIter<'static> {
    CodePointsIter::new(append_as_str(vtable))
}

/// `VTable` function for refcount, need to return an `Option<usize>`.
#[inline]
#[allow(clippy::unnecessary_wraps)]
fn append_refcount(vtable: NonNull<JsStringVTable>) -> Option<usize> {
    // SAFETY: This is part of the correct vtable which is validated on construction.
    let this: &AppendString = unsafe { vtable.cast().as_ref() };
    Some(this.refcount.get())
}
