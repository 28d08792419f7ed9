//! The JSON objects the function writes for people and programs downstream: manifests and
//! failure records. (Claim objects are ledger entries, see [`crate::claims`].)

use backdrop_core::ledger::Failure;
use backdrop_core::{GenerationOptions, Recovery, TaskState};
use serde::{Deserialize, Serialize};

/// The object version a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// ETag of the version processed.
    pub etag: String,
}

impl Source {
    /// `s3://bucket/key`, for people and ledger labels.
    pub fn label(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// Timings of a successful object, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// When the task was created (unix seconds).
    pub submitted_at: Option<f64>,
    /// When the outputs were written (unix seconds).
    pub finished_at: f64,
    /// `finished_at - submitted_at`.
    pub seconds: Option<f64>,
    /// The service's processing time (`time_elapsed`), in milliseconds.
    pub service_time_elapsed_ms: Option<f64>,
    /// The service's timestamps.
    pub service_created_at: Option<String>,
    /// The service's completion timestamp.
    pub service_completed_at: Option<String>,
}

/// `OUTPUT_PREFIX/<path>/manifest.json`, written after the images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The source object version.
    pub source: Source,
    /// The task that produced the images.
    pub task_id: String,
    /// What was asked for.
    pub parameters: GenerationOptions,
    /// The task's final state code (1).
    pub state: i32,
    /// Credits charged, by the spec's price list.
    pub credits_charged: u32,
    /// Tasks created for this object version and parameters.
    pub attempts: u32,
    /// Timings.
    pub timings: Timings,
    /// Keys of the generated images, in order.
    pub outputs: Vec<String>,
}

/// Where an object's processing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureStage {
    /// The object breaks a rule of the service (nothing was sent).
    Validation,
    /// Its metadata (or the function's defaults) describe no valid request.
    Parameters,
    /// Creating the task.
    Create,
    /// The task, or waiting for it.
    Task,
    /// Downloading its results.
    Download,
    /// The function's role may not read or write what it needs (S3 answered 403): fix the role
    /// or the key policy; retrying cannot help.
    Configuration,
    /// Transient trouble outlasted the queue's deliveries (`MAX_RECEIVE_COUNT`).
    Retries,
    /// Not started: the create would have passed the daily credit cap (`DAILY_CREDIT_CAP`).
    /// Nothing was sent or charged.
    CreditCap,
}

impl FailureStage {
    /// The stage's name as written in records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureStage::Validation => "validation",
            FailureStage::Parameters => "parameters",
            FailureStage::Create => "create",
            FailureStage::Task => "task",
            FailureStage::Download => "download",
            FailureStage::Configuration => "configuration",
            FailureStage::Retries => "retries",
            FailureStage::CreditCap => "credit_cap",
        }
    }
}

/// `FAILED_PREFIX/<path>.json`: why an object has no outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// The source object version.
    pub source: Source,
    /// Where it failed.
    pub stage: FailureStage,
    /// The task state, when the task failed.
    pub state: Option<i32>,
    /// The spec's meaning of that state.
    pub state_meaning: Option<String>,
    /// The HTTP status, when the service refused a request.
    pub http_status: Option<u16>,
    /// The full message, with what to do.
    pub message: String,
    /// What can be done: `retry`, `resume`, `unconfirmed`, `results_lost`, `permanent`.
    pub recovery: Recovery,
    /// The task, when one was created.
    pub task_id: Option<String>,
    /// Whether credits were (or may have been) spent.
    pub credits_spent: bool,
    /// Tasks created for this object version and parameters.
    pub attempts: u32,
    /// When this record was written (unix seconds).
    pub failed_at: f64,
}

impl FailureRecord {
    /// A refusal before anything was sent: nothing created, nothing spent.
    pub fn refused(source: &Source, stage: FailureStage, message: String) -> Self {
        FailureRecord {
            source: source.clone(),
            stage,
            state: None,
            state_meaning: None,
            http_status: None,
            message,
            recovery: Recovery::Permanent,
            task_id: None,
            credits_spent: false,
            attempts: 0,
            failed_at: now_unix(),
        }
    }

    /// The record of a failure the ledger holds for the object.
    pub fn from_ledger(
        source: &Source,
        stage: FailureStage,
        failure: &Failure,
        attempts: u32,
    ) -> Self {
        let state = failure.task_state.map(TaskState::from_code);
        FailureRecord {
            source: source.clone(),
            stage,
            state: failure.task_state,
            state_meaning: state
                .filter(|s| s.code() < 0)
                .map(|s| s.meaning().to_owned()),
            http_status: failure.http_status,
            message: failure.message.clone(),
            recovery: failure.recovery,
            task_id: failure.task_id.clone(),
            credits_spent: failure.credits_spent,
            attempts,
            failed_at: now_unix(),
        }
    }
}

/// Now, in unix seconds.
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
