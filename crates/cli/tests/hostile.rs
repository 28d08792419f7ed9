//! The CLI against the hostile server's table of cases (`backdrop_tests::hostile`), shared with
//! the C ABI's and the Lambda's tests: for each case, two inputs run through the binary, twice
//! (the second run exactly as the first), and then the checks that hold for every adapter — one
//! create per input in all, the key never away from the API's origin, no file outside the output
//! folder — and the fate the case expects, read from the summary and the journal.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use backdrop_tests::hostile::{
    CASES, Case, Expected, HostileApi, KEY, TRAVERSAL_ID, files_outside,
};
use support::*;

const INPUTS: usize = 2;

fn args(api: &HostileApi, root: &Path, out: &Path) -> Vec<String> {
    [
        "generate",
        root.join("in").to_str().unwrap(),
        "--prompt",
        "a marble countertop",
        "--batch",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--json",
        "--base-url",
        &api.base_url(),
        "--api-key-file",
        root.join("key.txt").to_str().unwrap(),
        "--request-timeout",
        "3",
        "--qps",
        "20",
        "--timeout",
        "30",
        "--no-report",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

async fn run_case(case: Case) {
    let api = HostileApi::start(case).await;
    let root = temp_dir(&format!("hostile-{}", case.name()));
    let _cleanup = Cleanup(vec![root.clone()]);
    std::fs::create_dir_all(root.join("in")).unwrap();
    let png = backdrop_tests::transparent_png(256, 256);
    for n in 0..INPUTS {
        std::fs::write(root.join("in").join(format!("in-{n}.png")), &png).unwrap();
    }
    std::fs::write(root.join("key.txt"), format!("{KEY}\n")).unwrap();
    // Deep enough that `../../` from the output folder is still inside `root`.
    let out = root.join("a").join("b").join("out");
    let args = args(&api, &root, &out);
    for run in 1..=2 {
        let output = support::run(&args, Duration::from_secs(120)).await;
        assert_no_panic(&output);
        let stderr = text(&output.stderr);
        let name = case.name();
        let summary = summary(&output);
        let expected_code = match case.expected() {
            Expected::Done => 0,
            Expected::Unconfirmed | Expected::Resumable => 1,
        };
        assert_eq!(
            output.status.code(),
            Some(expected_code),
            "{name} run {run}: {stderr}"
        );
        api.check_common(INPUTS as u64);
        let outside = files_outside(
            &root,
            &[Path::new("in"), Path::new("a/b/out"), Path::new("key.txt")],
        );
        assert!(
            outside.is_empty(),
            "{name}: files outside --out: {outside:?}"
        );
        let journal = journal(&out);
        for input in inputs(&summary) {
            match case.expected() {
                Expected::Unconfirmed => {
                    let error = &input["error"];
                    assert_eq!(error["maybe_accepted"], true, "{name}: {input:#}");
                    assert_eq!(error["recovery"], "unconfirmed", "{name}: {input:#}");
                    let message = error["message"].as_str().unwrap();
                    assert!(message.contains("--retry-unconfirmed"), "{name}: {message}");
                }
                Expected::Resumable => {
                    assert_eq!(input["error"]["recovery"], "resume", "{name}: {input:#}");
                }
                Expected::Done => {
                    let outputs = outputs(&input);
                    assert_eq!(outputs.len(), 2, "{name}: {input:#}");
                    for output in outputs {
                        assert!(output.starts_with(&out) && is_jpeg(&output), "{output:?}");
                    }
                }
            }
        }
        let stage = match case.expected() {
            Expected::Unconfirmed => "unconfirmed",
            Expected::Resumable => "created",
            Expected::Done => "done",
        };
        assert_eq!(in_state(&journal, stage), INPUTS, "{name}: {journal:#}");
        // The key is in no file the run wrote, nor in what it printed.
        for file in files_below(&out) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !text(&bytes).contains(KEY),
                "{name}: the key is in {file:?}"
            );
        }
        assert!(!stderr.contains(KEY) && !text(&output.stdout).contains(KEY));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_hostile_case_through_the_cli() {
    for case in CASES {
        run_case(case).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn status_out_names_files_after_the_typed_id_not_the_services() {
    let api = HostileApi::start(Case::TraversalTaskId).await;
    let root = temp_dir("hostile-status");
    let _cleanup = Cleanup(vec![root.clone()]);
    std::fs::write(root.join("key.txt"), KEY).unwrap();
    // A task to query: created through the API by hand, as another program would.
    let client = reqwest::Client::new();
    let form = reqwest::multipart::Form::new()
        .text("prompt", "a beach")
        .text("batch_size", "2")
        .text("image_url", "https://example.com/mug.png");
    let created: serde_json::Value = client
        .post(format!("{}/api/tasks/visual/background", api.base_url()))
        .header("X-API-KEY", KEY)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["data"]["task_id"], TRAVERSAL_ID);
    let out = root.join("a").join("b").join("out");
    let args: Vec<String> = [
        "status",
        TRAVERSAL_ID,
        "--out",
        out.to_str().unwrap(),
        "--base-url",
        &api.base_url(),
        "--api-key-file",
        root.join("key.txt").to_str().unwrap(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let output = run(&args, Duration::from_secs(60)).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let outside = files_outside(&root, &[Path::new("a/b/out"), Path::new("key.txt")]);
    assert!(outside.is_empty(), "files outside --out: {outside:?}");
    let written: Vec<String> = files_below(&out)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, ["_.._escaped-1.jpg", "_.._escaped-2.jpg"]);
}
