//! Error detail: the optional `backdrop_error **error_out` of the calls that can fail for a
//! reason worth explaining, and the accessors that read it.

#![allow(unsafe_code)] // exports #[no_mangle] functions

use std::any::Any;
use std::ffi::{CString, c_char};

use backdrop_core::validate::InspectFileError;
use backdrop_core::validate::ValidationError;
use backdrop_core::{Error as CoreError, Recovery};

use crate::handle::{Castable, OwnershipBox, c_string, free_box, to_box_ptr, try_ref};
use crate::result::backdrop_result::{self, *};

/// The detail of a failed call: its result code, a message that says what went wrong and what
/// to do, and, where they apply, the HTTP status, the task state and the task id.
///
/// Made by the library only, through a call's `error_out` parameter; owned by the caller, who
/// frees it with `backdrop_error_free`. Immutable: it may be read from several threads at once.
/// Messages never contain the API key.
pub struct backdrop_error {
    _private: [u8; 0],
}

impl Castable for backdrop_error {
    type Ownership = OwnershipBox;
    type RustType = ErrorDetail;
}

/// What a `backdrop_error` holds.
#[derive(Debug)]
pub(crate) struct ErrorDetail {
    code: backdrop_result,
    message: CString,
    http_status: u16,
    task_state: Option<i32>,
    task_id: Option<CString>,
    recovery: Recovery,
}

/// A failure on its way out of an exported function: a code and its detail.
#[derive(Debug)]
pub(crate) struct Fault {
    code: backdrop_result,
    message: String,
    http_status: u16,
    task_state: Option<i32>,
    task_id: Option<String>,
    recovery: Recovery,
}

impl Fault {
    /// A failure with a code and a message, and no other detail.
    pub(crate) fn new(code: backdrop_result, message: impl Into<String>) -> Fault {
        Fault {
            code,
            message: message.into(),
            http_status: 0,
            task_state: None,
            task_id: None,
            recovery: Recovery::Permanent,
        }
    }

    /// A required pointer parameter was NULL.
    pub(crate) fn null(parameter: &str) -> Fault {
        Fault::new(
            BACKDROP_ERR_NULL_PARAMETER,
            format!("parameter `{parameter}` is NULL; it must point to a valid value"),
        )
    }

    /// A string parameter is not UTF-8.
    pub(crate) fn utf8(parameter: &str) -> Fault {
        Fault::new(
            BACKDROP_ERR_INVALID_UTF8,
            format!("parameter `{parameter}` is not valid UTF-8"),
        )
    }

    /// A parameter is out of range.
    pub(crate) fn invalid_argument(message: impl Into<String>) -> Fault {
        Fault::new(BACKDROP_ERR_INVALID_ARGUMENT, message)
    }

    /// A caught panic.
    pub(crate) fn panic(payload: Box<dyn Any + Send>) -> Fault {
        let text = crate::panic_payload::panic_text(payload.as_ref());
        crate::panic_payload::discard(payload);
        Fault::new(
            BACKDROP_ERR_PANIC,
            format!(
                "a bug in libbackdrop was caught at the C boundary ({text}); no output was written — please report it"
            ),
        )
    }

    /// The result code.
    pub(crate) fn code(&self) -> backdrop_result {
        self.code
    }

    /// The message (for the tests).
    #[cfg(test)]
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// Attaches the task the failure concerns.
    pub(crate) fn with_task_id(mut self, task_id: &str) -> Fault {
        if self.task_id.is_none() {
            self.task_id = Some(task_id.to_owned());
        }
        self
    }

    /// Removes every occurrence of `secret` from the message (the API key must never show).
    pub(crate) fn redact(mut self, secret: &str) -> Fault {
        // A very short key would match ordinary words; core never puts the key in a message,
        // this is a second line of defence for real keys.
        if secret.len() >= 8 && self.message.contains(secret) {
            self.message = self.message.replace(secret, "<redacted>");
        }
        self
    }

    /// Moves the failure into a caller-owned `backdrop_error`.
    pub(crate) fn into_raw(self) -> *mut backdrop_error {
        to_box_ptr::<backdrop_error>(ErrorDetail {
            code: self.code,
            message: c_string(&self.message),
            http_status: self.http_status,
            task_state: self.task_state,
            task_id: self.task_id.as_deref().map(c_string),
            recovery: self.recovery,
        })
    }
}

/// The code of a validation rule.
pub(crate) fn validation_code(error: &ValidationError) -> backdrop_result {
    match error {
        ValidationError::EmptyFile => BACKDROP_ERR_INVALID_EMPTY_FILE,
        ValidationError::NotPng { .. } => BACKDROP_ERR_INVALID_NOT_PNG,
        ValidationError::CorruptPng { .. } => BACKDROP_ERR_INVALID_CORRUPT_PNG,
        ValidationError::FileTooLarge { .. } => BACKDROP_ERR_INVALID_FILE_TOO_LARGE,
        ValidationError::ImageTooSmall { .. } => BACKDROP_ERR_INVALID_IMAGE_TOO_SMALL,
        ValidationError::ImageTooLarge { .. } => BACKDROP_ERR_INVALID_IMAGE_TOO_LARGE,
        ValidationError::NoTransparency { .. } => BACKDROP_ERR_INVALID_NO_TRANSPARENCY,
        ValidationError::EmptyPrompt => BACKDROP_ERR_INVALID_EMPTY_PROMPT,
        ValidationError::PromptTooLong { .. } => BACKDROP_ERR_INVALID_PROMPT_TOO_LONG,
        ValidationError::BatchSize { .. } => BACKDROP_ERR_INVALID_BATCH_SIZE,
        ValidationError::SceneType { .. } => BACKDROP_ERR_INVALID_SCENE_TYPE,
        ValidationError::ImageUrl { .. } => BACKDROP_ERR_INVALID_IMAGE_URL,
        ValidationError::ImageSource { .. } => BACKDROP_ERR_INVALID_IMAGE_SOURCE,
        ValidationError::Background { .. } => BACKDROP_ERR_INVALID_BACKGROUND,
        ValidationError::DamagedPng { .. } => BACKDROP_ERR_INVALID_DAMAGED_PNG,
        ValidationError::TrailingData { .. } => BACKDROP_ERR_INVALID_TRAILING_DATA,
        ValidationError::DamagedImageData { .. } => BACKDROP_ERR_INVALID_DAMAGED_IMAGE_DATA,
        ValidationError::NothingTransparent { .. } => BACKDROP_ERR_INVALID_NOTHING_TRANSPARENT,
        ValidationError::NothingVisible { .. } => BACKDROP_ERR_INVALID_NOTHING_VISIBLE,
        _ => BACKDROP_ERR_INVALID_OTHER,
    }
}

impl From<ValidationError> for Fault {
    fn from(error: ValidationError) -> Fault {
        Fault::new(validation_code(&error), format!("invalid input: {error}"))
    }
}

impl From<InspectFileError> for Fault {
    fn from(error: InspectFileError) -> Fault {
        match error {
            InspectFileError::Invalid(invalid) => invalid.into(),
            InspectFileError::Io(io) => {
                Fault::new(BACKDROP_ERR_IO, format!("cannot read the image file: {io}"))
            }
        }
    }
}

impl From<CoreError> for Fault {
    fn from(error: CoreError) -> Fault {
        let code = match &error {
            CoreError::Invalid(invalid) => validation_code(invalid),
            CoreError::Io { .. } => BACKDROP_ERR_IO,
            CoreError::Config(_) => BACKDROP_ERR_CONFIG,
            CoreError::EmptyTaskId => BACKDROP_ERR_INVALID_ARGUMENT,
            CoreError::BadRequest { .. } => BACKDROP_ERR_BAD_REQUEST,
            CoreError::Unauthorized { .. } => BACKDROP_ERR_UNAUTHORIZED,
            CoreError::NotFound { .. } => BACKDROP_ERR_NOT_FOUND,
            CoreError::PayloadTooLarge { .. } => BACKDROP_ERR_PAYLOAD_TOO_LARGE,
            CoreError::RateLimited { .. } => BACKDROP_ERR_RATE_LIMITED,
            CoreError::Server { .. } => BACKDROP_ERR_SERVER,
            CoreError::Redirected { .. } => BACKDROP_ERR_REDIRECTED,
            CoreError::CreditCapReached { .. } => BACKDROP_ERR_CREDIT_CAP,
            CoreError::UnexpectedStatus { .. } => BACKDROP_ERR_UNEXPECTED_STATUS,
            CoreError::InvalidResponse { .. } => BACKDROP_ERR_INVALID_RESPONSE,
            CoreError::Network {
                maybe_accepted: true,
                ..
            } => BACKDROP_ERR_NETWORK_MAYBE_CREATED,
            CoreError::Network { .. } => BACKDROP_ERR_NETWORK,
            CoreError::TaskFailed { .. } => BACKDROP_ERR_TASK_FAILED,
            CoreError::ResultMissing { .. } => BACKDROP_ERR_RESULT_MISSING,
            CoreError::ResultExpired { .. } => BACKDROP_ERR_RESULT_EXPIRED,
            CoreError::ResultInvalid { .. } => BACKDROP_ERR_RESULT_INVALID,
            CoreError::Timeout { .. } => BACKDROP_ERR_TIMEOUT,
            CoreError::Cancelled { .. } => BACKDROP_ERR_CANCELLED,
            _ => BACKDROP_ERR_OTHER,
        };
        Fault {
            code,
            message: error_chain(&error),
            http_status: error.http_status().unwrap_or(0),
            task_state: error.task_state().map(|state| state.code()),
            task_id: error.task_id().map(str::to_owned),
            recovery: error.recovery(),
        }
    }
}

/// An error's message followed by its causes (a network error's cause says what happened).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// The result code of an error (one of the `BACKDROP_ERR_*` values).
///
/// Returns `BACKDROP_ERR_NULL_PARAMETER` when `error` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_error_code(error: *const backdrop_error) -> backdrop_result {
    ffi_infallible!(BACKDROP_ERR_PANIC, {
        // SAFETY: the header's contract: NULL or a live error.
        match unsafe { try_ref(error) } {
            Some(detail) => detail.code,
            None => BACKDROP_ERR_NULL_PARAMETER,
        }
    })
}

/// The error's message: what went wrong and what to do about it. Never contains the API key.
///
/// Returns a NUL-terminated UTF-8 string owned by `error`, valid until `backdrop_error_free`;
/// an empty string when `error` is NULL. Never NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_error_message(error: *const backdrop_error) -> *const c_char {
    ffi_infallible!(c"".as_ptr(), {
        // SAFETY: the header's contract: NULL or a live error.
        match unsafe { try_ref(error) } {
            Some(detail) => detail.message.as_ptr(),
            None => c"".as_ptr(),
        }
    })
}

/// The HTTP status behind the error (e.g. 401, 404, 429, 500, or 403 for an expired result),
/// or 0 when the failure did not come from an HTTP answer or `error` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_error_http_status(error: *const backdrop_error) -> u16 {
    ffi_infallible!(0, {
        // SAFETY: the header's contract: NULL or a live error.
        unsafe { try_ref(error) }.map_or(0, |detail| detail.http_status)
    })
}

/// The task state behind the error: the failed state for `BACKDROP_ERR_TASK_FAILED` (e.g. -17
/// for an invalid prompt) or the last state seen for `BACKDROP_ERR_TIMEOUT`.
///
/// Returns true and writes `*state_out` when the error has a task state; returns false and
/// writes nothing when it has none or when `error` or `state_out` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_error_task_state(
    error: *const backdrop_error,
    state_out: *mut i32,
) -> bool {
    ffi_infallible!(false, {
        // SAFETY: the header's contract: NULL or a live error.
        let Some(detail) = (unsafe { try_ref(error) }) else {
            return false;
        };
        match (detail.task_state, state_out.is_null()) {
            (Some(state), false) => {
                // SAFETY: non-NULL; the header's contract: valid for writing an int32_t.
                unsafe { state_out.write(state) };
                true
            }
            _ => false,
        }
    })
}

/// The id of the task the error concerns (a failed, timed-out or cancelled task, or one whose
/// result could not be had), to resume with `backdrop_task_from_id` or to quote to support.
///
/// Returns a NUL-terminated string owned by `error`, valid until `backdrop_error_free`, or NULL
/// when the error concerns no task or `error` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_error_task_id(error: *const backdrop_error) -> *const c_char {
    ffi_infallible!(std::ptr::null(), {
        // SAFETY: the header's contract: NULL or a live error.
        unsafe { try_ref(error) }
            .and_then(|detail| detail.task_id.as_ref())
            .map_or(std::ptr::null(), |id| id.as_ptr())
    })
}

/// What a caller can do after a failure: core's classification, the same answer the CLI and
/// the Lambda act on. Every error has exactly one.
///
/// | recovery | a task … | charged | what to do |
/// |---|---|---|---|
/// | `BACKDROP_RECOVERY_RETRY` | does not exist (or failed) | no | try the input again later: a new create is safe |
/// | `BACKDROP_RECOVERY_RESUME` | exists, may still finish | when it succeeds | wait again with its id (`backdrop_task_from_id`); never create |
/// | `BACKDROP_RECOVERY_UNCONFIRMED` | may exist, id unknown | maybe | ask the user: creating again may pay twice |
/// | `BACKDROP_RECOVERY_RESULTS_LOST` | ran, its results are gone | yes (or maybe) | ask the user: generating again is paid again |
/// | `BACKDROP_RECOVERY_PERMANENT` | does not exist (or failed) | no | fix the input, the key or the configuration |
#[repr(u32)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum backdrop_recovery {
    /// Not an error (only for a NULL `error`).
    BACKDROP_RECOVERY_NONE = 0,
    /// Nothing is running and nothing was charged; trying the input again later may succeed.
    BACKDROP_RECOVERY_RETRY = 1,
    /// A task exists and may still finish: resume it by id; creating again would pay twice.
    BACKDROP_RECOVERY_RESUME = 2,
    /// A create was sent and its answer never seen: a task may exist and be charged.
    BACKDROP_RECOVERY_UNCONFIRMED = 3,
    /// The task was charged (or may have been) and its results are gone.
    BACKDROP_RECOVERY_RESULTS_LOST = 4,
    /// The same input would fail the same way; nothing was charged.
    BACKDROP_RECOVERY_PERMANENT = 5,
}

impl From<Recovery> for backdrop_recovery {
    fn from(recovery: Recovery) -> Self {
        match recovery {
            Recovery::Retry => backdrop_recovery::BACKDROP_RECOVERY_RETRY,
            Recovery::Resume => backdrop_recovery::BACKDROP_RECOVERY_RESUME,
            Recovery::Unconfirmed => backdrop_recovery::BACKDROP_RECOVERY_UNCONFIRMED,
            Recovery::ResultsLost => backdrop_recovery::BACKDROP_RECOVERY_RESULTS_LOST,
            Recovery::Permanent => backdrop_recovery::BACKDROP_RECOVERY_PERMANENT,
        }
    }
}

/// What can be done about the error: one of `BACKDROP_RECOVERY_*` (see `backdrop_recovery`).
/// `BACKDROP_RECOVERY_NONE` when `error` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_error_recovery(
    error: *const backdrop_error,
) -> backdrop_recovery {
    ffi_infallible!(backdrop_recovery::BACKDROP_RECOVERY_NONE, {
        // SAFETY: the header's contract: NULL or a live error.
        unsafe { try_ref(error) }.map_or(backdrop_recovery::BACKDROP_RECOVERY_NONE, |detail| {
            detail.recovery.into()
        })
    })
}

/// True when a create may have been accepted (and charged) although it failed: it was sent and
/// no answer said no — a timeout, a cut connection, any HTTP 5xx (a gateway may have passed the
/// create on), an answer that could not be read. Do not create the same input again unless the user accepts
/// paying twice. The same as `backdrop_error_recovery(error) == BACKDROP_RECOVERY_UNCONFIRMED`;
/// false when `error` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_error_may_have_created_task(
    error: *const backdrop_error,
) -> bool {
    ffi_infallible!(false, {
        // SAFETY: the header's contract: NULL or a live error.
        unsafe { try_ref(error) }.is_some_and(|detail| detail.recovery == Recovery::Unconfirmed)
    })
}

/// True when starting over is safe and may succeed later: nothing is running and nothing was
/// charged (rate limiting, a service failure that issued no task, a task that failed on the
/// service's side). The same as `backdrop_error_recovery(error) == BACKDROP_RECOVERY_RETRY`.
///
/// False whenever a task may exist — a task to resume by id (a timeout, trouble while polling),
/// a create that may have been charged, results that were charged and lost — and for failures
/// that would repeat, and when `error` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_error_is_transient(error: *const backdrop_error) -> bool {
    ffi_infallible!(false, {
        // SAFETY: the header's contract: NULL or a live error.
        unsafe { try_ref(error) }.is_some_and(|detail| detail.recovery == Recovery::Retry)
    })
}

/// Frees an error. NULL is a no-op.
///
/// `error` must come from an `error_out` parameter of this library and not have been freed;
/// it and the strings read from it must not be used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_error_free(error: *mut backdrop_error) {
    ffi_infallible!((), {
        // SAFETY: the header's contract: NULL or a live error, freed once.
        unsafe { free_box(error) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_redacted_and_nul_bytes_do_not_cut_messages() {
        let failure = Fault::new(BACKDROP_ERR_CONFIG, "bad key sk-secret-123 and\0more")
            .redact("sk-secret-123");
        let raw = failure.into_raw();
        // SAFETY: a live error made just above.
        unsafe {
            let message = std::ffi::CStr::from_ptr(backdrop_error_message(raw))
                .to_str()
                .unwrap()
                .to_owned();
            assert!(!message.contains("secret"), "{message}");
            assert!(message.ends_with("more"), "{message}");
            assert!(backdrop_error_task_id(raw).is_null());
            let mut state = 99;
            assert!(!backdrop_error_task_state(raw, &mut state));
            assert_eq!(state, 99);
            backdrop_error_free(raw);
        }
    }

    #[test]
    fn core_errors_keep_their_detail() {
        let failure: Fault = CoreError::TaskFailed {
            task_id: "T1".into(),
            state: backdrop_core::TaskState::InvalidPrompt,
            message: None,
        }
        .into();
        assert_eq!(failure.code, BACKDROP_ERR_TASK_FAILED);
        assert_eq!(failure.task_state, Some(-17));
        assert_eq!(failure.task_id.as_deref(), Some("T1"));
        let failure: Fault = CoreError::Unauthorized {
            during: backdrop_core::Operation::Create,
            message: "no".into(),
        }
        .into();
        assert_eq!(failure.http_status, 401);
        assert_eq!(failure.recovery, Recovery::Permanent);
        let failure: Fault = CoreError::Server {
            during: backdrop_core::Operation::Create,
            status: 504,
            message: "gateway timeout".into(),
            attempts: 1,
        }
        .into();
        assert_eq!(
            failure.recovery,
            Recovery::Unconfirmed,
            "may have created: not transient"
        );
    }
}
