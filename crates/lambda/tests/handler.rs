//! The handler against a real S3-compatible server (moto) and the emulator: every case of the
//! issue, each asserting S3 contents and the emulator's counters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use backdrop_emulator::{EmulatorConfig, Faults, ProcessingTime};
use backdrop_lambda::config::SubmitMode;
use backdrop_lambda::{Config, handle};
use backdrop_tests::{fast_config, fast_emulator, fixture, opaque_png};
use serde_json::{Value, json};
use support::*;

fn bottle() -> Vec<u8> {
    std::fs::read(fixture("bottle.png")).unwrap()
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_png_yields_jpegs_and_a_manifest() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "valid").await;
    upload(
        &s3,
        &bucket,
        "incoming/shelf/bottle.png",
        bottle(),
        &[("prompt", "a sunny beach"), ("batch-size", "2")],
    )
    .await;
    let emulator = fast_emulator(fast_config()).await;
    let deps = deps(&emulator, config());
    let response = handle(
        &deps,
        invocation(sqs_event(&bucket, &["incoming/shelf/bottle.png"]), 120),
    )
    .await
    .unwrap();
    assert!(failed_ids(&response).is_empty(), "{response}");
    let keys = keys(&s3, &bucket).await;
    for expected in [
        "generated/shelf/bottle/1.jpg",
        "generated/shelf/bottle/2.jpg",
        "generated/shelf/bottle/manifest.json",
    ] {
        assert!(
            keys.contains(&expected.to_owned()),
            "{expected} missing from {keys:?}"
        );
    }
    let image = read(&s3, &bucket, "generated/shelf/bottle/1.jpg").await;
    assert!(image.starts_with(&[0xFF, 0xD8, 0xFF]));
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key("generated/shelf/bottle/1.jpg")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("image/jpeg"));
    let manifest = json_of(&read(&s3, &bucket, "generated/shelf/bottle/manifest.json").await);
    assert_eq!(manifest["source"]["key"], "incoming/shelf/bottle.png");
    assert_eq!(manifest["state"], 1);
    assert_eq!(manifest["credits_charged"], 6);
    assert_eq!(
        manifest["parameters"]["background"]["prompt"],
        "a sunny beach"
    );
    assert_eq!(manifest["outputs"].as_array().unwrap().len(), 2);
    assert!(manifest["task_id"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(emulator.counters().tasks_created, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_opaque_png_gets_a_failure_record_and_no_request() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "opaque").await;
    upload(
        &s3,
        &bucket,
        "incoming/opaque.png",
        opaque_png(400, 400),
        &[],
    )
    .await;
    let emulator = fast_emulator(fast_config()).await;
    let response = handle(
        &deps(&emulator, config()),
        invocation(sqs_event(&bucket, &["incoming/opaque.png"]), 60),
    )
    .await
    .unwrap();
    assert!(
        failed_ids(&response).is_empty(),
        "a permanent failure is not retried: {response}"
    );
    let record = json_of(&read(&s3, &bucket, "failed/opaque.png.json").await);
    assert_eq!(record["stage"], "validation");
    assert_eq!(record["credits_spent"], false);
    assert!(
        record["message"]
            .as_str()
            .unwrap()
            .contains("no transparency"),
        "{record}"
    );
    let counters = emulator.counters();
    assert_eq!(
        counters.create_requests + counters.query_requests,
        0,
        "{counters:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_event_creates_nothing_more() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "dup").await;
    upload(&s3, &bucket, "incoming/a.png", bottle(), &[]).await;
    let emulator = fast_emulator(fast_config()).await;
    let deps = deps(&emulator, config());
    let event = sqs_event(&bucket, &["incoming/a.png"]);
    handle(&deps, invocation(event.clone(), 60)).await.unwrap();
    let again = handle(&deps, invocation(event, 60)).await.unwrap();
    assert!(failed_ids(&again).is_empty());
    assert_eq!(emulator.counters().tasks_created, 1);
    // A new upload of the same key (new ETag) is new work.
    upload(
        &s3,
        &bucket,
        "incoming/a.png",
        std::fs::read(fixture("mug.png")).unwrap(),
        &[],
    )
    .await;
    handle(
        &deps,
        invocation(sqs_event(&bucket, &["incoming/a.png"]), 60),
    )
    .await
    .unwrap();
    assert_eq!(emulator.counters().tasks_created, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_with_spaces_unicode_and_folders_are_decoded() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "unicode").await;
    let key = "incoming/Été 2026/mug + lid (1).png";
    upload(
        &s3,
        &bucket,
        key,
        std::fs::read(fixture("mug.png")).unwrap(),
        &[("batch-size", "1")],
    )
    .await;
    let emulator = fast_emulator(fast_config()).await;
    let response = handle(
        &deps(&emulator, config()),
        invocation(sqs_event(&bucket, &[key]), 60),
    )
    .await
    .unwrap();
    assert!(failed_ids(&response).is_empty(), "{response}");
    let keys = keys(&s3, &bucket).await;
    assert!(
        keys.contains(&"generated/Été 2026/mug + lid (1)/1.jpg".to_owned()),
        "{keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn events_for_outputs_and_strays_are_ignored() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "loop").await;
    upload(&s3, &bucket, "generated/a/1.png", bottle(), &[]).await;
    upload(&s3, &bucket, "incoming/notes.txt", b"hello".to_vec(), &[]).await;
    let emulator = fast_emulator(fast_config()).await;
    let event = sqs_event(
        &bucket,
        &["generated/a/1.png", "incoming/notes.txt", "state/x.png"],
    );
    let response = handle(&deps(&emulator, config()), invocation(event, 60))
        .await
        .unwrap();
    assert!(failed_ids(&response).is_empty());
    assert_eq!(
        keys(&s3, &bucket).await,
        vec!["generated/a/1.png", "incoming/notes.txt"]
    );
    assert_eq!(emulator.counters().create_requests, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prompt_the_service_fails_with_minus_17_gets_a_failure_record() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "m17").await;
    upload(
        &s3,
        &bucket,
        "incoming/p.png",
        bottle(),
        &[("prompt", "nonsense emulator:fail=-17")],
    )
    .await;
    let emulator = fast_emulator(fast_config()).await;
    let response = handle(
        &deps(&emulator, config()),
        invocation(sqs_event(&bucket, &["incoming/p.png"]), 60),
    )
    .await
    .unwrap();
    assert!(failed_ids(&response).is_empty(), "{response}");
    let record = json_of(&read(&s3, &bucket, "failed/p.png.json").await);
    assert_eq!(record["state"], -17);
    assert_eq!(record["stage"], "task");
    assert!(
        record["state_meaning"]
            .as_str()
            .unwrap()
            .contains("prompt is invalid")
    );
    assert!(record["task_id"].as_str().is_some());
    assert_eq!(record["credits_spent"], false);
    assert_eq!(emulator.counters().tasks_created, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_answered_500_is_unconfirmed_and_created_again_once_when_flagged_later() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "five").await;
    // One object flagged from the start (a flag older than any failure), one not.
    upload(&s3, &bucket, "incoming/a.png", bottle(), &[]).await;
    upload(
        &s3,
        &bucket,
        "incoming/sticky.png",
        bottle(),
        &[("retry-unconfirmed", "true")],
    )
    .await;
    let emulator = fast_emulator(EmulatorConfig {
        faults: Faults {
            error_500_rate: 1.0,
            ..Faults::default()
        },
        ..fast_config()
    })
    .await;
    let deps = deps(&emulator, config());
    let keys_in = ["incoming/a.png", "incoming/sticky.png"];
    let response = handle(&deps, invocation(sqs_event(&bucket, &keys_in), 60))
        .await
        .unwrap();
    assert!(failed_ids(&response).is_empty(), "{response}");
    for key in ["failed/a.png.json", "failed/sticky.png.json"] {
        let record: Value = serde_json::from_slice(&read(&s3, &bucket, key).await).unwrap();
        assert_eq!(record["credits_spent"], true, "{record:#}");
        assert!(
            record["message"]
                .as_str()
                .unwrap()
                .contains("may exist and be charged"),
            "{record:#}"
        );
    }
    assert_eq!(
        emulator.counters().create_requests,
        2,
        "a 500 create is never resent"
    );

    // Delivered again, the service healthy: nothing is created — not even for the object
    // whose flag was there before its create failed.
    emulator.set_faults(Faults::default());
    handle(&deps, invocation(sqs_event(&bucket, &keys_in), 60))
        .await
        .unwrap();
    assert_eq!(emulator.counters().create_requests, 2);

    // The uploader sets the flag after reading the record (a copy in place): one more create.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s3.copy_object()
        .bucket(&bucket)
        .key("incoming/a.png")
        .copy_source(format!("{bucket}/incoming/a.png"))
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .metadata("retry-unconfirmed", "true")
        .send()
        .await
        .unwrap();
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
    let counters = emulator.counters();
    assert_eq!((counters.create_requests, counters.tasks_created), (3, 1));
    // And never again on later deliveries.
    handle(&deps, invocation(sqs_event(&bucket, &keys_in), 60))
        .await
        .unwrap();
    assert_eq!(emulator.counters().create_requests, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_mid_task_is_retried_and_resumes_the_same_task() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "deadline").await;
    upload(
        &s3,
        &bucket,
        "incoming/slow.png",
        bottle(),
        &[("batch-size", "1")],
    )
    .await;
    // 80 s of emulated processing at time scale 10: 8 s real.
    let emulator = fast_emulator(EmulatorConfig {
        processing: ProcessingTime::Fixed(Duration::from_secs(80)),
        ..fast_config()
    })
    .await;
    let deps = deps(&emulator, config());
    let event = sqs_event(&bucket, &["incoming/slow.png"]);
    let first = handle(&deps, invocation(event.clone(), 7)).await.unwrap();
    assert_eq!(failed_ids(&first), vec!["msg-0"], "{first}");
    assert!(
        !keys(&s3, &bucket)
            .await
            .iter()
            .any(|k| k.starts_with("generated/"))
    );
    let second = handle(&deps, invocation(event, 60)).await.unwrap();
    assert!(failed_ids(&second).is_empty(), "{second}");
    assert!(
        keys(&s3, &bucket)
            .await
            .contains(&"generated/slow/1.jpg".to_owned())
    );
    assert_eq!(
        emulator.counters().tasks_created,
        1,
        "the retry resumed the recorded task"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_mode_sends_the_bytes() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "upload").await;
    upload(
        &s3,
        &bucket,
        "incoming/u.png",
        bottle(),
        &[("scene-type", "12"), ("batch-size", "1")],
    )
    .await;
    let emulator = fast_emulator(fast_config()).await;
    let config = Config {
        submit_mode: SubmitMode::Upload,
        ..config()
    };
    let response = handle(
        &deps(&emulator, config),
        invocation(sqs_event(&bucket, &["incoming/u.png"]), 60),
    )
    .await
    .unwrap();
    assert!(failed_ids(&response).is_empty(), "{response}");
    let manifest = json_of(&read(&s3, &bucket, "generated/u/manifest.json").await);
    assert_eq!(manifest["parameters"]["background"]["scene_type"], 12);
    assert_eq!(manifest["credits_charged"], 3);
    let tasks = emulator.tasks();
    assert_eq!(tasks.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_objects_in_one_batch_all_finish_without_429() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "twenty").await;
    let keys_in: Vec<String> = (0..20)
        .map(|i| format!("incoming/batch/item-{i:02}.png"))
        .collect();
    for key in &keys_in {
        upload(&s3, &bucket, key, bottle(), &[("batch-size", "1")]).await;
    }
    let emulator = fast_emulator(fast_config()).await;
    let refs: Vec<&str> = keys_in.iter().map(String::as_str).collect();
    let response = handle(
        &deps(&emulator, config()),
        invocation(sqs_event(&bucket, &refs), 120),
    )
    .await
    .unwrap();
    assert!(failed_ids(&response).is_empty(), "{response}");
    let keys = keys(&s3, &bucket).await;
    assert_eq!(
        keys.iter().filter(|k| k.ends_with("manifest.json")).count(),
        20
    );
    let counters = emulator.counters();
    assert_eq!(counters.tasks_created, 20);
    assert_eq!(counters.responses_429, 0, "{counters:?}");
    assert!(counters.max_requests_in_window <= 2, "{counters:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_s3_eventbridge_and_test_events() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "shapes").await;
    upload(
        &s3,
        &bucket,
        "incoming/direct.png",
        bottle(),
        &[("batch-size", "1")],
    )
    .await;
    upload(
        &s3,
        &bucket,
        "incoming/bridge 1.png",
        bottle(),
        &[("batch-size", "1")],
    )
    .await;
    let emulator = fast_emulator(fast_config()).await;
    let deps = deps(&emulator, config());
    let direct = json!({"Records": [s3_record(&bucket, "incoming/direct.png")]});
    let answer = handle(&deps, invocation(direct, 60)).await.unwrap();
    assert_eq!(answer["objects"][0]["status"], "done", "{answer}");
    let bridge = json!({"version": "0", "id": "e1", "detail-type": "Object Created", "source": "aws.s3",
        "account": "123456789012", "time": "2026-11-25T12:00:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:s3:::{bucket}")],
        "detail": {"version": "0", "bucket": {"name": bucket}, "object": {"key": "incoming/bridge 1.png", "size": 1},
            "request-id": "r", "requester": "123456789012", "reason": "PutObject"}});
    let answer = handle(&deps, invocation(bridge, 60)).await.unwrap();
    assert_eq!(answer["objects"][0]["status"], "done", "{answer}");
    let test_event = json!({"Records": [{"messageId": "t1", "eventSource": "aws:sqs",
        "body": format!("{{\"Service\":\"Amazon S3\",\"Event\":\"s3:TestEvent\",\"Bucket\":\"{bucket}\"}}")}]});
    let answer = handle(&deps, invocation(test_event, 60)).await.unwrap();
    assert!(failed_ids(&answer).is_empty());
    assert_eq!(emulator.counters().tasks_created, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_transiently_failed_messages_are_retried() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "partial").await;
    upload(
        &s3,
        &bucket,
        "incoming/good.png",
        bottle(),
        &[("batch-size", "1")],
    )
    .await;
    upload(&s3, &bucket, "incoming/bad.png", opaque_png(300, 300), &[]).await;
    upload(
        &s3,
        &bucket,
        "incoming/never.png",
        bottle(),
        &[("prompt", "x"), ("batch-size", "1")],
    )
    .await;
    let emulator = fast_emulator(fast_config()).await;
    let deps = deps(&emulator, config());
    // The third object's task fails on the service's side (-15): transient, so retried.
    upload(
        &s3,
        &bucket,
        "incoming/never.png",
        bottle(),
        &[("prompt", "busy emulator:fail=-15"), ("batch-size", "1")],
    )
    .await;
    let event = sqs_event(
        &bucket,
        &[
            "incoming/good.png",
            "incoming/bad.png",
            "incoming/never.png",
        ],
    );
    let response = handle(&deps, invocation(event, 60)).await.unwrap();
    assert_eq!(failed_ids(&response), vec!["msg-2"], "{response}");
    let keys = keys(&s3, &bucket).await;
    assert!(keys.contains(&"generated/good/1.jpg".to_owned()));
    assert!(keys.contains(&"failed/bad.png.json".to_owned()));
    assert!(!keys.contains(&"failed/never.png.json".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_s3_claim_store_conforms_to_the_ledger_suite() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "ledger").await;
    let store = backdrop_lambda::S3Store::new(s3.clone());
    let mut n = 0;
    backdrop_core::ledger::conformance::run(|| {
        n += 1;
        backdrop_lambda::claims::ClaimStore::new(&store, bucket.clone(), format!("state-{n}/"))
    })
    .await;
    assert!(
        keys(&s3, &bucket)
            .await
            .iter()
            .all(|k| k.starts_with("state-"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn same_bytes_with_new_metadata_are_new_work_with_the_same_a_duplicate() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "identity").await;
    let emulator = fast_emulator(fast_config()).await;
    let deps = deps(&emulator, config());
    let deliver = |deps| {
        let event = invocation(sqs_event(&bucket, &["incoming/p.png"]), 60);
        async move { handle(deps, event).await.unwrap() }
    };
    // A prompt the service refuses (-17): a failure record, no retry.
    let refused = [("prompt", "nonsense emulator:fail=-17")];
    upload(&s3, &bucket, "incoming/p.png", bottle(), &refused).await;
    assert!(failed_ids(&deliver(&deps).await).is_empty());
    assert_eq!(emulator.counters().tasks_created, 1);
    let record = json_of(&read(&s3, &bucket, "failed/p.png.json").await);
    assert_eq!(record["state"], -17);
    assert_eq!(record["recovery"], "permanent");
    // The same bytes and metadata uploaded again: the same input, refused without a request.
    upload(&s3, &bucket, "incoming/p.png", bottle(), &refused).await;
    assert!(failed_ids(&deliver(&deps).await).is_empty());
    assert_eq!(
        emulator.counters().tasks_created,
        1,
        "a duplicate is not sent"
    );
    // The same bytes with a corrected prompt: new work.
    upload(
        &s3,
        &bucket,
        "incoming/p.png",
        bottle(),
        &[("prompt", "a beach")],
    )
    .await;
    assert!(failed_ids(&deliver(&deps).await).is_empty());
    assert_eq!(emulator.counters().tasks_created, 2);
    let manifest = json_of(&read(&s3, &bucket, "generated/p/manifest.json").await);
    assert_eq!(manifest["parameters"]["background"]["prompt"], "a beach");
    let claims: Vec<String> = keys(&s3, &bucket)
        .await
        .into_iter()
        .filter(|k| k.starts_with("state/"))
        .collect();
    assert_eq!(claims.len(), 2, "one ledger entry per input: {claims:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_deliveries_of_one_object_at_once_create_one_task() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "twice").await;
    upload(&s3, &bucket, "incoming/a.png", bottle(), &[]).await;
    let emulator = fast_emulator(fast_config()).await;
    let deps = deps(&emulator, config());
    let event = || invocation(sqs_event(&bucket, &["incoming/a.png"]), 60);
    let (first, second) = tokio::join!(handle(&deps, event()), handle(&deps, event()));
    let retried = failed_ids(&first.unwrap()).len() + failed_ids(&second.unwrap()).len();
    assert_eq!(emulator.counters().tasks_created, 1);
    assert!(retried <= 1, "the busy one comes back later");
    // Its redelivery finds the work done.
    let again = handle(&deps, event()).await.unwrap();
    assert!(failed_ids(&again).is_empty());
    assert_eq!(emulator.counters().tasks_created, 1);
    assert!(
        keys(&s3, &bucket)
            .await
            .contains(&"generated/a/manifest.json".to_owned())
    );
}

/// A phrase of the message of each rule a fixture breaks.
fn phrase(rule: backdrop_core::validate::fixtures::Rule) -> &'static str {
    use backdrop_core::validate::fixtures::Rule;
    match rule {
        Rule::DamagedPng => "damaged PNG:",
        Rule::TrailingData => "after its IEND chunk",
        Rule::DamagedImageData => "damaged PNG image data",
        Rule::NothingTransparent => "the background was not removed",
        Rule::NothingVisible => "no foreground",
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_png_fixture_gets_its_verdict_and_the_refused_cost_no_request() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "fixtures").await;
    let fixtures = backdrop_core::validate::fixtures::all();
    let mut uploaded = Vec::new();
    for fixture in &fixtures {
        let key = format!("incoming/{}.png", fixture.name);
        upload(&s3, &bucket, &key, fixture.bytes.clone(), &[]).await;
        uploaded.push(key);
    }
    let emulator = fast_emulator(fast_config()).await;
    let deps = deps(&emulator, config());
    let keys_ref: Vec<&str> = uploaded.iter().map(String::as_str).collect();
    let answer = handle(&deps, invocation(sqs_event(&bucket, &keys_ref), 120))
        .await
        .unwrap();
    assert!(failed_ids(&answer).is_empty(), "{answer}");
    let valid = fixtures.iter().filter(|f| f.refused_by.is_none()).count() as u64;
    assert_eq!(
        emulator.counters().create_requests,
        valid,
        "only the valid ones are sent"
    );
    let stored = keys(&s3, &bucket).await;
    for fixture in &fixtures {
        let name = fixture.name;
        match fixture.refused_by {
            None => assert!(
                stored.contains(&format!("generated/{name}/manifest.json")),
                "{name}: {stored:?}"
            ),
            Some(rule) => {
                let record = json_of(&read(&s3, &bucket, &format!("failed/{name}.png.json")).await);
                assert_eq!(record["stage"], "validation", "{name}: {record}");
                assert_eq!(record["credits_spent"], false);
                let message = record["message"].as_str().unwrap();
                assert!(message.contains(phrase(rule)), "{name}: {message}");
            }
        }
    }
    // The uploader who knows better: the same opaque image, sent with x-amz-meta-allow-opaque.
    let opaque = fixtures
        .iter()
        .find(|f| f.name == "rgba-all-opaque")
        .unwrap();
    upload(
        &s3,
        &bucket,
        "incoming/override.png",
        opaque.bytes.clone(),
        &[("allow-opaque", "true")],
    )
    .await;
    let before = emulator.counters().create_requests;
    handle(
        &deps,
        invocation(sqs_event(&bucket, &["incoming/override.png"]), 60),
    )
    .await
    .unwrap();
    assert_eq!(
        emulator.counters().create_requests,
        before + 1,
        "sent despite the pixel rule"
    );
}
