//! What the tests that run the `backdrop` binary against an in-process emulator share.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use backdrop_emulator::{Emulator, EmulatorConfig, ProcessingTime};

/// An emulator accepting only `key`, on the tests' clock ([`backdrop_tests::fast_config`]), whose
/// tasks process for `processing` (emulated) and which accepts twice the requests a client at
/// `--qps 10` sends, so that scheduling jitter never earns a 429.
pub async fn keyed_emulator(key: &str, processing: Duration, seed: u64) -> Emulator {
    Emulator::start(EmulatorConfig {
        api_keys: vec![key.to_owned()],
        qps: 20,
        processing: ProcessingTime::Fixed(processing),
        seed: Some(seed),
        ..backdrop_tests::fast_config()
    })
    .await
    .unwrap()
}

/// A fresh, empty folder in the temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("backdrop-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `count` small transparent PNGs named `in-00.png`, … in a new folder `name`.
pub fn png_folder(name: &str, count: usize) -> PathBuf {
    let dir = temp_dir(name);
    let png = backdrop_tests::transparent_png(256, 256);
    for n in 0..count {
        std::fs::write(dir.join(format!("in-{n:02}.png")), &png).unwrap();
    }
    dir
}

/// Every file below `dir`, in its subfolders too.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Text of some output bytes.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `backdrop generate` command line for `inputs` into `out` against `emulator`, with the
/// emulator's time scale; `key` is passed with `--api-key`.
pub fn generate_args(
    emulator: &Emulator,
    key: &str,
    inputs: &Path,
    out: &Path,
    time_scale: f64,
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = [
        "generate",
        inputs.to_str().unwrap(),
        "--prompt",
        "a marble countertop",
        "--batch",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--json",
        "--base-url",
        &emulator.base_url(),
        "--api-key",
        key,
        "--time-scale",
        &time_scale.to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// The binary, started with `args` and no `PICWISH_*` from the environment.
pub fn spawn(args: &[String]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_backdrop"))
        .args(args)
        .env_remove("PICWISH_API_KEY")
        .env_remove("PICWISH_BASE_URL")
        .env_remove("PICWISH_QPS")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the backdrop binary starts")
}

/// Runs the binary to its end (at most `limit`).
pub async fn run(args: &[String], limit: Duration) -> Output {
    let child = spawn(args);
    tokio::time::timeout(limit, child.wait_with_output())
        .await
        .expect("backdrop ends in time")
        .unwrap()
}

/// Sends `signal` (`KILL`, `INT`) to a process.
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// The journal file of `out` (JSON lines: a header, then one record per change).
pub const JOURNAL: &str = ".backdrop-journal.jsonl";

/// The journal of `out` as `{"entries": {key: entry}, "destinations": {key: stem}}`, folded
/// from its lines as the format says — a key's last record wins, a last line cut short is not
/// a record — read independently of the CLI's own reader (`null` when there is none yet).
pub fn journal(out: &Path) -> serde_json::Value {
    let Ok(text) = std::fs::read_to_string(out.join(JOURNAL)) else {
        return serde_json::Value::Null;
    };
    let mut lines = text.split_inclusive('\n').filter(|l| l.ends_with('\n'));
    let Some(header) = lines.next() else {
        return serde_json::Value::Null;
    };
    let header: serde_json::Value = serde_json::from_str(header).expect("a journal header");
    let mut entries = serde_json::Map::new();
    let mut destinations = serde_json::Map::new();
    for line in lines {
        let record: serde_json::Value = serde_json::from_str(line).expect("a journal record");
        if let Some(r) = record.get("entry") {
            entries.insert(r["key"].as_str().unwrap().to_owned(), r["entry"].clone());
        } else if let Some(r) = record.get("destination") {
            destinations.insert(r["key"].as_str().unwrap().to_owned(), r["stem"].clone());
        }
    }
    serde_json::json!({
        "version": header["version"],
        "entries": entries,
        "destinations": destinations,
    })
}

/// Appends a record of `entry` under `key` to the journal of `out`, as a run would.
pub fn append_entry(out: &Path, key: &str, entry: serde_json::Value) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(out.join(JOURNAL))
        .unwrap();
    let record = serde_json::json!({"entry": {"key": key, "entry": entry}});
    writeln!(file, "{record}").unwrap();
}

/// The journal's entries.
pub fn entries(journal: &serde_json::Value) -> Vec<serde_json::Value> {
    journal["entries"]
        .as_object()
        .map(|map| map.values().cloned().collect())
        .unwrap_or_default()
}

/// How many entries are in `stage`.
pub fn in_state(journal: &serde_json::Value, state: &str) -> usize {
    entries(journal)
        .iter()
        .filter(|e| e["stage"] == state)
        .count()
}

/// Polls the journal every 10 ms until `ready` holds (panics after `limit`).
pub async fn wait_for_journal(
    out: &Path,
    limit: Duration,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let journal = journal(out);
        if ready(&journal) {
            return journal;
        }
        assert!(
            start.elapsed() < limit,
            "the journal never got there: {journal:#}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The `--json` summary on stdout.
pub fn summary(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not the JSON summary ({e}):\n{}\nstderr:\n{}",
            text(&output.stdout),
            text(&output.stderr)
        )
    })
}

/// The summary's inputs.
pub fn inputs(summary: &serde_json::Value) -> Vec<serde_json::Value> {
    summary["inputs"].as_array().cloned().unwrap_or_default()
}

/// The outputs of a summary input, as paths.
pub fn outputs(input: &serde_json::Value) -> Vec<PathBuf> {
    input["outputs"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|o| o.as_str().map(PathBuf::from))
                .collect()
        })
        .unwrap_or_default()
}

/// True when the file is a JPEG.
pub fn is_jpeg(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.starts_with(&[0xFF, 0xD8, 0xFF]))
}

/// Asserts that the binary did not panic.
pub fn assert_no_panic(output: &Output) {
    let stderr = text(&output.stderr);
    assert!(
        !stderr.contains("panicked") && output.status.code() != Some(101),
        "backdrop panicked:\n{stderr}"
    );
}

/// Removes folders when dropped (at the end of a test, passed or failed).
pub struct Cleanup(pub Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
