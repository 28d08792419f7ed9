//! The DynamoDB store against a real DynamoDB-compatible server (moto in server mode, from the
//! project's venv): the three conditional steps, holders that never share a slot, a 429 pause
//! seen by everyone, and a missing table reported as such.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use backdrop_budget_dynamodb::{DynamoDbBudgetStore, PARTITION_KEY, create_table};
use backdrop_core::RateLimit;
use backdrop_core::budget::{BudgetStore, SharedBudget, SharedRateBudget, slot_interval_ms};
use backdrop_tests::Moto;

fn client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .build(),
    )
}

async fn table(client: &aws_sdk_dynamodb::Client, name: &str) {
    create_table(client, name).await.unwrap();
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn the_three_steps_are_conditional() {
    let moto = Moto::start();
    let client = client(moto.endpoint());
    table(&client, "steps").await;
    let store = DynamoDbBudgetStore::new(client, "steps", "sk-test-key");
    assert!(store.item().starts_with("key-") && !store.item().contains("sk-test"));
    // No item yet: advance refuses, restart creates it.
    assert_eq!(store.advance(500, 1_000).await.unwrap(), None);
    let state = store.restart(1_000, 500).await.unwrap().unwrap();
    assert_eq!(state.next_at_ms, 1_500);
    // A restart while next_at is ahead is refused; an advance moves it.
    assert_eq!(store.restart(1_200, 500).await.unwrap(), None);
    assert_eq!(
        store.advance(500, 1_200).await.unwrap().unwrap().next_at_ms,
        2_000
    );
    // After an idle spell advance refuses, restart starts from now.
    assert_eq!(store.advance(500, 5_000).await.unwrap(), None);
    assert_eq!(
        store.restart(5_000, 500).await.unwrap().unwrap().next_at_ms,
        5_500
    );
    // A pause raises both, never lowers them.
    store.pause(9_000).await.unwrap();
    store.pause(7_000).await.unwrap();
    let state = store.advance(500, 6_000).await.unwrap().unwrap();
    assert_eq!((state.next_at_ms, state.paused_until_ms), (9_500, 9_000));
}

#[tokio::test(flavor = "multi_thread")]
async fn holders_get_distinct_slots_and_share_a_pause() {
    let moto = Moto::start();
    let admin = client(moto.endpoint());
    table(&admin, "budget").await;
    let limit = RateLimit::per_second(10);
    let interval = slot_interval_ms(limit);
    // Three processes: each its own client and store on the same item.
    let holders: Vec<Arc<SharedRateBudget<DynamoDbBudgetStore>>> = (0..3)
        .map(|_| {
            Arc::new(SharedRateBudget::new(
                DynamoDbBudgetStore::new(client(moto.endpoint()), "budget", "sk-shared"),
                limit,
            ))
        })
        .collect();
    let slots = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let tasks: Vec<_> = holders
        .iter()
        .map(|holder| {
            let (holder, slots) = (holder.clone(), slots.clone());
            tokio::spawn(async move {
                for _ in 0..10 {
                    let wait = holder.reserve(1).await.unwrap().first;
                    slots
                        .lock()
                        .unwrap()
                        .push(now_ms() + wait.as_millis() as u64);
                    tokio::time::sleep(wait).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut slots = slots.lock().unwrap().clone();
    slots.sort_unstable();
    assert_eq!(slots.len(), 30);
    // The store handed out 30 consecutive slots, one interval apart: its next free slot is 30
    // intervals after the first (the holders' own readings of when they got theirs are only
    // as exact as their scheduling on a busy machine).
    let item = admin
        .get_item()
        .table_name("budget")
        .key(
            PARTITION_KEY,
            AttributeValue::S(holders[0].store().item().to_owned()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let next_at: u64 = item.item().unwrap()["next_at"]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    let span = next_at - slots[0];
    assert!(
        span.abs_diff(30 * interval) <= 100,
        "30 slots span {span} ms, not {} ms",
        30 * interval
    );
    for pair in slots.windows(2) {
        assert!(
            pair[1] + 60 >= pair[0] + interval,
            "{pair:?} far closer than {interval} ms"
        );
    }
    // 30 slots at 105 ms: about 3 s for the three together, not a third of it each.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(29 * interval),
        "{elapsed:?}"
    );
    // A 429 seen by one holder: the others' next slots come after the pause.
    let paused_at = now_ms();
    holders[0]
        .pause_for(Duration::from_millis(800))
        .await
        .unwrap();
    for holder in &holders[1..] {
        let wait = holder.reserve(1).await.unwrap().first;
        assert!(
            now_ms() + wait.as_millis() as u64 >= paused_at + 800,
            "{wait:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_table_is_an_error_that_says_what_to_check() {
    let moto = Moto::start();
    let store = DynamoDbBudgetStore::new(client(moto.endpoint()), "no-such-table", "sk");
    let error = store.restart(1, 1).await.unwrap_err().to_string();
    assert!(
        error.contains("no-such-table") && error.contains("dynamodb:UpdateItem"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_credit_total_reserves_within_the_cap_refunds_and_keeps_days_apart() {
    use backdrop_budget_dynamodb::DynamoDbCreditStore;
    use backdrop_core::credits::{CreditReceipt, CreditStore, Reservation};
    let moto = Moto::start();
    let client = client(moto.endpoint());
    table(&client, "credits").await;
    let today = DynamoDbCreditStore::new(client.clone(), "credits", |_| "2026-12-07".into());
    let reserved = |r: Reservation| match r {
        Reservation::Reserved { receipt, total } => (receipt, total),
        Reservation::Refused { total } => panic!("refused at {total}"),
    };
    let (first, total) = reserved(today.reserve(6, 10).await.unwrap());
    assert_eq!((first.period.as_str(), total), ("2026-12-07", 6));
    // 6 more would pass 10: refused, with what is spent; 3 fit; a create over the cap alone
    // is refused too.
    assert_eq!(
        today.reserve(6, 10).await.unwrap(),
        Reservation::Refused { total: 6 }
    );
    let (_, total) = reserved(today.reserve(3, 10).await.unwrap());
    assert_eq!(total, 9);
    assert_eq!(
        today.reserve(12, 10).await.unwrap(),
        Reservation::Refused { total: 9 }
    );
    // A refund (a failed task) makes room; never below zero.
    today.refund(&first, 6).await.unwrap();
    assert_eq!(today.total().await.unwrap(), 3);
    today.refund(&first, 6).await.unwrap();
    assert_eq!(today.total().await.unwrap(), 3);
    // Another day has a total of its own; a refund goes back to its reservation's day.
    let tomorrow = DynamoDbCreditStore::new(client, "credits", |_| "2026-12-08".into());
    assert_eq!(tomorrow.total().await.unwrap(), 0);
    let (_, total) = reserved(tomorrow.reserve(6, 10).await.unwrap());
    assert_eq!(total, 6);
    let yesterday = CreditReceipt {
        period: "2026-12-07".into(),
        credits: 3,
    };
    tomorrow.refund(&yesterday, 3).await.unwrap();
    assert_eq!(today.total().await.unwrap(), 0);
    assert_eq!(tomorrow.total().await.unwrap(), 6);
}
