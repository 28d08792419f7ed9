//! One key's budget shared by every instance through DynamoDB (moto), against the emulator at
//! the key's QPS: three concurrent invocations ("instances", each with its own client) over 30
//! objects never draw a 429 nor put more than the key's requests in any window, and a lone
//! instance uses nearly the whole key — beside the static split on the same work. An ignored
//! test prints the figures of five instances at QPS 10 (`cargo test -p backdrop-lambda --test
//! shared_budget five_instances -- --ignored --nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backdrop_budget_dynamodb::{DynamoDbBudgetStore, create_table};
use backdrop_core::budget::slot_interval_ms;
use backdrop_core::budget::{BoxFuture, BudgetError, BudgetState, BudgetStore};
use backdrop_core::{Client, ClientConfig, RateLimit};
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
    let clients = (0..instances)
        .map(|_| instance_client(emulator, table))
        .collect();
    run_with(clients, per_instance, 120).await
}

/// One invocation per client at once, each over `per_instance` new objects and `seconds` long;
/// every object must succeed. Returns the time.
async fn run_with(clients: Vec<Client>, per_instance: usize, seconds: u64) -> Duration {
    let s3 = s3_client();
    let bucket = bucket(&s3, "shared").await;
    let bottle = std::fs::read(fixture("bottle.png")).unwrap();
    let mut keys = Vec::new();
    for i in 0..clients.len() * per_instance {
        let key = format!("incoming/p{i}.png");
        upload(&s3, &bucket, &key, bottle.clone(), &[]).await;
        keys.push(key);
    }
    let all_deps: Vec<_> = clients.into_iter().map(deps).collect();
    let started = Instant::now();
    let invocations = all_deps.iter().enumerate().map(|(n, deps)| {
        let mine: Vec<&str> = keys[n * per_instance..(n + 1) * per_instance]
            .iter()
            .map(String::as_str)
            .collect();
        let event = invocation(sqs_event(&bucket, &mine), seconds);
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
    // The emulator's times are wall-clock seconds, and the client spaces its slots on that
    // clock: the key's window sped up, the margin not.
    let scale = backdrop_core::time_scale::TimeScale::new(backdrop_tests::TIME_SCALE).unwrap();
    let capacity = (last - first) * 1000.0 / slot_interval_ms(key_limit().scaled(scale)) as f64;
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

/// A budget store that counts its calls.
#[derive(Debug)]
struct Counted {
    inner: DynamoDbBudgetStore,
    calls: AtomicU64,
}

impl Counted {
    /// The store, one call more.
    fn call(&self) -> &DynamoDbBudgetStore {
        self.calls.fetch_add(1, Ordering::Relaxed);
        &self.inner
    }
}

impl BudgetStore for Counted {
    fn advance(&self, interval_ms: u64, now_ms: u64) -> Step<'_, Option<BudgetState>> {
        self.call().advance(interval_ms, now_ms)
    }

    fn restart(&self, now_ms: u64, interval_ms: u64) -> Step<'_, Option<BudgetState>> {
        self.call().restart(now_ms, interval_ms)
    }

    fn pause(&self, until_ms: u64) -> Step<'_, ()> {
        self.call().pause(until_ms)
    }
}

/// A store step's answer.
type Step<'a, T> = BoxFuture<'a, Result<T, BudgetError>>;

/// Five instances at QPS 10 (the emulator sped up 4×, uniform 4–16 s tasks), 60 objects each
/// at once, sharing one budget on moto's DynamoDB: the key's share they reach, 429s, store
/// calls per task. Figures, not a check (`--ignored --nocapture`).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "prints figures: a benchmark, not a check"]
async fn five_instances_at_qps_10() {
    const SCALE: f64 = 4.0;
    const FLEET_QPS: u32 = 10;
    let (instances, per_instance) = (5, 60);
    let table = budget_table("fleet").await;
    let emulator = fast_emulator(backdrop_emulator::EmulatorConfig {
        qps: FLEET_QPS,
        time_scale: SCALE,
        processing: backdrop_emulator::ProcessingTime::Uniform {
            min: Duration::from_secs(4),
            max: Duration::from_secs(16),
        },
        ..fast_config()
    })
    .await;
    let limit = RateLimit {
        margin: Duration::from_millis(50),
        ..RateLimit::per_second(FLEET_QPS)
    };
    let stores: Vec<Arc<Counted>> = (0..instances)
        .map(|_| {
            Arc::new(Counted {
                inner: DynamoDbBudgetStore::new(dynamodb(), &table, emulator.api_key()),
                calls: AtomicU64::new(0),
            })
        })
        .collect();
    let clients = stores
        .iter()
        .map(|store| {
            let config = ClientConfig::builder(emulator.api_key())
                .time_scale(SCALE)
                .base_url(emulator.base_url())
                .rate_limit(limit)
                .shared_budget(store.clone(), limit.share_of(instances as u32))
                .build()
                .unwrap();
            Client::new(config).unwrap()
        })
        .collect();
    let elapsed = run_with(clients, per_instance, 600).await.as_secs_f64() * SCALE;
    let counters = emulator.reset_counters();
    let tasks = emulator.tasks();
    let first = tasks.iter().map(|t| t.created_at).fold(f64::MAX, f64::min);
    let mut seen: Vec<f64> = tasks.iter().filter_map(|t| t.final_seen_at).collect();
    seen.sort_by(f64::total_cmp);
    let n = seen.len();
    // The emulator's times are wall-clock seconds: service time is SCALE times longer.
    let whole = n as f64 / ((seen[n - 1] - first) * SCALE) * 60.0;
    let bare = f64::from(FLEET_QPS) * 30.0;
    let calls: u64 = stores.iter().map(|s| s.calls.load(Ordering::Relaxed)).sum();
    let requests = counters.create_requests + counters.query_requests;
    println!(
        "{instances} instances x {per_instance} objects at QPS {FLEET_QPS}: {n} tasks in \
         {elapsed:.0} s (service time); whole run {whole:.1}/min ({:.0} % of {bare}), {:.2} \
         requests/task, {} x 429, most in a window {}, {:.2} store calls/task",
        whole / bare * 100.0,
        requests as f64 / n as f64,
        counters.responses_429,
        counters.max_requests_in_window,
        calls as f64 / n as f64,
    );
    assert_eq!(counters.responses_429, 0);
    assert!(counters.max_requests_in_window <= u64::from(FLEET_QPS));
}
