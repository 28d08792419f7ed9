//! The day's contact sheet in the bucket: `OUTPUT_PREFIX/_report/<YYYY-MM-DD>.html`, one row per
//! object finished that day (UTC) — its source and generated images as thumbnails linked to the
//! objects, the background asked for, task id, seconds, credits, and for failures the reason and
//! what to do — rebuilt after each object.
//!
//! **Where the rows come from.** After an object ends with outputs or a failure record, its row
//! is made from what the function wrote — the manifest (`<folder>/manifest.json`) or the failure
//! record (`FAILED_PREFIX/<path>.json`) — and stored as a small row record,
//! `_report/<day>/rows/<id>.json` (one per source key per day: a later outcome of the same key
//! replaces it). The page is then rebuilt from a **listing of that day's row records**: a row
//! record, once written, reaches the page even if the invocation that wrote it dies right after.
//!
//! **Concurrent invocations.** Each rebuild reads the page (and its ETag), lists the row records,
//! renders, and writes the page only if it is unchanged (`If-Match`, or `If-None-Match: *` for
//! the day's first page). Every page carries a unique revision, so ETags never repeat. A writer
//! whose row record was written at t₀ and whose first read of the page was at t₁ > t₀ stops when
//! its own write succeeds, or once it has seen the page change twice after t₁: the second change
//! was written by an invocation that read the first change — made after t₁ — and listed the row
//! records after that, so its page holds the row. Later pages list later still. No row is lost,
//! whatever the interleaving, and a rebuild costs at most a few attempts. The rows the page was
//! built from are kept in it (a JSON block, with each row record's ETag), so a rebuild fetches
//! only the row records that are new or changed since.
//!
//! **Within an invocation**, the handler records the objects once every one has its outcome
//! ([`record_outcomes`]), so the report never slows the work: the row records are written one
//! at a time, then each day's page is rebuilt once for all of them.
//!
//! **Links** are relative keys (`../shelf/mug/1.jpg`, `thumbs/shelf/mug/1.jpg`,
//! `../../incoming/shelf/mug.png`): the page works wherever the bucket's keys keep their shape —
//! a copy made with `aws s3 sync`, a CloudFront distribution, a static-website bucket — and never
//! carries credentials, which presigned links would (and they would die with the function's
//! session, hours later). A source in another bucket (`OUTPUT_BUCKET`) is shown by its thumbnail
//! only.
//!
//! **Thumbnails** (`_report/thumbs/<path>/1.jpg`, `source.jpg`) are made one at a time per
//! process: a generated image (at most 1024 px) is read and decoded whole; a source, up to
//! 20 MiB, is streamed in pieces of at most 1 MiB to a decoder reading the PNG row by row, so
//! memory stays a few MiB whatever its size.
//!
//! The report is best effort: trouble building it is logged and never changes an object's
//! outcome (nothing is retried for it); the next object's rebuild picks up every row record.

mod page;
mod rows;
mod thumbnails;

use std::collections::BTreeMap;

use backdrop_report::{Row, time};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use page::rebuild;
use rows::RowMaker;

use crate::config::Config;
use crate::error::LambdaError;
use crate::event::ObjectRef;
use crate::outputs::Destination;
use crate::process::{Deps, Outcome};
use crate::queue::MessageQueue;
use crate::records::Source;
use crate::store::{ObjectStore, WriteCondition};

/// The report's folder under the output prefix.
pub const REPORT_FOLDER: &str = "_report";
/// The format of row records and of the page's data block.
const FORMAT: u32 = 1;

/// Why the report could not be updated.
#[derive(Debug)]
pub struct ReportError(String);

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReportError {}

impl From<LambdaError> for ReportError {
    fn from(error: LambdaError) -> Self {
        ReportError(error.to_string())
    }
}

/// One object's row, as stored under `_report/<day>/rows/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowRecord {
    /// The format of row records (1).
    pub format: u32,
    /// The source object's bucket.
    pub bucket: String,
    /// The source object's key.
    pub key: String,
    /// The manifest or failure record the row was made from.
    pub record: String,
    /// When the row was made (Unix milliseconds).
    pub at_ms: u64,
    /// The row, its links relative to the day's page.
    pub row: Row,
}

/// The rows a page was built from: row record key → its ETag and contents.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Built {
    format: u32,
    rows: BTreeMap<String, (String, RowRecord)>,
}

/// Where one day's report lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    /// The bucket.
    pub bucket: String,
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// `OUTPUT_PREFIX/_report/`.
    pub folder: String,
}

impl Day {
    /// The report of `date` in `bucket` under the configuration's output prefix.
    pub fn new(config: &Config, bucket: &str, date: &str) -> Self {
        Day {
            bucket: bucket.to_owned(),
            date: date.to_owned(),
            folder: format!("{}{REPORT_FOLDER}/", config.output_prefix),
        }
    }

    /// The page's key.
    pub fn page_key(&self) -> String {
        format!("{}{}.html", self.folder, self.date)
    }

    /// The folder of the day's row records.
    pub fn rows_prefix(&self) -> String {
        format!("{}{}/rows/", self.folder, self.date)
    }
}

/// How a rebuild ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuilt {
    /// This call wrote the page, with this many rows.
    Written(usize),
    /// Others wrote it after this call's row record was listed (see the module's notes).
    ByOthers,
}

/// Records the invocation's objects on their days' pages, once every object has its outcome
/// (the report never slows the work): each object with outputs or a failure record gets its
/// row record, written one at a time (one thumbnail, one request at a time), then each day's
/// page is rebuilt once for all of them. It ends by `deadline` (the invocation's, less half
/// its margin): the report is best effort, logged, and never changes an outcome.
pub async fn record_outcomes<S: ObjectStore, Q: MessageQueue>(
    deps: &Deps<S, Q>,
    outcomes: &[(&ObjectRef, &Outcome)],
    deadline: tokio::time::Instant,
) {
    let report = async {
        let mut days: Vec<Day> = Vec::new();
        for (object, outcome) in outcomes {
            match write_row(deps, object, outcome, time::now_ms()).await {
                Ok(Some(day)) => {
                    if !days.contains(&day) {
                        days.push(day);
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(bucket = %object.bucket, key = %object.key, error = %error, "no row for the day's report");
                }
            }
        }
        for day in &days {
            match rebuild(&deps.store, &deps.config, day).await {
                Ok(rebuilt) => {
                    tracing::debug!(page = %day.page_key(), ?rebuilt, "day's report rebuilt")
                }
                Err(error) => {
                    tracing::warn!(page = %day.page_key(), error = %error, "the day's report was not updated")
                }
            }
        }
    };
    if tokio::time::timeout_at(deadline, report).await.is_err() {
        tracing::warn!(
            "no time left to update the day's report; the next invocation's rebuild lists every row record"
        );
    }
}

/// Writes the row record of `object`'s `outcome` (made at `now_ms`); returns the day it
/// belongs to, `None` for outcomes without a record.
async fn write_row<S: ObjectStore, Q: MessageQueue>(
    deps: &Deps<S, Q>,
    object: &ObjectRef,
    outcome: &Outcome,
    now_ms: u64,
) -> Result<Option<Day>, ReportError> {
    let config = &deps.config;
    let Some(relative) = object.key.get(config.input_prefix.len()..) else {
        return Ok(None);
    };
    let source = Source {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        etag: String::new(),
    };
    let destination = Destination::of(config, &source, relative);
    let day = Day::new(config, &destination.bucket, &time::utc_day(now_ms));
    let maker = RowMaker {
        store: &deps.store,
        config,
        object,
        destination: &destination,
        day: &day,
    };
    let (record_key, row) = match outcome {
        Outcome::Done { .. } => {
            let manifest = format!("{}/manifest.json", destination.folder);
            let row = maker.done_row(&manifest).await?;
            (manifest, row)
        }
        Outcome::Failed { record, .. } => (record.clone(), maker.failed_row(record).await?),
        Outcome::Skipped(_) | Outcome::Retry(_) => return Ok(None),
    };
    let record = RowRecord {
        format: FORMAT,
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        record: record_key,
        at_ms: now_ms,
        row,
    };
    let body =
        serde_json::to_vec(&record).map_err(|e| ReportError(format!("row record JSON: {e}")))?;
    let row_key = format!(
        "{}{}.json",
        day.rows_prefix(),
        hex(&Sha256::digest(format!("{}\n{}", object.bucket, object.key).as_bytes())[..16])
    );
    deps.store
        .put(
            &day.bucket,
            &row_key,
            Bytes::from(body),
            "application/json",
            WriteCondition::Always,
        )
        .await?;
    Ok(Some(day))
}

/// `key` relative to the folder `from` (a key prefix ending in `/`), `/`-separated.
fn relative_key(from: &str, key: &str) -> String {
    let from: Vec<&str> = from.split('/').filter(|s| !s.is_empty()).collect();
    let to: Vec<&str> = key.split('/').collect();
    let (to_folders, name) = to.split_at(to.len().saturating_sub(1));
    let common = from
        .iter()
        .zip(to_folders)
        .take_while(|(a, b)| a == b)
        .count();
    let mut parts: Vec<&str> = vec![".."; from.len() - common];
    parts.extend_from_slice(&to_folders[common..]);
    parts.extend_from_slice(name);
    parts.join("/")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_linked_relative_to_the_page() {
        let page = "generated/_report/";
        assert_eq!(
            relative_key(page, "generated/shelf/mug/1.jpg"),
            "../shelf/mug/1.jpg"
        );
        assert_eq!(
            relative_key(page, "generated/_report/thumbs/mug/1.jpg"),
            "thumbs/mug/1.jpg"
        );
        assert_eq!(
            relative_key(page, "incoming/mug.png"),
            "../../incoming/mug.png"
        );
        assert_eq!(relative_key("_report/", "mug/1.jpg"), "../mug/1.jpg");
    }
}
