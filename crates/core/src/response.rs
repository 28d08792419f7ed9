//! The service's answers: the JSON envelope and the task record of the query endpoint.
//!
//! Parsing is lenient about representation (a timestamp or a number may come as a JSON string
//! or a number) and strict about meaning: a body that is not the documented envelope is an error.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::spec;
use crate::state::{StateClass, TaskState};

/// The envelope every answer of the API comes in: `{status, message, data}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope<T> {
    /// The documented status code; 200 means success.
    #[serde(default, deserialize_with = "lenient_i64")]
    pub status: Option<i64>,
    /// The server's message.
    #[serde(default, deserialize_with = "lenient_string")]
    pub message: Option<String>,
    /// The payload, present on success.
    #[serde(default = "Option::default")]
    pub data: Option<T>,
}

/// `data` of a create answer.
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedTask {
    /// The id to poll.
    #[serde(default, deserialize_with = "lenient_string")]
    pub task_id: Option<String>,
}

/// A task as the query endpoint reports it: every documented field of `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// The task id (quote it to support when a task fails).
    #[serde(deserialize_with = "required_string")]
    pub task_id: String,
    /// The task's state.
    pub state: TaskState,
    /// Processing progress, 0–100.
    #[serde(default, deserialize_with = "lenient_f64")]
    pub progress: Option<f64>,
    /// When the task was created (as the service sends it: unix seconds).
    #[serde(default, deserialize_with = "lenient_string")]
    pub created_at: Option<String>,
    /// When processing started.
    #[serde(default, deserialize_with = "lenient_string")]
    pub processed_at: Option<String>,
    /// When the task completed.
    #[serde(default, deserialize_with = "lenient_string")]
    pub completed_at: Option<String>,
    /// The first generated image: a URL or base64 data.
    #[serde(default, deserialize_with = "lenient_string")]
    pub image_1: Option<String>,
    /// The second generated image: a URL or base64 data.
    #[serde(default, deserialize_with = "lenient_string")]
    pub image_2: Option<String>,
    /// How results are returned.
    #[serde(default, deserialize_with = "lenient_i64")]
    pub return_type: Option<i64>,
    /// Detailed task status.
    #[serde(default, deserialize_with = "lenient_string")]
    pub state_detail: Option<String>,
    /// Processing time in milliseconds.
    #[serde(default, deserialize_with = "lenient_f64")]
    pub time_elapsed: Option<f64>,
}

impl TaskInfo {
    /// The state's class: succeeded, pending or failed.
    pub fn class(&self) -> StateClass {
        self.state.class()
    }

    /// The result fields that carry something, as `(index, value)` with index 1 or 2.
    pub fn result_fields(&self) -> Vec<(u8, &str)> {
        [(1, &self.image_1), (2, &self.image_2)]
            .into_iter()
            .filter_map(|(index, field)| {
                field
                    .as_deref()
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| (index, v))
            })
            .collect()
    }

    /// Credits this task cost, by the spec's price list: 0 unless it succeeded.
    pub fn credits_charged(&self) -> u32 {
        if self.class() != StateClass::Succeeded {
            return 0;
        }
        spec::credits_for_images(self.result_fields().len()).unwrap_or(0)
    }
}

fn required_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    lenient_string(deserializer)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| serde::de::Error::custom("task_id is missing or empty"))
}

fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    })
}

/// A number, or a string holding one; `"NaN"` and `"inf"` are not numbers JSON can carry.
fn lenient_f64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|v: &f64| v.is_finite()))
}

fn lenient_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spec_example() {
        let body = r#"{"status":200,"message":"success","data":{"task_id":"TASK_ID","state":1,
            "progress":100,"image_1":"https://x/image_1.jpg","image_2":"https://x/image_2.jpg",
            "completed_at":"1634884056"}}"#;
        let envelope: Envelope<TaskInfo> = serde_json::from_str(body).unwrap();
        let info = envelope.data.unwrap();
        assert_eq!(info.state, TaskState::Completed);
        assert_eq!(info.result_fields().len(), 2);
        assert_eq!(info.credits_charged(), 6);
        assert_eq!(info.completed_at.as_deref(), Some("1634884056"));
    }

    #[test]
    fn tolerates_numbers_as_strings_and_nulls() {
        let body = r#"{"status":"200","data":{"task_id":123,"state":4,"progress":"42.5",
            "created_at":1634884000,"image_1":null,"time_elapsed":"1200"}}"#;
        let info = serde_json::from_str::<Envelope<TaskInfo>>(body)
            .unwrap()
            .data
            .unwrap();
        assert_eq!(info.task_id, "123");
        assert_eq!(info.progress, Some(42.5));
        assert_eq!(info.created_at.as_deref(), Some("1634884000"));
        assert_eq!(info.credits_charged(), 0);
    }

    #[test]
    fn non_finite_numbers_in_strings_are_dropped() {
        let body = r#"{"data":{"task_id":"t","state":4,"progress":"NaN","time_elapsed":" inf "}}"#;
        let info = serde_json::from_str::<Envelope<TaskInfo>>(body)
            .unwrap()
            .data
            .unwrap();
        assert_eq!((info.progress, info.time_elapsed), (None, None));
    }

    #[test]
    fn missing_task_id_is_an_error() {
        let body = r#"{"status":200,"data":{"state":1}}"#;
        assert!(serde_json::from_str::<Envelope<TaskInfo>>(body).is_err());
    }
}
