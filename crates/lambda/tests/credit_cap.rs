//! The daily credit cap held across instances through DynamoDB (moto): three concurrent
//! instances, each with its own client, over 10 objects at two images each, under a cap of 18
//! credits — the emulator charges at most 18, the other objects get a `credit_cap` record; and
//! a reservation left by a crash between reserving and creating still counts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use backdrop_budget_dynamodb::{DynamoDbCreditStore, create_table};
use backdrop_core::Client;
use backdrop_core::credits::{CreditCap, CreditStore, Reservation};
use backdrop_emulator::Emulator;
use backdrop_lambda::metrics::MetricsSink;
use backdrop_lambda::{Config, Deps, NoQueue, S3Store, handle};
use backdrop_tests::{client_with, fast_config, fast_emulator, fixture};
use serde_json::Value;
use support::*;

const CAP: u64 = 18;

fn store(table: &str) -> DynamoDbCreditStore {
    DynamoDbCreditStore::new(dynamodb(), table, backdrop_report::time::utc_day)
}

/// One instance: its own client, the shared daily total in `table`.
fn instance(emulator: &Emulator, table: &str) -> Deps<S3Store> {
    let client: Client = client_with(emulator, 20, |builder| {
        builder.credit_cap(CreditCap {
            limit: CAP,
            store: Arc::new(store(table)),
        })
    });
    Deps {
        store: S3Store::new(s3_client()),
        queue: NoQueue,
        client,
        config: Config {
            daily_credit_cap: Some(CAP),
            ..config()
        },
        metrics: MetricsSink::Memory(Default::default()),
    }
}

/// Runs three instances over `objects` objects of two images each; returns the credits the
/// emulator charged and the number of credit_cap records.
async fn three_instances(name: &str, table: &str, objects: usize) -> (u64, usize, usize) {
    let emulator = fast_emulator(fast_config()).await;
    let s3 = s3_client();
    let bucket = bucket(&s3, name).await;
    let bottle = std::fs::read(fixture("bottle.png")).unwrap();
    let mut keys = Vec::new();
    for i in 0..objects {
        let key = format!("incoming/c{i}.png");
        upload(&s3, &bucket, &key, bottle.clone(), &[("batch-size", "2")]).await;
        keys.push(key);
    }
    let instances: Vec<_> = (0..3).map(|_| instance(&emulator, table)).collect();
    let invocations = instances.iter().enumerate().map(|(n, deps)| {
        let mine: Vec<&str> = keys.iter().skip(n).step_by(3).map(String::as_str).collect();
        let event = invocation(sqs_event(&bucket, &mine), 120);
        async move { handle(deps, event).await.unwrap() }
    });
    for answer in futures_util::future::join_all(invocations).await {
        assert!(failed_ids(&answer).is_empty(), "{answer}");
    }
    let charged: u64 = emulator
        .tasks()
        .iter()
        .filter(|t| t.state == 1)
        .map(|t| u64::from(t.batch_size) * 3)
        .sum();
    let mut capped = 0;
    let mut done = 0;
    for (n, key) in keys.iter().enumerate() {
        let stored = keys_of(&s3, &bucket).await;
        if stored.contains(&format!("generated/c{n}/manifest.json")) {
            done += 1;
            continue;
        }
        let record: Value =
            serde_json::from_slice(&read(&s3, &bucket, &format!("failed/c{n}.png.json")).await)
                .unwrap_or_else(|e| panic!("{key}: no outputs and no record: {e}"));
        assert_eq!(record["stage"], "credit_cap", "{record:#}");
        assert_eq!(record["credits_spent"], false, "{record:#}");
        let message = record["message"].as_str().unwrap();
        assert!(message.contains("DailyCreditCap"), "{message}");
        capped += 1;
    }
    // (A create refused with 429 reaches the emulator but makes no task, and is refunded.)
    assert_eq!(
        emulator.counters().tasks_created as usize,
        done,
        "no task was made for a capped object"
    );
    (charged, capped, done)
}

async fn keys_of(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    keys(s3, bucket).await
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_under_one_daily_cap_charge_at_most_the_cap() {
    let table = format!("credits-{}", std::process::id());
    create_table(&dynamodb(), &table).await.unwrap();
    let (charged, capped, done) = three_instances("capped", &table, 10).await;
    assert!(
        charged <= CAP,
        "charged {charged} credits over a cap of {CAP}"
    );
    assert_eq!(done, 3, "three creates of 6 credits fit 18");
    assert_eq!(capped, 7);
    assert_eq!(store(&table).total().await.unwrap(), 18);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reservation_left_by_a_crash_still_counts() {
    let table = format!("credits-crash-{}", std::process::id());
    create_table(&dynamodb(), &table).await.unwrap();
    // An instance reserved 6 credits, then died before sending its create: never refunded.
    let reserved = store(&table).reserve(6, CAP).await.unwrap();
    assert!(
        matches!(reserved, Reservation::Reserved { total: 6, .. }),
        "{reserved:?}"
    );
    let (charged, capped, done) = three_instances("crashed", &table, 5).await;
    assert_eq!(done, 2, "12 credits left: two creates of 6");
    assert_eq!(capped, 3);
    assert_eq!(charged, 12);
    assert_eq!(store(&table).total().await.unwrap(), 18);
}
