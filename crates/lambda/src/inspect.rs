//! Checking an object against the service's rules before anything is spent: the whole PNG —
//! header rules, structure, image data, pixels — streamed once from S3 through core's checker,
//! a few pieces in memory at a time (URL mode still never holds the image).

use backdrop_core::validate::ValidationError;
use backdrop_core::validate::{InspectFileError, PixelRules, PngReport, check_png_async_read};

use crate::error::LambdaError;
use crate::records::Source;
use crate::store::ObjectStore;

/// What the check found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The object is a PNG the service accepts.
    Valid(Box<PngReport>),
    /// The object breaks a rule.
    Invalid(ValidationError),
    /// The object version is gone (deleted, or replaced by a newer upload).
    Gone,
}

/// Streams the object version of `source` (`size` bytes) through the full check.
pub async fn check_object<S: ObjectStore>(
    store: &S,
    source: &Source,
    size: u64,
    rules: PixelRules,
) -> Result<Verdict, LambdaError> {
    let Some(body) = store
        .open(&source.bucket, &source.key, &source.etag)
        .await?
    else {
        return Ok(Verdict::Gone);
    };
    match check_png_async_read(body, size, rules).await {
        Ok(report) => Ok(Verdict::Valid(Box::new(report))),
        Err(InspectFileError::Invalid(rule)) => Ok(Verdict::Invalid(rule)),
        Err(InspectFileError::Io(error)) => Err(LambdaError::S3 {
            operation: "GetObject (stream)",
            bucket: source.bucket.clone(),
            key: source.key.clone(),
            status: None,
            code: None,
            message: error.to_string(),
        }),
    }
}
