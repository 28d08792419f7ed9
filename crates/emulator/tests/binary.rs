//! The `backdrop-emulator` binary prints its address and serves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Kills the child process when the test ends, even by a panic.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_announces_its_address_and_serves() {
    let child = Command::new(env!("CARGO_BIN_EXE_backdrop-emulator"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--key",
            "k1",
            "--processing-ms",
            "100",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base_url = line
        .trim()
        .strip_prefix("backdrop-emulator listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(base_url.starts_with("http://127.0.0.1:"), "{base_url}");
    let response = reqwest::Client::new()
        .get(format!("{base_url}/api/tasks/visual/background/nope"))
        .header("X-API-KEY", "k1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
}
