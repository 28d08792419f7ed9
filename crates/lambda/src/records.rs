//! The JSON objects the function writes: claims (state), manifests and failure records.

use serde::{Deserialize, Serialize};

use crate::params::Parameters;

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

/// Where the work on one object version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    /// An invocation owns it and is about to create a task.
    Claimed,
    /// A task was created; its id is recorded.
    Submitted,
    /// The last task failed on the service's side, or the create was refused for now; the next
    /// delivery may create a new task.
    RetryPending,
    /// Outputs and manifest are written.
    Succeeded,
    /// A failure record is written.
    Failed,
}

/// The claim object (`STATE_PREFIX/<hash>.json`): written with `If-None-Match: *` to claim the
/// object version, then updated with `If-Match`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimRecord {
    /// The object version.
    pub source: Source,
    /// Where it stands.
    pub status: ClaimStatus,
    /// The current task, once created.
    pub task_id: Option<String>,
    /// Tasks created so far.
    pub attempts: u32,
    /// When the current task was created (unix seconds).
    pub submitted_at: Option<f64>,
    /// Last change (unix seconds).
    pub updated_at: f64,
    /// Why the last attempt ended, for people.
    pub note: Option<String>,
}

/// Timings of a successful object, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    /// The source object version.
    pub source: Source,
    /// The task that produced the images.
    pub task_id: String,
    /// What was asked for.
    pub parameters: Parameters,
    /// The task's final state code (1).
    pub state: i32,
    /// Credits charged, by the spec's price list.
    pub credits_charged: u32,
    /// Tasks created for this object version.
    pub attempts: u32,
    /// Timings.
    pub timings: Timings,
    /// Keys of the generated images, in order.
    pub outputs: Vec<String>,
}

/// `FAILED_PREFIX/<path>.json`: why an object has no outputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureRecord {
    /// The source object version.
    pub source: Source,
    /// Where it failed: `validation`, `parameters`, `create`, `task`, `download`.
    pub stage: &'static str,
    /// The task state, when the task failed.
    pub state: Option<i32>,
    /// The spec's meaning of that state.
    pub state_meaning: Option<&'static str>,
    /// The HTTP status, when the service refused a request.
    pub http_status: Option<u16>,
    /// The full message, with what to do.
    pub message: String,
    /// The task, when one was created.
    pub task_id: Option<String>,
    /// Whether credits were (or may have been) spent.
    pub credits_spent: bool,
    /// Tasks created for this object version.
    pub attempts: u32,
    /// When this record was written (unix seconds).
    pub failed_at: f64,
}

/// Now, in unix seconds.
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
