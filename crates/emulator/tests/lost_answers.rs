//! Creates accepted whose answer is lost (`Faults::lost_answer_rate`), and the counters that tell
//! them apart; 429 storms and the `Retry-After` they carry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use backdrop_core::spec;
use backdrop_emulator::{Counters, EmulatorConfig, Faults, TaskInfo};
use common::*;
use reqwest::multipart::Form;
use serde_json::{Value, json};

fn lose_every_answer() -> Faults {
    Faults {
        lost_answer_rate: 1.0,
        ..Faults::default()
    }
}

/// The task list through the admin route.
async fn admin_tasks(client: &reqwest::Client, base: &str) -> Vec<TaskInfo> {
    client
        .get(format!("{base}/__emulator/tasks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_accepted_create_can_lose_its_answer_and_still_run_and_charge() {
    let emulator = start(EmulatorConfig {
        faults: lose_every_answer(),
        ..quick_config()
    })
    .await;
    let client = reqwest::Client::new();
    let error = client
        .post(create_url(&emulator))
        .header(spec::API_KEY_HEADER, emulator.api_key())
        .multipart(file_form(product_png(300, 300), "a lost beach"))
        .send()
        .await
        .expect_err("no answer comes");
    assert!(!error.is_status() && !error.is_connect(), "{error:?}");

    // The task exists, runs and succeeds; the admin list names its prompt and the lost answer.
    let tasks = admin_tasks(&client, &emulator.base_url()).await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert!(tasks[0].answer_lost);
    assert_eq!(tasks[0].prompt.as_deref(), Some("a lost beach"));
    // Queries are never affected: whoever knows the id can follow the task.
    let data = final_data(&client, &emulator, &tasks[0].task_id).await;
    assert_eq!(data["state"], 1, "{data}");

    let counters = emulator.counters();
    assert_eq!(counters.create_requests, 1);
    assert_eq!(counters.tasks_created, 1);
    assert_eq!(counters.create_answers_lost, 1);
    assert_eq!(counters.dropped_connections, 0);
    assert_eq!(counters.tasks_succeeded, 1);
    assert!(counters.credits_charged > 0, "{counters:?}");
    // Only the queries were answered: a lost answer is not an answer.
    let answered_creates = counters.responses_by_status.values().sum::<u64>();
    assert_eq!(answered_creates, counters.query_requests, "{counters:?}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn refused_creates_and_queries_are_answered_as_usual() {
    let emulator = start(EmulatorConfig {
        faults: lose_every_answer(),
        ..quick_config()
    })
    .await;
    let client = reqwest::Client::new();
    let (status, body) = create(
        &client,
        &emulator,
        Form::new().text(spec::field::PROMPT, "no image"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = query(&client, &emulator, "missing").await;
    assert_eq!(status, 404);
    let counters = emulator.counters();
    assert_eq!(
        (counters.tasks_created, counters.create_answers_lost),
        (0, 0)
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn counters_tell_answered_creates_from_lost_ones() {
    let emulator = start(EmulatorConfig {
        faults: Faults {
            lost_answer_rate: 0.5,
            ..Faults::default()
        },
        ..quick_config()
    })
    .await;
    let client = reqwest::Client::new();
    let png = product_png(300, 300);
    let mut answered = Vec::new();
    let mut lost = 0u64;
    for i in 0..20 {
        let sent = client
            .post(create_url(&emulator))
            .header(spec::API_KEY_HEADER, emulator.api_key())
            .multipart(file_form(png.clone(), &format!("item {i}")))
            .send()
            .await;
        match sent {
            Ok(response) => {
                assert_eq!(response.status().as_u16(), 200);
                let body: Value = response.json().await.unwrap();
                answered.push(body["data"]["task_id"].as_str().unwrap().to_owned());
            }
            Err(_) => lost += 1,
        }
    }
    assert!(lost > 0 && !answered.is_empty(), "{lost} lost of 20");
    let counters: Counters = client
        .get(format!("{}/__emulator/counters", emulator.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters.create_requests, 20);
    assert_eq!(counters.tasks_created, 20);
    assert_eq!(counters.create_answers_lost, lost);
    assert_eq!(
        counters.responses_by_status.get(&200).copied(),
        Some(answered.len() as u64)
    );
    let tasks = admin_tasks(&client, &emulator.base_url()).await;
    assert_eq!(tasks.len(), 20);
    for task in &tasks {
        assert_eq!(
            task.answer_lost,
            !answered.contains(&task.task_id),
            "{task:?}"
        );
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_faults_route_and_the_command_line_take_the_rate() {
    let emulator = start(quick_config()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/__emulator/faults", emulator.base_url());
    let response = client
        .put(&url)
        .json(&json!({"lost_answer_rate": 0.25}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(emulator.faults().lost_answer_rate, 0.25);
    let shown: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(shown["lost_answer_rate"], 0.25);
    let response = client
        .put(&url)
        .json(&json!({"lost_answer_rate": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert!(response.text().await.unwrap().contains("lost_answer_rate"));
    assert_eq!(emulator.faults().lost_answer_rate, 0.25);
    emulator.shutdown().await;

    use clap::Parser;
    let args = backdrop_emulator::cli::EmulatorArgs::try_parse_from([
        "backdrop-emulator",
        "--lost-answer-rate",
        "0.3",
    ])
    .unwrap();
    assert_eq!(args.into_config().unwrap().faults.lost_answer_rate, 0.3);
}

/// A 429 storm: a client that sends faster than the key's QPS gets 429s with `Retry-After`;
/// requests sent during the second half of that wait are counted as ignoring it.
#[tokio::test]
async fn a_429_storm_carries_retry_after_and_counts_clients_that_ignore_it() {
    let emulator = start(EmulatorConfig {
        qps: 1,
        ..quick_config()
    })
    .await;
    let client = reqwest::Client::new();
    let send = || async {
        let response = client
            .get(query_url(&emulator, "missing"))
            .header(spec::API_KEY_HEADER, emulator.api_key())
            .send()
            .await
            .unwrap();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        (response.status().as_u16(), retry_after)
    };
    assert_eq!(send().await, (404, None));
    // A burst: each one refused, each with a Retry-After of whole seconds (at least 1).
    for _ in 0..3 {
        let (status, retry_after) = send().await;
        assert_eq!(status, 429);
        assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
    }
    // Right after a 429 a request may still have been in flight: not counted.
    assert_eq!(emulator.counters().retry_after_ignored, 0);
    // Half-way through the last Retry-After: ignoring it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, _) = send().await;
    assert_eq!(status, 429);
    assert_eq!(emulator.counters().retry_after_ignored, 1);
    // Waiting the whole Retry-After is honouring it.
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(send().await, (404, None));
    let counters = emulator.counters();
    assert_eq!(counters.retry_after_ignored, 1, "{counters:?}");
    assert_eq!(counters.responses_429, 4);
    emulator.shutdown().await;
}
