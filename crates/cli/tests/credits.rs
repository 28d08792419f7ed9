//! The credit cap and the dry run through the binary, against an in-process emulator whose
//! counters tell what was sent and what was charged.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use backdrop_tests::TIME_SCALE;
use support::*;

const KEY: &str = "sk-live-credits-8c1f3b5e2d";

fn args_for(
    emulator: &backdrop_emulator::Emulator,
    inputs: &std::path::Path,
    out: &std::path::Path,
    extra: &[&str],
) -> Vec<String> {
    let mut args = generate_args(emulator, KEY, inputs, out, TIME_SCALE, &["--qps", "10"]);
    // Two images per input: 6 credits each.
    let at = args.iter().position(|a| a == "--batch").unwrap();
    args[at + 1] = "2".into();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cap_of_18_credits_sends_3_creates_and_a_higher_cap_finishes_the_rest() {
    let emulator = keyed_emulator(KEY, Duration::from_secs(2), 31).await;
    let inputs_folder = png_folder("cap-in", 10);
    let out = temp_dir("cap-out");
    let _cleanup = Cleanup(vec![inputs_folder.clone(), out.clone()]);

    let capped = run(
        &args_for(&emulator, &inputs_folder, &out, &["--max-credits", "18"]),
        Duration::from_secs(120),
    )
    .await;
    let stderr = text(&capped.stderr);
    assert_eq!(capped.status.code(), Some(5), "{stderr}");
    let summary = summary(&capped);
    assert_eq!(emulator.counters().create_requests, 3, "{summary:#}");
    assert_eq!(summary["succeeded"], 3, "{summary:#}");
    assert_eq!(summary["not_started"], 7, "{summary:#}");
    assert_eq!(summary["credits"], 18);
    assert_eq!(summary["credit_cap"]["limit"], 18);
    assert_eq!(summary["credit_cap"]["counted"], 18);
    for input in inputs(&summary) {
        if input["status"] == "not_started" {
            let message = input["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("credit cap") && message.contains("18"),
                "{message}"
            );
        }
    }

    // The same cap again: nothing more (the folder has spent it).
    let again = run(
        &args_for(&emulator, &inputs_folder, &out, &["--max-credits", "18"]),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(again.status.code(), Some(5), "{}", text(&again.stderr));
    assert_eq!(emulator.counters().create_requests, 3);

    // A higher cap: the seven left, and no second create of the first three.
    let raised = run(
        &args_for(&emulator, &inputs_folder, &out, &["--max-credits", "60"]),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(raised.status.code(), Some(0), "{}", text(&raised.stderr));
    let summary = support::summary(&raised);
    assert_eq!(summary["succeeded"], 7, "{summary:#}");
    assert_eq!(summary["already_done"], 3, "{summary:#}");
    let counters = emulator.counters();
    assert_eq!(counters.create_requests, 10);
    assert_eq!(counters.tasks_created, 10);
    assert_eq!(summary["credit_cap"]["counted"], 60);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_sends_nothing_and_its_estimate_is_what_the_run_spends() {
    let emulator = keyed_emulator(KEY, Duration::from_secs(2), 32).await;
    let inputs_folder = png_folder("dry-in", 4);
    // One input the service would refuse: refused locally, not counted.
    std::fs::write(
        inputs_folder.join("opaque.png"),
        backdrop_tests::opaque_png(300, 300),
    )
    .unwrap();
    let out = temp_dir("dry-out");
    let _cleanup = Cleanup(vec![inputs_folder.clone(), out.clone()]);
    let dry = run(
        &args_for(&emulator, &inputs_folder, &out, &["--dry-run"]),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    let counters = emulator.counters();
    assert_eq!(
        counters.create_requests + counters.query_requests,
        0,
        "a dry run sends nothing"
    );
    assert_eq!(plan["would_send"], 4, "{plan:#}");
    assert_eq!(plan["max_credits"], 24, "{plan:#}");
    assert_eq!(plan["refused_locally"], 1, "{plan:#}");
    assert!(
        !out.join(".backdrop-journal.jsonl").exists(),
        "nothing written"
    );

    let real = run(
        &args_for(&emulator, &inputs_folder, &out, &[]),
        Duration::from_secs(120),
    )
    .await;
    let summary = summary(&real);
    assert_eq!(summary["credits"], plan["max_credits"], "{summary:#}");

    // Afterwards: every input done, nothing more to spend.
    let after = run(
        &args_for(
            &emulator,
            &inputs_folder,
            &out,
            &["--dry-run", "--max-credits", "30"],
        ),
        Duration::from_secs(60),
    )
    .await;
    let plan: serde_json::Value = serde_json::from_slice(&after.stdout).unwrap();
    assert_eq!(plan["would_send"], 0, "{plan:#}");
    assert_eq!(plan["already_done"], 4, "{plan:#}");
    assert_eq!(plan["credit_cap"]["counted"], 24, "{plan:#}");
}
