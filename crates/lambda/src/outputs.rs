//! Where an object's results go: the generated images, then the manifest that lists them, and
//! failure records when there are no results.

use backdrop_core::{GeneratedImage, GenerationOptions, TaskInfo};
use bytes::Bytes;

use crate::config::Config;
use crate::error::LambdaError;
use crate::records::{FailureRecord, Manifest, Source, Timings, now_unix};
use crate::store::{ObjectStore, WriteCondition};

/// Where one object's records go: its output folder and its failure record.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The bucket written to.
    pub bucket: String,
    /// `OUTPUT_PREFIX/<path without .png>`.
    pub folder: String,
    /// `FAILED_PREFIX/<path>.json`.
    pub failure_key: String,
}

impl Destination {
    /// The destination of `source`, whose key is `relative` below the input prefix.
    pub fn of(config: &Config, source: &Source, relative: &str) -> Self {
        Destination {
            bucket: config.output_bucket_for(&source.bucket).to_owned(),
            folder: format!("{}{}", config.output_prefix, strip_png(relative)),
            failure_key: format!("{}{relative}.json", config.failed_prefix),
        }
    }
}

impl Destination {
    /// The destination of a version that is no longer the object's: `<folder>/superseded/<etag>`
    /// (the ETag reduced to letters, digits and `-`), its failure record beside the object's.
    pub fn superseded(&self, etag: &str) -> Self {
        let etag: String = etag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(64)
            .collect();
        Destination {
            bucket: self.bucket.clone(),
            folder: format!("{}/superseded/{etag}", self.folder),
            failure_key: self.failure_key.clone(),
        }
    }
}

/// A task's results and what it asked for.
#[derive(Debug)]
pub struct Results<'a> {
    /// The finished task.
    pub task: &'a TaskInfo,
    /// Its images.
    pub images: Vec<GeneratedImage>,
    /// What was asked for.
    pub options: &'a GenerationOptions,
    /// Tasks created for the object.
    pub attempts: u32,
    /// When the task's create was sent (unix seconds).
    pub submitted_at: Option<f64>,
}

/// Writes each image with one whole-body PUT, then the manifest; returns the manifest.
pub async fn store_results<S: ObjectStore>(
    store: &S,
    source: &Source,
    destination: &Destination,
    results: Results<'_>,
) -> Result<Manifest, LambdaError> {
    let mut outputs = Vec::new();
    for image in results.images {
        let key = format!(
            "{}/{}.{}",
            destination.folder,
            image.index,
            image.format.extension()
        );
        store
            .put(
                &destination.bucket,
                &key,
                image.bytes,
                image.format.mime_type(),
                WriteCondition::Always,
            )
            .await?;
        outputs.push(key);
    }
    let finished_at = now_unix();
    let task = results.task;
    let manifest = Manifest {
        source: source.clone(),
        task_id: task.task_id.clone(),
        parameters: results.options.clone(),
        state: task.state.code(),
        credits_charged: task.credits_charged(),
        attempts: results.attempts,
        timings: Timings {
            submitted_at: results.submitted_at,
            finished_at,
            seconds: results.submitted_at.map(|at| finished_at - at),
            service_time_elapsed_ms: task.time_elapsed,
            service_created_at: task.created_at.clone(),
            service_completed_at: task.completed_at.clone(),
        },
        outputs,
    };
    let body = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| LambdaError::Config(format!("manifest JSON: {e}")))?;
    store
        .put(
            &destination.bucket,
            &format!("{}/manifest.json", destination.folder),
            Bytes::from(body),
            "application/json",
            WriteCondition::Always,
        )
        .await?;
    Ok(manifest)
}

/// Writes the failure record; returns its key.
pub async fn store_failure<S: ObjectStore>(
    store: &S,
    destination: &Destination,
    record: &FailureRecord,
) -> Result<String, LambdaError> {
    let body = serde_json::to_vec_pretty(record)
        .map_err(|e| LambdaError::Config(format!("failure record JSON: {e}")))?;
    store
        .put(
            &destination.bucket,
            &destination.failure_key,
            Bytes::from(body),
            "application/json",
            WriteCondition::Always,
        )
        .await?;
    Ok(destination.failure_key.clone())
}

fn strip_png(relative: &str) -> &str {
    let cut = relative.len().saturating_sub(4);
    match relative.get(cut..) {
        Some(ext) if ext.eq_ignore_ascii_case(".png") => &relative[..cut],
        _ => relative,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_suffix_is_stripped_once() {
        assert_eq!(strip_png("sub/mug.png"), "sub/mug");
        assert_eq!(strip_png("MUG.PNG"), "MUG");
        assert_eq!(strip_png("x"), "x");
    }
}
