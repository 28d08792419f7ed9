//! The result codes: one enum for every fallible call, and the functions that name and explain
//! a code.

#![allow(unsafe_code)] // exports #[no_mangle] functions; writes into a caller's buffer

use std::borrow::Cow;
use std::ffi::{CStr, c_char};

use backdrop_core::spec;

/// Declares the result codes once: each code's documentation (copied into the header), its
/// constant, its value and its message. From that one table come the enum, [`ALL`], the names
/// and the messages, so that no list can miss a code.
macro_rules! result_codes {
    (
        $(#[$enum_attribute:meta])*
        pub enum $enum_name:ident {
            $(
                $(#[$attribute:meta])*
                $name:ident = $code:literal => $message:expr,
            )*
        }
    ) => {
        $(#[$enum_attribute])*
        pub enum $enum_name {
            $(
                $(#[$attribute])*
                $name = $code,
            )*
        }

        /// Every code, in the order of the table.
        pub(crate) const ALL: &[$enum_name] = &[$($enum_name::$name),*];

        impl $enum_name {
            /// The constant's name in the header.
            pub(crate) const fn name(self) -> &'static CStr {
                match self {
                    $(
                        $enum_name::$name => const {
                            match CStr::from_bytes_with_nul(
                                concat!(stringify!($name), "\0").as_bytes(),
                            ) {
                                Ok(name) => name,
                                Err(_) => panic!("a constant's name has no NUL inside"),
                            }
                        },
                    )*
                }
            }

            /// What the code means and what to do about it.
            pub(crate) fn message(self) -> Cow<'static, str> {
                match self {
                    $($enum_name::$name => Cow::from($message),)*
                }
            }
        }
    };
}

/// Bytes in a MiB, for the file size limit's message.
const MIB: u64 = 1024 * 1024;

result_codes! {
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
        BACKDROP_OK = 0 => "success",

        /// A pointer parameter that must not be NULL was NULL.
        BACKDROP_ERR_NULL_PARAMETER = 7000 => "a required pointer parameter was NULL",
        /// A string parameter is not valid UTF-8.
        BACKDROP_ERR_INVALID_UTF8 = 7001 => "a string parameter is not valid UTF-8",
        /// A parameter has a value outside its documented range.
        BACKDROP_ERR_INVALID_ARGUMENT = 7002 => "a parameter is outside its documented range",
        /// The object was already consumed (a client builder after a successful build).
        BACKDROP_ERR_ALREADY_USED = 7003
            => "the object was already used up (a client builder after a successful build): make a \
            new one",
        /// A result number is not one of the task's results: numbers run from 1 (`data.image_1`)
        /// to the task's result count.
        BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE = 7004
            => "the result number is out of range: results are numbered from 1 (image_1) to the \
            task's result count",
        /// A blocking call was made from inside a progress callback or another async runtime.
        BACKDROP_ERR_NESTED_CALL = 7005
            => "a blocking call was made from inside a progress callback or from a thread running an \
            async runtime; call it from a plain thread",
        /// The client configuration is unusable (empty key, bad base URL, …).
        BACKDROP_ERR_CONFIG = 7006
            => "the client configuration is unusable: check the API key and the base URL",
        /// The client's threads could not be started.
        BACKDROP_ERR_RUNTIME = 7007 => "the client's worker threads could not be started",

        /// The image file is empty.
        BACKDROP_ERR_INVALID_EMPTY_FILE = 7100 => "the image file is empty",
        /// The image is not a PNG.
        BACKDROP_ERR_INVALID_NOT_PNG = 7101
            => "the image is not a PNG; the service accepts only transparent PNG images",
        /// The PNG header is damaged or cut short.
        BACKDROP_ERR_INVALID_CORRUPT_PNG = 7102 => "the PNG header is damaged; re-export the image",
        /// The image file is over 20 MiB.
        BACKDROP_ERR_INVALID_FILE_TOO_LARGE = 7103 => format!("the image file is over the {} MiB limit", spec::MAX_IMAGE_FILE_BYTES / MIB),
        /// A side of the image is under 256 px.
        BACKDROP_ERR_INVALID_IMAGE_TOO_SMALL = 7104
            => format!("the image is too small; both sides must be at least {} px", spec::MIN_IMAGE_SIDE),
        /// A side of the image is over 4096 px.
        BACKDROP_ERR_INVALID_IMAGE_TOO_LARGE = 7105
            => format!("the image is too large; both sides must be at most {} px", spec::MAX_IMAGE_SIDE),
        /// The PNG has no transparency (no alpha channel, no tRNS chunk).
        BACKDROP_ERR_INVALID_NO_TRANSPARENCY = 7106
            => "the PNG has no transparency; the service needs a transparent PNG with only the \
            foreground",
        /// The prompt is empty or blank.
        BACKDROP_ERR_INVALID_EMPTY_PROMPT = 7107 => "the prompt is empty",
        /// The prompt is over 1024 characters.
        BACKDROP_ERR_INVALID_PROMPT_TOO_LONG = 7108
            => format!("the prompt is over the limit of {} characters", spec::MAX_PROMPT_CHARS),
        /// The batch size is not 1 or 2.
        BACKDROP_ERR_INVALID_BATCH_SIZE = 7109 => format!("the batch size must be {} or {}", spec::BATCH_SIZES[0], spec::BATCH_SIZES[1]),
        /// The scene type is not a positive template id.
        BACKDROP_ERR_INVALID_SCENE_TYPE = 7110 => "the scene type must be a positive template id",
        /// The image URL is not an absolute http(s) URL.
        BACKDROP_ERR_INVALID_IMAGE_URL = 7111 => "the image URL must be an absolute http(s) URL",
        /// The request has no source image, or two.
        BACKDROP_ERR_INVALID_IMAGE_SOURCE = 7112
            => "a request needs exactly one source image: a file, bytes or a URL",
        /// The request has no background description, or both a prompt and a scene type.
        BACKDROP_ERR_INVALID_BACKGROUND = 7113
            => "a request needs exactly one background description: a prompt or a scene type",
        /// The PNG's structure is damaged: cut short, a chunk's CRC wrong, no IEND.
        BACKDROP_ERR_INVALID_DAMAGED_PNG = 7114
            => "the PNG is damaged (cut short, a bad CRC, no IEND): re-export or copy it again",
        /// The PNG goes on after its IEND chunk.
        BACKDROP_ERR_INVALID_TRAILING_DATA = 7115
            => "the PNG goes on after its end (IEND): re-export it",
        /// The PNG's compressed image data is damaged.
        BACKDROP_ERR_INVALID_DAMAGED_IMAGE_DATA = 7116
            => "the PNG's image data is damaged: re-export or copy it again",
        /// No pixel is transparent: the background was not removed.
        BACKDROP_ERR_INVALID_NOTHING_TRANSPARENT = 7117
            => "no pixel is transparent: remove the background (or allow opaque images)",
        /// Every pixel is fully transparent: there is no foreground.
        BACKDROP_ERR_INVALID_NOTHING_VISIBLE = 7118
            => "every pixel is fully transparent: the image has no foreground",
        /// The input breaks a rule this version has no specific code for.
        BACKDROP_ERR_INVALID_OTHER = 7199 => "the input breaks a rule of the service",

        /// HTTP 400: the service rejected the parameters.
        BACKDROP_ERR_BAD_REQUEST = 7200 => "the service rejected the parameters (HTTP 400)",
        /// HTTP 401: the service refused the API key.
        BACKDROP_ERR_UNAUTHORIZED = 7201
            => "the service refused the API key (HTTP 401): check the key and that the service is \
            enabled for it",
        /// HTTP 404: unknown task id or URL.
        BACKDROP_ERR_NOT_FOUND = 7202 => "not found (HTTP 404): check the base URL and the task id",
        /// HTTP 413: the upload is too large for the service.
        BACKDROP_ERR_PAYLOAD_TOO_LARGE = 7203
            => "the service refused the upload as too large (HTTP 413)",
        /// HTTP 429: rate limited, and the retries did not get through.
        BACKDROP_ERR_RATE_LIMITED = 7204
            => "rate limited by the service (HTTP 429) after every retry: lower the configured QPS",
        /// HTTP 5xx: the service failed. A query is retried first; a create never is (a gateway may
        /// have passed it on before failing: `backdrop_error_may_have_created_task` says so).
        BACKDROP_ERR_SERVER = 7205
            => "the service failed (HTTP 5xx); a create answered so may have reached the service and \
            is never sent again",
        /// An HTTP status the service does not document.
        BACKDROP_ERR_UNEXPECTED_STATUS = 7206 => "the service answered an undocumented HTTP status",
        /// The service's answer is not the documented JSON.
        BACKDROP_ERR_INVALID_RESPONSE = 7207 => "the service's answer is not the documented JSON",
        /// The connection failed or timed out; nothing was created.
        BACKDROP_ERR_NETWORK = 7208 => "the connection failed or timed out",
        /// The connection failed after a create was sent: a task may exist and be charged, so the
        /// create was not sent again. Do not blindly retry it.
        BACKDROP_ERR_NETWORK_MAYBE_CREATED = 7209
            => "the connection failed after the create was sent: a task may exist and be charged, so \
            it was not sent again",
        /// The service answered with a redirect (HTTP 3xx). The API key goes only to the base URL's
        /// origin, so no redirect is followed: set the base URL to where the service lives.
        BACKDROP_ERR_REDIRECTED = 7210
            => "the service answered with a redirect, which is not followed (the API key goes only \
            to the base URL's origin): set the base URL to where the service lives",

        /// The task ended in a failed state (the state is in the error detail).
        BACKDROP_ERR_TASK_FAILED = 7300 => "the task failed (see the task state in the error detail)",
        /// The task succeeded but reported no result image.
        BACKDROP_ERR_RESULT_MISSING = 7301 => "the task succeeded but reported no result image",
        /// The result URL expired (URLs live 1 hour): generate again.
        BACKDROP_ERR_RESULT_EXPIRED = 7302
            => format!(
                "the result is no longer available (result URLs live {} minutes): generate again",
                spec::RESULT_URL_TTL.as_secs() / 60
            ),
        /// The result could not be downloaded or is not an image.
        BACKDROP_ERR_RESULT_INVALID = 7303 => "the result could not be downloaded or is not an image",
        /// The task has not succeeded (yet): wait for it before downloading.
        BACKDROP_ERR_TASK_NOT_SUCCEEDED = 7304
            => "the task has not succeeded: wait for it before downloading its results",

        /// Waiting ran out of time; the task may still finish: wait again or resume by its id.
        BACKDROP_ERR_TIMEOUT = 7400
            => "the task did not finish in time; it may still finish: wait again or resume by its id",
        /// The progress callback cancelled the wait; the task itself goes on.
        BACKDROP_ERR_CANCELLED = 7401
            => "waiting was cancelled by the progress callback; the task goes on and can be resumed \
            by its id",

        /// A local file could not be read or written.
        BACKDROP_ERR_IO = 7500 => "a local file could not be read or written",

        /// A bug in the library (a Rust panic) was caught before it reached the caller. No output
        /// was written; the objects passed in are still valid to free.
        BACKDROP_ERR_PANIC = 7600
            => "a bug in libbackdrop was caught at the C boundary; no output was written (please \
            report it)",

        /// The create was not sent: the most it can cost would pass the client's credit cap
        /// (`backdrop_client_builder_set_max_credits`). Nothing was sent or charged; it may go once
        /// a client with a higher cap (or credits refunded by failed tasks) allows.
        BACKDROP_ERR_CREDIT_CAP = 7700
            => "not sent: the create would pass the client's credit cap; nothing was sent or charged",

        /// A failure this version of the library has no specific code for.
        BACKDROP_ERR_OTHER = 7900 => "an unexpected failure",
    }
}

impl backdrop_result {
    /// The code as C sees it.
    pub(crate) const fn code(self) -> u32 {
        self as u32
    }

    /// The enum value of a code, if it is one.
    pub(crate) fn from_u32(code: u32) -> Option<backdrop_result> {
        ALL.iter().copied().find(|r| r.code() == code)
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
            Some(known) => known.message(),
            None => Cow::Owned(format!(
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

    use super::backdrop_result::*;
    use super::*;

    #[test]
    fn codes_are_unique_banded_and_named() {
        let distinct: HashSet<u32> = ALL.iter().map(|r| r.code()).collect();
        assert_eq!(distinct.len(), ALL.len());
        for &result in ALL {
            assert!(result.name().to_str().unwrap().starts_with("BACKDROP_"));
            assert!(!result.message().is_empty());
            let code = result.code();
            assert!(code == 0 || (7000..8000).contains(&code), "{code}");
            assert_eq!(backdrop_result::from_u32(code), Some(result));
            assert_eq!(result.name().to_str().unwrap(), format!("{result:?}"));
        }
        assert_eq!(backdrop_result::from_u32(1), None);
    }

    #[test]
    fn messages_take_their_limits_from_the_spec() {
        let small = BACKDROP_ERR_INVALID_IMAGE_TOO_SMALL.message();
        assert!(small.contains(&spec::MIN_IMAGE_SIDE.to_string()), "{small}");
        let large = BACKDROP_ERR_INVALID_IMAGE_TOO_LARGE.message();
        assert!(large.contains(&spec::MAX_IMAGE_SIDE.to_string()), "{large}");
        let prompt = BACKDROP_ERR_INVALID_PROMPT_TOO_LONG.message();
        assert!(
            prompt.contains(&spec::MAX_PROMPT_CHARS.to_string()),
            "{prompt}"
        );
        let file = BACKDROP_ERR_INVALID_FILE_TOO_LARGE.message();
        assert!(
            file.contains(&format!("{} MiB", spec::MAX_IMAGE_FILE_BYTES / MIB)),
            "{file}"
        );
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
