//! The panic boundary: every exported function runs its body inside `catch_unwind`, so a bug in
//! the library (or in a dependency) becomes `BACKDROP_ERR_PANIC` instead of unwinding into C,
//! which would abort the host.
//!
//! `tests/boundary.rs` checks that the body of every exported function is one of these macros.

#![allow(unsafe_code)] // writes the caller's optional `backdrop_error **`

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{Fault, backdrop_error};
use crate::result::backdrop_result::{self, BACKDROP_OK};

/// Runs the body of a fallible exported function: a block that returns
/// `Result<(), Fault>`. Returns the `backdrop_result`; on failure, writes the error detail to the
/// optional `backdrop_error **` named by `error_out`.
macro_rules! ffi_boundary {
    (error_out = $error_out:ident, $body:block) => {{
        let outcome = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(
            || -> ::std::result::Result<(), $crate::error::Fault> { $body },
        ));
        // SAFETY: `error_out` is NULL or points to writable storage for one pointer (the
        // header's contract for every `backdrop_error **error_out` parameter).
        unsafe { $crate::boundary::finish(outcome, $error_out) }
    }};
    ($body:block) => {{
        let outcome = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(
            || -> ::std::result::Result<(), $crate::error::Fault> { $body },
        ));
        // SAFETY: a NULL `error_out` is never written.
        unsafe { $crate::boundary::finish(outcome, ::std::ptr::null_mut()) }
    }};
}

/// Runs the body of an infallible exported function (an accessor, a `_free`), returning
/// `$on_panic` if it panics.
macro_rules! ffi_infallible {
    ($on_panic:expr, $body:block) => {{
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(payload) => {
                $crate::panic_payload::discard(payload);
                $on_panic
            }
        }
    }};
}

/// Turns the outcome of a body into its result code, writing the error detail when asked.
///
/// # Safety
/// `error_out` is NULL or valid for writing one pointer.
pub(crate) unsafe fn finish(
    outcome: std::thread::Result<Result<(), Fault>>,
    error_out: *mut *mut backdrop_error,
) -> backdrop_result {
    let failure = match outcome {
        Ok(Ok(())) => return BACKDROP_OK,
        Ok(Err(failure)) => failure,
        Err(payload) => Fault::panic(payload),
    };
    let code = failure.code();
    if !error_out.is_null() {
        // Building the detail allocates; should even that panic, the code alone is returned.
        if let Ok(detail) = catch_unwind(AssertUnwindSafe(move || failure.into_raw())) {
            // SAFETY: checked non-NULL above; valid for writes by this function's contract.
            unsafe { error_out.write(detail) };
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use std::ptr;

    use crate::error::{backdrop_error_code, backdrop_error_free, backdrop_error_message};
    use crate::result::backdrop_result::{
        self, BACKDROP_ERR_INVALID_ARGUMENT, BACKDROP_ERR_PANIC, BACKDROP_OK,
    };

    fn panicking(error_out: *mut *mut crate::error::backdrop_error) -> backdrop_result {
        ffi_boundary!(error_out = error_out, {
            let values: Vec<u32> = Vec::new();
            let index = values.len() + 3;
            if values[index] == 0 {
                return Ok(());
            }
            Ok(())
        })
    }

    fn failing(error_out: *mut *mut crate::error::backdrop_error) -> backdrop_result {
        ffi_boundary!(error_out = error_out, {
            Err(crate::error::Fault::invalid_argument("x must be positive"))
        })
    }

    #[test]
    fn a_panic_becomes_the_panic_code_with_detail() {
        let mut error = ptr::null_mut();
        assert_eq!(panicking(&mut error), BACKDROP_ERR_PANIC);
        assert!(!error.is_null());
        // SAFETY: a live error from the boundary.
        unsafe {
            assert_eq!(backdrop_error_code(error), BACKDROP_ERR_PANIC);
            let message = std::ffi::CStr::from_ptr(backdrop_error_message(error));
            assert!(message.to_str().unwrap().contains("index out of bounds"));
            backdrop_error_free(error);
        }
        assert_eq!(panicking(ptr::null_mut()), BACKDROP_ERR_PANIC);
    }

    #[test]
    fn failures_carry_their_code_and_outputs_stay_untouched_on_success() {
        let mut error = ptr::null_mut();
        assert_eq!(failing(&mut error), BACKDROP_ERR_INVALID_ARGUMENT);
        // SAFETY: a live error from the boundary.
        unsafe { backdrop_error_free(error) };
        let ok = || -> backdrop_result { ffi_boundary!({ Ok(()) }) };
        assert_eq!(ok(), BACKDROP_OK);
        let infallible = || -> i32 {
            ffi_infallible!(-1, {
                let v: Vec<i32> = Vec::new();
                v[v.len()]
            })
        };
        assert_eq!(infallible(), -1);
    }
}
