//! One key's budget shared by every instance through DynamoDB (moto), against the emulator at
//! the key's QPS: three concurrent invocations ("instances", each with its own client) over 30
//! objects never draw a 429 nor put more than the key's requests in any window, and a lone
//! instance uses nearly the whole key — beside the static split on the same work.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backdrop_budget_dynamodb::{DynamoDbBudgetStore, create_table};
use backdrop_core::budget::slot_interval_ms;
use backdrop_core::{Client, RateLimit};
use backdrop_emulator::Emulator;
use backdrop_lambda::metrics::MetricsSink;
use backdrop_lambda::{Deps, NoQueue, S3Store, handle};
use backdrop_tests::{TEST_RATE_MARGIN, client_with, fast_config, fast_emulator, fixture};
use support::*;

const QPS: u32 = 2;

async fn budget_table(name: &str) -> String {
    let table = format!("{name}-{}", std::process::id());
    create_table(&dynamodb(), &table).await.unwrap();
    table
}

/// The key's budget as the test clients see it (with their wider jitter margin), on the
/// service's clock (the clients scale it to the emulator's).
fn key_limit() -> RateLimit {
    RateLimit {
        margin: TEST_RATE_MARGIN,
        ..RateLimit::per_second(QPS)
    }
}

/// One instance's client: the whole key through the shared budget in `table`, or a third of
/// the key (the static split of three instances).
fn instance_client(emulator: &Emulator, table: Option<&str>) -> Client {
    let limit = key_limit();
    let third = RateLimit {
        max_requests: 1,
        window: limit.window * 2,
        ..limit
    };
    client_with(emulator, QPS, |builder| match table {
        Some(table) => {
            let store = DynamoDbBudgetStore::new(dynamodb(), table, emulator.api_key());
            builder
                .rate_limit(limit)
                .shared_budget(Arc::new(store), third)
        }
        None => builder.rate_limit(third),
    })
}

fn deps(client: Client) -> Deps<S3Store> {
    Deps {
        store: S3Store::new(s3_client()),
        queue: NoQueue,
        client,
        config: config(),
        metrics: MetricsSink::Memory(Default::default()),
    }
}

/// Runs `instances` concurrent invocations over `per_instance` objects each; returns the time.
async fn run(
    emulator: &Emulator,
    table: Option<&str>,
    instances: usize,
    per_instance: usize,
) -> Duration {
    let s3 = s3_client();
    let bucket = bucket(&s3, "shared").await;
    let bottle = std::fs::read(fixture("bottle.png")).unwrap();
    let mut keys = Vec::new();
    for i in 0..instances * per_instance {
        let key = format!("incoming/p{i}.png");
        upload(&s3, &bucket, &key, bottle.clone(), &[]).await;
        keys.push(key);
    }
    let all_deps: Vec<_> = (0..instances)
        .map(|_| deps(instance_client(emulator, table)))
        .collect();
    let started = Instant::now();
    let invocations = all_deps.iter().enumerate().map(|(n, deps)| {
        let mine: Vec<&str> = keys[n * per_instance..(n + 1) * per_instance]
            .iter()
            .map(String::as_str)
            .collect();
        let event = invocation(sqs_event(&bucket, &mine), 120);
        async move { handle(deps, event).await.unwrap() }
    });
    for answer in futures_util::future::join_all(invocations).await {
        assert!(failed_ids(&answer).is_empty(), "{answer}");
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_share_one_budget_and_a_lone_one_uses_it_all() {
    let table = budget_table("budget").await;
    let emulator = fast_emulator(backdrop_emulator::EmulatorConfig {
        qps: QPS,
        ..fast_config()
    })
    .await;

    // Three instances at once, ten objects each, one shared budget.
    let shared = run(&emulator, Some(&table), 3, 10).await;
    let counters = emulator.reset_counters();
    assert_eq!(counters.tasks_created, 30);
    assert_eq!(counters.responses_by_status.get(&429), None, "{counters:?}");
    assert!(
        counters.max_requests_in_window <= u64::from(QPS),
        "{counters:?}"
    );

    // A lone instance with the shared budget: nearly the whole key.
    let before = emulator.tasks().len();
    let alone = run(&emulator, Some(&table), 1, 30).await;
    let lone = emulator.reset_counters();
    assert_eq!(lone.responses_by_status.get(&429), None, "{lone:?}");
    let tasks = emulator.tasks();
    let first = tasks[before..]
        .iter()
        .map(|t| t.created_at)
        .fold(f64::MAX, f64::min);
    let last = tasks[before..]
        .iter()
        .filter_map(|t| t.final_seen_at)
        .fold(0.0, f64::max);
    let requests = (lone.create_requests + lone.query_requests) as f64;
    let capacity = (last - first) * 1000.0 / slot_interval_ms(key_limit()) as f64;
    let share = requests / capacity;

    // The same lone burst with the static split of three instances: a third of the key.
    let split = run(&emulator, None, 1, 30).await;
    let split_counters = emulator.reset_counters();
    assert_eq!(
        split_counters.responses_by_status.get(&429),
        None,
        "{split_counters:?}"
    );
    println!(
        "3 instances sharing: {shared:?}; a lone instance sharing: {alone:?}, {requests} requests \
         in {:.2} s = {:.0} % of the key; a lone instance with a static third: {split:?}",
        last - first,
        share * 100.0
    );
    assert!(
        share >= 0.9,
        "a lone instance used {:.0} % of the key",
        share * 100.0
    );
    assert!(
        alone.as_secs_f64() * 1.5 < split.as_secs_f64(),
        "shared {alone:?} vs a static third {split:?}"
    );
}
