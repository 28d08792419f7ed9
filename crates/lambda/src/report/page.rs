//! Rebuilding a day's page from the listing of its row records, safe against concurrent
//! writers (see the module's notes).

use std::collections::BTreeMap;
use std::time::Duration;

use backdrop_core::backoff::{Backoff, Jitter};
use backdrop_report::{Page, time};
use bytes::Bytes;

use super::{Built, Day, FORMAT, Rebuilt, ReportError, RowRecord};
use crate::config::Config;
use crate::store::{ObjectStore, WriteCondition, WriteOutcome};

/// Attempts at writing the page before giving up (each lost to a concurrent writer).
const MAX_ATTEMPTS: u32 = 8;

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
