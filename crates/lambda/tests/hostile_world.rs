//! The Lambda in a hostile world, on moto's S3: the hostile server's table of cases
//! (`backdrop_tests::hostile`, shared with the CLI's and the C ABI's tests), and what S3 and
//! its uploaders do that the happy path never shows — one object delivered twice in one batch,
//! non-ASCII metadata returned RFC 2047-encoded, a new version uploaded while the first is being
//! created, a create held past the invocation's deadline, a result host that stalls.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backdrop_core::{Client, ClientConfig, RateLimit};
use backdrop_emulator::{EmulatorConfig, ProcessingTime};
use backdrop_lambda::config::SubmitMode;
use backdrop_lambda::store::{Listed, ObjectHead, WriteCondition, WriteOutcome};
use backdrop_lambda::{Config, Deps, LambdaError, ObjectStore, S3Store, handle};
use backdrop_tests::hostile::{CASES, Case, Expected, HostileApi, KEY};
use backdrop_tests::{fast_config, fast_emulator, fixture};
use bytes::Bytes;
use serde_json::Value;
use support::*;

fn bottle() -> Vec<u8> {
    std::fs::read(fixture("bottle.png")).unwrap()
}

fn mug() -> Vec<u8> {
    std::fs::read(fixture("mug.png")).unwrap()
}

/// A client of the hostile server: its key, 3 s per request unless `request_timeout` says.
fn hostile_client(api: &HostileApi, request_timeout: Duration) -> Client {
    Client::new(
        ClientConfig::builder(KEY)
            .base_url(api.base_url())
            .rate_limit(RateLimit::per_second(20))
            .request_timeout(request_timeout)
            .build()
            .unwrap(),
    )
    .unwrap()
}

fn hostile_deps(api: &HostileApi, request_timeout: Duration) -> Deps<S3Store> {
    Deps {
        store: S3Store::new(s3_client()),
        queue: backdrop_lambda::NoQueue,
        metrics: backdrop_lambda::metrics::MetricsSink::Stdout,
        client: hostile_client(api, request_timeout),
        config: config(),
    }
}

async fn json_at(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Value {
    serde_json::from_slice(&read(s3, bucket, key).await)
        .unwrap_or_else(|e| panic!("{key} is not JSON: {e}"))
}

/// Width and height of a JPEG, from its first start-of-frame marker.
fn jpeg_size(bytes: &[u8]) -> (u16, u16) {
    let mut at = 2;
    while at + 9 < bytes.len() {
        let marker = bytes[at + 1];
        let length = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        if matches!(marker, 0xC0..=0xC3) {
            let height = u16::from_be_bytes([bytes[at + 5], bytes[at + 6]]);
            let width = u16::from_be_bytes([bytes[at + 7], bytes[at + 8]]);
            return (width, height);
        }
        at += 2 + length;
    }
    panic!("no frame in the JPEG")
}

async fn run_case(case: Case) {
    let api = HostileApi::start(case).await;
    let s3 = s3_client();
    let name = case.name();
    let bucket = bucket(&s3, &format!("hostile-{name}")).await;
    let inputs = ["incoming/in-0.png", "incoming/in-1.png"];
    for key in inputs {
        upload(&s3, &bucket, key, bottle(), &[]).await;
    }
    let deps = hostile_deps(&api, Duration::from_secs(3));
    for delivery in 1..=2 {
        let response = handle(&deps, invocation(sqs_event(&bucket, &inputs), 60))
            .await
            .unwrap();
        api.check_common(inputs.len() as u64);
        let retried = failed_ids(&response);
        let stored = keys(&s3, &bucket).await;
        for (n, key) in inputs.iter().enumerate() {
            let record = format!("failed/in-{n}.png.json");
            let manifest = format!("generated/in-{n}/manifest.json");
            match case.expected() {
                Expected::Unconfirmed => {
                    let record = json_at(&s3, &bucket, &record).await;
                    assert_eq!(record["recovery"], "unconfirmed", "{name}: {record:#}");
                    assert_eq!(record["credits_spent"], true, "{name}: {record:#}");
                    assert!(retried.is_empty(), "{name} #{delivery}: {response}");
                }
                Expected::Resumable => {
                    assert_eq!(retried.len(), inputs.len(), "{name}: {response}");
                    assert!(!stored.contains(&record), "{name}: {key}");
                }
                Expected::Done => {
                    assert!(stored.contains(&manifest), "{name}: {stored:?}");
                    let manifest = json_at(&s3, &bucket, &manifest).await;
                    for output in manifest["outputs"].as_array().unwrap() {
                        let output = output.as_str().unwrap();
                        assert!(
                            output.starts_with(&format!("generated/in-{n}/")),
                            "{name}: {output}"
                        );
                    }
                }
            }
        }
        // Nothing outside the function's prefixes, and the key in no object.
        for key in &stored {
            assert!(
                ["incoming/", "generated/", "failed/", "state/"]
                    .iter()
                    .any(|prefix| key.starts_with(prefix)),
                "{name}: {key}"
            );
            let body = read(&s3, &bucket, key).await;
            assert!(
                !String::from_utf8_lossy(&body).contains(KEY),
                "{name}: the key is in {key}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_hostile_case_through_the_lambda() {
    for case in CASES {
        run_case(case).await;
    }
}

/// A version to upload: bucket, key, bytes.
type NewVersion = (String, String, Vec<u8>);

/// A store that uploads a new version of the object at the moment the function hands its URL
/// to the service — the window between the check and the service's fetch.
#[derive(Clone)]
struct UploadsDuringCreate {
    inner: S3Store,
    s3: aws_sdk_s3::Client,
    new_version: Arc<Mutex<Option<NewVersion>>>,
}

impl ObjectStore for UploadsDuringCreate {
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
        self.inner
            .put(bucket, key, body, content_type, condition)
            .await
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
        let url = self.inner.presign_get(bucket, key, version_id, ttl).await?;
        let new_version = self.new_version.lock().unwrap().take();
        if let Some((bucket, key, bytes)) = new_version {
            upload(&self.s3, &bucket, &key, bytes, &[("batch-size", "1")]).await;
        }
        Ok(url)
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

/// v1 (a portrait bottle) is checked and its create prepared; at that moment v2 (a landscape
/// mug) replaces it. The service must generate from v1, v1's paid results must be kept apart
/// from v2's, and v2's own event then fills the object's folder.
async fn new_version_during_the_create(versioned: bool) {
    let s3 = s3_client();
    let name = if versioned {
        "versioned"
    } else {
        "unversioned"
    };
    let bucket = bucket(&s3, &format!("during-{name}")).await;
    if versioned {
        s3.put_bucket_versioning()
            .bucket(&bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let key = "incoming/item.png";
    upload(&s3, &bucket, key, bottle(), &[("batch-size", "1")]).await;
    let v1 = s3
        .head_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let v1_etag = v1.e_tag().unwrap().trim_matches('"').to_owned();
    let emulator = fast_emulator(fast_config()).await;
    let store = UploadsDuringCreate {
        inner: S3Store::new(s3_client()),
        s3: s3.clone(),
        new_version: Arc::new(Mutex::new(Some((bucket.clone(), key.to_owned(), mug())))),
    };
    let deps = Deps {
        store,
        queue: backdrop_lambda::NoQueue,
        metrics: backdrop_lambda::metrics::MetricsSink::Stdout,
        client: backdrop_tests::client_for(&emulator, 2),
        config: config(),
    };
    let response = handle(&deps, invocation(sqs_event(&bucket, &[key]), 60))
        .await
        .unwrap();
    assert!(failed_ids(&response).is_empty(), "{response}");
    // v1's results: generated from v1 (portrait), in a folder of their own.
    let superseded = format!("generated/item/superseded/{v1_etag}");
    let manifest = json_at(&s3, &bucket, &format!("{superseded}/manifest.json")).await;
    assert_eq!(manifest["source"]["etag"], v1_etag.as_str(), "{manifest:#}");
    let (width, height) = jpeg_size(&read(&s3, &bucket, &format!("{superseded}/1.jpg")).await);
    assert!(
        height > width,
        "{name}: generated from v1, the portrait bottle: {width}x{height}"
    );
    assert!(
        !keys(&s3, &bucket)
            .await
            .contains(&"generated/item/manifest.json".to_owned()),
        "{name}: the object's folder waits for v2"
    );
    // v2's own event fills the object's folder, from v2.
    handle(&deps, invocation(sqs_event(&bucket, &[key]), 60))
        .await
        .unwrap();
    let (width, height) = jpeg_size(&read(&s3, &bucket, "generated/item/1.jpg").await);
    assert!(
        width > height,
        "{name}: generated from v2, the landscape mug: {width}x{height}"
    );
    assert_eq!(emulator.counters().tasks_created, 2);
    // The scratch copy of an unversioned bucket is gone once its task ended.
    assert!(
        !keys(&s3, &bucket)
            .await
            .iter()
            .any(|k| k.starts_with("state/scratch/")),
        "{name}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_version_during_the_create_unversioned_bucket() {
    new_version_during_the_create(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_version_during_the_create_versioned_bucket() {
    new_version_during_the_create(true).await;
}

/// Two messages for one object in one batch (an uploader that sent the same bytes twice), run
/// concurrently by one invocation: one task, whatever the submit mode; no scratch file left.
async fn one_object_twice_in_one_batch(mode: SubmitMode) {
    let s3 = s3_client();
    let name = format!("{mode:?}").to_lowercase();
    let bucket = bucket(&s3, &format!("twice-{name}")).await;
    let key = "incoming/a.png";
    upload(&s3, &bucket, key, bottle(), &[]).await;
    let emulator = fast_emulator(EmulatorConfig {
        processing: ProcessingTime::Fixed(Duration::from_secs(4)),
        ..fast_config()
    })
    .await;
    let scratch =
        std::env::temp_dir().join(format!("backdrop-twice-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let deps = Deps {
        config: Config {
            submit_mode: mode,
            scratch_dir: scratch.clone(),
            ..config()
        },
        ..deps(&emulator, config())
    };
    let response = handle(&deps, invocation(sqs_event(&bucket, &[key, key]), 60))
        .await
        .unwrap();
    assert_eq!(emulator.counters().create_requests, 1, "{name}: {response}");
    // The one that found the other's work comes back later, and finds it done.
    let again = failed_ids(&response);
    assert!(again.len() <= 1, "{name}: {response}");
    handle(&deps, invocation(sqs_event(&bucket, &[key]), 60))
        .await
        .unwrap();
    assert_eq!(emulator.counters().create_requests, 1, "{name}");
    assert!(
        keys(&s3, &bucket)
            .await
            .contains(&"generated/a/manifest.json".to_owned())
    );
    let left: Vec<_> = std::fs::read_dir(&scratch).unwrap().collect();
    assert!(left.is_empty(), "{name}: scratch files left: {left:?}");
    std::fs::remove_dir_all(scratch).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn one_object_twice_in_one_batch_url_mode() {
    one_object_twice_in_one_batch(SubmitMode::Url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_object_twice_in_one_batch_upload_mode() {
    one_object_twice_in_one_batch(SubmitMode::Upload).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_ascii_prompt_reaches_the_service_decoded() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "rfc2047").await;
    // What S3 returns for x-amz-meta-prompt "大理石台面，晨光" (a marble countertop, morning light).
    let prompt = "大理石台面，晨光";
    let encoded = "=?UTF-8?B?5aSn55CG55+z5Y+w6Z2i77yM5pmo5YWJ?=";
    upload(
        &s3,
        &bucket,
        "incoming/a.png",
        bottle(),
        &[("prompt", encoded)],
    )
    .await;
    // A charset backdrop cannot decode: refused with a record, nothing sent.
    upload(
        &s3,
        &bucket,
        "incoming/b.png",
        bottle(),
        &[("prompt", "=?GB2312?B?tPPA7cqvzKjD5g==?=")],
    )
    .await;
    let emulator = fast_emulator(fast_config()).await;
    let deps = deps(&emulator, config());
    handle(
        &deps,
        invocation(
            sqs_event(&bucket, &["incoming/a.png", "incoming/b.png"]),
            60,
        ),
    )
    .await
    .unwrap();
    let tasks = emulator.tasks();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].prompt.as_deref(), Some(prompt));
    let manifest = json_at(&s3, &bucket, "generated/a/manifest.json").await;
    assert_eq!(
        manifest["parameters"]["background"]["prompt"], prompt,
        "{manifest:#}"
    );
    let record = json_at(&s3, &bucket, "failed/b.png.json").await;
    assert_eq!(record["stage"], "parameters", "{record:#}");
    assert!(
        record["message"].as_str().unwrap().contains("GB2312"),
        "{record:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_held_past_the_deadline_is_recorded_unconfirmed_in_time() {
    let api = HostileApi::start(Case::CreateHeld).await;
    let s3 = s3_client();
    let bucket = bucket(&s3, "held").await;
    upload(&s3, &bucket, "incoming/a.png", bottle(), &[]).await;
    // The request timeout is far beyond the invocation: only the deadline can end the create.
    let deps = hostile_deps(&api, Duration::from_secs(600));
    let started = Instant::now();
    let response = handle(
        &deps,
        invocation(sqs_event(&bucket, &["incoming/a.png"]), 10),
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "the invocation outlived its deadline: {took:?}"
    );
    assert!(failed_ids(&response).is_empty(), "{response}");
    let record = json_at(&s3, &bucket, "failed/a.png.json").await;
    assert_eq!(record["recovery"], "unconfirmed", "{record:#}");
    assert_eq!(record["credits_spent"], true, "{record:#}");
    // Delivered again: never created again on its own.
    handle(
        &deps,
        invocation(sqs_event(&bucket, &["incoming/a.png"]), 10),
    )
    .await
    .unwrap();
    assert_eq!(api.counts().create_requests, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_result_host_ends_the_invocation_in_time_and_the_next_delivery_resumes() {
    let api = HostileApi::start(Case::TraversalTaskId).await;
    api.stall_results(true);
    let s3 = s3_client();
    let bucket = bucket(&s3, "stalled").await;
    upload(&s3, &bucket, "incoming/a.png", bottle(), &[]).await;
    let deps = hostile_deps(&api, Duration::from_secs(3));
    let started = Instant::now();
    let response = handle(
        &deps,
        invocation(sqs_event(&bucket, &["incoming/a.png"]), 10),
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "the invocation outlived its deadline: {took:?}"
    );
    assert_eq!(
        failed_ids(&response).len(),
        1,
        "delivered again: {response}"
    );
    // The host recovers; the next delivery resumes the task by its id.
    api.stall_results(false);
    let response = handle(
        &deps,
        invocation(sqs_event(&bucket, &["incoming/a.png"]), 60),
    )
    .await
    .unwrap();
    assert!(failed_ids(&response).is_empty(), "{response}");
    assert!(
        keys(&s3, &bucket)
            .await
            .contains(&"generated/a/manifest.json".to_owned())
    );
    assert_eq!(api.counts().create_requests, 1, "no new create");
}
