//! The function's metrics: counted during an invocation, written at its end as CloudWatch
//! embedded-metric-format (EMF) lines on stdout, which CloudWatch Logs turns into metrics with
//! no extra permission and no extra request.
//!
//! | metric | unit | what |
//! | --- | --- | --- |
//! | `TasksCreated` | Count | creates the service accepted |
//! | `ObjectsSucceeded` | Count | objects with outputs and a manifest |
//! | `ObjectsFailed` | Count | objects with a failure record, also per `Stage` (validation, parameters, configuration, create, task, download, retries) |
//! | `ObjectsRetried` | Count | objects whose message was delivered again |
//! | `CreditsCharged` | Count | credits of the succeeded tasks, by the price list |
//! | `RateLimited` | Count | HTTP 429 answers received |
//! | `TaskSeconds` | Seconds | from sending a create to storing its outputs, per object |
//! | `DetectionDelaySeconds` | Seconds | from the service's `completed_at` to the poll that saw it, per object |

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

/// The metrics namespace.
pub const NAMESPACE: &str = "backdrop";

/// What one invocation counted.
#[derive(Debug, Default)]
pub struct Metrics {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default, Clone)]
struct Counts {
    tasks_created: u64,
    succeeded: u64,
    failed: BTreeMap<String, u64>,
    retried: u64,
    credits: u64,
    rate_limited: u64,
    task_seconds: Vec<f64>,
    detection_delays: Vec<f64>,
}

impl Metrics {
    /// A task was created.
    pub fn task_created(&self) {
        self.update(|c| c.tasks_created += 1);
    }

    /// An object got its outputs.
    pub fn succeeded(&self, credits: u32, task_seconds: Option<f64>, detection_delay: Option<f64>) {
        self.update(|c| {
            c.succeeded += 1;
            c.credits += u64::from(credits);
            c.task_seconds
                .extend(task_seconds.filter(|s| s.is_finite() && *s >= 0.0));
            c.detection_delays
                .extend(detection_delay.filter(|s| s.is_finite() && *s >= 0.0));
        });
    }

    /// An object got a failure record at `stage`.
    pub fn failed(&self, stage: &str) {
        self.update(|c| *c.failed.entry(stage.to_owned()).or_default() += 1);
    }

    /// An object's message is to be delivered again.
    pub fn retried(&self) {
        self.update(|c| c.retried += 1);
    }

    /// 429 answers received.
    pub fn rate_limited(&self, answers: u64) {
        self.update(|c| c.rate_limited += answers);
    }

    /// The EMF lines of what was counted, for `function` at `timestamp_ms`: one for the
    /// function's totals, one per failure stage. Counts of zero are written too (an alarm on
    /// a missing point and on a zero differ).
    pub fn emf_lines(&self, function: &str, timestamp_ms: u64) -> Vec<String> {
        let counts = self.lock().clone();
        let failed: u64 = counts.failed.values().sum();
        let mut values = Map::new();
        let mut declared = Vec::new();
        let mut put = |name: &str, unit: &str, value: Value| {
            declared.push(json!({"Name": name, "Unit": unit}));
            values.insert(name.to_owned(), value);
        };
        put("TasksCreated", "Count", json!(counts.tasks_created));
        put("ObjectsSucceeded", "Count", json!(counts.succeeded));
        put("ObjectsFailed", "Count", json!(failed));
        put("ObjectsRetried", "Count", json!(counts.retried));
        put("CreditsCharged", "Count", json!(counts.credits));
        put("RateLimited", "Count", json!(counts.rate_limited));
        // EMF takes at most 100 values per metric and line.
        if !counts.task_seconds.is_empty() {
            put("TaskSeconds", "Seconds", json!(tail(&counts.task_seconds)));
        }
        if !counts.detection_delays.is_empty() {
            put(
                "DetectionDelaySeconds",
                "Seconds",
                json!(tail(&counts.detection_delays)),
            );
        }
        let mut lines = vec![document(function, timestamp_ms, &[], declared, values)];
        for (stage, count) in &counts.failed {
            let mut values = Map::new();
            values.insert("Stage".into(), json!(stage));
            values.insert("ObjectsFailed".into(), json!(count));
            lines.push(document(
                function,
                timestamp_ms,
                &["Stage"],
                vec![json!({"Name": "ObjectsFailed", "Unit": "Count"})],
                values,
            ));
        }
        lines
    }

    fn update(&self, change: impl FnOnce(&mut Counts)) {
        change(&mut self.lock());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn tail(values: &[f64]) -> &[f64] {
    &values[values.len().saturating_sub(100)..]
}

fn document(
    function: &str,
    timestamp_ms: u64,
    extra_dimensions: &[&str],
    metrics: Vec<Value>,
    mut values: Map<String, Value>,
) -> String {
    let mut dimensions = vec!["FunctionName"];
    dimensions.extend_from_slice(extra_dimensions);
    values.insert("FunctionName".into(), json!(function));
    values.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions],
                "Metrics": metrics,
            }],
        }),
    );
    Value::Object(values).to_string()
}

/// Where metric lines go.
#[derive(Debug, Clone, Default)]
pub enum MetricsSink {
    /// Standard output: CloudWatch Logs reads EMF from there.
    #[default]
    Stdout,
    /// Kept in memory (tests).
    Memory(Arc<Mutex<Vec<String>>>),
}

impl MetricsSink {
    /// Writes the lines.
    pub fn write(&self, lines: Vec<String>) {
        match self {
            MetricsSink::Stdout => {
                for line in lines {
                    println!("{line}");
                }
            }
            MetricsSink::Memory(kept) => kept
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .extend(lines),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_emf_documents() {
        let metrics = Metrics::default();
        metrics.task_created();
        metrics.succeeded(6, Some(12.5), Some(0.4));
        metrics.failed("task");
        metrics.failed("task");
        metrics.failed("validation");
        metrics.rate_limited(3);
        let lines = metrics.emf_lines("fn", 1_800_000_000_000);
        assert_eq!(lines.len(), 3);
        let base: Value = serde_json::from_str(&lines[0]).unwrap();
        let directive = &base["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["FunctionName"]]));
        // Every declared metric has a value under its name, and every dimension a value.
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(!base[name].is_null(), "{name}");
        }
        assert_eq!(base["FunctionName"], "fn");
        assert_eq!(base["ObjectsFailed"], 3);
        assert_eq!(base["CreditsCharged"], 6);
        assert_eq!(base["TaskSeconds"], json!([12.5]));
        let task: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(task["Stage"], "task");
        assert_eq!(task["ObjectsFailed"], 2);
        assert_eq!(
            task["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["FunctionName", "Stage"]])
        );
    }
}
