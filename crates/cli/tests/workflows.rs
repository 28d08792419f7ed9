//! Everyday workflows that break promises when nobody tries them: two folders with the same file
//! names into one `--out`, the printed resume command followed to the letter, a run that lost
//! its key followed by one that has it, and the ways to give the key.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use backdrop_emulator::{EmulatorConfig, Faults, ProcessingTime};
use backdrop_tests::TIME_SCALE;
use support::*;

const KEY: &str = "sk-live-workflows-5d2e8b1c7a";

fn with(args: &[String], extra: &[&str]) -> Vec<String> {
    let mut args = args.to_vec();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// `folder/mug.png`, a transparent PNG of `side`×`side`.
fn shop(root: &Path, name: &str, side: u32) -> std::path::PathBuf {
    let folder = root.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("mug.png"),
        backdrop_tests::transparent_png(side, side),
    )
    .unwrap();
    folder
}

#[tokio::test(flavor = "multi_thread")]
async fn two_folders_with_the_same_names_into_one_out_keep_every_paid_result() {
    let emulator = keyed_emulator(KEY, Duration::from_secs(2), 21).await;
    let root = temp_dir("same-names");
    let _cleanup = Cleanup(vec![root.clone()]);
    let (shop1, shop2) = (shop(&root, "shop1", 256), shop(&root, "shop2", 300));
    let catalog = root.join("catalog");
    let run_into = |inputs: &Path, prompt: &str| {
        let mut args = generate_args(
            &emulator,
            KEY,
            inputs,
            &catalog,
            TIME_SCALE,
            &["--qps", "10"],
        );
        let at = args.iter().position(|a| a == "--prompt").unwrap();
        args[at + 1] = prompt.to_owned();
        args
    };
    let marble = "a marble countertop";
    let first = run(&run_into(&shop1, marble), Duration::from_secs(60)).await;
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let mug = catalog.join("mug-1.jpg");
    let paid = std::fs::read(&mug).unwrap();

    // Another folder's mug.png: its own result, under a name of its own; the first one kept.
    let second = run(&run_into(&shop2, marble), Duration::from_secs(60)).await;
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    assert_eq!(
        std::fs::read(&mug).unwrap(),
        paid,
        "the first run's result was overwritten"
    );
    let second_outputs = outputs(&inputs(&summary(&second))[0]);
    assert_eq!(second_outputs.len(), 1);
    let other = &second_outputs[0];
    assert_ne!(other, &mug);
    let name = other.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("mug~") && name.ends_with("-1.jpg"),
        "{name}"
    );
    assert!(text(&second.stderr).contains("holds another input's results"));

    // The same prompt through shop1 again into the catalog, with another prompt: new work,
    // another name; the first result kept.
    let third = run(
        &run_into(&shop1, "a linen tablecloth"),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(third.status.code(), Some(0), "{}", text(&third.stderr));
    assert_eq!(std::fs::read(&mug).unwrap(), paid);
    let third_output = &outputs(&inputs(&summary(&third))[0])[0];
    assert!(
        third_output != &mug && third_output != other,
        "{third_output:?}"
    );

    // Run again, each finds its own results under the same names: nothing created.
    let creates = emulator.counters().create_requests;
    for (inputs_folder, expected) in [(&shop1, &mug), (&shop2, other)] {
        let again = run(&run_into(inputs_folder, marble), Duration::from_secs(60)).await;
        let summary = summary(&again);
        assert_eq!(summary["already_done"], 1, "{summary:#}");
        assert_eq!(&outputs(&inputs(&summary)[0])[0], expected);
    }
    assert_eq!(emulator.counters().create_requests, creates);
    assert_eq!(emulator.counters().create_requests, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn following_the_printed_resume_command_pays_for_nothing_twice() {
    // Creates whose answers are lost (charged, id unknown), tasks that take a while.
    let emulator = backdrop_emulator::Emulator::start(EmulatorConfig {
        api_keys: vec![KEY.to_owned()],
        qps: 20,
        processing: ProcessingTime::Fixed(Duration::from_secs(10)),
        seed: Some(22),
        faults: Faults {
            lost_answer_rate: 0.5,
            ..Faults::default()
        },
        ..backdrop_tests::fast_config()
    })
    .await
    .unwrap();
    let inputs_folder = png_folder("resume-exact-in", 12);
    let out = temp_dir("resume-exact-out");
    let _cleanup = Cleanup(vec![inputs_folder.clone(), out.clone()]);
    let args = generate_args(
        &emulator,
        KEY,
        &inputs_folder,
        &out,
        TIME_SCALE,
        &["--qps", "10", "--jobs", "3", "--retry-unconfirmed"],
    );
    let child = spawn(&args);
    let pid = child.id().unwrap();
    wait_for_journal(&out, Duration::from_secs(60), |j| {
        in_state(j, "unconfirmed") >= 1 && in_state(j, "created") >= 1
    })
    .await;
    signal(pid, "INT");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let printed = stderr
        .lines()
        .skip_while(|line| !line.contains("run the same command again"))
        .nth(1)
        .expect("the command to run again")
        .trim()
        .to_owned();
    assert!(!printed.contains("--retry-unconfirmed"), "{printed}");
    assert!(!printed.contains(KEY), "{printed}");
    let journal_before = journal(&out);
    let unconfirmed = in_state(&journal_before, "unconfirmed");
    let skipped = summary(&output)["skipped"].as_u64().unwrap();
    assert!(skipped > 0, "{stderr}");
    let creates_before = emulator.counters().create_requests;

    // The printed command, exactly, by a shell, with the key in the environment.
    let rerun = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&printed)
        .env("PICWISH_API_KEY", KEY)
        .env_remove("PICWISH_BASE_URL")
        .stdin(Stdio::null())
        .output();
    let rerun = tokio::time::timeout(Duration::from_secs(120), rerun)
        .await
        .unwrap()
        .unwrap();
    assert_no_panic(&rerun);
    // Only the inputs never started were created; the unconfirmed ones were not sent again.
    assert_eq!(
        emulator.counters().create_requests - creates_before,
        skipped,
        "{}",
        text(&rerun.stderr)
    );
    let journal_after = journal(&out);
    for entry in entries(&journal_before) {
        if entry["stage"] == "unconfirmed" {
            let label = &entry["label"];
            let after = entries(&journal_after)
                .into_iter()
                .find(|e| &e["label"] == label)
                .unwrap();
            assert_eq!(after["stage"], "unconfirmed", "{after:#}");
            assert_eq!(after["creates_sent"], entry["creates_sent"], "{after:#}");
        }
    }
    assert!(in_state(&journal_after, "unconfirmed") >= unconfirmed);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_without_a_key_is_labelled_and_a_run_with_one_generates_for_real() {
    let inputs_folder = png_folder("stand-in-in", 2);
    let out = temp_dir("stand-in-out");
    let _cleanup = Cleanup(vec![inputs_folder.clone(), out.clone()]);
    // No key, no base URL: the built-in emulator.
    let no_key: Vec<String> = [
        "generate",
        inputs_folder.to_str().unwrap(),
        "--prompt",
        "a marble countertop",
        "--batch",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let stand_in = run(&no_key, Duration::from_secs(120)).await;
    assert_eq!(
        stand_in.status.code(),
        Some(0),
        "{}",
        text(&stand_in.stderr)
    );
    let summary_json = summary(&stand_in);
    assert_eq!(summary_json["stand_in"], true, "{summary_json:#}");
    assert!(text(&stand_in.stderr).contains("built-in"));
    for entry in entries(&journal(&out)) {
        assert_eq!(entry["stand_in"], true, "{entry:#}");
    }
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(page.contains("STAND-IN IMAGES"), "the page says so");
    let human: Vec<String> = no_key.iter().filter(|a| *a != "--json").cloned().collect();
    let table = run(&human, Duration::from_secs(60)).await;
    assert!(
        text(&table.stdout).contains("STAND-IN IMAGES"),
        "{}",
        text(&table.stdout)
    );

    // With a key: the stand-ins are not taken for done; both are generated for real.
    let emulator = keyed_emulator(KEY, Duration::from_secs(2), 23).await;
    let keyed = with(
        &no_key,
        &[
            "--base-url",
            &emulator.base_url(),
            "--api-key",
            KEY,
            "--time-scale",
            &TIME_SCALE.to_string(),
            "--qps",
            "10",
        ],
    );
    let real = run(&keyed, Duration::from_secs(60)).await;
    assert_eq!(real.status.code(), Some(0), "{}", text(&real.stderr));
    let summary_json = summary(&real);
    assert_eq!(summary_json["succeeded"], 2, "{summary_json:#}");
    assert_eq!(summary_json["stand_in"], false, "{summary_json:#}");
    assert_eq!(emulator.counters().tasks_created, 2);
    for entry in entries(&journal(&out)) {
        assert!(entry.get("stand_in").is_none(), "{entry:#}");
    }
    // And the real results are done for the next run, with or without a key.
    let again = run(&keyed, Duration::from_secs(60)).await;
    assert_eq!(summary(&again)["already_done"], 2);
    let without = run(&no_key, Duration::from_secs(60)).await;
    assert_eq!(
        summary(&without)["already_done"],
        2,
        "{}",
        text(&without.stderr)
    );
    assert_eq!(emulator.counters().tasks_created, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_from_a_file_or_standard_input_and_a_warning_for_one_typed() {
    let emulator = keyed_emulator(KEY, Duration::from_secs(1), 24).await;
    let inputs_folder = png_folder("key-in", 1);
    let out = temp_dir("key-out");
    let _cleanup = Cleanup(vec![inputs_folder.clone(), out.clone()]);
    let key_file = inputs_folder.join("key.txt");
    std::fs::write(&key_file, format!("{KEY}\n# a comment line\n")).unwrap();
    let base = generate_args(
        &emulator,
        KEY,
        &inputs_folder,
        &out,
        TIME_SCALE,
        &["--qps", "10"],
    );
    // Typed on the command line: it works, with a warning that names the better ways.
    let typed = run(&base, Duration::from_secs(60)).await;
    assert_eq!(typed.status.code(), Some(0), "{}", text(&typed.stderr));
    let stderr = text(&typed.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("--api-key-file"),
        "{stderr}"
    );
    assert!(!stderr.contains(KEY));
    // From a file: no warning.
    let without_key: Vec<String> = {
        let at = base.iter().position(|a| a == "--api-key").unwrap();
        [&base[..at], &base[at + 2..]].concat()
    };
    let from_file = run(
        &with(
            &without_key,
            &["--api-key-file", key_file.to_str().unwrap()],
        ),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        from_file.status.code(),
        Some(0),
        "{}",
        text(&from_file.stderr)
    );
    assert!(!text(&from_file.stderr).contains("warning"));
    // From standard input.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_backdrop"))
        .args(with(&without_key, &["--api-key-file", "-"]))
        .env_remove("PICWISH_API_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("{KEY}\n").as_bytes())
            .await
            .unwrap();
    }
    let from_stdin = child.wait_with_output().await.unwrap();
    assert_eq!(
        from_stdin.status.code(),
        Some(0),
        "{}",
        text(&from_stdin.stderr)
    );
    // A file that is not there: exit 2, named, before anything is sent.
    let requests = emulator.counters().create_requests + emulator.counters().query_requests;
    let missing = run(
        &with(&without_key, &["--api-key-file", "/nonexistent/key.txt"]),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing.stderr));
    assert!(text(&missing.stderr).contains("/nonexistent/key.txt"));
    assert_eq!(
        emulator.counters().create_requests + emulator.counters().query_requests,
        requests
    );
}
