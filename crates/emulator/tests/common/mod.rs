//! Helpers shared by the integration tests: test images, requests, polling.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;
use std::time::{Duration, Instant};

use backdrop_core::spec;
use backdrop_emulator::{Emulator, EmulatorConfig, ProcessingTime};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use reqwest::multipart::{Form, Part};
use serde_json::Value;

/// A quick configuration: short phases, fixed processing, no rate limit, fixed seed.
pub fn quick_config() -> EmulatorConfig {
    EmulatorConfig {
        qps: 0,
        queue_time: Duration::from_millis(60),
        prepare_time: Duration::from_millis(60),
        processing: ProcessingTime::Fixed(Duration::from_millis(150)),
        seed: Some(42),
        ..EmulatorConfig::default()
    }
}

/// Starts an emulator.
pub async fn start(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("the emulator starts")
}

/// A PNG of a product: an opaque red ellipse on a transparent background.
pub fn product_png(width: u32, height: u32) -> Vec<u8> {
    let (cx, cy) = (width as f32 / 2.0, height as f32 / 2.0);
    let (rx, ry) = (width as f32 * 0.3, height as f32 * 0.35);
    let image = RgbaImage::from_fn(width, height, |x, y| {
        let dx = (x as f32 - cx) / rx;
        let dy = (y as f32 - cy) / ry;
        if dx * dx + dy * dy <= 1.0 {
            Rgba([210, 40, 40, 255])
        } else {
            Rgba([0, 0, 0, 0])
        }
    });
    encode_png(DynamicImage::ImageRgba8(image))
}

/// An RGBA PNG whose pixel (x, y) has the alpha `alpha(x, y)`.
pub fn rgba_png(width: u32, height: u32, alpha: impl Fn(u32, u32) -> u8) -> Vec<u8> {
    let image = RgbaImage::from_fn(width, height, |x, y| {
        Rgba([x as u8, y as u8, 90, alpha(x, y)])
    });
    encode_png(DynamicImage::ImageRgba8(image))
}

/// A PNG without any transparency.
pub fn opaque_png(width: u32, height: u32) -> Vec<u8> {
    encode_png(DynamicImage::ImageRgb8(RgbImage::from_pixel(
        width,
        height,
        Rgb([30, 120, 200]),
    )))
}

pub fn encode_png(image: DynamicImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A form with an uploaded file and a prompt.
pub fn file_form(png: Vec<u8>, prompt: &str) -> Form {
    Form::new()
        .part(
            spec::field::IMAGE_FILE,
            Part::bytes(png)
                .file_name("product.png")
                .mime_str("image/png")
                .unwrap(),
        )
        .text(spec::field::PROMPT, prompt.to_owned())
}

/// The create URL of an emulator.
pub fn create_url(emulator: &Emulator) -> String {
    format!("{}{}", emulator.base_url(), spec::CREATE_TASK_PATH)
}

/// The query URL of a task.
pub fn query_url(emulator: &Emulator, task_id: &str) -> String {
    format!(
        "{}{}/{}",
        emulator.base_url(),
        spec::QUERY_TASK_PATH_PREFIX,
        task_id
    )
}

/// Sends a create request; returns the HTTP status and the JSON body.
pub async fn create(client: &reqwest::Client, emulator: &Emulator, form: Form) -> (u16, Value) {
    let response = client
        .post(create_url(emulator))
        .header(spec::API_KEY_HEADER, emulator.api_key())
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Creates a task and returns its id (panics unless the answer is 200).
pub async fn create_task(client: &reqwest::Client, emulator: &Emulator, form: Form) -> String {
    let (status, body) = create(client, emulator, form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], 200);
    body["data"]["task_id"].as_str().unwrap().to_owned()
}

/// Queries a task; returns the HTTP status and the JSON body.
pub async fn query(client: &reqwest::Client, emulator: &Emulator, task_id: &str) -> (u16, Value) {
    let response = client
        .get(query_url(emulator, task_id))
        .header(spec::API_KEY_HEADER, emulator.api_key())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Polls a task every 20 ms until it is final; returns every `data` seen, the last one final.
pub async fn poll_until_final(
    client: &reqwest::Client,
    emulator: &Emulator,
    task_id: &str,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let (status, body) = query(client, emulator, task_id).await;
        assert_eq!(status, 200, "{body}");
        let data = body["data"].clone();
        let state = data["state"].as_i64().unwrap();
        seen.push(data);
        if state == 1 || state < 0 {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "task {task_id} not final: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The final `data` of a task.
pub async fn final_data(client: &reqwest::Client, emulator: &Emulator, task_id: &str) -> Value {
    poll_until_final(client, emulator, task_id)
        .await
        .pop()
        .unwrap()
}
