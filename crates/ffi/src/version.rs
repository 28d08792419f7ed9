//! The library's version.

#![allow(unsafe_code)] // exports a #[no_mangle] function

use std::ffi::{CStr, c_char};

/// The major number of the version this header belongs to (`BACKDROP_VERSION_MAJOR` in C): test it
/// with `#if` to use a function only a later version has. A unit test checks that the three
/// numbers are the crate's version, and the C suite that they match `backdrop_version()`.
pub const BACKDROP_VERSION_MAJOR: u32 = 0;
/// The minor number of the version this header belongs to (`BACKDROP_VERSION_MINOR` in C).
pub const BACKDROP_VERSION_MINOR: u32 = 1;
/// The patch number of the version this header belongs to (`BACKDROP_VERSION_PATCH` in C).
pub const BACKDROP_VERSION_PATCH: u32 = 0;

/// The version, from the workspace's one version number.
const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(version) => version,
        Err(_) => c"unknown",
    };

/// The version of the library, such as `"0.1.0"` (semantic versioning). The shared library's
/// SONAME carries the part that promises compatibility: the major number from 1.0 on, 0.minor
/// before (`libbackdrop.so.0.1` for 0.1.z).
///
/// Returns a static NUL-terminated string that is never freed. Never NULL; thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn backdrop_version() -> *const c_char {
    ffi_infallible!(c"unknown".as_ptr(), { VERSION.as_ptr() })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_is_the_crate_version() {
        // SAFETY: a static NUL-terminated string.
        let version = unsafe { std::ffi::CStr::from_ptr(super::backdrop_version()) };
        assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn the_header_macros_are_the_crate_version() {
        let parts = [
            super::BACKDROP_VERSION_MAJOR,
            super::BACKDROP_VERSION_MINOR,
            super::BACKDROP_VERSION_PATCH,
        ]
        .map(|part| part.to_string());
        assert_eq!(
            parts,
            [
                env!("CARGO_PKG_VERSION_MAJOR"),
                env!("CARGO_PKG_VERSION_MINOR"),
                env!("CARGO_PKG_VERSION_PATCH"),
            ],
            "bump BACKDROP_VERSION_* in crates/ffi/src/version.rs with the workspace version, \
             then bless the header"
        );
    }
}
