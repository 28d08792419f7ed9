//! The API key never appears in logs, at any level: a whole flow — create, polls, a 401, a
//! failed task, downloads — runs with every crate traced at TRACE into a buffer, and every byte
//! of it is searched for the key.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use backdrop_core::{Client, ClientConfig, GenerateRequest, WaitControl, WaitOptions};
use backdrop_emulator::EmulatorConfig;
use backdrop_tests::{client_for, fast_config, fast_emulator, fixture};

const KEY: &str = "sk-live-VERY-SECRET-7f3a9c";

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_is_in_no_log_line_at_trace_level() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let emulator = fast_emulator(EmulatorConfig {
        api_keys: vec![KEY.into()],
        ..fast_config()
    })
    .await;
    let client = client_for(&emulator, 2);
    let request = |prompt: &str| {
        GenerateRequest::builder()
            .image_path(fixture("bottle.png"))
            .prompt(prompt)
            .build()
            .unwrap()
    };
    let generation = client
        .generate(&request("a sunny beach"), WaitOptions::default(), |_| {
            WaitControl::Continue
        })
        .await
        .unwrap();
    assert_eq!(generation.images.len(), 2);
    let failed = client
        .generate(
            &request("x emulator:fail=-10"),
            WaitOptions::default(),
            |_| WaitControl::Continue,
        )
        .await
        .unwrap_err();
    let wrong = Client::new(
        ClientConfig::builder(format!("{KEY}-wrong"))
            .base_url(emulator.base_url())
            .build()
            .unwrap(),
    )
    .unwrap();
    let refused = wrong.create_task(&request("a beach")).await.unwrap_err();

    let logs = String::from_utf8_lossy(&buffer.0.lock().unwrap()).into_owned();
    assert!(
        logs.len() > 1000,
        "TRACE produced too little output to be a test: {} bytes",
        logs.len()
    );
    assert!(
        !logs.contains("VERY-SECRET"),
        "the key leaked into the logs"
    );
    for shown in [
        format!("{failed} {failed:?}"),
        format!("{refused} {refused:?}"),
        format!("{client:?} {wrong:?}"),
    ] {
        assert!(!shown.contains("VERY-SECRET"), "{shown}");
    }
}
