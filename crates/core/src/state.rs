//! Task states (`data.state`): every documented code, its meaning and how to treat it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The state of a background generation task, as reported in `data.state`.
///
/// Every code the spec documents has a variant; a code it does not document is kept in
/// [`TaskState::Other`] and classified by the spec's rule (1 succeeded, greater than 1
/// processing, less than 0 failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// -17: the prompt is invalid.
    InvalidPrompt,
    /// -16: a third-party review detected prohibited content.
    ThirdPartyReviewRejected,
    /// -15: insufficient resources.
    InsufficientResources,
    /// -14: the input image content does not meet the requirements.
    ImageContentRejected,
    /// -13: the task was canceled due to an exception.
    CanceledByException,
    /// -11: the result is empty.
    EmptyResult,
    /// -10: internal review detected prohibited content.
    InternalReviewRejected,
    /// -9: the internal program failed during loop processing.
    LoopProcessingFailed,
    /// -8: processing timed out (the maximum processing time is 180 seconds).
    ProcessingTimedOut,
    /// -7: invalid image file (corrupted image or incorrect format).
    InvalidImageFile,
    /// -5: the `image_url` image exceeds the size limit (30MB).
    ImageUrlTooLarge,
    /// -3: the server failed to download the `image_url`.
    ImageUrlDownloadFailed,
    /// -2: processing completed, but uploading the result to OSS failed.
    ResultUploadFailed,
    /// -1: processing failed.
    Failed,
    /// 0: queued, waiting in the queue.
    Queued,
    /// 1: completed, processing succeeded.
    Completed,
    /// 2: preparing.
    Preparing,
    /// 3: waiting.
    Waiting,
    /// 4: processing in progress.
    Processing,
    /// 5: internally publishing the result.
    Publishing,
    /// 6: internal loop processing is in progress.
    LoopProcessing,
    /// A code the spec does not document.
    Other(i32),
}

/// What a state means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateClass {
    /// The task is done; the results can be read.
    Succeeded,
    /// The task is queued or running: poll again.
    Pending,
    /// The task failed; no result will come.
    Failed,
}

impl TaskState {
    /// Every documented state, from -17 to 6.
    pub const DOCUMENTED: [TaskState; 21] = [
        TaskState::InvalidPrompt,
        TaskState::ThirdPartyReviewRejected,
        TaskState::InsufficientResources,
        TaskState::ImageContentRejected,
        TaskState::CanceledByException,
        TaskState::EmptyResult,
        TaskState::InternalReviewRejected,
        TaskState::LoopProcessingFailed,
        TaskState::ProcessingTimedOut,
        TaskState::InvalidImageFile,
        TaskState::ImageUrlTooLarge,
        TaskState::ImageUrlDownloadFailed,
        TaskState::ResultUploadFailed,
        TaskState::Failed,
        TaskState::Queued,
        TaskState::Completed,
        TaskState::Preparing,
        TaskState::Waiting,
        TaskState::Processing,
        TaskState::Publishing,
        TaskState::LoopProcessing,
    ];

    /// The state with this code; undocumented codes become [`TaskState::Other`].
    pub fn from_code(code: i32) -> TaskState {
        match code {
            -17 => TaskState::InvalidPrompt,
            -16 => TaskState::ThirdPartyReviewRejected,
            -15 => TaskState::InsufficientResources,
            -14 => TaskState::ImageContentRejected,
            -13 => TaskState::CanceledByException,
            -11 => TaskState::EmptyResult,
            -10 => TaskState::InternalReviewRejected,
            -9 => TaskState::LoopProcessingFailed,
            -8 => TaskState::ProcessingTimedOut,
            -7 => TaskState::InvalidImageFile,
            -5 => TaskState::ImageUrlTooLarge,
            -3 => TaskState::ImageUrlDownloadFailed,
            -2 => TaskState::ResultUploadFailed,
            -1 => TaskState::Failed,
            0 => TaskState::Queued,
            1 => TaskState::Completed,
            2 => TaskState::Preparing,
            3 => TaskState::Waiting,
            4 => TaskState::Processing,
            5 => TaskState::Publishing,
            6 => TaskState::LoopProcessing,
            other => TaskState::Other(other),
        }
    }

    /// The numeric code, as the service sends it.
    pub const fn code(self) -> i32 {
        match self {
            TaskState::InvalidPrompt => -17,
            TaskState::ThirdPartyReviewRejected => -16,
            TaskState::InsufficientResources => -15,
            TaskState::ImageContentRejected => -14,
            TaskState::CanceledByException => -13,
            TaskState::EmptyResult => -11,
            TaskState::InternalReviewRejected => -10,
            TaskState::LoopProcessingFailed => -9,
            TaskState::ProcessingTimedOut => -8,
            TaskState::InvalidImageFile => -7,
            TaskState::ImageUrlTooLarge => -5,
            TaskState::ImageUrlDownloadFailed => -3,
            TaskState::ResultUploadFailed => -2,
            TaskState::Failed => -1,
            TaskState::Queued => 0,
            TaskState::Completed => 1,
            TaskState::Preparing => 2,
            TaskState::Waiting => 3,
            TaskState::Processing => 4,
            TaskState::Publishing => 5,
            TaskState::LoopProcessing => 6,
            TaskState::Other(code) => code,
        }
    }

    /// The spec's rule: 1 succeeded, 0 or greater than 1 still processing, less than 0 failed.
    pub const fn class(self) -> StateClass {
        match self.code() {
            1 => StateClass::Succeeded,
            code if code < 0 => StateClass::Failed,
            _ => StateClass::Pending,
        }
    }

    /// True when the task will not change any more (succeeded or failed).
    pub const fn is_final(self) -> bool {
        !matches!(self.class(), StateClass::Pending)
    }

    /// The spec's description of the state.
    pub const fn meaning(self) -> &'static str {
        match self {
            TaskState::InvalidPrompt => "processing failed because the prompt is invalid",
            TaskState::ThirdPartyReviewRejected => {
                "processing failed because a third-party review detected prohibited content"
            }
            TaskState::InsufficientResources => "processing failed due to insufficient resources",
            TaskState::ImageContentRejected => {
                "processing failed because the input image content does not meet the requirements"
            }
            TaskState::CanceledByException => {
                "processing failed because the task was canceled due to an exception"
            }
            TaskState::EmptyResult => "processing failed because the result is empty",
            TaskState::InternalReviewRejected => {
                "processing failed because internal review detected prohibited content"
            }
            TaskState::LoopProcessingFailed => {
                "processing failed because the internal program failed during loop processing"
            }
            TaskState::ProcessingTimedOut => {
                "processing timed out (the maximum processing time is 180 seconds)"
            }
            TaskState::InvalidImageFile => {
                "invalid image file (e.g. corrupted image or incorrect format)"
            }
            TaskState::ImageUrlTooLarge => "the image_url image exceeds the size limit (30MB)",
            TaskState::ImageUrlDownloadFailed => {
                "the server failed to download your file: check that the source image URL is available"
            }
            TaskState::ResultUploadFailed => {
                "processing completed, but uploading the result to OSS failed"
            }
            TaskState::Failed => "processing failed",
            TaskState::Queued => "queued: the task is waiting in the queue",
            TaskState::Completed => "completed: processing succeeded",
            TaskState::Preparing => "preparing",
            TaskState::Waiting => "waiting",
            TaskState::Processing => "processing in progress",
            TaskState::Publishing => "internally publishing the result",
            TaskState::LoopProcessing => "processing: internal loop processing is in progress",
            TaskState::Other(code) if code < 0 => "processing failed (undocumented state)",
            TaskState::Other(_) => "processing (undocumented state)",
        }
    }

    /// For a failed state: whether submitting the same input again may succeed.
    ///
    /// Service-side trouble (-1, -2, -8, -9, -13, -15, and undocumented failures) is transient;
    /// a verdict on the input itself (invalid prompt or image, content review, unreachable or
    /// oversized `image_url`, empty result) is permanent: retrying it would fail again.
    /// Returns false for states that are not failures.
    pub const fn is_transient_failure(self) -> bool {
        match self {
            TaskState::Failed
            | TaskState::ResultUploadFailed
            | TaskState::ProcessingTimedOut
            | TaskState::LoopProcessingFailed
            | TaskState::CanceledByException
            | TaskState::InsufficientResources => true,
            TaskState::Other(code) => code < 0,
            _ => false,
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.meaning())
    }
}

impl Serialize for TaskState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i32(self.code())
    }
}

impl<'de> Deserialize<'de> for TaskState {
    /// A state code as a JSON number or, as services sometimes send numbers, a string holding
    /// one (`"1"`); anything else is an error.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Code {
            Number(i32),
            Text(String),
        }
        match Code::deserialize(deserializer)? {
            Code::Number(code) => Ok(TaskState::from_code(code)),
            Code::Text(text) => text.trim().parse().map(TaskState::from_code).map_err(|_| {
                serde::de::Error::custom(format!("state {text:?} is not a state code"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_code_round_trips() {
        for state in TaskState::DOCUMENTED {
            assert_eq!(TaskState::from_code(state.code()), state);
            assert!(!matches!(state, TaskState::Other(_)));
        }
        assert_eq!(TaskState::DOCUMENTED.len(), 21);
    }

    #[test]
    fn codes_come_as_numbers_or_strings_of_numbers() {
        let parse = |json: &str| serde_json::from_str::<TaskState>(json);
        assert_eq!(parse("1").unwrap(), TaskState::Completed);
        assert_eq!(parse("\" -7 \"").unwrap(), TaskState::from_code(-7));
        assert!(parse("\"done\"").is_err());
        assert!(parse("1.5").is_err());
        assert!(parse("null").is_err());
        assert!(parse("4294967296").is_err());
    }

    #[test]
    fn unknown_codes_follow_the_spec_rule() {
        assert_eq!(TaskState::from_code(-99).class(), StateClass::Failed);
        assert_eq!(TaskState::from_code(-4).class(), StateClass::Failed);
        assert_eq!(TaskState::from_code(7).class(), StateClass::Pending);
        assert_eq!(TaskState::from_code(42).code(), 42);
        assert!(TaskState::from_code(-4).is_transient_failure());
    }

    #[test]
    fn classes_of_documented_codes() {
        assert_eq!(TaskState::Completed.class(), StateClass::Succeeded);
        assert_eq!(TaskState::Queued.class(), StateClass::Pending);
        for code in 2..=6 {
            assert_eq!(TaskState::from_code(code).class(), StateClass::Pending);
        }
        for state in TaskState::DOCUMENTED.into_iter().filter(|s| s.code() < 0) {
            assert_eq!(state.class(), StateClass::Failed, "{state}");
        }
        assert!(!TaskState::InvalidPrompt.is_transient_failure());
        assert!(TaskState::ProcessingTimedOut.is_transient_failure());
        assert!(!TaskState::Completed.is_transient_failure());
    }

    #[test]
    fn serde_uses_the_numeric_code() {
        let state: TaskState = serde_json::from_str("-7").unwrap();
        assert_eq!(state, TaskState::InvalidImageFile);
        assert_eq!(serde_json::to_string(&TaskState::Processing).unwrap(), "4");
    }
}
