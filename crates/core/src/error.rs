//! The one error type of the crate. Each variant says what went wrong and what to do; none
//! carries the API key.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ledger::LedgerError;
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

    /// The client's configuration is unusable: the API key, the base URL, the rate limit, or an
    /// HTTP client that cannot be built with them. The message names the setting.
    #[error("configuration error: {0}")]
    Config(String),

    /// A task id passed to the client is empty or blank; nothing was sent.
    #[error("the task id is empty; pass the id a create returned")]
    EmptyTaskId,

    /// The client is being dropped (its runtime is shutting down) while a call still ran; the
    /// task, if any, is unharmed.
    #[error("the client is shutting down; finish with a new client (resume the task by its id)")]
    ShuttingDown,

    /// A create was not sent: its most possible cost would pass the credit cap
    /// ([`ClientConfigBuilder::credit_cap`](crate::ClientConfigBuilder::credit_cap)). Nothing
    /// was sent and nothing was charged; it may go once the cap is raised (or its period
    /// turns).
    #[error(
        "not started: the credit cap of {cap} credits would be passed ({spent} already spent or reserved, {needed} more for this create); nothing was sent. Raise the cap to go on"
    )]
    CreditCapReached {
        /// The cap.
        cap: u64,
        /// Credits spent and reserved when the create was refused.
        spent: u64,
        /// The most this create could cost.
        needed: u32,
    },

    /// The caller gave up on a call still on its way because its own time ran out (a Lambda
    /// invocation's deadline). A create given up after its request went out whole may have
    /// reached the service; one given up before cannot have made a task.
    #[error("the {during} was given up before its answer came: the caller's time ran out{}", match (*during == Operation::Create, *maybe_accepted) {
        (true, true) => "; the create may have reached the service, so it may exist and be charged: it is not sent again on its own",
        (true, false) => "; the request had not gone out whole, so no task was made: it may be sent again",
        (false, _) => "; the task is unharmed: resume it by its id",
    })]
    Abandoned {
        /// The call given up.
        during: Operation,
        /// True when a create given up may have been accepted (its request had gone out whole).
        maybe_accepted: bool,
    },

    /// The caller's record of a create (`before_send` of
    /// [`Client::create_task_recorded`](crate::Client::create_task_recorded)) failed, so the
    /// create was not sent: nothing runs, nothing was charged.
    #[error("the create was not sent because recording it failed: {0}")]
    RecordFailed(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// HTTP 400: a parameter is missing or has an incorrect value.
    #[error(
        "the service rejected the parameters (HTTP 400): {message}; check the prompt, scene type, batch size and image source"
    )]
    BadRequest {
        /// The call the service answered.
        during: Operation,
        /// The server's message.
        message: String,
    },

    /// HTTP 401: the API key was refused.
    #[error(
        "the service refused the API key (HTTP 401): {message}; check PICWISH_API_KEY and that the service is enabled for it"
    )]
    Unauthorized {
        /// The call the service answered.
        during: Operation,
        /// The server's message.
        message: String,
    },

    /// HTTP 404: unknown URL or task id. Answering a query, it means the service no longer
    /// knows the task: if it had succeeded it was charged and its results are gone.
    #[error("not found (HTTP 404) answering the {during}: {message}; {}", match during {
        Operation::Query => "the service no longer knows this task (it keeps tasks about 1 hour); if it had succeeded it was charged and its results are gone",
        _ => "check the base URL",
    })]
    NotFound {
        /// The call the service answered.
        during: Operation,
        /// The server's message.
        message: String,
    },

    /// HTTP 413: the uploaded file is too large.
    #[error(
        "the service refused the upload as too large (HTTP 413): {message}; PNG files must be at most 20 MiB"
    )]
    PayloadTooLarge {
        /// The call the service answered.
        during: Operation,
        /// The server's message.
        message: String,
    },

    /// HTTP 429: the key's QPS limit was exceeded, and retries did not get through.
    #[error(
        "rate limited by the service (HTTP 429) after {attempts} attempts: {message}; lower the configured QPS or ask PicWish to raise the key's limit"
    )]
    RateLimited {
        /// The call that was refused.
        during: Operation,
        /// The server's message.
        message: String,
        /// The `Retry-After` the server asked for, if any.
        retry_after: Option<Duration>,
        /// Requests made.
        attempts: u32,
    },

    /// HTTP 5xx: the service failed. A query is retried first; a create is not, since a
    /// gateway may have passed it on before failing (its recovery is
    /// [`Recovery::Unconfirmed`]).
    #[error("the service failed (HTTP {status}) answering the {during}{}: {message}; {}",
        if *attempts > 1 { format!(" after {attempts} attempts") } else { String::new() },
        if *during == Operation::Create {
            "a gateway may have passed the create on before it failed, so the task may exist and be charged: it was not sent again (a second create could be a second charge)"
        } else {
            "try again later"
        })]
    Server {
        /// The call the service answered.
        during: Operation,
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
        /// The call the service answered.
        during: Operation,
        /// The HTTP status.
        status: u16,
        /// The server's message or the start of the body.
        message: String,
    },

    /// The service answered with a redirect (HTTP 3xx). The API key goes only to the base
    /// URL's origin, so no redirect is followed.
    #[error(
        "the service answered the {during} with a redirect (HTTP {status}) to {location}; the API key is sent only to the base URL's origin, so backdrop follows no redirect: if the service has moved, set the base URL (PICWISH_BASE_URL) to its new address"
    )]
    Redirected {
        /// The call the service answered.
        during: Operation,
        /// The HTTP status.
        status: u16,
        /// Where the redirect pointed (origin and path; no query).
        location: String,
    },

    /// The service answered, but not with the documented JSON.
    #[error(
        "the service's answer to {during} is not the documented JSON (HTTP {status}): {reason}; body starts with {body_start:?}; check that the base URL points at the Generate Background API (a proxy or a captive portal may be answering instead)"
    )]
    InvalidResponse {
        /// The call the service answered.
        during: Operation,
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
        /// The call that failed.
        during: Operation,
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

    /// The ledger that records each input's task could not be read or written, or another
    /// owner changed the input's entry; see [`LedgerError`].
    #[error(transparent)]
    Ledger(#[from] LedgerError),
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
            | Error::Redirected { status, .. }
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

    /// What the caller can do about this error — the one classification every adapter (the
    /// CLI, the Lambda, the C ABI) acts on. See [`Recovery`].
    ///
    /// ```no_run
    /// use backdrop_core::{Client, GenerateRequest, Recovery, WaitControl, WaitOptions};
    ///
    /// # async fn run(client: Client, request: GenerateRequest) {
    /// match client.generate(&request, WaitOptions::default(), |_| WaitControl::Continue).await {
    ///     Ok(generation) => println!("{} images", generation.images.len()),
    ///     Err(error) => match error.recovery() {
    ///         Recovery::Retry => eprintln!("{error}: nothing was charged, run it again"),
    ///         Recovery::Resume => eprintln!("{error}: resume task {:?} by id", error.task_id()),
    ///         Recovery::Unconfirmed | Recovery::ResultsLost => {
    ///             eprintln!("{error}: may have been charged; ask before creating again")
    ///         }
    ///         Recovery::Permanent => eprintln!("{error}"),
    ///     },
    /// }
    /// # }
    /// ```
    pub fn recovery(&self) -> Recovery {
        use Operation::{Create, Download, Query};
        match self {
            // Nothing was sent, or the service refused: the same input fails the same way.
            Error::Invalid(_)
            | Error::Io { .. }
            | Error::Config(_)
            | Error::EmptyTaskId
            | Error::BadRequest { .. }
            | Error::Unauthorized { .. }
            | Error::PayloadTooLarge { .. } => Recovery::Permanent,
            Error::NotFound { during: Create, .. } => Recovery::Permanent,
            // The service no longer knows a task it issued: if it had succeeded it was charged,
            // and its results are gone either way.
            Error::NotFound { .. } => Recovery::ResultsLost,
            // A create is unconfirmed unless its answer proves that no task exists: a 429, a
            // 4xx refusal, a redirect, or a connection that never carried the whole request.
            Error::RateLimited { during: Create, .. } => Recovery::Retry,
            // Any 5xx: a gateway (502, 503, 504) or the service (500) may have failed after
            // the create was passed on.
            Error::Server { during: Create, .. } => Recovery::Unconfirmed,
            Error::Redirected { during: Create, .. } => Recovery::Permanent,
            // 408: the server timed out reading the request, so it never had it whole.
            Error::UnexpectedStatus {
                during: Create,
                status,
                ..
            } => match status {
                408 => Recovery::Retry,
                400..=499 => Recovery::Permanent,
                _ => Recovery::Unconfirmed,
            },
            // An answer that cannot be read (an HTTP 200 without a usable task id, a body over
            // the cap) proves nothing, unless its status refused the create.
            Error::InvalidResponse {
                during: Create,
                status,
                ..
            } => match status {
                429 => Recovery::Retry,
                400..=499 => Recovery::Permanent,
                _ => Recovery::Unconfirmed,
            },
            // Nothing was sent: it may go once the cap allows.
            Error::CreditCapReached { .. } => Recovery::Retry,
            // A create given up or cut short: whether its request can have arrived whole says
            // it all.
            Error::Abandoned {
                during: Create,
                maybe_accepted,
            }
            | Error::Network {
                during: Create,
                maybe_accepted,
                ..
            } => {
                if *maybe_accepted {
                    Recovery::Unconfirmed
                } else {
                    Recovery::Retry
                }
            }
            Error::Abandoned { .. } => Recovery::Resume,
            // Trouble while querying or downloading: the task is unharmed, come back to it.
            Error::RateLimited {
                during: Query | Download,
                ..
            }
            | Error::Server {
                during: Query | Download,
                ..
            }
            | Error::Redirected {
                during: Query | Download,
                ..
            }
            | Error::UnexpectedStatus {
                during: Query | Download,
                ..
            }
            | Error::InvalidResponse {
                during: Query | Download,
                ..
            }
            | Error::Network {
                during: Query | Download,
                ..
            }
            | Error::Timeout { .. }
            | Error::Cancelled { .. }
            | Error::ResultInvalid { .. } => Recovery::Resume,
            // Only a download waits on the client's own shutdown: its task is done and unharmed.
            Error::ShuttingDown => Recovery::Resume,
            // A failed task is not charged; a new task may succeed where the service says so.
            Error::TaskFailed { state, .. } => {
                if state.is_transient_failure() {
                    Recovery::Retry
                } else {
                    Recovery::Permanent
                }
            }
            // A succeeded task was charged; its results cannot be had any more.
            Error::ResultMissing { .. } | Error::ResultExpired { .. } => Recovery::ResultsLost,
            // The ledger is checked before a create is sent: a failure there sent nothing.
            Error::Ledger(_) | Error::RecordFailed(_) => Recovery::Retry,
        }
    }

    /// True when this error leaves open whether the service accepted a create (and charged
    /// it): the request was sent and no answer said no — a lost or cut answer, a timeout, any
    /// 5xx, an answer that could not be read. Creating again could pay twice. The same as
    /// `recovery() == Recovery::Unconfirmed`.
    pub fn may_have_created_task(&self) -> bool {
        self.recovery() == Recovery::Unconfirmed
    }

    /// True when starting over — a new create for the same input — is safe and may succeed
    /// later: nothing is running and nothing was charged (`recovery() == Recovery::Retry`).
    ///
    /// False whenever a task may exist: a task to resume by id ([`Recovery::Resume`]), a create
    /// that may have been charged, results that were charged and lost, and every error the
    /// same input would meet again.
    pub fn is_transient(&self) -> bool {
        self.recovery() == Recovery::Retry
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

/// The API call an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Operation {
    /// Creating a task (`POST`): the only call that can charge credits.
    Create,
    /// Querying a task (`GET` by id): always safe to repeat.
    Query,
    /// Downloading a result image: never carries the API key, never uses the rate limit.
    Download,
}

impl Operation {
    /// The operation's name: `create`, `query` or `download`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Query => "query",
            Operation::Download => "download",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a caller can do after an error: the one answer the CLI, the Lambda and the C ABI act
/// on, so that none of them sends a create that may be paid twice.
///
/// | recovery | a task … | charged | what to do |
/// | --- | --- | --- | --- |
/// | [`Retry`](Recovery::Retry) | does not exist (or failed) | no | try the input again later: a new create is safe |
/// | [`Resume`](Recovery::Resume) | exists and may still finish | when it succeeds | wait for it again by its id; never create |
/// | [`Unconfirmed`](Recovery::Unconfirmed) | may exist, id unknown | maybe | ask: creating again may pay twice |
/// | [`ResultsLost`](Recovery::ResultsLost) | ran, its results are gone | yes (or maybe) | ask: generating again is paid again |
/// | [`Permanent`](Recovery::Permanent) | does not exist (or failed) | no | fix the input, the key or the configuration |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recovery {
    /// Nothing is running and nothing was charged; the same input may succeed later (rate
    /// limiting, a service failure that issued no task, a task that failed on the service's
    /// side). A new create is safe.
    Retry,
    /// A task exists and may still finish (a timeout, a cancelled wait, trouble while polling or
    /// downloading): resume it by its id. Creating again would pay twice.
    Resume,
    /// A create was sent and its answer never seen (a timeout, a cut connection, a gateway
    /// timeout, an unreadable HTTP 200): a task may exist and be charged, and the API cannot
    /// tell. Created again only when the user accepts paying twice.
    Unconfirmed,
    /// The task was charged (or, when the service no longer knows it, may have been) and its
    /// results can no longer be had: generating again is paid again.
    ResultsLost,
    /// The same input would fail the same way (it breaks a rule, the key is refused, the
    /// content was judged): nothing was charged; change something first.
    Permanent,
}

impl Recovery {
    /// The recovery's name, as written in records and JSON: `retry`, `resume`, `unconfirmed`,
    /// `results_lost`, `permanent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Recovery::Retry => "retry",
            Recovery::Resume => "resume",
            Recovery::Unconfirmed => "unconfirmed",
            Recovery::ResultsLost => "results_lost",
            Recovery::Permanent => "permanent",
        }
    }

    /// True when credits were, or may have been, spent for nothing to show.
    pub fn may_be_charged(self) -> bool {
        matches!(self, Recovery::Unconfirmed | Recovery::ResultsLost)
    }
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(during: Operation, status: u16) -> Error {
        Error::InvalidResponse {
            during,
            status,
            reason: "not JSON".into(),
            body_start: "<html>".into(),
        }
    }

    fn server(during: Operation, status: u16) -> Error {
        Error::Server {
            during,
            status,
            message: String::new(),
            attempts: 1,
        }
    }

    #[test]
    fn only_answers_that_leave_a_create_open_may_have_created_a_task() {
        assert!(invalid(Operation::Create, 200).may_have_created_task());
        assert!(invalid(Operation::Create, 502).may_have_created_task());
        assert!(!invalid(Operation::Create, 400).may_have_created_task());
        assert!(!invalid(Operation::Query, 200).may_have_created_task());
        for status in [500, 502, 503, 504, 599] {
            assert!(server(Operation::Create, status).may_have_created_task());
            assert!(!server(Operation::Query, status).may_have_created_task());
        }
        let unexpected = |status| Error::UnexpectedStatus {
            during: Operation::Create,
            status,
            message: String::new(),
        };
        assert!(unexpected(202).may_have_created_task(), "202 Accepted");
        assert_eq!(unexpected(408).recovery(), Recovery::Retry);
        assert_eq!(unexpected(403).recovery(), Recovery::Permanent);
        let redirected = |during| Error::Redirected {
            during,
            status: 302,
            location: "http://elsewhere.example/".into(),
        };
        assert_eq!(
            redirected(Operation::Create).recovery(),
            Recovery::Permanent
        );
        assert_eq!(redirected(Operation::Query).recovery(), Recovery::Resume);
        let limited = Error::RateLimited {
            during: Operation::Create,
            message: String::new(),
            retry_after: None,
            attempts: 1,
        };
        assert!(!limited.may_have_created_task());
        assert_eq!(limited.recovery(), Recovery::Retry);
    }

    #[test]
    fn nothing_that_may_have_created_a_task_is_transient() {
        for error in [
            invalid(Operation::Create, 200),
            server(Operation::Create, 504),
            Error::NotFound {
                during: Operation::Query,
                message: String::new(),
            },
            Error::ResultExpired {
                task_id: "T".into(),
                index: 1,
                status: 403,
            },
            Error::Timeout {
                task_id: "T".into(),
                waited: Duration::from_secs(300),
                last_state: TaskState::Processing,
            },
        ] {
            assert!(!error.is_transient(), "{error}");
            assert_ne!(error.recovery(), Recovery::Retry, "{error}");
        }
        assert!(!server(Operation::Create, 500).is_transient());
        assert_eq!(server(Operation::Query, 500).recovery(), Recovery::Resume);
    }

    #[test]
    fn a_404_means_a_bad_url_on_create_and_a_lost_task_on_query() {
        let create = Error::NotFound {
            during: Operation::Create,
            message: "no route".into(),
        };
        assert_eq!(create.recovery(), Recovery::Permanent);
        assert!(create.to_string().contains("base URL"), "{create}");
        let query = Error::NotFound {
            during: Operation::Query,
            message: "task not found".into(),
        };
        assert_eq!(query.recovery(), Recovery::ResultsLost);
        assert!(query.recovery().may_be_charged());
        assert!(query.to_string().contains("no longer knows"), "{query}");
    }

    #[test]
    fn failed_tasks_are_retried_only_when_the_failure_is_the_services() {
        let failed = |state| Error::TaskFailed {
            task_id: "T".into(),
            state,
            message: None,
        };
        assert_eq!(
            failed(TaskState::ProcessingTimedOut).recovery(),
            Recovery::Retry,
            "-8 is the service's trouble"
        );
        assert_eq!(
            failed(TaskState::InvalidPrompt).recovery(),
            Recovery::Permanent
        );
    }
}
