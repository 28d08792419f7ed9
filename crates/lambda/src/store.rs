//! The S3 operations the function needs, behind one narrow trait; the AWS SDK is called here and
//! nowhere else.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

#[cfg(feature = "aws")]
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
#[cfg(feature = "aws")]
use aws_sdk_s3::presigning::PresigningConfig;
#[cfg(feature = "aws")]
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use crate::error::LambdaError;
#[cfg(feature = "aws")]
use crate::event::unquote;

/// What a HEAD of an object tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
    /// User metadata (`x-amz-meta-*`), names lower-cased without the prefix, values as S3
    /// returns them (non-ASCII ones RFC 2047-encoded: see [`crate::metadata`]).
    pub metadata: HashMap<String, String>,
    /// The version's id, in a bucket with versioning (`None` when unversioned or suspended:
    /// S3's `null` version).
    pub version_id: Option<String>,
    /// When this version was written (unix milliseconds; S3 keeps whole seconds).
    pub last_modified_ms: Option<u64>,
}

/// An object found by [`ObjectStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key.
    pub key: String,
    /// ETag without quotes.
    pub etag: String,
}

/// A condition on a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// Write whatever is there.
    Always,
    /// Only if no object has the key (`If-None-Match: *`).
    IfAbsent,
    /// Only if the object still has this ETag (`If-Match`).
    IfMatch(String),
}

/// The result of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written; the new ETag.
    Written(String),
    /// The condition did not hold (HTTP 412 or 409): someone else wrote first.
    ConditionFailed,
}

/// The S3 operations of the function.
pub trait ObjectStore: Send + Sync {
    /// HEAD an object; `None` when it does not exist.
    fn head(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<ObjectHead>, LambdaError>> + Send;

    /// A stream of the bytes of the object version with `etag`.
    type Body: tokio::io::AsyncRead + Send + Unpin;

    /// Opens the object version with `etag` for reading, in pieces; `None` when it is gone or
    /// was replaced by a newer version.
    fn open(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
    ) -> impl Future<Output = Result<Option<Self::Body>, LambdaError>> + Send;

    /// The whole object with its ETag; `None` when it does not exist.
    fn get(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<(Bytes, String)>, LambdaError>> + Send;

    /// Streams the object version with `etag` to the existing file at `path` (replacing its
    /// content), in pieces: the function never holds the whole image. `None` when the object is
    /// gone or was replaced by a newer version; else the bytes written.
    fn download(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
        path: &std::path::Path,
    ) -> impl Future<Output = Result<Option<u64>, LambdaError>> + Send {
        async move {
            let Some(mut body) = self.open(bucket, key, etag).await? else {
                return Ok(None);
            };
            let local = |e: std::io::Error| LambdaError::S3 {
                operation: "GetObject (to a file)",
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                status: None,
                code: None,
                message: format!("{}: {e}", path.display()),
            };
            // The scratch file exists already (created exclusively for this delivery): opened,
            // never created here.
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(path)
                .await
                .map_err(local)?;
            let written = tokio::io::copy(&mut body, &mut file).await.map_err(local)?;
            tokio::io::AsyncWriteExt::flush(&mut file)
                .await
                .map_err(local)?;
            Ok(Some(written))
        }
    }

    /// Writes an object whole.
    fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
        condition: WriteCondition,
    ) -> impl Future<Output = Result<WriteOutcome, LambdaError>> + Send;

    /// Every object whose key starts with `prefix`, in key order (all pages of the listing).
    fn list(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<Listed>, LambdaError>> + Send;

    /// A presigned GET URL of the object, valid for `ttl`: of the version `version_id` when
    /// given (no other version can be fetched through it). (No `If-Match`: the service would
    /// have to send it for the signature to hold.)
    fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        ttl: Duration,
    ) -> impl Future<Output = Result<String, LambdaError>> + Send;

    /// Copies the object version with `etag` to `to_key` in `to_bucket`
    /// (`x-amz-copy-source-if-match`); `false` when the object is gone or was replaced by a
    /// newer version.
    fn copy_version(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
        to_bucket: &str,
        to_key: &str,
    ) -> impl Future<Output = Result<bool, LambdaError>> + Send;

    /// Deletes an object (nothing when it does not exist).
    fn delete(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<(), LambdaError>> + Send;
}

/// [`ObjectStore`] over the AWS SDK's S3 client.
#[cfg(feature = "aws")]
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
}

#[cfg(feature = "aws")]
impl S3Store {
    /// Wraps an SDK client.
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3Store { client }
    }
}

#[cfg(feature = "aws")]
fn s3_error<E: ProvideErrorMetadata + std::fmt::Debug>(
    operation: &'static str,
    bucket: &str,
    key: &str,
    error: &SdkError<E>,
) -> LambdaError {
    let (status, code, message) = match error {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            let status = service.raw().status().as_u16();
            (
                Some(status),
                inner.code().map(str::to_owned),
                format!(
                    "HTTP {status}: {} {}",
                    inner.code().unwrap_or("error"),
                    inner.message().unwrap_or("")
                ),
            )
        }
        other => (None, None, format!("{other:?}").chars().take(300).collect()),
    };
    LambdaError::S3 {
        operation,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        status,
        code,
        message,
    }
}

/// Reads a GetObject body whole.
#[cfg(feature = "aws")]
async fn read_body(
    operation: &'static str,
    bucket: &str,
    key: &str,
    body: ByteStream,
) -> Result<Bytes, LambdaError> {
    let collected = body.collect().await.map_err(|e| LambdaError::S3 {
        operation,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        status: None,
        code: None,
        message: e.to_string(),
    })?;
    Ok(collected.into_bytes())
}

#[cfg(feature = "aws")]
fn status_of<E>(error: &SdkError<E>) -> Option<u16> {
    match error {
        SdkError::ServiceError(service) => Some(service.raw().status().as_u16()),
        _ => None,
    }
}

#[cfg(feature = "aws")]
impl ObjectStore for S3Store {
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectHead>, LambdaError> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(Some(ObjectHead {
                size: head
                    .content_length()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
                etag: head.e_tag().map(unquote).unwrap_or_default(),
                metadata: head
                    .metadata()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
                version_id: head
                    .version_id()
                    .filter(|v| !v.is_empty() && *v != "null")
                    .map(str::to_owned),
                last_modified_ms: head
                    .last_modified()
                    .and_then(|at| at.to_millis().ok())
                    .and_then(|ms| u64::try_from(ms).ok()),
            })),
            Err(error) if status_of(&error) == Some(404) => Ok(None),
            Err(error) => Err(s3_error("HeadObject", bucket, key, &error)),
        }
    }

    type Body = std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>;

    async fn open(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
    ) -> Result<Option<Self::Body>, LambdaError> {
        match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .if_match(format!("\"{etag}\""))
            .send()
            .await
        {
            Ok(output) => Ok(Some(Box::pin(output.body.into_async_read()))),
            Err(error) if matches!(status_of(&error), Some(404 | 412)) => Ok(None),
            Err(error) => Err(s3_error("GetObject", bucket, key, &error)),
        }
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<(Bytes, String)>, LambdaError> {
        let output = match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) if status_of(&error) == Some(404) => return Ok(None),
            Err(error) => return Err(s3_error("GetObject", bucket, key, &error)),
        };
        let etag = output.e_tag().map(unquote).unwrap_or_default();
        let body = read_body("GetObject", bucket, key, output.body).await?;
        Ok(Some((body, etag)))
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
        condition: WriteCondition,
    ) -> Result<WriteOutcome, LambdaError> {
        let mut request = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body));
        request = match condition {
            WriteCondition::Always => request,
            WriteCondition::IfAbsent => request.if_none_match("*"),
            WriteCondition::IfMatch(etag) => request.if_match(format!("\"{etag}\"")),
        };
        match request.send().await {
            Ok(output) => Ok(WriteOutcome::Written(
                output.e_tag().map(unquote).unwrap_or_default(),
            )),
            // 412: the condition failed; 409: a concurrent conditional write is in progress.
            Err(error) if matches!(status_of(&error), Some(412 | 409)) => {
                Ok(WriteOutcome::ConditionFailed)
            }
            Err(error) => Err(s3_error("PutObject", bucket, key, &error)),
        }
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<Listed>, LambdaError> {
        let mut listed = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| s3_error("ListObjectsV2", bucket, prefix, &e))?;
            listed.extend(page.contents().iter().filter_map(|object| {
                Some(Listed {
                    key: object.key()?.to_owned(),
                    etag: object.e_tag().map(unquote).unwrap_or_default(),
                })
            }));
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => return Ok(listed),
            }
        }
    }

    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        ttl: Duration,
    ) -> Result<String, LambdaError> {
        let presigning = PresigningConfig::expires_in(ttl)
            .map_err(|e| LambdaError::Config(format!("presign: {e}")))?;
        let request = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .presigned(presigning)
            .await
            .map_err(|e| s3_error("GetObject (presign)", bucket, key, &e))?;
        Ok(request.uri().to_owned())
    }

    async fn copy_version(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
        to_bucket: &str,
        to_key: &str,
    ) -> Result<bool, LambdaError> {
        let source = format!("{bucket}/{}", copy_source_key(key));
        match self
            .client
            .copy_object()
            .bucket(to_bucket)
            .key(to_key)
            .copy_source(source)
            .copy_source_if_match(format!("\"{etag}\""))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if matches!(status_of(&error), Some(404 | 412)) => Ok(false),
            Err(error) => Err(s3_error("CopyObject", bucket, key, &error)),
        }
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), LambdaError> {
        match self
            .client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if status_of(&error) == Some(404) => Ok(()),
            Err(error) => Err(s3_error("DeleteObject", bucket, key, &error)),
        }
    }
}

/// A key as `x-amz-copy-source` wants it: percent-encoded, `/` kept.
#[cfg(feature = "aws")]
fn copy_source_key(key: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const KEPT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    utf8_percent_encode(key, KEPT).to_string()
}

#[cfg(all(test, feature = "aws"))]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_are_percent_encoded_with_slashes_kept() {
        assert_eq!(
            copy_source_key("incoming/sub dir/Café +1.png"),
            "incoming/sub%20dir/Caf%C3%A9%20%2B1.png"
        );
        assert_eq!(copy_source_key("a/b-c_d.e~f"), "a/b-c_d.e~f");
    }
}
