//! Every HTTP answer of the API endpoints: 401, 400 variants, 404, 413, 429, 500 and dropped
//! connections, and the counters they move.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use backdrop_core::spec;
use backdrop_emulator::{EmulatorConfig, Faults};
use common::*;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

fn png_part() -> Part {
    Part::bytes(product_png(300, 300)).file_name("p.png")
}

async fn refused(
    client: &reqwest::Client,
    emulator: &backdrop_emulator::Emulator,
    form: Form,
) -> (u16, String) {
    let (status, body) = create(client, emulator, form).await;
    assert_eq!(body["status"].as_u64(), Some(u64::from(status)), "{body}");
    assert!(body["data"].is_object(), "{body}");
    (status, body["message"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn missing_or_wrong_key_is_401() {
    let emulator = start(quick_config()).await;
    let client = reqwest::Client::new();
    let response = client
        .post(create_url(&emulator))
        .multipart(file_form(product_png(300, 300), "beach"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], 401);
    assert!(body["message"].as_str().unwrap().contains("X-API-KEY"));
    let response = client
        .get(query_url(&emulator, "abc"))
        .header(spec::API_KEY_HEADER, "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let counters = emulator.counters();
    assert_eq!(counters.responses_by_status.get(&401), Some(&2));
    assert_eq!(counters.create_requests, 1);
    assert_eq!(counters.query_requests, 1);
    assert_eq!(counters.tasks_created, 0);
    emulator.shutdown().await;
}

#[tokio::test]
async fn every_parameter_rule_is_400_with_a_named_problem() {
    let emulator = start(quick_config()).await;
    let client = reqwest::Client::new();
    let cases: Vec<(Form, &str)> = vec![
        (
            Form::new().text("prompt", "beach"),
            "neither image_url nor image_file",
        ),
        (
            Form::new()
                .part("image_file", png_part())
                .text("image_url", "https://example.com/a.png")
                .text("prompt", "beach"),
            "both image_url and image_file",
        ),
        (
            Form::new().part("image_file", png_part()),
            "neither prompt nor scene_type",
        ),
        (
            Form::new()
                .part("image_file", png_part())
                .text("prompt", "beach")
                .text("scene_type", "105"),
            "both prompt and scene_type",
        ),
        (
            Form::new()
                .part("image_file", png_part())
                .text("prompt", "beach")
                .text("batch_size", "3"),
            "batch size 3",
        ),
        (
            Form::new()
                .part("image_file", png_part())
                .text("prompt", "beach")
                .text("batch_size", "many"),
            "batch_size",
        ),
        (
            Form::new()
                .part("image_file", png_part())
                .text("scene_type", "abc"),
            "scene_type",
        ),
        (
            Form::new()
                .part("image_file", png_part())
                .text("scene_type", "0"),
            "scene type 0",
        ),
        (
            Form::new()
                .part("image_file", png_part())
                .text("prompt", "   "),
            "prompt is empty",
        ),
        (
            Form::new()
                .part("image_file", png_part())
                .text("prompt", "ü".repeat(spec::MAX_PROMPT_CHARS + 1)),
            "1025 characters",
        ),
        (
            Form::new()
                .text("image_url", "ftp://example.com/a.png")
                .text("prompt", "beach"),
            "http",
        ),
        (
            Form::new()
                .part("image_file", png_part())
                .text("prompt", "beach")
                .text("prompt", "forest"),
            "more than once",
        ),
    ];
    for (form, expected) in cases {
        let (status, message) = refused(&client, &emulator, form).await;
        assert_eq!(status, 400, "{expected}: {message}");
        assert!(
            message.contains(expected),
            "{expected:?} not in {message:?}"
        );
    }
    // Not multipart at all.
    let response = client
        .post(create_url(&emulator))
        .header(spec::API_KEY_HEADER, emulator.api_key())
        .json(&serde_json::json!({"prompt": "beach"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    // A prompt of exactly 1024 characters and unknown fields are fine.
    let form = Form::new()
        .part("image_file", png_part())
        .text("prompt", "ü".repeat(spec::MAX_PROMPT_CHARS))
        .text("negative_prompt", "people")
        .text("something_else", "ignored");
    create_task(&client, &emulator, form).await;
    assert_eq!(emulator.counters().responses_by_status.get(&400), Some(&13));
    emulator.shutdown().await;
}

#[tokio::test]
async fn unknown_task_and_route_are_404() {
    let emulator = start(quick_config()).await;
    let client = reqwest::Client::new();
    let (status, body) = query(&client, &emulator, "0123456789abcdef0123456789abcdef").await;
    assert_eq!(status, 404);
    assert_eq!(body["status"], 404);
    let response = client
        .get(format!("{}/api/nothing/here", emulator.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], 404);
    let response = client
        .put(create_url(&emulator))
        .header(spec::API_KEY_HEADER, emulator.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], 405);
    emulator.shutdown().await;
}

#[tokio::test]
async fn oversized_file_is_413() {
    let emulator = start(quick_config()).await;
    let client = reqwest::Client::new();
    let big = vec![0u8; spec::MAX_IMAGE_FILE_BYTES as usize + 1];
    let (status, body) = create(&client, &emulator, file_form(big, "beach")).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["status"], 413);
    assert!(
        body["message"].as_str().unwrap().contains("20 MiB"),
        "{body}"
    );
    // Exactly at the limit arrives and makes a task (which fails later: it is no PNG).
    let at_limit = vec![0u8; spec::MAX_IMAGE_FILE_BYTES as usize];
    let task_id = create_task(&client, &emulator, file_form(at_limit, "beach")).await;
    let data = final_data(&client, &emulator, &task_id).await;
    assert_eq!(data["state"], -7);
    emulator.shutdown().await;
}

#[tokio::test]
async fn whole_body_over_the_limit_is_413() {
    let emulator = start(EmulatorConfig {
        max_body_bytes: 64 * 1024,
        ..quick_config()
    })
    .await;
    let client = reqwest::Client::new();
    let (status, body) = create(&client, &emulator, file_form(vec![1u8; 200 * 1024], "x")).await;
    assert_eq!(status, 413, "{body}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn over_qps_is_429_with_retry_after() {
    let emulator = start(EmulatorConfig {
        qps: 2,
        ..quick_config()
    })
    .await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..3 {
        let response = client
            .get(query_url(&emulator, "missing"))
            .header(spec::API_KEY_HEADER, emulator.api_key())
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status().as_u16() == 429 {
            retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["status"], 429);
        }
    }
    assert_eq!(statuses, vec![404, 404, 429]);
    assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
    let counters = emulator.counters();
    assert_eq!(counters.responses_429, 1);
    assert_eq!(counters.max_requests_in_window, 3);
    // Refused requests do not use up the window: after it slides, requests pass again.
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let (status, _) = query(&client, &emulator, "missing").await;
    assert_eq!(status, 404);
    emulator.shutdown().await;
}

#[tokio::test]
async fn each_key_has_its_own_window() {
    let emulator = start(EmulatorConfig {
        qps: 1,
        api_keys: vec!["one".to_owned(), "two".to_owned()],
        ..quick_config()
    })
    .await;
    assert_eq!(emulator.api_key(), "one");
    let client = reqwest::Client::new();
    for key in ["one", "two"] {
        let response = client
            .get(query_url(&emulator, "missing"))
            .header(spec::API_KEY_HEADER, key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 404, "{key}");
    }
    assert_eq!(emulator.counters().max_requests_in_window, 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn injected_500_and_dropped_connections() {
    let emulator = start(EmulatorConfig {
        faults: Faults {
            error_500_rate: 1.0,
            ..Faults::default()
        },
        ..quick_config()
    })
    .await;
    let client = reqwest::Client::new();
    // Faults come before the key check.
    let response = client.get(query_url(&emulator, "x")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], 500);
    let (status, _) = create(&client, &emulator, file_form(product_png(300, 300), "b")).await;
    assert_eq!(status, 500);

    emulator.set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    });
    let error = client
        .get(query_url(&emulator, "x"))
        .header(spec::API_KEY_HEADER, emulator.api_key())
        .send()
        .await
        .expect_err("the connection is dropped");
    assert!(!error.is_status(), "{error:?}");
    // Admin routes are not affected.
    let counters: backdrop_emulator::Counters = client
        .get(format!("{}/__emulator/counters", emulator.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters.responses_500_injected, 2);
    assert_eq!(counters.dropped_connections, 1);
    assert_eq!(counters.responses_by_status.get(&500), Some(&2));

    emulator.set_faults(Faults {
        slow_rate: 1.0,
        slow_delay: Duration::from_millis(300),
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    let (status, _) = query(&client, &emulator, "x").await;
    assert_eq!(status, 404);
    assert!(started.elapsed() >= Duration::from_millis(300));

    emulator.set_faults(Faults::default());
    let (status, _) = query(&client, &emulator, "x").await;
    assert_eq!(status, 404);
    emulator.shutdown().await;
}

#[tokio::test]
async fn admin_routes_read_and_change_state() {
    let emulator = start(quick_config()).await;
    let client = reqwest::Client::new();
    let base = emulator.base_url();
    let faults = Faults {
        error_500_rate: 1.0,
        ..Faults::default()
    };
    let response = client
        .put(format!("{base}/__emulator/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(emulator.faults(), faults);
    let (status, _) = query(&client, &emulator, "x").await;
    assert_eq!(status, 500);
    let response = client
        .put(format!("{base}/__emulator/faults"))
        .json(&serde_json::json!({"drop_rate": 3.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let response = client
        .put(format!("{base}/__emulator/faults"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let before: backdrop_emulator::Counters = client
        .post(format!("{base}/__emulator/reset-counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before.query_requests, 1);
    assert_eq!(emulator.counters(), backdrop_emulator::Counters::default());
    emulator.shutdown().await;
}
