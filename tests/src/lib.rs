//! Shared support for backdrop's cross-crate tests: test images, and the client and emulator
//! set up to talk to each other.
//!
//! The tests themselves are the files beside `src/` (see `Cargo.toml`); the emulator stands in
//! for the PicWish service only — every other component in them is real.

// Test support: a failed setup step is a failed test, so panicking on it is the point.
#![allow(clippy::expect_used)]

pub mod hostile;
pub mod matrix;
mod moto;

pub use moto::{Moto, moto_program};

use std::path::PathBuf;
use std::time::Duration;

use backdrop_core::{Client, ClientConfig, RateLimit, RetryPolicy};
use backdrop_emulator::{Emulator, EmulatorConfig, ProcessingTime};

/// The speed-up used by most tests: emulated seconds pass ten times faster.
pub const TIME_SCALE: f64 = 10.0;

/// The jitter margin of test clients (see [`RateLimit::margin`]).
pub const TEST_RATE_MARGIN: Duration = Duration::from_millis(250);

/// The path of a committed fixture in `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// An RGBA PNG of `width`×`height` with a transparent border and an opaque disc in the middle.
pub fn transparent_png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbaImage::from_fn(width, height, |x, y| {
        let (cx, cy) = (width as f32 / 2.0, height as f32 / 2.0);
        let r = (width.min(height) as f32) * 0.35;
        let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
        if d < r {
            image::Rgba([200, 60, 40, 255])
        } else {
            image::Rgba([0, 0, 0, 0])
        }
    });
    encode(image::DynamicImage::ImageRgba8(image))
}

/// An RGB PNG (no transparency) of `width`×`height`.
pub fn opaque_png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(width, height, image::Rgb([250, 250, 250]));
    encode(image::DynamicImage::ImageRgb8(image))
}

fn encode(image: image::DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encoding a PNG in memory cannot fail");
    out.into_inner()
}

/// The emulator settings most tests start from: [`TIME_SCALE`], short queue and preparing
/// phases, 2 s of (emulated) processing, a fixed seed.
pub fn fast_config() -> EmulatorConfig {
    EmulatorConfig {
        time_scale: TIME_SCALE,
        queue_time: Duration::from_millis(300),
        prepare_time: Duration::from_millis(200),
        processing: ProcessingTime::Fixed(Duration::from_secs(2)),
        seed: Some(7),
        ..EmulatorConfig::default()
    }
}

/// Starts an emulator on 127.0.0.1 with `config` (usually built over [`fast_config`]).
pub async fn fast_emulator(config: EmulatorConfig) -> Emulator {
    Emulator::start(config)
        .await
        .expect("the emulator starts on 127.0.0.1:0")
}

/// A client of `emulator` whose rate limit is the emulator's QPS on the same scaled clock, with
/// quick retries.
pub fn client_for(emulator: &Emulator, qps: u32) -> Client {
    client_with(emulator, qps, |builder| builder)
}

/// Like [`client_for`], with extra settings.
pub fn client_with(
    emulator: &Emulator,
    qps: u32,
    configure: impl FnOnce(backdrop_core::ClientConfigBuilder) -> backdrop_core::ClientConfigBuilder,
) -> Client {
    let builder = ClientConfig::builder(emulator.api_key())
        .time_scale(TIME_SCALE)
        .base_url(emulator.base_url())
        .rate_limit(RateLimit {
            // Tests run emulators, moto and the client on 2 busy cores: a request's arrival can
            // lag its start by 100 ms and more, so the margin is wider than the default 50 ms.
            margin: TEST_RATE_MARGIN,
            ..RateLimit::per_second(qps)
        })
        // Quick retries: 20 ms to 200 ms once scaled.
        .retry(RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        });
    Client::new(
        configure(builder)
            .build()
            .expect("valid test configuration"),
    )
    .expect("the client builds")
}
