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

use std::collections::BTreeMap;
use std::io::Cursor;
use std::time::Duration;

use backdrop_report::{Failure, Page, Picture, Row, Status, thumbnail, time};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::LambdaError;
use crate::event::ObjectRef;
use crate::outputs::Destination;
use crate::params::Parameters;
use crate::process::{Deps, Outcome};
use crate::queue::MessageQueue;
use crate::records::Source;
use crate::records::{FailureRecord, Manifest};
use crate::store::{ObjectStore, WriteCondition, WriteOutcome};
use backdrop_core::backoff::{Backoff, Jitter};
use backdrop_core::remedy::sentence;

/// The report's folder under the output prefix.
pub const REPORT_FOLDER: &str = "_report";
/// Sources larger than this get no thumbnail (the service takes at most 20 MiB).
const MAX_THUMBNAIL_SOURCE: u64 = 25 * 1024 * 1024;
/// Attempts at writing the page before giving up (each lost to a concurrent writer).
const MAX_ATTEMPTS: u32 = 8;
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

/// Rebuilds a day's page from the listing of its row records (see the module's notes on
/// concurrency): safe against any number of concurrent callers, in this process or others.
pub async fn rebuild<S: ObjectStore>(
    store: &S,
    config: &Config,
    day: &Day,
) -> Result<Rebuilt, ReportError> {
    let page_key = day.page_key();
    // Distinct ETags of the page seen since the first read ("" for no page yet).
    let mut seen: Vec<String> = Vec::new();
    for attempt in 0..MAX_ATTEMPTS {
        // Listed first: a GET of a missing key is a 403, not a 404, for a role that may list
        // only the report's prefix.
        let exists = store
            .list(&day.bucket, &page_key)
            .await?
            .iter()
            .any(|item| item.key == page_key);
        let current = if exists {
            store.get(&day.bucket, &page_key).await?
        } else {
            None
        };
        let etag = current
            .as_ref()
            .map(|(_, etag)| etag.clone())
            .unwrap_or_default();
        if seen.last() != Some(&etag) {
            seen.push(etag.clone());
        }
        if seen.len() >= 3 {
            return Ok(Rebuilt::ByOthers);
        }
        let built = current
            .as_ref()
            .and_then(|(bytes, _)| std::str::from_utf8(bytes).ok())
            .and_then(backdrop_report::embedded_data)
            .and_then(|data| serde_json::from_str::<Built>(&data).ok())
            .filter(|built| built.format == FORMAT)
            .unwrap_or_default();
        let rows = read_rows(store, day, built).await?;
        let count = rows.rows.len();
        let html = render(config, day, &rows, attempt)?;
        let condition = if current.is_some() {
            WriteCondition::IfMatch(etag)
        } else {
            WriteCondition::IfAbsent
        };
        match store
            .put(
                &day.bucket,
                &page_key,
                Bytes::from(html),
                "text/html; charset=utf-8",
                condition,
            )
            .await?
        {
            WriteOutcome::Written(_) => return Ok(Rebuilt::Written(count)),
            WriteOutcome::ConditionFailed => {
                tokio::time::sleep(REBUILD_BACKOFF.delay(attempt + 1)).await;
            }
        }
    }
    Err(ReportError(format!(
        "s3://{}/{page_key} changed under {MAX_ATTEMPTS} rebuilds in a row; the row records are \
         kept and the next object's rebuild lists them",
        day.bucket
    )))
}

/// The day's row records: those the page already holds at the same ETag, the rest fetched.
async fn read_rows<S: ObjectStore>(
    store: &S,
    day: &Day,
    mut built: Built,
) -> Result<Built, ReportError> {
    let listed = store.list(&day.bucket, &day.rows_prefix()).await?;
    let mut rows = BTreeMap::new();
    for item in listed {
        if let Some((etag, record)) = built.rows.remove(&item.key)
            && etag == item.etag
        {
            rows.insert(item.key, (etag, record));
            continue;
        }
        let Some((bytes, etag)) = store.get(&day.bucket, &item.key).await? else {
            continue;
        };
        match serde_json::from_slice::<RowRecord>(&bytes) {
            Ok(record) if record.format == FORMAT => {
                rows.insert(item.key, (etag, record));
            }
            _ => tracing::warn!(key = %item.key, "unreadable row record left out of the report"),
        }
    }
    Ok(Built {
        format: FORMAT,
        rows,
    })
}

/// The page of `rows`, with them in its data block and a unique revision.
fn render(config: &Config, day: &Day, built: &Built, attempt: u32) -> Result<Vec<u8>, ReportError> {
    let mut records: Vec<&RowRecord> = built.rows.values().map(|(_, record)| record).collect();
    records.sort_by(|a, b| (&a.bucket, &a.key).cmp(&(&b.bucket, &b.key)));
    let data =
        serde_json::to_string(built).map_err(|e| ReportError(format!("page data JSON: {e}")))?;
    let now = time::now_ms();
    let page = Page {
        title: format!("backdrop: {} on {}", day.bucket, day.date),
        context: format!(
            "Objects finished on {} (UTC) in s3://{}/{}: outputs under {}, failure records under \
             {}. Links are keys relative to this page.",
            day.date, day.bucket, config.input_prefix, config.output_prefix, config.failed_prefix
        ),
        updated: time::utc_text(now),
        wall_time: None,
        in_progress: false,
        refresh_seconds: 60,
        notes: cap_note(config, &records),
        rows: records.iter().map(|r| r.row.clone()).collect(),
        data: Some(data),
        revision: Some(format!(
            "{now}-{}-{attempt}-{}",
            std::process::id(),
            unique()
        )),
    };
    Ok(backdrop_report::render(&page).into_bytes())
}

/// The day's credits against the daily cap, when there is one.
fn cap_note(config: &Config, records: &[&RowRecord]) -> Vec<String> {
    let Some(cap) = config.daily_credit_cap else {
        return Vec::new();
    };
    let charged: u64 = records.iter().map(|r| u64::from(r.row.credits)).sum();
    vec![format!(
        "Credits charged for these objects: {charged} of the daily cap of {cap} \
         (DAILY_CREDIT_CAP; the cap also counts the most that running and unconfirmed creates \
         may still cost). Objects over the cap have a credit_cap failure record."
    )]
}

/// Makes one object's row.
struct RowMaker<'a, S> {
    store: &'a S,
    config: &'a Config,
    object: &'a ObjectRef,
    destination: &'a Destination,
    day: &'a Day,
}

impl<S: ObjectStore> RowMaker<'_, S> {
    async fn done_row(&self, manifest_key: &str) -> Result<Row, ReportError> {
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

    async fn failed_row(&self, record_key: &str) -> Result<Row, ReportError> {
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
            failure: Some(Failure { reason, advice }),
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

/// The most bytes of an object handed to the decoder at once.
const CHUNK: usize = 1024 * 1024;

/// The thumbnail of a source PNG streamed from the store in pieces of at most [`CHUNK`] bytes:
/// the decoder runs on a blocking thread and reads the pieces as the async side receives them,
/// at most two ahead,
/// so memory is a few chunks and one row whatever the object's size. `None` when the object is
/// not a PNG that can be reduced.
async fn source_thumbnail<S: ObjectStore>(
    store: &S,
    bucket: &str,
    key: &str,
    etag: &str,
    size: u64,
) -> Result<Option<Vec<u8>>, ReportError> {
    let (chunks, received) = tokio::sync::mpsc::channel::<Bytes>(2);
    let decode = tokio::task::spawn_blocking(move || {
        let reader = ChunkReader {
            received,
            current: Bytes::new(),
        };
        thumbnail::png_on_checkerboard(reader).ok()
    });
    if let Some(mut body) = store.open(bucket, key, etag).await? {
        let mut read = 0u64;
        while read < size {
            let mut chunk = bytes::BytesMut::with_capacity(CHUNK);
            let n = tokio::io::AsyncReadExt::read_buf(&mut body, &mut chunk)
                .await
                .map_err(|e| ReportError(format!("reading {key} for its thumbnail: {e}")))?;
            if n == 0 {
                break;
            }
            read += n as u64;
            if chunks.send(chunk.freeze()).await.is_err() {
                break; // the decoder is done (or gave up) before the end of the object
            }
        }
    }
    drop(chunks);
    decode
        .await
        .map_err(|e| ReportError(format!("thumbnail: {e}")))
}

/// A reader over chunks arriving on a channel (for a decoder on a blocking thread). It cannot
/// seek: the PNG decoder never does, it only asks for the ability.
struct ChunkReader {
    received: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let available = std::io::BufRead::fill_buf(self)?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        std::io::BufRead::consume(self, n);
        Ok(n)
    }
}

impl std::io::BufRead for ChunkReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.current.is_empty() {
            match self.received.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => break,
            }
        }
        Ok(&self.current)
    }

    fn consume(&mut self, amount: usize) {
        let amount = amount.min(self.current.len());
        let _ = self.current.split_to(amount);
    }
}

impl std::io::Seek for ChunkReader {
    fn seek(&mut self, _: std::io::SeekFrom) -> std::io::Result<u64> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "an S3 object read in chunks cannot seek",
        ))
    }
}

/// The background asked for, as the page shows it: `prompt: …` or `scene N`.
fn background_text(background: &backdrop_core::Background) -> String {
    match background {
        backdrop_core::Background::Prompt(prompt) => format!("prompt: {prompt}"),
        backdrop_core::Background::SceneType(scene) => format!("scene {scene}"),
    }
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

/// A number no other call of this process returns.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The wait before another try at the page after a lost race: 20 ms doubling up to 320 ms,
/// fully jittered, so that concurrent writers spread out.
const REBUILD_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(20),
    longest: Duration::from_millis(320),
    jitter: Jitter::Full,
};

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
