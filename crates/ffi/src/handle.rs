//! Handles: how Rust values become opaque C pointers and back.
//!
//! Each C type is a zero-sized private struct that implements [`Castable`], which says what Rust
//! value is behind it and how it is owned:
//!
//! - [`OwnershipBox`]: one owner, mutable (builders, requests, tasks, bytes, errors). Made by
//!   [`to_box_ptr`], freed by [`free_box`], borrowed by [`try_ref`] or [`try_mut`].
//! - [`OwnershipArc`]: shared and immutable (the client). Made by [`to_arc_ptr`], released by
//!   [`free_arc`], borrowed by [`try_ref`] only.
//!
//! Freeing a Box handle as an Arc (or mutating an Arc handle) does not compile.
//!
//! The `arg_*!` macros turn pointer parameters into Rust values at the top of an exported
//! function, returning `BACKDROP_ERR_NULL_PARAMETER` (or `BACKDROP_ERR_INVALID_UTF8`) before
//! anything was consumed or written.

#![allow(unsafe_code)] // the pointer conversions of the whole crate live here

use std::ffi::{CStr, c_char};
use std::marker::PhantomData;
use std::sync::Arc;

/// A C handle type and the Rust value behind it.
pub(crate) trait Castable {
    /// [`OwnershipBox`] or [`OwnershipArc`].
    type Ownership;
    /// The Rust value.
    type RustType;
}

/// Marks a handle owned through a `Box`.
pub(crate) struct OwnershipBox;

/// Marks a handle shared through an `Arc`.
pub(crate) struct OwnershipArc;

/// Moves `value` to the heap and returns its handle.
pub(crate) fn to_box_ptr<C: Castable<Ownership = OwnershipBox>>(value: C::RustType) -> *mut C {
    Box::into_raw(Box::new(value)).cast()
}

/// Shares `value` and returns its handle (one reference).
pub(crate) fn to_arc_ptr<C: Castable<Ownership = OwnershipArc>>(value: C::RustType) -> *const C {
    Arc::into_raw(Arc::new(value)).cast()
}

/// Frees a Box handle; NULL is a no-op.
///
/// # Safety
/// `ptr` is NULL or a handle from [`to_box_ptr`] of the same type, not freed before, and not used
/// after.
pub(crate) unsafe fn free_box<C: Castable<Ownership = OwnershipBox>>(ptr: *mut C) {
    if !ptr.is_null() {
        // SAFETY: by this function's contract, `ptr` came from `Box::into_raw` of a `RustType`.
        drop(unsafe { Box::from_raw(ptr.cast::<C::RustType>()) });
    }
}

/// Releases one reference of an Arc handle; NULL is a no-op.
///
/// # Safety
/// `ptr` is NULL or a handle from [`to_arc_ptr`] of the same type whose reference the caller
/// owns and gives up.
pub(crate) unsafe fn free_arc<C: Castable<Ownership = OwnershipArc>>(ptr: *const C) {
    if !ptr.is_null() {
        // SAFETY: by this function's contract, `ptr` came from `Arc::into_raw` of a `RustType`
        // and the caller owns the reference it gives back.
        drop(unsafe { Arc::from_raw(ptr.cast::<C::RustType>()) });
    }
}

/// Borrows the value behind a handle of either ownership.
///
/// # Safety
/// `ptr` is NULL or a live handle of type `C`, not mutated by anyone during `'a`.
pub(crate) unsafe fn try_ref<'a, C: Castable>(ptr: *const C) -> Option<&'a C::RustType> {
    // SAFETY: by this function's contract, a non-NULL `ptr` points to a live `RustType`.
    unsafe { ptr.cast::<C::RustType>().as_ref() }
}

/// Borrows the value behind a Box handle mutably.
///
/// # Safety
/// `ptr` is NULL or a live Box handle of type `C`, used by no one else during `'a`.
pub(crate) unsafe fn try_mut<'a, C: Castable<Ownership = OwnershipBox>>(
    ptr: *mut C,
) -> Option<&'a mut C::RustType> {
    // SAFETY: by this function's contract, a non-NULL `ptr` points to a live, unshared `RustType`.
    unsafe { ptr.cast::<C::RustType>().as_mut() }
}

/// A checked, non-NULL output pointer: written once, at the end of a successful call.
pub(crate) struct OutPtr<T> {
    ptr: *mut T,
    _written: PhantomData<T>,
}

impl<T> OutPtr<T> {
    /// Checks an output pointer; `None` when it is NULL.
    pub(crate) fn new(ptr: *mut T) -> Option<Self> {
        (!ptr.is_null()).then_some(OutPtr {
            ptr,
            _written: PhantomData,
        })
    }

    /// Stores `value` (without reading or dropping what was there).
    ///
    /// # Safety
    /// The pointer given to [`OutPtr::new`] is valid for writing a `T`.
    pub(crate) unsafe fn write(self, value: T) {
        // SAFETY: non-NULL by construction; valid for writes by this function's contract.
        unsafe { self.ptr.write(value) }
    }
}

/// Reads a C string parameter as UTF-8.
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string that stays valid and unchanged during `'a`.
pub(crate) unsafe fn try_str<'a>(
    ptr: *const c_char,
) -> Option<Result<&'a str, std::str::Utf8Error>> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-NULL, NUL-terminated and live by this function's contract.
    Some(unsafe { CStr::from_ptr(ptr) }.to_str())
}

/// Reads a C string parameter as raw bytes (for paths, which need not be UTF-8 on Unix).
///
/// # Safety
/// As [`try_str`].
pub(crate) unsafe fn try_c_bytes<'a>(ptr: *const c_char) -> Option<&'a [u8]> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-NULL, NUL-terminated and live by this function's contract.
    Some(unsafe { CStr::from_ptr(ptr) }.to_bytes())
}

/// Borrows a `(ptr, len)` input buffer.
///
/// # Safety
/// `ptr` is NULL or valid for reading `len` bytes that stay unchanged during `'a`.
pub(crate) unsafe fn try_slice<'a>(ptr: *const u8, len: usize) -> Option<&'a [u8]> {
    if ptr.is_null() || len > isize::MAX as usize {
        return None;
    }
    // SAFETY: non-NULL, `len` readable bytes (at most isize::MAX) by this function's contract.
    Some(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Writes `text` into a caller's buffer snprintf-style and returns the size the whole text
/// needs, its NUL included. Cuts at a character boundary; writes nothing for NULL or 0.
///
/// # Safety
/// `buf` is NULL or valid for writing `len` bytes.
pub(crate) unsafe fn write_c_string(text: &str, buf: *mut c_char, len: usize) -> usize {
    // A text with an inner NUL would read shorter in C: cut it there.
    let text = text.split('\0').next().unwrap_or_default();
    let needed = text.len() + 1;
    if buf.is_null() || len == 0 {
        return needed;
    }
    let mut take = text.len().min(len - 1);
    while !text.is_char_boundary(take) {
        take -= 1;
    }
    // SAFETY: `take + 1 <= len` bytes are written, within the buffer by this function's
    // contract; the source is a live `&str` that cannot overlap a caller's buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), take);
        buf.add(take).write(0);
    }
    needed
}

/// Borrows a handle argument (`const T *`), or returns the null-parameter failure.
macro_rules! arg_ref {
    ($ptr:ident) => {
        // SAFETY: the header's contract for every handle parameter: NULL or a live handle of
        // its type that no other thread frees or mutates during the call.
        match unsafe { $crate::handle::try_ref($ptr) } {
            Some(value) => value,
            None => return Err($crate::error::Fault::null(stringify!($ptr))),
        }
    };
}

/// Borrows a Box handle argument mutably (`T *`), or returns the null-parameter failure.
macro_rules! arg_mut {
    ($ptr:ident) => {
        // SAFETY: the header's contract for every mutable handle parameter: NULL or a live
        // handle of its type used by no other thread during the call.
        match unsafe { $crate::handle::try_mut($ptr) } {
            Some(value) => value,
            None => return Err($crate::error::Fault::null(stringify!($ptr))),
        }
    };
}

/// Reads a UTF-8 string argument, or returns the null-parameter / invalid-UTF-8 failure.
macro_rules! arg_str {
    ($ptr:ident) => {
        // SAFETY: the header's contract for every string parameter: NULL or a NUL-terminated
        // string that stays valid during the call.
        match unsafe { $crate::handle::try_str($ptr) } {
            Some(Ok(text)) => text,
            Some(Err(_)) => return Err($crate::error::Fault::utf8(stringify!($ptr))),
            None => return Err($crate::error::Fault::null(stringify!($ptr))),
        }
    };
}

/// Reads a path argument (any bytes on Unix, UTF-8 elsewhere), or returns a failure.
macro_rules! arg_path {
    ($ptr:ident) => {{
        // SAFETY: the header's contract for every string parameter: NULL or a NUL-terminated
        // string that stays valid during the call.
        match unsafe { $crate::handle::try_c_bytes($ptr) } {
            Some(bytes) => match $crate::handle::path_from_bytes(bytes) {
                Some(path) => path,
                None => return Err($crate::error::Fault::utf8(stringify!($ptr))),
            },
            None => return Err($crate::error::Fault::null(stringify!($ptr))),
        }
    }};
}

/// Borrows a `(ptr, len)` input buffer, or returns the null-parameter failure.
macro_rules! arg_slice {
    ($ptr:ident, $len:ident) => {
        // SAFETY: the header's contract for every buffer parameter: NULL or valid for reading
        // `len` bytes during the call.
        match unsafe { $crate::handle::try_slice($ptr, $len) } {
            Some(bytes) => bytes,
            None => return Err($crate::error::Fault::null(stringify!($ptr))),
        }
    };
}

/// Borrows a `(ptr, len)` image buffer like `arg_slice!`, but first refuses a `len` over the
/// service's 20 MiB limit (`BACKDROP_ERR_INVALID_FILE_TOO_LARGE`) without touching the buffer:
/// such an image can never be sent, and copying it would allocate whatever `len` says.
macro_rules! arg_image {
    ($ptr:ident, $len:ident) => {{
        if !$ptr.is_null() && $len > 0 {
            ::backdrop_core::validate::check_file_size(u64::try_from($len).unwrap_or(u64::MAX))?;
        }
        arg_slice!($ptr, $len)
    }};
}

/// Checks an output pointer, or returns the null-parameter failure.
macro_rules! arg_out {
    ($ptr:ident) => {
        match $crate::handle::OutPtr::new($ptr) {
            Some(out) => out,
            None => return Err($crate::error::Fault::null(stringify!($ptr))),
        }
    };
}

/// Writes a checked output pointer (the last step of a successful call).
macro_rules! write_out {
    ($out:ident, $value:expr) => {
        // SAFETY: the header's contract for every output parameter: valid for writing one
        // value of its type; `OutPtr` already checked it is not NULL.
        unsafe { $out.write($value) }
    };
}

/// A path from the bytes of a C string.
pub(crate) fn path_from_bytes(bytes: &[u8]) -> Option<std::path::PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Some(std::path::PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(bytes)
            .ok()
            .map(std::path::PathBuf::from)
    }
}

/// A C string from Rust text, with any inner NUL replaced (so it is never cut short).
pub(crate) fn c_string(text: &str) -> std::ffi::CString {
    let cleaned = text.replace('\0', "\u{FFFD}");
    std::ffi::CString::new(cleaned).unwrap_or_default()
}

/// A NUL-terminated copy of a static text, made once and kept for the life of the process (the
/// set of such texts is finite: state meanings), so C may hold the pointer forever.
pub(crate) fn static_c_string(text: &'static str) -> *const c_char {
    use std::sync::{Mutex, PoisonError};

    // A Vec, not a hash map: its elements and their CString buffers stay reachable from the
    // static for leak checkers; the set is small (a few dozen texts at most).
    static INTERNED: Mutex<Vec<(&'static str, std::ffi::CString)>> = Mutex::new(Vec::new());
    let mut interned = INTERNED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, kept)) = interned.iter().find(|(known, _)| *known == text) {
        return kept.as_ptr();
    }
    let kept = c_string(text);
    // The CString's buffer does not move when the Vec grows, so the pointer stays valid.
    let pointer = kept.as_ptr();
    interned.push((text, kept));
    pointer
}
