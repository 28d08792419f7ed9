//! Fetching the generated images of a finished task, right away (URLs live 1 hour).
//!
//! Downloads are not API requests: they never carry the API key and never use the key's rate
//! limit; they have their own concurrency limit. Each one is capped in size and must be an image.

use bytes::Bytes;

use crate::client::{Client, ReadError, read_capped};
use crate::error::{Error, Result};
use crate::response::TaskInfo;
use crate::result::{GeneratedImage, ImageFormat, ResultLocation};
use crate::state::StateClass;

impl Client {
    /// Downloads (or decodes) every result image of a succeeded task, in index order.
    pub async fn download_results(&self, task: &TaskInfo) -> Result<Vec<GeneratedImage>> {
        if task.class() != StateClass::Succeeded {
            return Err(Error::ResultMissing {
                task_id: task.task_id.clone(),
                index: None,
            });
        }
        let fields = task.result_fields();
        if fields.is_empty() {
            return Err(Error::ResultMissing {
                task_id: task.task_id.clone(),
                index: None,
            });
        }
        let downloads = fields
            .into_iter()
            .map(|(index, field)| self.fetch_result(&task.task_id, index, field));
        futures_util::future::try_join_all(downloads).await
    }

    /// Downloads (or decodes) one result field (`image_1` is index 1).
    pub async fn fetch_result(
        &self,
        task_id: &str,
        index: u8,
        field: &str,
    ) -> Result<GeneratedImage> {
        let unusable = |reason: String| Error::ResultInvalid {
            task_id: task_id.to_owned(),
            index,
            reason,
        };
        let max = usize::try_from(self.inner.config.max_download_bytes).unwrap_or(usize::MAX);
        let bytes = match ResultLocation::parse_capped(field, max).map_err(|e| unusable(e.0))? {
            ResultLocation::Inline(bytes) => bytes,
            ResultLocation::Url(url) => self.download(task_id, index, url).await?,
        };
        let format = ImageFormat::sniff(&bytes).ok_or_else(|| {
            unusable(format!(
                "the {} bytes received are not a JPEG, PNG or WebP image (they start with {:?})",
                bytes.len(),
                String::from_utf8_lossy(&bytes[..bytes.len().min(24)])
            ))
        })?;
        Ok(GeneratedImage {
            index,
            format,
            bytes,
        })
    }

    async fn download(&self, task_id: &str, index: u8, url: url::Url) -> Result<Bytes> {
        let _slot = self
            .inner
            .download_slots
            .acquire()
            .await
            .map_err(|_| Error::ShuttingDown)?;
        let config = &self.inner.config;
        let max = usize::try_from(config.max_download_bytes).unwrap_or(usize::MAX);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= config.retry.max_attempts;
            let network = |source| Error::Network {
                during: crate::error::Operation::Download,
                maybe_accepted: false,
                source,
            };
            let response = match self.inner.downloads.get(url.clone()).send().await {
                Ok(response) => response,
                Err(source) if last => return Err(network(source)),
                Err(source) => {
                    tracing::warn!(task_id, index, attempt, error = %source, "result download failed, retrying");
                    tokio::time::sleep(config.retry.backoff(attempt)).await;
                    continue;
                }
            };
            let status = response.status().as_u16();
            match status {
                200..=299 => match read_capped(response, max).await {
                    Ok(bytes) => return Ok(bytes),
                    Err(ReadError::TooLarge) => {
                        return Err(Error::ResultInvalid {
                            task_id: task_id.to_owned(),
                            index,
                            reason: format!("larger than the {max}-byte download limit"),
                        });
                    }
                    Err(ReadError::Network(source)) if last => return Err(network(source)),
                    Err(ReadError::Network(_)) => {}
                },
                403 | 404 | 410 => {
                    return Err(Error::ResultExpired {
                        task_id: task_id.to_owned(),
                        index,
                        status,
                    });
                }
                429 | 500..=599 if !last => {}
                _ => {
                    return Err(Error::ResultInvalid {
                        task_id: task_id.to_owned(),
                        index,
                        reason: format!("the result URL answered HTTP {status}"),
                    });
                }
            }
            tracing::warn!(
                task_id,
                index,
                attempt,
                status,
                "result download failed, retrying"
            );
            tokio::time::sleep(config.retry.backoff(attempt)).await;
        }
    }
}
