//! The contact sheet (`index.html`): written by `generate` as results land, rebuilt by
//! `backdrop report DIR` from the journal, and opened in a real browser — headless Chromium
//! (Debian's `chromium`) driven by Playwright (`tests/browser/check_page.py`).
//!
//! The browser tests need `python3` with Playwright and `/usr/bin/chromium`: `tests/run`
//! installs both and sets `BACKDROP_BROWSER_TESTS=1`, which makes their absence a failure;
//! without it they are skipped with a message.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use backdrop_emulator::{Emulator, EmulatorConfig, ProcessingTime, ProgressMode};
use backdrop_tests::{TIME_SCALE, fast_config};
use support::*;

const SCALE: f64 = TIME_SCALE;
const KEY: &str = "sk-report-4b1d9e";

async fn emulator(processing: Duration) -> Emulator {
    keyed_emulator(KEY, processing, 5).await
}

/// `generate` of `inputs` into `out` with `prompt`, batch 2.
fn generate(
    emulator: &Emulator,
    inputs: &[&Path],
    out: &Path,
    prompt: &str,
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = vec!["generate".into()];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap().to_owned()));
    for arg in [
        "--prompt",
        prompt,
        "--out",
        out.to_str().unwrap(),
        "--json",
        "--base-url",
        &emulator.base_url(),
        "--api-key",
        KEY,
        "--time-scale",
        &SCALE.to_string(),
        "--qps",
        "10",
        "--timeout",
        "120",
    ] {
        args.push(arg.to_owned());
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// `backdrop report DIR`.
fn rebuild(dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_backdrop"))
        .args(["report", dir.to_str().unwrap()])
        .output()
        .unwrap()
}

/// The `<tr class="row …">…</tr>` blocks of a page, in order.
fn rows_of(html: &str) -> Vec<String> {
    html.split("<tr class=\"row ")
        .skip(1)
        .map(|part| part.split("</tr>").next().unwrap().to_owned())
        .collect()
}

/// The page's `data-status` of each row.
fn statuses(html: &str) -> Vec<String> {
    rows_of(html)
        .iter()
        .map(|row| row.split('"').next().unwrap().to_owned())
        .collect()
}

fn page(out: &Path) -> String {
    std::fs::read_to_string(out.join("index.html")).unwrap()
}

/// How to run the browser checks: `python3` with Playwright and Chromium, or why not.
fn browser() -> Result<String, String> {
    let python = std::env::var("BACKDROP_PYTHON").unwrap_or_else(|_| "python3".into());
    let chromium =
        std::env::var("BACKDROP_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).is_file() {
        return Err(format!(
            "no Chromium at {chromium} (apt-get install chromium)"
        ));
    }
    let playwright = Command::new(&python)
        .args(["-c", "import playwright.sync_api"])
        .output();
    match playwright {
        Ok(output) if output.status.success() => Ok(python),
        _ => Err(format!(
            "{python} cannot import Playwright (bash infra/venv.sh installs it; put its bin folder on PATH)"
        )),
    }
}

/// Runs the browser checks of `page` with `expect`; `None` when skipped.
fn check_in_browser(page: &Path, expect: serde_json::Value) -> Option<serde_json::Value> {
    let python = match browser() {
        Ok(python) => python,
        Err(why) => {
            assert!(
                std::env::var("BACKDROP_BROWSER_TESTS").as_deref() != Ok("1"),
                "BACKDROP_BROWSER_TESTS=1 but {why}"
            );
            eprintln!("browser check skipped: {why}");
            return None;
        }
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/check_page.py");
    let output = Command::new(python)
        .args([script, page.to_str().unwrap(), &expect.to_string()])
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "the page failed in the browser: {stdout}\n{}",
        text(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    eprintln!("browser: {result}");
    Some(result)
}

/// Run A: four products, stopped by Ctrl-C once two are under way (the rest are skipped). Run B,
/// into the same folder: a prompt the service fails with -17, and an opaque PNG refused locally.
/// The page of the folder, in Chromium: rows, totals, images loaded, failures with their reason
/// and what to do, the failure filter, the keyboard, names shown as text, no request off
/// `file://`.
#[tokio::test(flavor = "multi_thread")]
async fn the_page_of_a_batch_works_in_a_real_browser() {
    let emulator = emulator(Duration::from_secs(8)).await;
    let inputs = temp_dir("page-in");
    let more = temp_dir("page-more");
    let out = temp_dir("page-out");
    let _cleanup = Cleanup(vec![inputs.clone(), more.clone(), out.clone()]);
    let png = backdrop_tests::transparent_png(300, 260);
    let tricky = "tricky <b>&\"#1 50%.png";
    for name in ["a-bottle.png", "b-mug.png", tricky, "d-vase.png"] {
        std::fs::write(inputs.join(name), &png).unwrap();
    }
    std::fs::write(more.join("fails.png"), &png).unwrap();
    std::fs::write(
        more.join("opaque.png"),
        backdrop_tests::opaque_png(300, 300),
    )
    .unwrap();

    let args = generate(
        &emulator,
        &[&inputs],
        &out,
        "a marble countertop",
        &["--jobs", "1"],
    );
    let child = spawn(&args);
    let pid = child.id().unwrap();
    wait_for_journal(&out, Duration::from_secs(60), |j| {
        in_state(j, "done") >= 1 && in_state(j, "created") >= 1
    })
    .await;
    signal(pid, "INT");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stderr));
    let first = summary(&output);
    let succeeded = first["succeeded"].as_u64().unwrap() as usize;
    let skipped = first["skipped"].as_u64().unwrap() as usize;
    assert!(
        succeeded >= 2 && skipped >= 1 && succeeded + skipped == 4,
        "{first:#}"
    );
    assert_eq!(
        first["report"].as_str().map(PathBuf::from),
        Some(out.join("index.html"))
    );
    // The page of the stopped run already shows the skipped inputs.
    let html = page(&out);
    assert_eq!(
        statuses(&html).iter().filter(|s| *s == "skipped").count(),
        skipped
    );

    let fails = more.join("fails.png");
    let opaque = more.join("opaque.png");
    let args = generate(
        &emulator,
        &[&fails, &opaque],
        &out,
        "nonsense emulator:fail=-17",
        &[],
    );
    let output = run(&args, Duration::from_secs(60)).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let html = page(&out);
    assert_eq!(rows_of(&html).len(), 6, "4 + 2 inputs");
    assert!(!html.contains(KEY));

    let tricky_label = inputs.join(tricky).display().to_string();
    check_in_browser(
        &out.join("index.html"),
        serde_json::json!({
            "rows": 6,
            "succeeded": succeeded,
            "failed": 2,
            "skipped": skipped,
            "images": succeeded * 2,
            "sources": 6,
            "labels": [tricky_label, fails.display().to_string()],
            "failure_text": ["-17", "Change the prompt", "no transparency", "nothing was sent"],
            "keyboard": true,
        }),
    );
}

/// Ctrl-C mid-batch, then the same command again: the page of the finished folder, the page
/// `backdrop report` rebuilds from its journal (thumbnails and page deleted first), and the page
/// of the same batch run without a stop have the same rows.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_and_resumed_run_rebuilds_the_same_rows() {
    let emulator = emulator(Duration::from_secs(8)).await;
    let inputs = png_folder("rebuild-in", 8);
    let out = temp_dir("rebuild-out");
    let straight = temp_dir("rebuild-straight");
    let _cleanup = Cleanup(vec![inputs.clone(), out.clone(), straight.clone()]);
    let args = generate(
        &emulator,
        &[&inputs],
        &out,
        "a linen tablecloth",
        &["--jobs", "3", "-v"],
    );
    let child = spawn(&args);
    let pid = child.id().unwrap();
    wait_for_journal(&out, Duration::from_secs(60), |j| {
        in_state(j, "created") >= 2
    })
    .await;
    signal(pid, "INT");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stderr));
    let stopped = summary(&output);
    let html = page(&out);
    let stopped_statuses = statuses(&html);
    assert_eq!(
        stopped_statuses
            .iter()
            .filter(|s| *s == "succeeded")
            .count(),
        stopped["succeeded"].as_u64().unwrap() as usize
    );
    assert_eq!(
        stopped_statuses.iter().filter(|s| *s == "skipped").count(),
        stopped["skipped"].as_u64().unwrap() as usize
    );
    // The page was written as results landed, not once per result.
    let writes = text(&output.stderr)
        .matches("contact sheet written")
        .count();
    assert!(writes >= 2, "{}", text(&output.stderr));

    let output = run(&args, Duration::from_secs(60)).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let resumed = page(&out);
    assert_eq!(statuses(&resumed), vec!["succeeded"; 8]);

    // Rebuilt from the journal alone, thumbnails remade.
    std::fs::remove_file(out.join("index.html")).unwrap();
    std::fs::remove_dir_all(out.join(".backdrop-report/thumbs")).unwrap();
    std::fs::remove_dir_all(out.join(".backdrop-report/sources")).unwrap();
    let output = rebuild(&out);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("8 rows"),
        "{}",
        text(&output.stdout)
    );
    let rebuilt = page(&out);
    assert_eq!(
        rows_of(&rebuilt),
        rows_of(&resumed),
        "the same rows, byte for byte"
    );
    assert!(files_below(&out.join(".backdrop-report/thumbs")).len() == 16);

    // The same batch without a stop: the same inputs, states, images and credits.
    let args = generate(
        &emulator,
        &[&inputs],
        &straight,
        "a linen tablecloth",
        &["--jobs", "3"],
    );
    let output = run(&args, Duration::from_secs(60)).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let plain = |html: &str| -> Vec<String> {
        rows_of(html)
            .iter()
            .map(|row| {
                // Without what differs between two runs: task ids, times, the folder's name.
                let label = row
                    .split("<div class=\"label\">")
                    .nth(1)
                    .unwrap()
                    .split('<')
                    .next()
                    .unwrap();
                let credits = row
                    .split("<dd class=\"credits\">")
                    .nth(1)
                    .unwrap()
                    .split('<')
                    .next()
                    .unwrap();
                format!(
                    "{} {label} images={} credits={credits}",
                    row.split('"').next().unwrap(),
                    row.matches("alt=\"image ").count()
                )
            })
            .collect()
    };
    assert_eq!(plain(&page(&straight)), plain(&rebuilt));
}

/// 200 inputs: the page stays under 1 MB, is rewritten at most every 2 s while results land,
/// and opens in under a second in headless Chromium (figures printed for README).
#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_inputs_make_a_small_page_that_opens_fast() {
    // Progress withheld: with 400 images rendering on a busy machine, tasks sit at 99 %
    // ("publishing") long past the end their progress predicted; the page, not the forecast,
    // is what this test is about.
    let emulator = Emulator::start(EmulatorConfig {
        api_keys: vec![KEY.to_owned()],
        qps: 20,
        processing: ProcessingTime::Fixed(Duration::from_secs(2)),
        progress: ProgressMode::Withheld,
        seed: Some(9),
        ..fast_config()
    })
    .await
    .unwrap();
    let inputs = png_folder("two-hundred-in", 200);
    let out = temp_dir("two-hundred-out");
    let _cleanup = Cleanup(vec![inputs.clone(), out.clone()]);
    let prompt = "a sunlit oak kitchen counter with a soft linen cloth, a ceramic bowl of lemons \
                  and a blurred window behind, warm morning light, shallow depth of field";
    let args = generate(&emulator, &[&inputs], &out, prompt, &["--jobs", "16", "-v"]);
    let started = Instant::now();
    let output = run(&args, Duration::from_secs(180)).await;
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    let written: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("contact sheet written"))
        .collect();
    let writes = written.len();
    eprintln!(
        "200 inputs in {seconds:.1} s: the page was written {writes} times:\n{}",
        written.join("\n")
    );
    assert!(
        writes as f64 <= seconds / 2.0 + 3.0,
        "{writes} writes in {seconds:.1} s: at most one every 2 s, plus the first and the last"
    );
    let html = page(&out);
    assert_eq!(rows_of(&html).len(), 200);
    eprintln!("page: {} bytes for 200 inputs", html.len());
    assert!(html.len() < 1_000_000, "{} bytes", html.len());

    // Rebuilding it (thumbnails exist): the figure for README.
    let output = rebuild(&out);
    eprintln!("backdrop report: {}", text(&output.stdout).trim());

    if let Some(result) = check_in_browser(
        &out.join("index.html"),
        serde_json::json!({
            "rows": 200, "succeeded": 200, "failed": 0, "skipped": 0,
            "images": 400, "sources": 200, "open_limit_ms": 1000, "open_runs": 3,
        }),
    ) {
        eprintln!(
            "200-input page opened in {} ms (load event), {} ms (DOM ready)",
            result["open_load_ms"], result["open_dcl_ms"]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_report_writes_no_page() {
    let emulator = emulator(Duration::from_secs(2)).await;
    let inputs = png_folder("no-report-in", 1);
    let out = temp_dir("no-report-out");
    let _cleanup = Cleanup(vec![inputs.clone(), out.clone()]);
    let args = generate(&emulator, &[&inputs], &out, "a beach", &["--no-report"]);
    let output = run(&args, Duration::from_secs(60)).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(summary(&output).get("report").is_none());
    assert!(!out.join("index.html").exists());
    assert!(!out.join(".backdrop-report").exists());
    // The folder's page can still be built from its journal.
    let output = rebuild(&out);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(statuses(&page(&out)), vec!["succeeded"]);
}

#[test]
fn report_of_a_folder_without_a_journal_is_a_usage_error() {
    let dir = temp_dir("report-empty");
    let _cleanup = Cleanup(vec![dir.clone()]);
    let output = rebuild(&dir);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("no journal"),
        "{}",
        text(&output.stderr)
    );
    assert!(!dir.join("index.html").exists());
}
