//! One object's row of the day's page, made from the record the function wrote for it (its
//! manifest or its failure record), with thumbnails of its source and images.

use std::io::Cursor;

use backdrop_core::remedy::sentence;
use backdrop_report::{Picture, Row, RowFailure, Status, thumbnail};
use bytes::Bytes;

use super::thumbnails::{MAX_THUMBNAIL_SOURCE, source_thumbnail};
use super::{Day, ReportError, relative_key};
use crate::config::Config;
use crate::event::ObjectRef;
use crate::outputs::Destination;
use crate::params::Parameters;
use crate::records::{FailureRecord, Manifest};
use crate::store::{ObjectStore, WriteCondition};

/// Makes one object's row.
pub(super) struct RowMaker<'a, S> {
    pub(super) store: &'a S,
    pub(super) config: &'a Config,
    pub(super) object: &'a ObjectRef,
    pub(super) destination: &'a Destination,
    pub(super) day: &'a Day,
}

impl<S: ObjectStore> RowMaker<'_, S> {
    pub(super) async fn done_row(&self, manifest_key: &str) -> Result<Row, ReportError> {
        let manifest: Manifest = self.record(manifest_key).await?;
        let mut images = Vec::new();
        for (i, key) in manifest.outputs.iter().enumerate() {
            let thumb = self
                .thumbnail(
                    &self.destination.bucket,
                    key,
                    false,
                    &format!("{}.jpg", i + 1),
                )
                .await;
            images.push(Picture {
                full: Some(relative_key(&self.day.folder, key)),
                thumb,
                caption: format!("image {}", i + 1),
            });
        }
        let parameters = &manifest.parameters;
        Ok(Row {
            label: self.label(),
            status: Status::Succeeded,
            state: match manifest.attempts {
                attempts if attempts > 1 => format!("done (after {attempts} tasks)"),
                _ => "done".into(),
            },
            source: Some(self.source_picture().await),
            images,
            background: Some(background_text(parameters.background())),
            negative: parameters.negative_prompt().map(str::to_owned),
            task_id: Some(manifest.task_id),
            seconds: manifest.timings.seconds,
            credits: manifest.credits_charged,
            failure: None,
        })
    }

    pub(super) async fn failed_row(&self, record_key: &str) -> Result<Row, ReportError> {
        let record: FailureRecord = self.record(record_key).await?;
        let mut words = format!("failed at {}", record.stage.as_str().replace('_', " "));
        if let Some(state) = record.state {
            words.push_str(&format!(" (task state {state})"));
        } else if let Some(http) = record.http_status {
            words.push_str(&format!(" (HTTP {http})"));
        }
        let mut reason = record.message.clone();
        if let Some(meaning) = &record.state_meaning
            && !reason.contains(meaning.as_str())
        {
            reason = format!("{reason} ({meaning})");
        }
        // The background asked for: the object's metadata, else the defaults.
        let options = match self.store.head(&self.object.bucket, &self.object.key).await {
            Ok(Some(head)) => Parameters::resolve(&head.metadata, &self.config.defaults).ok(),
            _ => None,
        };
        let advice = sentence(&crate::process::remedy_of(
            record.recovery,
            record.stage,
            record.state,
            record.http_status,
            record.credits_spent,
            None,
        ));
        Ok(Row {
            label: self.label(),
            status: Status::Failed,
            state: words,
            source: Some(self.source_picture().await),
            images: Vec::new(),
            background: options
                .as_ref()
                .map(|p| background_text(p.options.background())),
            negative: options
                .as_ref()
                .and_then(|p| p.options.negative_prompt().map(str::to_owned)),
            task_id: record.task_id,
            seconds: None,
            credits: 0,
            failure: Some(RowFailure { reason, advice }),
        })
    }

    fn label(&self) -> String {
        format!("s3://{}/{}", self.object.bucket, self.object.key)
    }

    /// A record the function wrote (a manifest, a failure record), read back by its type.
    async fn record<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T, ReportError> {
        let Some((bytes, _)) = self.store.get(&self.destination.bucket, key).await? else {
            return Err(ReportError(format!(
                "s3://{}/{key} is gone",
                self.destination.bucket
            )));
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            ReportError(format!(
                "s3://{}/{key} is not a record of this function: {e}",
                self.destination.bucket
            ))
        })
    }

    /// The source: its thumbnail, and a link when it is in the page's bucket.
    async fn source_picture(&self) -> Picture {
        let thumb = self
            .thumbnail(&self.object.bucket, &self.object.key, true, "source.jpg")
            .await;
        Picture {
            full: (self.object.bucket == self.day.bucket)
                .then(|| relative_key(&self.day.folder, &self.object.key)),
            thumb,
            caption: "source".into(),
        }
    }

    /// Makes `name` in the object's thumbnail folder from `bucket/key` (a source PNG read row
    /// by row, or a generated image); its key relative to the page, `None` when it cannot be
    /// made.
    async fn thumbnail(&self, bucket: &str, key: &str, source: bool, name: &str) -> Option<String> {
        let relative = self
            .destination
            .folder
            .strip_prefix(&self.config.output_prefix)
            .unwrap_or(&self.destination.folder);
        let thumb_key = format!("{}thumbs/{relative}/{name}", self.day.folder);
        let made = async {
            let jpeg = if source {
                // Streamed: the object's pieces feed the decoder, which reads the PNG row by row.
                let Some(head) = self.store.head(bucket, key).await? else {
                    return Ok::<_, ReportError>(None);
                };
                if head.size > MAX_THUMBNAIL_SOURCE {
                    return Ok(None);
                }
                source_thumbnail(self.store, bucket, key, &head.etag, head.size).await?
            } else {
                // A generated image is at most 1024 px: read whole, decoded whole.
                let Some((bytes, _)) = self.store.get(bucket, key).await? else {
                    return Ok(None);
                };
                tokio::task::spawn_blocking(move || thumbnail::generated_image(Cursor::new(bytes)))
                    .await
                    .map_err(|e| ReportError(format!("thumbnail: {e}")))?
                    .ok()
            };
            let Some(jpeg) = jpeg else { return Ok(None) };
            self.store
                .put(
                    &self.day.bucket,
                    &thumb_key,
                    Bytes::from(jpeg),
                    "image/jpeg",
                    WriteCondition::Always,
                )
                .await?;
            Ok(Some(relative_key(&self.day.folder, &thumb_key)))
        };
        match made.await {
            Ok(thumb) => thumb,
            Err(error) => {
                tracing::debug!(bucket, key, error = %error, "no thumbnail");
                None
            }
        }
    }
}

/// The background asked for, as the page shows it: `prompt: …` or `scene N`.
fn background_text(background: &backdrop_core::Background) -> String {
    match background {
        backdrop_core::Background::Prompt(prompt) => format!("prompt: {prompt}"),
        backdrop_core::Background::SceneType(scene) => format!("scene {scene}"),
    }
}
