//! The day's contact sheet in the bucket (`generated/_report/<day>.html`), against moto's S3 and
//! the emulator: concurrent invocations lose no row, and the page works from a copy of the
//! bucket in a real browser (when Playwright and Chromium are there, as `tests/run` makes sure).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backdrop_lambda::report::{self, Day, Rebuilt, RowRecord};
use backdrop_lambda::store::{Listed, ObjectHead, WriteCondition, WriteOutcome};
use backdrop_lambda::{LambdaError, ObjectStore, S3Store, handle};
use backdrop_report::{Row, Status};
use backdrop_tests::{fast_config, fast_emulator, fixture, opaque_png};
use bytes::Bytes;
use serde_json::Value;
use support::*;

fn bottle() -> Vec<u8> {
    std::fs::read(fixture("bottle.png")).unwrap()
}

/// The rows a page keeps in its data block: row record key → record.
fn page_rows(html: &str) -> Vec<Value> {
    let data: Value = serde_json::from_str(&backdrop_report::embedded_data(html).unwrap()).unwrap();
    data["rows"]
        .as_object()
        .unwrap()
        .values()
        .map(|pair| pair[1].clone())
        .collect()
}

/// The day pages in the bucket.
async fn pages(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    keys(s3, bucket)
        .await
        .into_iter()
        .filter(|k| k.starts_with("generated/_report/") && k.ends_with(".html"))
        .collect()
}

/// Two invocations at once — one with two objects (one the service fails with -17), one with an
/// object and an opaque PNG refused before sending — then a third later: every object has its
/// row on the day's page, with thumbnails, links relative to the page, and its failure's reason
/// and what to do.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_invocations_all_appear_on_the_days_page() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "report").await;
    upload(
        &s3,
        &bucket,
        "incoming/shelf/bottle.png",
        bottle(),
        &[("batch-size", "2")],
    )
    .await;
    let mug = std::fs::read(fixture("mug.png")).unwrap();
    upload(
        &s3,
        &bucket,
        "incoming/mug & <lid>.png",
        mug.clone(),
        &[("batch-size", "1")],
    )
    .await;
    upload(
        &s3,
        &bucket,
        "incoming/bad-prompt.png",
        bottle(),
        &[("prompt", "nonsense emulator:fail=-17")],
    )
    .await;
    upload(
        &s3,
        &bucket,
        "incoming/opaque.png",
        opaque_png(300, 300),
        &[],
    )
    .await;
    upload(
        &s3,
        &bucket,
        "incoming/later.png",
        mug,
        &[("batch-size", "1")],
    )
    .await;
    let emulator = fast_emulator(fast_config()).await;
    let deps = deps(&emulator, config());
    let first = invocation(
        sqs_event(
            &bucket,
            &["incoming/shelf/bottle.png", "incoming/bad-prompt.png"],
        ),
        60,
    );
    let second = invocation(
        sqs_event(
            &bucket,
            &["incoming/mug & <lid>.png", "incoming/opaque.png"],
        ),
        60,
    );
    let (a, b) = tokio::join!(handle(&deps, first), handle(&deps, second));
    assert!(failed_ids(&a.unwrap()).is_empty());
    assert!(failed_ids(&b.unwrap()).is_empty());
    handle(
        &deps,
        invocation(sqs_event(&bucket, &["incoming/later.png"]), 60),
    )
    .await
    .unwrap();

    let days = pages(&s3, &bucket).await;
    assert_eq!(days.len(), 1, "{days:?}");
    let html = String::from_utf8(read(&s3, &bucket, &days[0]).await).unwrap();
    let rows = page_rows(&html);
    let mut labels: Vec<&str> = rows
        .iter()
        .map(|r| r["row"]["label"].as_str().unwrap())
        .collect();
    labels.sort();
    assert_eq!(
        labels,
        [
            "incoming/bad-prompt.png",
            "incoming/later.png",
            "incoming/mug & <lid>.png",
            "incoming/opaque.png",
            "incoming/shelf/bottle.png",
        ]
        .map(|k| format!("s3://{bucket}/{k}"))
    );
    assert_eq!(html.matches("<tr class=\"row ").count(), 5);
    assert!(
        html.contains("data-succeeded=\"3\" data-failed=\"2\""),
        "{html}"
    );
    // Names are text: the key with `<lid>` is escaped, and its links are percent-encoded.
    assert!(!html.contains("<lid>") && html.contains("mug &amp; &lt;lid&gt;.png"));
    assert!(
        html.contains("href=\"../mug%20%26%20%3Clid%3E/1.jpg\""),
        "{html}"
    );

    let row = |key: &str| -> Row {
        let label = format!("s3://{bucket}/incoming/{key}");
        let value = rows
            .iter()
            .find(|r| r["row"]["label"] == label.as_str())
            .unwrap();
        serde_json::from_value(value["row"].clone()).unwrap()
    };
    let bottle_row = row("shelf/bottle.png");
    assert_eq!(bottle_row.status, Status::Succeeded);
    assert_eq!(bottle_row.images.len(), 2);
    assert_eq!(bottle_row.credits, 6);
    assert!(bottle_row.task_id.is_some() && bottle_row.seconds.is_some());
    assert_eq!(
        bottle_row.background.as_deref(),
        Some("prompt: a sunny kitchen counter")
    );
    assert_eq!(
        bottle_row.images[0].full.as_deref(),
        Some("../shelf/bottle/1.jpg")
    );
    let source = bottle_row.source.unwrap();
    assert_eq!(
        source.full.as_deref(),
        Some("../../incoming/shelf/bottle.png")
    );
    // Thumbnails are small JPEGs next to the page.
    let all = keys(&s3, &bucket).await;
    for thumb in bottle_row
        .images
        .iter()
        .chain(std::iter::once(&source))
        .map(|p| p.thumb.clone().unwrap())
    {
        let key = format!("generated/_report/{thumb}");
        assert!(all.contains(&key), "{key} in {all:?}");
        let bytes = read(&s3, &bucket, &key).await;
        assert!(bytes.starts_with(&[0xFF, 0xD8, 0xFF]) && bytes.len() < 40_000);
    }
    let failed = row("bad-prompt.png");
    assert_eq!(failed.status, Status::Failed);
    assert!(failed.state.contains("-17"), "{}", failed.state);
    let failure = failed.failure.unwrap();
    assert!(
        failure.reason.contains("prompt is invalid"),
        "{}",
        failure.reason
    );
    assert!(
        failure.advice.contains("x-amz-meta-prompt"),
        "{}",
        failure.advice
    );
    let refused = row("opaque.png").failure.unwrap();
    assert!(
        refused.reason.contains("no transparency"),
        "{}",
        refused.reason
    );
    assert!(
        refused.advice.contains("nothing was sent"),
        "{}",
        refused.advice
    );

    browser_check(&s3, &bucket, &days[0]).await;
}

/// A store that counts the conditional writes it refused, and holds the first page writes back
/// longest (900 ms for the first, 60 ms less for each next) so that early writers, with early
/// listings, write last: the race a lost row needs.
#[derive(Clone)]
struct Counting {
    inner: S3Store,
    refused: Arc<AtomicUsize>,
    writes: Arc<AtomicUsize>,
}

impl ObjectStore for Counting {
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectHead>, LambdaError> {
        self.inner.head(bucket, key).await
    }

    type Body = <S3Store as ObjectStore>::Body;

    async fn open(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
    ) -> Result<Option<Self::Body>, LambdaError> {
        self.inner.open(bucket, key, etag).await
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<(Bytes, String)>, LambdaError> {
        self.inner.get(bucket, key).await
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
        condition: WriteCondition,
    ) -> Result<WriteOutcome, LambdaError> {
        if key.ends_with(".html") {
            let n = self.writes.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(900u64.saturating_sub(60 * n as u64))).await;
        }
        let outcome = self
            .inner
            .put(bucket, key, body, content_type, condition)
            .await?;
        if outcome == WriteOutcome::ConditionFailed {
            self.refused.fetch_add(1, Ordering::SeqCst);
        }
        Ok(outcome)
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<Listed>, LambdaError> {
        self.inner.list(bucket, prefix).await
    }

    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        ttl: Duration,
    ) -> Result<String, LambdaError> {
        self.inner.presign_get(bucket, key, version_id, ttl).await
    }

    async fn copy_version(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
        to_bucket: &str,
        to_key: &str,
    ) -> Result<bool, LambdaError> {
        self.inner
            .copy_version(bucket, key, etag, to_bucket, to_key)
            .await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), LambdaError> {
        self.inner.delete(bucket, key).await
    }
}

/// Sixteen writers at once, each storing its row record then rebuilding the page, as sixteen
/// invocations finishing together do: the page ends with all sixteen rows although writers lost
/// races (counted), and each writer stopped after a bounded number of attempts. (With the page
/// written unconditionally, this test loses rows.)
#[tokio::test(flavor = "multi_thread")]
async fn racing_rebuilds_lose_no_row() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "race").await;
    let store = Counting {
        inner: S3Store::new(s3.clone()),
        refused: Arc::new(AtomicUsize::new(0)),
        writes: Arc::new(AtomicUsize::new(0)),
    };
    let config = config();
    let day = Day::new(&config, &bucket, "2026-11-29");
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let mut writers = Vec::new();
    for n in 0..16 {
        let (store, config, day, barrier) =
            (store.clone(), config.clone(), day.clone(), barrier.clone());
        writers.push(tokio::spawn(async move {
            let record = RowRecord {
                format: 1,
                bucket: day.bucket.clone(),
                key: format!("incoming/item-{n:02}.png"),
                record: format!("generated/item-{n:02}/manifest.json"),
                at_ms: 0,
                row: Row {
                    label: format!("item-{n:02}"),
                    status: Status::Succeeded,
                    state: "done".into(),
                    source: None,
                    images: Vec::new(),
                    background: None,
                    negative: None,
                    task_id: Some(format!("task-{n}")),
                    seconds: Some(1.0),
                    credits: 3,
                    failure: None,
                },
            };
            barrier.wait().await;
            tokio::time::sleep(Duration::from_millis(n * 40)).await;
            store
                .put(
                    &day.bucket,
                    &format!("{}{n:02}.json", day.rows_prefix()),
                    Bytes::from(serde_json::to_vec(&record).unwrap()),
                    "application/json",
                    WriteCondition::Always,
                )
                .await
                .unwrap();
            report::rebuild(&store, &config, &day).await.unwrap()
        }));
    }
    let mut by_others = 0;
    for writer in writers {
        if writer.await.unwrap() == Rebuilt::ByOthers {
            by_others += 1;
        }
    }
    let html = String::from_utf8(read(&s3, &bucket, &day.page_key()).await).unwrap();
    let mut labels: Vec<String> = page_rows(&html)
        .iter()
        .map(|r| r["row"]["label"].as_str().unwrap().to_owned())
        .collect();
    labels.sort();
    let expected: Vec<String> = (0..16).map(|n| format!("item-{n:02}")).collect();
    let refused = store.refused.load(Ordering::SeqCst);
    eprintln!(
        "16 racing writers: {refused} conditional writes refused, {by_others} stopped on others' pages"
    );
    assert_eq!(labels, expected, "no row lost ({refused} writes refused)");
    assert!(html.contains("data-credits=\"48\""));
}

/// Copies the page and every object it links to into a folder with the bucket's layout and
/// opens it in Chromium (skipped without a browser, unless `BACKDROP_BROWSER_TESTS=1`).
async fn browser_check(s3: &aws_sdk_s3::Client, bucket: &str, page_key: &str) {
    let python = std::env::var("BACKDROP_PYTHON").unwrap_or_else(|_| "python3".into());
    let chromium =
        std::env::var("BACKDROP_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let usable = Path::new(&chromium).is_file()
        && Command::new(&python)
            .args(["-c", "import playwright.sync_api"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !usable {
        assert!(
            std::env::var("BACKDROP_BROWSER_TESTS").as_deref() != Ok("1"),
            "BACKDROP_BROWSER_TESTS=1 but there is no Chromium or Playwright"
        );
        eprintln!("browser check skipped: no Chromium or Playwright");
        return;
    }
    let copy = std::env::temp_dir().join(format!("backdrop-lambda-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    for key in keys(s3, bucket).await {
        let path = copy.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, read(s3, bucket, &key).await).unwrap();
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../cli/tests/browser/check_page.py"
    );
    let expect = serde_json::json!({
        "rows": 5, "succeeded": 3, "failed": 2, "skipped": 0, "images": 4, "sources": 5,
        "failure_text": ["-17", "no transparency"],
    });
    let output = Command::new(python)
        .args([
            script,
            copy.join(page_key).to_str().unwrap(),
            &expect.to_string(),
        ])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&copy);
    assert!(
        output.status.success(),
        "the day's page failed in the browser: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "browser: {}",
        String::from_utf8_lossy(&output.stdout).trim()
    );
}
