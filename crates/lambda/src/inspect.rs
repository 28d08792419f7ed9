//! Checking an object against the service's rules before anything is spent: its PNG header,
//! read with ranged GETs of the object version being processed.

use backdrop_core::ValidationError;
use backdrop_core::validate::{PngHeaderReader, PngInfo, PngStep};

use crate::error::LambdaError;
use crate::records::Source;
use crate::store::ObjectStore;

/// Bytes fetched by the first ranged GET of the header check.
const HEADER_PREFIX_BYTES: usize = 64 * 1024;

/// What the header check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderVerdict {
    /// The header is valid.
    Valid(PngInfo),
    /// The object breaks a rule.
    Invalid(ValidationError),
}

/// Checks the PNG header of `source` (`size` bytes), fetching only the windows the reader asks
/// for (usually one GET of the first 64 KiB).
pub async fn check_header<S: ObjectStore>(
    store: &S,
    source: &Source,
    size: u64,
) -> Result<HeaderVerdict, LambdaError> {
    let (bucket, key, etag) = (&source.bucket, &source.key, &source.etag);
    let mut reader = match PngHeaderReader::new(size) {
        Ok(reader) => reader,
        Err(rule) => return Ok(HeaderVerdict::Invalid(rule)),
    };
    let mut window_start = 0u64;
    let mut window = store
        .get_range(bucket, key, etag, 0, HEADER_PREFIX_BYTES)
        .await?;
    let mut step = reader.first_step();
    loop {
        match step {
            PngStep::Done(info) => return Ok(HeaderVerdict::Valid(info)),
            PngStep::Need { offset, len } => {
                let end = offset + len as u64;
                let window_end = window_start + window.len() as u64;
                if offset < window_start || (end > window_end && window_end < size) {
                    window_start = offset;
                    window = store
                        .get_range(bucket, key, etag, offset, HEADER_PREFIX_BYTES.max(len))
                        .await?;
                }
                let from = usize::try_from(offset - window_start)
                    .unwrap_or(usize::MAX)
                    .min(window.len());
                let to = from.saturating_add(len).min(window.len());
                step = match reader.feed(&window[from..to]) {
                    Ok(next) => next,
                    Err(rule) => return Ok(HeaderVerdict::Invalid(rule)),
                };
            }
        }
    }
}
