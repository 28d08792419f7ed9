//! Hooks for the test suite only, compiled with the `test-hooks` feature and never part of the
//! installed library or the header.

#![allow(unsafe_code)] // exports a #[no_mangle] function

use crate::error::backdrop_error;
use crate::result::backdrop_result;

/// Panics inside the panic boundary, to prove from C that a panic becomes
/// `BACKDROP_ERR_PANIC` (with detail in `*error_out`) instead of aborting the host.
#[doc(hidden)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_test_panic(
    error_out: *mut *mut backdrop_error,
) -> backdrop_result {
    ffi_boundary!(error_out = error_out, {
        panic!("backdrop_test_panic: a deliberate panic to test the boundary")
    })
}
