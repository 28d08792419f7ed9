//! Crash and resume: the `backdrop` binary killed with SIGKILL or stopped with Ctrl-C mid-batch,
//! then run again, against an in-process emulator whose tasks take a while.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use backdrop_emulator::Emulator;
use backdrop_tests::TIME_SCALE;
use support::*;

const SCALE: f64 = TIME_SCALE;
const INPUTS: usize = 12;
const KEY: &str = "sk-live-resume-7f3a9c2e41";

/// An emulator whose tasks take about 0.8 s (8 emulated seconds) and which accepts twice the
/// requests the client sends, so that scheduling jitter never earns a 429.
async fn emulator(processing: Duration) -> Emulator {
    keyed_emulator(KEY, processing, 11).await
}

fn args(
    emulator: &Emulator,
    name: &str,
    extra: &[&str],
) -> (std::path::PathBuf, Vec<String>, Cleanup) {
    let inputs = png_folder(&format!("{name}-in"), INPUTS);
    let out = temp_dir(&format!("{name}-out"));
    let mut extra_args = vec!["--qps", "10", "--timeout", "120"];
    extra_args.extend_from_slice(extra);
    let args = generate_args(emulator, KEY, &inputs, &out, SCALE, &extra_args);
    let cleanup = Cleanup(vec![inputs, out.clone()]);
    (out, args, cleanup)
}

/// Polls of each task the emulator knows.
fn polls(emulator: &Emulator) -> HashMap<String, u64> {
    emulator
        .tasks()
        .into_iter()
        .map(|t| (t.task_id, t.polls))
        .collect()
}

fn task_ids(journal: &serde_json::Value, state: &str) -> HashSet<String> {
    entries(journal)
        .iter()
        .filter(|e| e["stage"] == state)
        .filter_map(|e| e["task_id"].as_str().map(str::to_owned))
        .collect()
}

fn assert_every_input_has_outputs(summary: &serde_json::Value) {
    let inputs = inputs(summary);
    assert_eq!(inputs.len(), INPUTS);
    for input in &inputs {
        let outputs = outputs(input);
        assert_eq!(outputs.len(), 1, "{input:#}");
        assert!(outputs.iter().all(|o| is_jpeg(o)), "{input:#}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_batch_the_next_run_skips_resumes_and_creates_nothing_twice() {
    let emulator = emulator(Duration::from_secs(8)).await;
    let (out, args, _cleanup) = args(&emulator, "sigkill", &["--jobs", "4"]);
    let mut child = spawn(&args);
    let pid = child.id().unwrap();
    // Some inputs done, some tasks running, and (almost surely) no create on its way.
    wait_for_journal(&out, Duration::from_secs(60), |j| {
        in_state(j, "done") >= 2 && in_state(j, "created") >= 1 && in_state(j, "sending") == 0
    })
    .await;
    signal(pid, "KILL");
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), None, "killed by a signal");
    // Requests already on the wire land, or not, now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = journal(&out);
    let created_before = emulator.counters().tasks_created;
    let done = task_ids(&before, "done");
    let running = task_ids(&before, "created");
    let unanswered = in_state(&before, "sending");
    let polls_before = polls(&emulator);
    assert!(done.len() >= 2 && !running.is_empty(), "{before:#}");
    // Every task the emulator made is in the journal, but for creates cut by the kill.
    let lost = created_before as usize - done.len() - running.len();
    assert!(
        lost <= unanswered,
        "{lost} tasks not in the journal: {before:#}"
    );

    let output = run(&args, Duration::from_secs(60)).await;
    assert_no_panic(&output);
    let stderr = text(&output.stderr);
    let summary = summary(&output);
    if unanswered == 0 {
        assert_eq!(output.status.code(), Some(0), "{stderr}");
    } else {
        // A create was cut by the kill: reported, not sent again, until asked for.
        assert_eq!(summary["failed"], unanswered, "{stderr}");
        let output = run(
            &[args.clone(), vec!["--retry-unconfirmed".into()]].concat(),
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }
    assert_eq!(summary["already_done"], done.len(), "{summary:#}");
    for input in inputs(&summary) {
        let task_id = input["task_id"].as_str().unwrap_or_default().to_owned();
        if done.contains(&task_id) {
            assert_eq!(input["status"], "already_done", "{input:#}");
            assert_eq!(
                polls(&emulator)[&task_id],
                polls_before[&task_id],
                "a finished input is not queried again"
            );
        }
        if running.contains(&task_id) {
            assert_eq!(input["status"], "succeeded", "{input:#}");
            assert!(
                polls(&emulator)[&task_id] > polls_before[&task_id],
                "task {task_id} was resumed by id"
            );
            assert!(stderr.contains(&format!("as task {task_id}")), "{stderr}");
        }
    }
    assert!(stderr.contains("resuming"), "{stderr}");
    let summary = if unanswered == 0 {
        summary
    } else {
        support::summary(&run(&args, Duration::from_secs(60)).await)
    };
    assert_every_input_has_outputs(&summary);
    // Nothing created twice: one task per input, plus those whose create the kill cut after
    // the emulator accepted it (created again only on request).
    assert_eq!(
        emulator.counters().tasks_created as usize,
        INPUTS + lost,
        "{:#}",
        journal(&out)
    );
    assert_eq!(in_state(&journal(&out), "done"), INPUTS);
    assert_eq!(emulator.counters().responses_429, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_submitting_saves_the_journal_and_says_how_to_resume() {
    let emulator = emulator(Duration::from_secs(8)).await;
    let (out, args, _cleanup) = args(&emulator, "sigint", &["--jobs", "3"]);
    let child = spawn(&args);
    let pid = child.id().unwrap();
    wait_for_journal(&out, Duration::from_secs(60), |j| {
        in_state(j, "created") >= 2
    })
    .await;
    signal(pid, "INT");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("running tasks finish after Ctrl-C")
        .unwrap();
    assert_no_panic(&output);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("run the same command again"), "{stderr}");
    // The command to run again, without the key.
    assert!(
        stderr.contains("--api-key \"$PICWISH_API_KEY\"") && stderr.contains("generate"),
        "{stderr}"
    );
    assert!(!stderr.contains(KEY) && !text(&output.stdout).contains(KEY));
    let summary = summary(&output);
    assert_eq!(summary["stopped"], true);
    let skipped = summary["skipped"].as_u64().unwrap() as usize;
    assert!(skipped > 0, "{summary:#}");
    // Running tasks were let finish; no create was sent after Ctrl-C.
    let saved = journal(&out);
    let created = emulator.counters().tasks_created as usize;
    assert_eq!(in_state(&saved, "done"), created, "{saved:#}");
    assert_eq!(entries(&saved).len(), INPUTS - skipped, "{saved:#}");

    let output = run(&args, Duration::from_secs(60)).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let summary = support::summary(&output);
    assert_eq!(summary["already_done"], created);
    assert_every_input_has_outputs(&summary);
    assert_eq!(emulator.counters().tasks_created as usize, INPUTS);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_ctrl_c_stops_waiting_and_the_next_run_resumes_the_tasks() {
    stop_waiting_then_resume("sigint2", &["INT", "INT"], 130).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_waiting_and_the_next_run_resumes_the_tasks() {
    // 143 = 128 + SIGTERM, as a supervisor expects of a process it terminated.
    stop_waiting_then_resume("sigterm", &["TERM"], 143).await;
}

/// `signals` make the run stop waiting for its tasks: it saves them, and the next run resumes
/// them and creates nothing twice. The stopped run exits with `exit_code`.
async fn stop_waiting_then_resume(name: &str, signals: &[&str], exit_code: i32) {
    let emulator = emulator(Duration::from_secs(30)).await;
    let (out, args, _cleanup) = args(&emulator, name, &["--jobs", "4"]);
    let child = spawn(&args);
    let pid = child.id().unwrap();
    wait_for_journal(&out, Duration::from_secs(60), |j| {
        in_state(j, "created") >= 3
    })
    .await;
    for (i, name) in signals.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        signal(pid, name);
    }
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the signals stop the waiting")
        .unwrap();
    assert_no_panic(&output);
    assert_eq!(
        output.status.code(),
        Some(exit_code),
        "{}",
        text(&output.stderr)
    );
    let summary = summary(&output);
    assert_eq!(summary["terminated"], exit_code == 143, "{summary:#}");
    let interrupted = summary["interrupted"].as_u64().unwrap() as usize;
    assert!(interrupted >= 3, "{summary:#}");
    let saved = journal(&out);
    let running = task_ids(&saved, "created");
    assert_eq!(running.len(), interrupted, "{saved:#}");

    let output = run(&args, Duration::from_secs(90)).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let summary = support::summary(&output);
    assert_every_input_has_outputs(&summary);
    for input in inputs(&summary) {
        let task_id = input["task_id"].as_str().unwrap();
        if running.contains(task_id) {
            assert_eq!(input["status"], "succeeded");
        }
    }
    assert_eq!(emulator.counters().tasks_created as usize, INPUTS);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_create_is_reported_and_created_again_only_on_request() {
    let emulator = emulator(Duration::from_secs(2)).await;
    let inputs_dir = png_folder("unconfirmed-in", 2);
    let out = temp_dir("unconfirmed-out");
    let _cleanup = Cleanup(vec![inputs_dir.clone(), out.clone()]);
    let args = generate_args(
        &emulator,
        KEY,
        &inputs_dir,
        &out,
        SCALE,
        &["--qps", "10", "--timeout", "60"],
    );
    let output = run(&args, Duration::from_secs(60)).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    // As a run killed while its create for in-00 was on its way leaves it.
    let saved = support::journal(&out);
    let (key, entry) = saved["entries"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, e)| e["label"].as_str().unwrap().ends_with("in-00.png"))
        .map(|(k, e)| (k.clone(), e.clone()))
        .unwrap();
    for output in entry["outputs"].as_array().unwrap() {
        std::fs::remove_file(out.join(output.as_str().unwrap())).unwrap();
    }
    support::append_entry(
        &out,
        &key,
        serde_json::json!({
            "label": entry["label"],
            "service": entry["service"],
            "stage": "sending",
            "owner": {"id": "a run that was killed"},
            "updated_at_ms": entry["updated_at_ms"],
        }),
    );
    let created = emulator.counters().tasks_created;

    for _ in 0..2 {
        let output = run(&args, Duration::from_secs(60)).await;
        assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
        let summary = summary(&output);
        assert_eq!(summary["already_done"], 1);
        let failed = inputs(&summary)
            .into_iter()
            .find(|i| i["status"] == "failed")
            .unwrap();
        assert!(failed["input"].as_str().unwrap().ends_with("in-00.png"));
        assert_eq!(failed["error"]["maybe_accepted"], true);
        let message = failed["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("may have accepted") && message.contains("--retry-unconfirmed"),
            "{message}"
        );
        assert_eq!(
            emulator.counters().tasks_created,
            created,
            "not created again"
        );
        assert_eq!(journal(&out)["entries"][&key]["stage"], "unconfirmed");
    }

    let output = run(
        &[args.clone(), vec!["--retry-unconfirmed".into()]].concat(),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(emulator.counters().tasks_created, created + 1);
    let summary = summary(&output);
    assert_eq!(summary["succeeded"], 1);
    assert_eq!(summary["already_done"], 1);
    assert_eq!(journal(&out)["entries"][&key]["stage"], "done");
    assert!(is_jpeg(&out.join("in-00-1.jpg")));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_journal_never_holds_the_api_key() {
    let emulator = emulator(Duration::from_secs(2)).await;
    let inputs_dir = png_folder("secret-in", 3);
    let out = temp_dir("secret-out");
    let _cleanup = Cleanup(vec![inputs_dir.clone(), out.clone()]);
    let args = generate_args(
        &emulator,
        KEY,
        &inputs_dir,
        &out,
        SCALE,
        &["--qps", "10", "--timeout", "60"],
    );
    let output = run(&args, Duration::from_secs(60)).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let summary = summary(&output);
    assert_eq!(summary["succeeded"], 3, "{summary:#}");
    let journal_text = std::fs::read_to_string(out.join(support::JOURNAL)).unwrap();
    assert!(journal_text.contains("\"done\""), "{journal_text}");
    // Every file of the output folder: results, journal, contact sheet, its sidecar, thumbnails.
    let files = files_below(&out);
    assert!(
        files.iter().any(|f| f.ends_with("index.html"))
            && files
                .iter()
                .any(|f| f.ends_with(".backdrop-report/inputs.json")),
        "{files:?}"
    );
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "{} in the output folder holds the key",
            file.display()
        );
    }
    assert!(!text(&output.stdout).contains(KEY) && !text(&output.stderr).contains(KEY));
    // The same key from the environment: the journal is the same (the key is no part of it).
    let before = std::fs::read_to_string(out.join(support::JOURNAL)).unwrap();
    let mut env_args = args.clone();
    let at = env_args.iter().position(|a| a == "--api-key").unwrap();
    env_args.drain(at..at + 2);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_backdrop"))
        .args(&env_args)
        .env("PICWISH_API_KEY", KEY)
        .output()
        .await
        .unwrap();
    assert_eq!(support::summary(&output)["already_done"], 3);
    let after = std::fs::read_to_string(out.join(support::JOURNAL)).unwrap();
    assert!(!after.contains(KEY));
    assert_eq!(
        before.matches("\"done\"").count(),
        after.matches("\"done\"").count()
    );
}
