//! The one error type of the crate. Each variant says what went wrong and what to do; none
//! carries the API key.

use std::path::PathBuf;
use std::time::Duration;

use crate::spec::HttpStatus;
use crate::state::TaskState;
use crate::validate::ValidationError;

/// Everything that can go wrong between an input and its generated images.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input breaks a rule of the service; nothing was sent and nothing was charged.
    #[error("invalid input: {0}")]
    Invalid(#[from] ValidationError),

    /// A local file could not be read or written.
    #[error(
        "cannot {action} {path}: {source}; check that the path exists and that this user may {action} it"
    )]
    Io {
        /// What was attempted ("read", "write").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The client's configuration is unusable.
    #[error("configuration error: {0}")]
    Config(String),

    /// HTTP 400: a parameter is missing or has an incorrect value.
    #[error(
        "the service rejected the parameters (HTTP 400): {message}; check the prompt, scene type, batch size and image source"
    )]
    BadRequest {
        /// The server's message.
        message: String,
    },

    /// HTTP 401: the API key was refused.
    #[error(
        "the service refused the API key (HTTP 401): {message}; check PICWISH_API_KEY and that the service is enabled for it"
    )]
    Unauthorized {
        /// The server's message.
        message: String,
    },

    /// HTTP 404: unknown URL or task id.
    #[error("not found (HTTP 404): {message}; check the base URL and the task id")]
    NotFound {
        /// The server's message.
        message: String,
    },

    /// HTTP 413: the uploaded file is too large.
    #[error(
        "the service refused the upload as too large (HTTP 413): {message}; PNG files must be at most 20 MiB"
    )]
    PayloadTooLarge {
        /// The server's message.
        message: String,
    },

    /// HTTP 429: the key's QPS limit was exceeded, and retries did not get through.
    #[error(
        "rate limited by the service (HTTP 429) after {attempts} attempts: {message}; lower the configured QPS or ask PicWish to raise the key's limit"
    )]
    RateLimited {
        /// The server's message.
        message: String,
        /// The `Retry-After` the server asked for, if any.
        retry_after: Option<Duration>,
        /// Requests made.
        attempts: u32,
    },

    /// HTTP 5xx: the service failed, and retries did not get through.
    #[error(
        "the service failed (HTTP {status}) after {attempts} attempts: {message}; try again later"
    )]
    Server {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
        /// Requests made.
        attempts: u32,
    },

    /// An HTTP status the spec does not document.
    #[error("unexpected answer from the service (HTTP {status}): {message}")]
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
        /// The server's message or the start of the body.
        message: String,
    },

    /// The service answered, but not with the documented JSON.
    #[error(
        "the service's answer to {during} is not the documented JSON (HTTP {status}): {reason}; body starts with {body_start:?}; check that the base URL points at the Generate Background API (a proxy or a captive portal may be answering instead)"
    )]
    InvalidResponse {
        /// Which call ("create", "query").
        during: &'static str,
        /// The HTTP status.
        status: u16,
        /// What is wrong.
        reason: String,
        /// The first bytes of the body, for diagnosis.
        body_start: String,
    },

    /// The connection failed or timed out.
    ///
    /// When `maybe_accepted` is true the create request may have reached the service: a task may
    /// exist and be charged, so it is not sent again automatically.
    #[error("network error during {during}: {source}{}", if *maybe_accepted {
        "; the request may have reached the service, so it was not sent again (a second create would be a second charge)"
    } else { "" })]
    Network {
        /// Which call ("create", "query", "download").
        during: &'static str,
        /// True when a create may have been accepted despite the error.
        maybe_accepted: bool,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },

    /// The task ended in a failed state.
    #[error("task {task_id} failed with state {state}{}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default(), if state.is_transient_failure() { "; this failure is on the service's side and submitting again may succeed" } else { "" })]
    TaskFailed {
        /// The task id (quote it to PicWish support).
        task_id: String,
        /// The failed state.
        state: TaskState,
        /// The server's message or state detail.
        message: Option<String>,
    },

    /// The task did not finish within the waiting limit.
    #[error("task {task_id} was still {last_state} after {:.0} s; it may still finish: resume waiting with its id", waited.as_secs_f64())]
    Timeout {
        /// The task id, to resume with.
        task_id: String,
        /// How long the client waited.
        waited: Duration,
        /// The last state seen.
        last_state: TaskState,
    },

    /// Waiting was cancelled by the caller.
    #[error(
        "waiting for task {task_id} was cancelled; the task may still finish: resume with its id"
    )]
    Cancelled {
        /// The task id, to resume with.
        task_id: String,
    },

    /// The task succeeded but reported no result image.
    #[error("task {task_id} succeeded but reported no result image{}", index.map(|i| format!(" {i}")).unwrap_or_default())]
    ResultMissing {
        /// The task id.
        task_id: String,
        /// The missing image, if one in particular.
        index: Option<u8>,
    },

    /// A result URL answered 403, 404 or 410: it expired (URLs live 1 hour) or never existed.
    #[error(
        "result image {index} of task {task_id} is no longer available (HTTP {status}); result URLs expire 1 hour after the task finishes — generate again"
    )]
    ResultExpired {
        /// The task id.
        task_id: String,
        /// The image, 1 or 2.
        index: u8,
        /// The HTTP status.
        status: u16,
    },

    /// A result could not be downloaded or decoded.
    #[error(
        "result image {index} of task {task_id} is unusable: {reason}; query the task again for its result (URLs live 1 hour) or generate again"
    )]
    ResultInvalid {
        /// The task id.
        task_id: String,
        /// The image, 1 or 2.
        index: u8,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// The HTTP status behind the error, when the service answered.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::BadRequest { .. } => Some(HttpStatus::BadRequest.code()),
            Error::Unauthorized { .. } => Some(HttpStatus::Unauthorized.code()),
            Error::NotFound { .. } => Some(HttpStatus::NotFound.code()),
            Error::PayloadTooLarge { .. } => Some(HttpStatus::PayloadTooLarge.code()),
            Error::RateLimited { .. } => Some(HttpStatus::TooManyRequests.code()),
            Error::Server { status, .. }
            | Error::UnexpectedStatus { status, .. }
            | Error::InvalidResponse { status, .. }
            | Error::ResultExpired { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The task the error concerns, when one exists.
    pub fn task_id(&self) -> Option<&str> {
        match self {
            Error::TaskFailed { task_id, .. }
            | Error::Timeout { task_id, .. }
            | Error::Cancelled { task_id }
            | Error::ResultMissing { task_id, .. }
            | Error::ResultExpired { task_id, .. }
            | Error::ResultInvalid { task_id, .. } => Some(task_id),
            _ => None,
        }
    }

    /// The task state behind the error, for failed tasks and timeouts.
    pub fn task_state(&self) -> Option<TaskState> {
        match self {
            Error::TaskFailed { state, .. }
            | Error::Timeout {
                last_state: state, ..
            } => Some(*state),
            _ => None,
        }
    }

    /// True when this error, returned by a create, leaves open whether the service accepted the
    /// task (and charged it): the request was sent and no answer said no — a lost or cut answer,
    /// a timeout, a gateway timeout, an HTTP 200 answer that could not be read. Creating again
    /// could pay twice; resume or ask the user instead.
    pub fn may_have_created_task(&self) -> bool {
        match self {
            Error::Network { maybe_accepted, .. } => *maybe_accepted,
            Error::Server { status: 504, .. } => true,
            Error::InvalidResponse {
                during: "create",
                status,
                ..
            } => *status == crate::spec::STATUS_OK,
            _ => false,
        }
    }

    /// True when the same input may succeed if tried again later (service trouble, network,
    /// rate limiting, timeouts); false when it would fail the same way (bad input, bad key,
    /// a verdict on the content).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::RateLimited { .. }
            | Error::Server { .. }
            | Error::Network { .. }
            | Error::Timeout { .. }
            | Error::InvalidResponse { .. }
            | Error::ResultInvalid { .. } => true,
            Error::TaskFailed { state, .. } => state.is_transient_failure(),
            _ => false,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(during: &'static str, status: u16) -> Error {
        Error::InvalidResponse {
            during,
            status,
            reason: "not JSON".into(),
            body_start: "<html>".into(),
        }
    }

    #[test]
    fn only_answers_that_leave_a_create_open_may_have_created_a_task() {
        assert!(invalid("create", 200).may_have_created_task());
        assert!(!invalid("create", 502).may_have_created_task());
        assert!(!invalid("query", 200).may_have_created_task());
        let server = |status| Error::Server {
            status,
            message: String::new(),
            attempts: 1,
        };
        assert!(server(504).may_have_created_task());
        assert!(!server(503).may_have_created_task());
        assert!(
            !Error::RateLimited {
                message: String::new(),
                retry_after: None,
                attempts: 1
            }
            .may_have_created_task()
        );
    }
}
