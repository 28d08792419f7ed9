//! Task life cycles: the state sequence, source image failures, the fail trigger and injected task
//! faults, result images and their links, base64 results, and the counters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use backdrop_core::spec;
use backdrop_emulator::{EmulatorConfig, Faults, ProcessingTime, ProgressMode, ResultFormat};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use reqwest::multipart::Form;
use serde_json::Value;

/// Serves `body` at `/image.png` on a free port; returns the URL.
async fn serve_image(body: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route("/image.png", get(move || async move { body.clone() }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/image.png")
}

/// Serves `size` bytes at `/image.png` as a chunked stream without `Content-Length`.
async fn serve_chunked(size: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route(
        "/image.png",
        get(move || async move {
            let chunk = bytes::Bytes::from(vec![0u8; 1024 * 1024]);
            let count = size.div_ceil(chunk.len());
            let chunks = (0..count).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
            axum::body::Body::from_stream(futures_util::stream::iter(chunks))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/image.png")
}

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

fn url_form(url: &str, prompt: &str) -> Form {
    Form::new()
        .text(spec::field::IMAGE_URL, url.to_owned())
        .text(spec::field::PROMPT, prompt.to_owned())
}

#[tokio::test]
async fn states_go_0_2_4_1_with_rising_progress() {
    let emulator = start(EmulatorConfig {
        queue_time: Duration::from_millis(250),
        prepare_time: Duration::from_millis(250),
        processing: ProcessingTime::Fixed(Duration::from_millis(300)),
        ..quick_config()
    })
    .await;
    let client = reqwest::Client::new();
    let task_id = create_task(
        &client,
        &emulator,
        file_form(product_png(400, 300), "a product on a beach"),
    )
    .await;
    assert_eq!(task_id.len(), 32);
    assert!(task_id.chars().all(|c| c.is_ascii_hexdigit()));
    let seen = poll_until_final(&client, &emulator, &task_id).await;
    let mut states: Vec<i64> = seen.iter().map(|d| d["state"].as_i64().unwrap()).collect();
    states.dedup();
    states.retain(|s| *s != 5);
    assert_eq!(states, vec![0, 2, 4, 1], "{seen:?}");
    let progress: Vec<i64> = seen
        .iter()
        .map(|d| d["progress"].as_i64().unwrap())
        .collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert!(progress.iter().any(|p| (1..99).contains(p)), "{progress:?}");
    for data in &seen {
        let state = data["state"].as_i64().unwrap();
        assert_eq!(data["task_id"], task_id.as_str());
        assert!(data["created_at"].as_str().unwrap().parse::<u64>().is_ok());
        assert_eq!(
            data["processed_at"].is_string(),
            state >= 4 || state == 1,
            "{data}"
        );
        assert_eq!(data["completed_at"].is_string(), state == 1, "{data}");
        assert!(data["state_detail"].is_string());
        assert_eq!(data["return_type"], 1);
    }
    let done = seen.last().unwrap();
    assert_eq!(done["progress"], 100);
    let elapsed = done["time_elapsed"].as_u64().unwrap();
    assert!((800..5000).contains(&elapsed), "{elapsed}");
    assert!(
        done["image_1"]
            .as_str()
            .unwrap()
            .starts_with(&emulator.base_url())
    );
    assert!(done["image_2"].is_string());

    // The admin list knows when it became final and when a query first saw it.
    let tasks: Vec<backdrop_emulator::TaskInfo> = client
        .get(format!("{}/__emulator/tasks", emulator.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1);
    let info = &tasks[0];
    assert_eq!(info.task_id, task_id);
    assert_eq!(info.state, 1);
    assert_eq!(info.polls, seen.len() as u64);
    let became_final = info.became_final_at.unwrap();
    let seen_final = info.final_seen_at.unwrap();
    assert!(seen_final >= became_final && seen_final - became_final < 1.0);
    assert!(became_final - info.created_at >= 0.8);
    // The same list in process (JSON floats may differ in the last bit).
    let direct = emulator.tasks();
    assert_eq!(direct.len(), 1);
    assert_eq!(direct[0].task_id, info.task_id);
    assert_eq!(direct[0].polls, info.polls);
    assert!((direct[0].became_final_at.unwrap() - became_final).abs() < 1e-3);
    emulator.shutdown().await;
}

#[tokio::test]
async fn source_image_failures() {
    let emulator = start(quick_config()).await;
    let client = reqwest::Client::new();
    let not_png = create_task(
        &client,
        &emulator,
        file_form(b"GIF89a....".to_vec(), "beach"),
    )
    .await;
    let opaque = create_task(&client, &emulator, file_form(opaque_png(300, 300), "beach")).await;
    let small = create_task(
        &client,
        &emulator,
        file_form(product_png(200, 300), "beach"),
    )
    .await;
    let unreachable_url = format!("http://{}/image.png", closed_port().await);
    let unreachable = create_task(&client, &emulator, url_form(&unreachable_url, "beach")).await;
    let missing_url = format!("{}/no/such/image.png", emulator.base_url());
    let missing = create_task(&client, &emulator, url_form(&missing_url, "beach")).await;
    let huge_url = serve_image(vec![0u8; spec::MAX_IMAGE_URL_BYTES as usize + 1]).await;
    let huge = create_task(&client, &emulator, url_form(&huge_url, "beach")).await;
    let streamed_url = serve_chunked(spec::MAX_IMAGE_URL_BYTES as usize + 1).await;
    let streamed = create_task(&client, &emulator, url_form(&streamed_url, "beach")).await;
    let good_url = serve_image(product_png(300, 400)).await;
    let good = create_task(&client, &emulator, url_form(&good_url, "beach")).await;
    // An alpha channel but no transparent pixel; no visible pixel; a damaged chunk.
    let background_kept = create_task(
        &client,
        &emulator,
        file_form(rgba_png(300, 300, |_, _| 255), "beach"),
    )
    .await;
    let nothing_visible = create_task(
        &client,
        &emulator,
        file_form(rgba_png(300, 300, |_, _| 0), "beach"),
    )
    .await;
    let mut damaged = product_png(300, 300);
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x10;
    let damaged = create_task(&client, &emulator, file_form(damaged, "beach")).await;
    for (task_id, expected) in [
        (&not_png, -7),
        (&opaque, -14),
        (&small, -14),
        (&background_kept, -14),
        (&nothing_visible, -14),
        (&damaged, -7),
        (&unreachable, -3),
        (&missing, -3),
        (&huge, -5),
        (&streamed, -5),
        (&good, 1),
    ] {
        let data = final_data(&client, &emulator, task_id).await;
        assert_eq!(data["state"], expected, "{data}");
        if expected < 0 {
            assert!(data.get("image_1").is_none());
            assert!(data["completed_at"].is_string());
            assert!(data["time_elapsed"].is_u64());
        }
    }
    for (task_id, detail) in [
        (&background_kept, "no transparent pixel"),
        (&nothing_visible, "no visible pixel"),
    ] {
        let data = final_data(&client, &emulator, task_id).await;
        let shown = data["state_detail"].as_str().unwrap_or_default();
        assert!(shown.contains(detail), "{data}");
    }
    let counters = emulator.counters();
    assert_eq!(counters.tasks_failed, 10);
    assert_eq!(counters.tasks_succeeded, 1);
    assert_eq!(counters.credits_charged, 6);
    emulator.shutdown().await;
}

#[tokio::test]
async fn fail_trigger_and_task_faults() {
    let emulator = start(quick_config()).await;
    let client = reqwest::Client::new();
    let task_id = create_task(
        &client,
        &emulator,
        file_form(product_png(300, 300), "a beach emulator:fail=-17"),
    )
    .await;
    let response = {
        let seen = poll_until_final(&client, &emulator, &task_id).await;
        seen.last().unwrap().clone()
    };
    assert_eq!(response["state"], -17);
    assert!(
        response["state_detail"]
            .as_str()
            .unwrap()
            .contains("prompt")
    );
    let (_, body) = query(&client, &emulator, &task_id).await;
    assert!(
        body["message"].as_str().unwrap().contains("prompt"),
        "{body}"
    );

    emulator.set_faults(Faults {
        fail_state: Some(-15),
        fail_rate: 1.0,
        ..Faults::default()
    });
    let task_id = create_task(&client, &emulator, file_form(product_png(300, 300), "x")).await;
    assert_eq!(final_data(&client, &emulator, &task_id).await["state"], -15);

    emulator.set_faults(Faults {
        never_finish_rate: 1.0,
        ..Faults::default()
    });
    let task_id = create_task(&client, &emulator, file_form(product_png(300, 300), "x")).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, body) = query(&client, &emulator, &task_id).await;
    assert_eq!(body["data"]["state"], 4, "{body}");
    assert_eq!(body["data"]["progress"], 99, "{body}");
    let counters = emulator.counters();
    assert_eq!(counters.tasks_failed, 2);
    assert_eq!(counters.credits_charged, 0);
    emulator.shutdown().await;
}

#[tokio::test]
async fn results_are_jpegs_keeping_the_aspect_ratio() {
    let emulator = start(quick_config()).await;
    let client = reqwest::Client::new();
    for ((width, height), expected) in [((600, 300), (600, 300)), ((1600, 1200), (1024, 768))] {
        let task_id = create_task(
            &client,
            &emulator,
            file_form(product_png(width, height), "marble kitchen"),
        )
        .await;
        let data = final_data(&client, &emulator, &task_id).await;
        assert_eq!(data["state"], 1, "{data}");
        let mut images = Vec::new();
        for field in ["image_1", "image_2"] {
            let url = data[field].as_str().unwrap();
            let response = client.get(url).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200, "{url}");
            assert_eq!(response.headers()["content-type"], "image/jpeg");
            let bytes = response.bytes().await.unwrap();
            assert_eq!(&bytes[..3], &[0xFF, 0xD8, 0xFF]);
            let image = image::load_from_memory(&bytes).unwrap();
            assert_eq!((image.width(), image.height()), expected);
            assert!(image.width().max(image.height()) <= spec::MAX_OUTPUT_SIDE);
            images.push(bytes);
        }
        assert_ne!(images[0], images[1], "image_2 is a variation");
    }
    assert_eq!(emulator.counters().result_downloads, 4);
    emulator.shutdown().await;
}

#[tokio::test]
async fn result_links_are_signed() {
    let emulator = start(quick_config()).await;
    let client = reqwest::Client::new();
    let form = file_form(product_png(300, 300), "forest").text("batch_size", "1");
    let task_id = create_task(&client, &emulator, form).await;
    let data = final_data(&client, &emulator, &task_id).await;
    assert!(data.get("image_2").is_none(), "{data}");
    let url = data["image_1"].as_str().unwrap().to_owned();
    let forged = format!("{}0", url.trim_end_matches(|c: char| c.is_ascii_hexdigit()));
    let response = client.get(&forged).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("SignatureDoesNotMatch")
    );
    let unsigned = url.split('?').next().unwrap();
    assert_eq!(
        client.get(unsigned).send().await.unwrap().status().as_u16(),
        403
    );
    let other = url.replace("/1.jpg?", "/2.jpg?");
    assert_eq!(
        client.get(&other).send().await.unwrap().status().as_u16(),
        403
    );
    assert_eq!(
        client.get(&url).send().await.unwrap().status().as_u16(),
        200
    );
    emulator.set_faults(Faults {
        expire_results: true,
        ..Faults::default()
    });
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert!(response.text().await.unwrap().contains("expired"));
    let counters = emulator.counters();
    assert_eq!(counters.credits_charged, 3);
    assert_eq!(counters.result_downloads, 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn result_links_expire_after_the_scaled_ttl() {
    // 1 h / 3600 = 1 s.
    let emulator = start(EmulatorConfig {
        time_scale: 3600.0,
        ..quick_config()
    })
    .await;
    let client = reqwest::Client::new();
    let task_id = create_task(&client, &emulator, file_form(product_png(300, 300), "snow")).await;
    let data = final_data(&client, &emulator, &task_id).await;
    let url = data["image_1"].as_str().unwrap().to_owned();
    assert_eq!(
        client.get(&url).send().await.unwrap().status().as_u16(),
        200
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert!(response.text().await.unwrap().contains("expired"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn base64_and_data_uri_results() {
    for (format, prefix) in [
        (ResultFormat::Base64, ""),
        (ResultFormat::DataUri, "data:image/jpeg;base64,"),
    ] {
        let emulator = start(EmulatorConfig {
            result_format: format,
            ..quick_config()
        })
        .await;
        let client = reqwest::Client::new();
        let task_id = create_task(
            &client,
            &emulator,
            Form::new()
                .part(
                    "image_file",
                    reqwest::multipart::Part::bytes(product_png(320, 256)).file_name("a.png"),
                )
                .text("scene_type", "105"),
        )
        .await;
        let data = final_data(&client, &emulator, &task_id).await;
        assert_eq!(data["return_type"], 2);
        for field in ["image_1", "image_2"] {
            let value = data[field].as_str().unwrap();
            let encoded = value.strip_prefix(prefix).unwrap();
            let bytes = STANDARD.decode(encoded).unwrap();
            assert_eq!(&bytes[..3], &[0xFF, 0xD8, 0xFF]);
            let image = image::load_from_memory(&bytes).unwrap();
            assert_eq!((image.width(), image.height()), (320, 256));
        }
        emulator.shutdown().await;
    }
}

#[tokio::test]
async fn withheld_progress_stays_zero_until_done() {
    let emulator = start(EmulatorConfig {
        progress: ProgressMode::Withheld,
        processing: ProcessingTime::Fixed(Duration::from_millis(300)),
        ..quick_config()
    })
    .await;
    let client = reqwest::Client::new();
    let task_id = create_task(&client, &emulator, file_form(product_png(300, 300), "blue")).await;
    let seen = poll_until_final(&client, &emulator, &task_id).await;
    let (last, pending) = seen.split_last().unwrap();
    assert!(pending.iter().all(|d| d["progress"] == 0), "{seen:?}");
    assert_eq!(last["progress"], 100);
    emulator.shutdown().await;
}

#[tokio::test]
async fn counters_add_up() {
    let emulator = start(quick_config()).await;
    let client = reqwest::Client::new();
    let first = create_task(&client, &emulator, file_form(product_png(300, 300), "red")).await;
    let form = file_form(product_png(300, 300), "green").text("batch_size", "1");
    let second = create_task(&client, &emulator, form).await;
    let polls = poll_until_final(&client, &emulator, &first).await.len()
        + poll_until_final(&client, &emulator, &second).await.len();
    let counters = emulator.counters();
    assert_eq!(counters.create_requests, 2);
    assert_eq!(counters.query_requests, polls as u64);
    assert_eq!(counters.tasks_created, 2);
    assert_eq!(counters.tasks_succeeded, 2);
    assert_eq!(counters.tasks_failed, 0);
    assert_eq!(counters.credits_charged, 9);
    assert_eq!(
        counters.responses_by_status.get(&200),
        Some(&(2 + polls as u64))
    );
    let over_http: Value = client
        .get(format!("{}/__emulator/counters", emulator.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http["credits_charged"], 9);
    assert_eq!(over_http["responses_by_status"]["200"], 2 + polls as u64);
    emulator.shutdown().await;
}
