//! The result codes: one enum for every fallible call, and the functions that name and explain
//! a code.

#![allow(unsafe_code)] // exports #[no_mangle] functions; writes into a caller's buffer

use std::ffi::c_char;

/// The result of every fallible call of the library.
///
/// A 32-bit unsigned value in every language: `backdrop_result` is a `uint32_t` typedef in C
/// before C23, and this enum with `uint32_t` as its underlying type in C23 and C++. The message
/// functions take any `uint32_t`, so a code from a newer library can still be explained.
///
/// `BACKDROP_OK` (0) is success. Failures are banded by family so that a caller can test a
/// family with a range check:
///
/// | range     | family                                                        |
/// |-----------|---------------------------------------------------------------|
/// | 7000–7099 | the call itself: a NULL or malformed argument, wrong use      |
/// | 7100–7199 | the input breaks a rule of the service (nothing was sent)     |
/// | 7200–7299 | the service or the network (HTTP status in the error detail)  |
/// | 7300–7399 | the task (failed, no result, result expired or unusable)      |
/// | 7400–7499 | waiting ran out of time or was cancelled                      |
/// | 7500–7599 | a local file could not be read or written                     |
/// | 7600–7699 | a bug in the library was caught at the boundary (a panic)     |
/// | 7700–7799 | a limit set on the client (the credit cap): nothing was sent  |
/// | 7900–7999 | anything else                                                 |
///
/// Values are stable: a code is never renumbered, and a retired code stays reserved.
/// `backdrop_result_message` explains any code; `backdrop_result_name` names it.
#[repr(u32)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum backdrop_result {
    /// Success.
    BACKDROP_OK = 0,

    /// A pointer parameter that must not be NULL was NULL.
    BACKDROP_ERR_NULL_PARAMETER = 7000,
    /// A string parameter is not valid UTF-8.
    BACKDROP_ERR_INVALID_UTF8 = 7001,
    /// A parameter has a value outside its documented range.
    BACKDROP_ERR_INVALID_ARGUMENT = 7002,
    /// The object was already consumed (a client builder after a successful build).
    BACKDROP_ERR_ALREADY_USED = 7003,
    /// A result number is not one of the task's results: numbers run from 1 (`data.image_1`)
    /// to the task's result count.
    BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE = 7004,
    /// A blocking call was made from inside a progress callback or another async runtime.
    BACKDROP_ERR_NESTED_CALL = 7005,
    /// The client configuration is unusable (empty key, bad base URL, …).
    BACKDROP_ERR_CONFIG = 7006,
    /// The client's threads could not be started.
    BACKDROP_ERR_RUNTIME = 7007,

    /// The image file is empty.
    BACKDROP_ERR_INVALID_EMPTY_FILE = 7100,
    /// The image is not a PNG.
    BACKDROP_ERR_INVALID_NOT_PNG = 7101,
    /// The PNG header is damaged or cut short.
    BACKDROP_ERR_INVALID_CORRUPT_PNG = 7102,
    /// The image file is over 20 MiB.
    BACKDROP_ERR_INVALID_FILE_TOO_LARGE = 7103,
    /// A side of the image is under 256 px.
    BACKDROP_ERR_INVALID_IMAGE_TOO_SMALL = 7104,
    /// A side of the image is over 4096 px.
    BACKDROP_ERR_INVALID_IMAGE_TOO_LARGE = 7105,
    /// The PNG has no transparency (no alpha channel, no tRNS chunk).
    BACKDROP_ERR_INVALID_NO_TRANSPARENCY = 7106,
    /// The prompt is empty or blank.
    BACKDROP_ERR_INVALID_EMPTY_PROMPT = 7107,
    /// The prompt is over 1024 characters.
    BACKDROP_ERR_INVALID_PROMPT_TOO_LONG = 7108,
    /// The batch size is not 1 or 2.
    BACKDROP_ERR_INVALID_BATCH_SIZE = 7109,
    /// The scene type is not a positive template id.
    BACKDROP_ERR_INVALID_SCENE_TYPE = 7110,
    /// The image URL is not an absolute http(s) URL.
    BACKDROP_ERR_INVALID_IMAGE_URL = 7111,
    /// The request has no source image, or two.
    BACKDROP_ERR_INVALID_IMAGE_SOURCE = 7112,
    /// The request has no background description, or both a prompt and a scene type.
    BACKDROP_ERR_INVALID_BACKGROUND = 7113,
    /// The PNG's structure is damaged: cut short, a chunk's CRC wrong, no IEND.
    BACKDROP_ERR_INVALID_DAMAGED_PNG = 7114,
    /// The PNG goes on after its IEND chunk.
    BACKDROP_ERR_INVALID_TRAILING_DATA = 7115,
    /// The PNG's compressed image data is damaged.
    BACKDROP_ERR_INVALID_DAMAGED_IMAGE_DATA = 7116,
    /// No pixel is transparent: the background was not removed.
    BACKDROP_ERR_INVALID_NOTHING_TRANSPARENT = 7117,
    /// Every pixel is fully transparent: there is no foreground.
    BACKDROP_ERR_INVALID_NOTHING_VISIBLE = 7118,
    /// The input breaks a rule this version has no specific code for.
    BACKDROP_ERR_INVALID_OTHER = 7199,

    /// HTTP 400: the service rejected the parameters.
    BACKDROP_ERR_BAD_REQUEST = 7200,
    /// HTTP 401: the service refused the API key.
    BACKDROP_ERR_UNAUTHORIZED = 7201,
    /// HTTP 404: unknown task id or URL.
    BACKDROP_ERR_NOT_FOUND = 7202,
    /// HTTP 413: the upload is too large for the service.
    BACKDROP_ERR_PAYLOAD_TOO_LARGE = 7203,
    /// HTTP 429: rate limited, and the retries did not get through.
    BACKDROP_ERR_RATE_LIMITED = 7204,
    /// HTTP 5xx: the service failed. A query is retried first; a create never is (a gateway may
    /// have passed it on before failing: `backdrop_error_may_have_created_task` says so).
    BACKDROP_ERR_SERVER = 7205,
    /// An HTTP status the service does not document.
    BACKDROP_ERR_UNEXPECTED_STATUS = 7206,
    /// The service's answer is not the documented JSON.
    BACKDROP_ERR_INVALID_RESPONSE = 7207,
    /// The connection failed or timed out; nothing was created.
    BACKDROP_ERR_NETWORK = 7208,
    /// The connection failed after a create was sent: a task may exist and be charged, so the
    /// create was not sent again. Do not blindly retry it.
    BACKDROP_ERR_NETWORK_MAYBE_CREATED = 7209,
    /// The service answered with a redirect (HTTP 3xx). The API key goes only to the base URL's
    /// origin, so no redirect is followed: set the base URL to where the service lives.
    BACKDROP_ERR_REDIRECTED = 7210,

    /// The task ended in a failed state (the state is in the error detail).
    BACKDROP_ERR_TASK_FAILED = 7300,
    /// The task succeeded but reported no result image.
    BACKDROP_ERR_RESULT_MISSING = 7301,
    /// The result URL expired (URLs live 1 hour): generate again.
    BACKDROP_ERR_RESULT_EXPIRED = 7302,
    /// The result could not be downloaded or is not an image.
    BACKDROP_ERR_RESULT_INVALID = 7303,
    /// The task has not succeeded (yet): wait for it before downloading.
    BACKDROP_ERR_TASK_NOT_SUCCEEDED = 7304,

    /// Waiting ran out of time; the task may still finish: wait again or resume by its id.
    BACKDROP_ERR_TIMEOUT = 7400,
    /// The progress callback cancelled the wait; the task itself goes on.
    BACKDROP_ERR_CANCELLED = 7401,

    /// A local file could not be read or written.
    BACKDROP_ERR_IO = 7500,

    /// A bug in the library (a Rust panic) was caught before it reached the caller. No output
    /// was written; the objects passed in are still valid to free.
    BACKDROP_ERR_PANIC = 7600,

    /// The create was not sent: the most it can cost would pass the client's credit cap
    /// (`backdrop_client_builder_set_max_credits`). Nothing was sent or charged; it may go once
    /// a client with a higher cap (or credits refunded by failed tasks) allows.
    BACKDROP_ERR_CREDIT_CAP = 7700,

    /// A failure this version of the library has no specific code for.
    BACKDROP_ERR_OTHER = 7900,
}

use backdrop_result::*;

/// Every code, for the tests and for `from_u32`.
pub(crate) const ALL: [backdrop_result; 51] = [
    BACKDROP_OK,
    BACKDROP_ERR_NULL_PARAMETER,
    BACKDROP_ERR_INVALID_UTF8,
    BACKDROP_ERR_INVALID_ARGUMENT,
    BACKDROP_ERR_ALREADY_USED,
    BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE,
    BACKDROP_ERR_NESTED_CALL,
    BACKDROP_ERR_CONFIG,
    BACKDROP_ERR_RUNTIME,
    BACKDROP_ERR_INVALID_EMPTY_FILE,
    BACKDROP_ERR_INVALID_NOT_PNG,
    BACKDROP_ERR_INVALID_CORRUPT_PNG,
    BACKDROP_ERR_INVALID_FILE_TOO_LARGE,
    BACKDROP_ERR_INVALID_IMAGE_TOO_SMALL,
    BACKDROP_ERR_INVALID_IMAGE_TOO_LARGE,
    BACKDROP_ERR_INVALID_NO_TRANSPARENCY,
    BACKDROP_ERR_INVALID_EMPTY_PROMPT,
    BACKDROP_ERR_INVALID_PROMPT_TOO_LONG,
    BACKDROP_ERR_INVALID_BATCH_SIZE,
    BACKDROP_ERR_INVALID_SCENE_TYPE,
    BACKDROP_ERR_INVALID_IMAGE_URL,
    BACKDROP_ERR_INVALID_IMAGE_SOURCE,
    BACKDROP_ERR_INVALID_BACKGROUND,
    BACKDROP_ERR_INVALID_DAMAGED_PNG,
    BACKDROP_ERR_INVALID_TRAILING_DATA,
    BACKDROP_ERR_INVALID_DAMAGED_IMAGE_DATA,
    BACKDROP_ERR_INVALID_NOTHING_TRANSPARENT,
    BACKDROP_ERR_INVALID_NOTHING_VISIBLE,
    BACKDROP_ERR_INVALID_OTHER,
    BACKDROP_ERR_BAD_REQUEST,
    BACKDROP_ERR_UNAUTHORIZED,
    BACKDROP_ERR_NOT_FOUND,
    BACKDROP_ERR_PAYLOAD_TOO_LARGE,
    BACKDROP_ERR_RATE_LIMITED,
    BACKDROP_ERR_SERVER,
    BACKDROP_ERR_UNEXPECTED_STATUS,
    BACKDROP_ERR_INVALID_RESPONSE,
    BACKDROP_ERR_NETWORK,
    BACKDROP_ERR_NETWORK_MAYBE_CREATED,
    BACKDROP_ERR_REDIRECTED,
    BACKDROP_ERR_TASK_FAILED,
    BACKDROP_ERR_RESULT_MISSING,
    BACKDROP_ERR_RESULT_EXPIRED,
    BACKDROP_ERR_RESULT_INVALID,
    BACKDROP_ERR_TASK_NOT_SUCCEEDED,
    BACKDROP_ERR_TIMEOUT,
    BACKDROP_ERR_CANCELLED,
    BACKDROP_ERR_IO,
    BACKDROP_ERR_PANIC,
    BACKDROP_ERR_CREDIT_CAP,
    BACKDROP_ERR_OTHER,
];

impl backdrop_result {
    /// The code as C sees it.
    pub(crate) const fn code(self) -> u32 {
        self as u32
    }

    /// The enum value of a code, if it is one.
    pub(crate) fn from_u32(code: u32) -> Option<backdrop_result> {
        ALL.into_iter().find(|r| r.code() == code)
    }

    /// The constant's name in the header.
    pub(crate) const fn name(self) -> &'static std::ffi::CStr {
        match self {
            BACKDROP_OK => c"BACKDROP_OK",
            BACKDROP_ERR_NULL_PARAMETER => c"BACKDROP_ERR_NULL_PARAMETER",
            BACKDROP_ERR_INVALID_UTF8 => c"BACKDROP_ERR_INVALID_UTF8",
            BACKDROP_ERR_INVALID_ARGUMENT => c"BACKDROP_ERR_INVALID_ARGUMENT",
            BACKDROP_ERR_ALREADY_USED => c"BACKDROP_ERR_ALREADY_USED",
            BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE => c"BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE",
            BACKDROP_ERR_NESTED_CALL => c"BACKDROP_ERR_NESTED_CALL",
            BACKDROP_ERR_CONFIG => c"BACKDROP_ERR_CONFIG",
            BACKDROP_ERR_RUNTIME => c"BACKDROP_ERR_RUNTIME",
            BACKDROP_ERR_INVALID_EMPTY_FILE => c"BACKDROP_ERR_INVALID_EMPTY_FILE",
            BACKDROP_ERR_INVALID_NOT_PNG => c"BACKDROP_ERR_INVALID_NOT_PNG",
            BACKDROP_ERR_INVALID_CORRUPT_PNG => c"BACKDROP_ERR_INVALID_CORRUPT_PNG",
            BACKDROP_ERR_INVALID_FILE_TOO_LARGE => c"BACKDROP_ERR_INVALID_FILE_TOO_LARGE",
            BACKDROP_ERR_INVALID_IMAGE_TOO_SMALL => c"BACKDROP_ERR_INVALID_IMAGE_TOO_SMALL",
            BACKDROP_ERR_INVALID_IMAGE_TOO_LARGE => c"BACKDROP_ERR_INVALID_IMAGE_TOO_LARGE",
            BACKDROP_ERR_INVALID_NO_TRANSPARENCY => c"BACKDROP_ERR_INVALID_NO_TRANSPARENCY",
            BACKDROP_ERR_INVALID_EMPTY_PROMPT => c"BACKDROP_ERR_INVALID_EMPTY_PROMPT",
            BACKDROP_ERR_INVALID_PROMPT_TOO_LONG => c"BACKDROP_ERR_INVALID_PROMPT_TOO_LONG",
            BACKDROP_ERR_INVALID_BATCH_SIZE => c"BACKDROP_ERR_INVALID_BATCH_SIZE",
            BACKDROP_ERR_INVALID_SCENE_TYPE => c"BACKDROP_ERR_INVALID_SCENE_TYPE",
            BACKDROP_ERR_INVALID_IMAGE_URL => c"BACKDROP_ERR_INVALID_IMAGE_URL",
            BACKDROP_ERR_INVALID_IMAGE_SOURCE => c"BACKDROP_ERR_INVALID_IMAGE_SOURCE",
            BACKDROP_ERR_INVALID_BACKGROUND => c"BACKDROP_ERR_INVALID_BACKGROUND",
            BACKDROP_ERR_INVALID_DAMAGED_PNG => c"BACKDROP_ERR_INVALID_DAMAGED_PNG",
            BACKDROP_ERR_INVALID_TRAILING_DATA => c"BACKDROP_ERR_INVALID_TRAILING_DATA",
            BACKDROP_ERR_INVALID_DAMAGED_IMAGE_DATA => c"BACKDROP_ERR_INVALID_DAMAGED_IMAGE_DATA",
            BACKDROP_ERR_INVALID_NOTHING_TRANSPARENT => c"BACKDROP_ERR_INVALID_NOTHING_TRANSPARENT",
            BACKDROP_ERR_INVALID_NOTHING_VISIBLE => c"BACKDROP_ERR_INVALID_NOTHING_VISIBLE",
            BACKDROP_ERR_INVALID_OTHER => c"BACKDROP_ERR_INVALID_OTHER",
            BACKDROP_ERR_BAD_REQUEST => c"BACKDROP_ERR_BAD_REQUEST",
            BACKDROP_ERR_UNAUTHORIZED => c"BACKDROP_ERR_UNAUTHORIZED",
            BACKDROP_ERR_NOT_FOUND => c"BACKDROP_ERR_NOT_FOUND",
            BACKDROP_ERR_PAYLOAD_TOO_LARGE => c"BACKDROP_ERR_PAYLOAD_TOO_LARGE",
            BACKDROP_ERR_RATE_LIMITED => c"BACKDROP_ERR_RATE_LIMITED",
            BACKDROP_ERR_SERVER => c"BACKDROP_ERR_SERVER",
            BACKDROP_ERR_UNEXPECTED_STATUS => c"BACKDROP_ERR_UNEXPECTED_STATUS",
            BACKDROP_ERR_INVALID_RESPONSE => c"BACKDROP_ERR_INVALID_RESPONSE",
            BACKDROP_ERR_NETWORK => c"BACKDROP_ERR_NETWORK",
            BACKDROP_ERR_NETWORK_MAYBE_CREATED => c"BACKDROP_ERR_NETWORK_MAYBE_CREATED",
            BACKDROP_ERR_REDIRECTED => c"BACKDROP_ERR_REDIRECTED",
            BACKDROP_ERR_TASK_FAILED => c"BACKDROP_ERR_TASK_FAILED",
            BACKDROP_ERR_RESULT_MISSING => c"BACKDROP_ERR_RESULT_MISSING",
            BACKDROP_ERR_RESULT_EXPIRED => c"BACKDROP_ERR_RESULT_EXPIRED",
            BACKDROP_ERR_RESULT_INVALID => c"BACKDROP_ERR_RESULT_INVALID",
            BACKDROP_ERR_TASK_NOT_SUCCEEDED => c"BACKDROP_ERR_TASK_NOT_SUCCEEDED",
            BACKDROP_ERR_TIMEOUT => c"BACKDROP_ERR_TIMEOUT",
            BACKDROP_ERR_CANCELLED => c"BACKDROP_ERR_CANCELLED",
            BACKDROP_ERR_IO => c"BACKDROP_ERR_IO",
            BACKDROP_ERR_PANIC => c"BACKDROP_ERR_PANIC",
            BACKDROP_ERR_CREDIT_CAP => c"BACKDROP_ERR_CREDIT_CAP",
            BACKDROP_ERR_OTHER => c"BACKDROP_ERR_OTHER",
        }
    }

    /// What the code means and what to do about it.
    pub(crate) const fn message(self) -> &'static str {
        match self {
            BACKDROP_OK => "success",
            BACKDROP_ERR_NULL_PARAMETER => "a required pointer parameter was NULL",
            BACKDROP_ERR_INVALID_UTF8 => "a string parameter is not valid UTF-8",
            BACKDROP_ERR_INVALID_ARGUMENT => "a parameter is outside its documented range",
            BACKDROP_ERR_ALREADY_USED => {
                "the object was already used up (a client builder after a successful build): make a new one"
            }
            BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE => {
                "the result number is out of range: results are numbered from 1 (image_1) to the task's result count"
            }
            BACKDROP_ERR_NESTED_CALL => {
                "a blocking call was made from inside a progress callback or from a thread running an async runtime; call it from a plain thread"
            }
            BACKDROP_ERR_CONFIG => {
                "the client configuration is unusable: check the API key and the base URL"
            }
            BACKDROP_ERR_RUNTIME => "the client's worker threads could not be started",
            BACKDROP_ERR_INVALID_EMPTY_FILE => "the image file is empty",
            BACKDROP_ERR_INVALID_NOT_PNG => {
                "the image is not a PNG; the service accepts only transparent PNG images"
            }
            BACKDROP_ERR_INVALID_CORRUPT_PNG => "the PNG header is damaged; re-export the image",
            BACKDROP_ERR_INVALID_FILE_TOO_LARGE => "the image file is over the 20 MiB limit",
            BACKDROP_ERR_INVALID_IMAGE_TOO_SMALL => {
                "the image is too small; both sides must be at least 256 px"
            }
            BACKDROP_ERR_INVALID_IMAGE_TOO_LARGE => {
                "the image is too large; both sides must be at most 4096 px"
            }
            BACKDROP_ERR_INVALID_NO_TRANSPARENCY => {
                "the PNG has no transparency; the service needs a transparent PNG with only the foreground"
            }
            BACKDROP_ERR_INVALID_EMPTY_PROMPT => "the prompt is empty",
            BACKDROP_ERR_INVALID_PROMPT_TOO_LONG => {
                "the prompt is over the limit of 1024 characters"
            }
            BACKDROP_ERR_INVALID_BATCH_SIZE => "the batch size must be 1 or 2",
            BACKDROP_ERR_INVALID_SCENE_TYPE => "the scene type must be a positive template id",
            BACKDROP_ERR_INVALID_IMAGE_URL => "the image URL must be an absolute http(s) URL",
            BACKDROP_ERR_INVALID_IMAGE_SOURCE => {
                "a request needs exactly one source image: a file, bytes or a URL"
            }
            BACKDROP_ERR_INVALID_BACKGROUND => {
                "a request needs exactly one background description: a prompt or a scene type"
            }
            BACKDROP_ERR_INVALID_DAMAGED_PNG => {
                "the PNG is damaged (cut short, a bad CRC, no IEND): re-export or copy it again"
            }
            BACKDROP_ERR_INVALID_TRAILING_DATA => {
                "the PNG goes on after its end (IEND): re-export it"
            }
            BACKDROP_ERR_INVALID_DAMAGED_IMAGE_DATA => {
                "the PNG's image data is damaged: re-export or copy it again"
            }
            BACKDROP_ERR_INVALID_NOTHING_TRANSPARENT => {
                "no pixel is transparent: remove the background (or allow opaque images)"
            }
            BACKDROP_ERR_INVALID_NOTHING_VISIBLE => {
                "every pixel is fully transparent: the image has no foreground"
            }
            BACKDROP_ERR_INVALID_OTHER => "the input breaks a rule of the service",
            BACKDROP_ERR_BAD_REQUEST => "the service rejected the parameters (HTTP 400)",
            BACKDROP_ERR_UNAUTHORIZED => {
                "the service refused the API key (HTTP 401): check the key and that the service is enabled for it"
            }
            BACKDROP_ERR_NOT_FOUND => "not found (HTTP 404): check the base URL and the task id",
            BACKDROP_ERR_PAYLOAD_TOO_LARGE => {
                "the service refused the upload as too large (HTTP 413)"
            }
            BACKDROP_ERR_RATE_LIMITED => {
                "rate limited by the service (HTTP 429) after every retry: lower the configured QPS"
            }
            BACKDROP_ERR_SERVER => {
                "the service failed (HTTP 5xx); a create answered so may have reached the service and is never sent again"
            }
            BACKDROP_ERR_UNEXPECTED_STATUS => "the service answered an undocumented HTTP status",
            BACKDROP_ERR_INVALID_RESPONSE => "the service's answer is not the documented JSON",
            BACKDROP_ERR_NETWORK => "the connection failed or timed out",
            BACKDROP_ERR_NETWORK_MAYBE_CREATED => {
                "the connection failed after the create was sent: a task may exist and be charged, so it was not sent again"
            }
            BACKDROP_ERR_REDIRECTED => {
                "the service answered with a redirect, which is not followed (the API key goes only to the base URL's origin): set the base URL to where the service lives"
            }
            BACKDROP_ERR_TASK_FAILED => "the task failed (see the task state in the error detail)",
            BACKDROP_ERR_RESULT_MISSING => "the task succeeded but reported no result image",
            BACKDROP_ERR_RESULT_EXPIRED => {
                "the result is no longer available (result URLs live 1 hour): generate again"
            }
            BACKDROP_ERR_RESULT_INVALID => "the result could not be downloaded or is not an image",
            BACKDROP_ERR_TASK_NOT_SUCCEEDED => {
                "the task has not succeeded: wait for it before downloading its results"
            }
            BACKDROP_ERR_TIMEOUT => {
                "the task did not finish in time; it may still finish: wait again or resume by its id"
            }
            BACKDROP_ERR_CANCELLED => {
                "waiting was cancelled by the progress callback; the task goes on and can be resumed by its id"
            }
            BACKDROP_ERR_IO => "a local file could not be read or written",
            BACKDROP_ERR_PANIC => {
                "a bug in libbackdrop was caught at the C boundary; no output was written (please report it)"
            }
            BACKDROP_ERR_CREDIT_CAP => {
                "not sent: the create would pass the client's credit cap; nothing was sent or charged"
            }
            BACKDROP_ERR_OTHER => "an unexpected failure",
        }
    }
}

/// Writes the message of result code `result` into `buf` and returns the size it needs.
///
/// Works for every code, including `BACKDROP_OK` and codes this version does not know (which
/// get a generic message naming the number).
///
/// The message is written as a NUL-terminated UTF-8 string of at most `len` bytes, the NUL
/// included; a message that does not fit is cut at a character boundary. Nothing is written
/// when `buf` is NULL or `len` is 0.
///
/// Returns the number of bytes the whole message needs, the terminating NUL included, whatever
/// was written: call it once with `len` 0 to size a buffer. Never fails; thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_result_message(
    result: u32,
    buf: *mut c_char,
    len: usize,
) -> usize {
    ffi_infallible!(0, {
        let message = match backdrop_result::from_u32(result) {
            Some(known) => std::borrow::Cow::Borrowed(known.message()),
            None => std::borrow::Cow::Owned(format!(
                "unknown result code {result} (from a newer version of libbackdrop?)"
            )),
        };
        // SAFETY: the caller passes NULL or a buffer of at least `len` writable bytes.
        unsafe { crate::handle::write_c_string(&message, buf, len) }
    })
}

/// The name of result code `result`, such as `"BACKDROP_ERR_TIMEOUT"`.
///
/// Returns a static NUL-terminated string that is never freed (`"BACKDROP_UNKNOWN"` for a
/// code this version does not know). Never NULL; thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn backdrop_result_name(result: u32) -> *const c_char {
    ffi_infallible!(c"BACKDROP_UNKNOWN".as_ptr(), {
        match backdrop_result::from_u32(result) {
            Some(known) => known.name().as_ptr(),
            None => c"BACKDROP_UNKNOWN".as_ptr(),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_are_unique_banded_and_named() {
        let distinct: HashSet<u32> = ALL.iter().map(|r| r.code()).collect();
        assert_eq!(distinct.len(), ALL.len());
        // Every variant of the enum (as written in this file) is in ALL.
        let source = include_str!("result.rs");
        let declared: HashSet<u32> = source
            .lines()
            .filter_map(|line| {
                let (name, value) = line.trim().trim_end_matches(',').split_once(" = ")?;
                name.starts_with("BACKDROP_").then(|| value.parse().ok())?
            })
            .collect();
        assert_eq!(declared, distinct);
        for result in ALL {
            assert!(result.name().to_str().unwrap().starts_with("BACKDROP_"));
            assert!(!result.message().is_empty());
            let code = result.code();
            assert!(code == 0 || (7000..8000).contains(&code), "{code}");
            assert_eq!(backdrop_result::from_u32(code), Some(result));
        }
        assert_eq!(backdrop_result::from_u32(1), None);
    }

    #[test]
    fn message_reports_the_size_it_needs_and_truncates() {
        // SAFETY: NULL with 0 is allowed.
        let needed = unsafe { backdrop_result_message(7000, std::ptr::null_mut(), 0) };
        assert_eq!(needed, BACKDROP_ERR_NULL_PARAMETER.message().len() + 1);
        let mut small = [0x55 as c_char; 8];
        // SAFETY: the buffer has 8 bytes.
        let again = unsafe { backdrop_result_message(7000, small.as_mut_ptr(), small.len()) };
        assert_eq!(again, needed);
        assert_eq!(small[7], 0);
        let text: Vec<u8> = small[..7].iter().map(|c| *c as u8).collect();
        assert_eq!(text, b"a requi");
        let mut big = vec![0 as c_char; 200];
        // SAFETY: the buffer has 200 bytes.
        unsafe { backdrop_result_message(123, big.as_mut_ptr(), big.len()) };
        // SAFETY: the function NUL-terminates within the buffer.
        let text = unsafe { std::ffi::CStr::from_ptr(big.as_ptr()) };
        assert!(text.to_str().unwrap().contains("unknown result code 123"));
    }
}
