//! The CLI's fault matrix: 50 inputs per run through the `backdrop` binary against an
//! in-process emulator injecting one kind of fault, checked from the emulator's counters, the
//! output folder, the journal and the `--json` summary.
//!
//! Every run must account for every input (outputs, or a failure record), create at most one task
//! per input except where the first create surely failed, never panic, and never earn a 429 except
//! from a server whose QPS is lower than configured — where it honours `Retry-After`.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use backdrop_core::TaskState;
use backdrop_emulator::{Counters, Emulator, EmulatorConfig, Faults, ProcessingTime};
use backdrop_tests::matrix::{self, Fate, INPUTS, Outcome, Scenario};
use serde_json::Value;
use support::*;

const SCALE: f64 = 20.0;
const KEY: &str = "emulator-key";

/// The emulator of `scenario`: at [`SCALE`], tasks of about 0.15 s. Its QPS (20 per scaled
/// second) is twice what the client is told (10), so a client keeping to its limit never earns a
/// 429 even with scheduling jitter.
async fn emulator(scenario: Scenario) -> Emulator {
    emulator_with(EmulatorConfig {
        faults: scenario.faults(),
        seed: Some(scenario.seed()),
        ..config()
    })
    .await
}

fn config() -> EmulatorConfig {
    EmulatorConfig {
        time_scale: SCALE,
        qps: 20,
        queue_time: Duration::from_millis(500),
        prepare_time: Duration::from_millis(500),
        processing: ProcessingTime::Fixed(Duration::from_secs(2)),
        ..EmulatorConfig::default()
    }
}

async fn emulator_with(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.unwrap()
}

/// One run of the binary and what it left.
struct Run {
    output: Output,
    summary: Value,
    journal: Value,
    counters: Counters,
    /// The emulator's tasks by id.
    tasks: HashMap<String, backdrop_emulator::TaskInfo>,
    /// The ids of the tasks created during the run.
    new_tasks: HashSet<String>,
}

impl Run {
    fn inputs(&self) -> Vec<Value> {
        inputs(&self.summary)
    }

    fn failed(&self) -> Vec<Value> {
        self.inputs()
            .into_iter()
            .filter(|i| i["status"] == "failed")
            .collect()
    }

    fn succeeded(&self) -> usize {
        self.summary["succeeded"].as_u64().unwrap() as usize
    }

    /// Task ids the run knows, one per input at most.
    fn known_tasks(&self) -> HashSet<String> {
        let ids: Vec<String> = self
            .inputs()
            .iter()
            .filter_map(|i| i["task_id"].as_str().map(str::to_owned))
            .collect();
        let unique: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(unique.len(), ids.len(), "two inputs share a task id");
        unique
    }

    fn unconfirmed(&self) -> usize {
        in_state(&self.journal, "unconfirmed")
    }

    fn stderr(&self) -> String {
        text(&self.output.stderr)
    }

    /// Each input's fate and its task, for the matrix's shared checks.
    fn outcomes(&self) -> Vec<Outcome> {
        self.inputs()
            .iter()
            .map(|input| {
                let task_id = input["task_id"].as_str().map(str::to_owned);
                let fate = match input["status"].as_str().unwrap() {
                    "succeeded" | "already_done" => Fate::Outputs {
                        task_id: task_id.clone().unwrap(),
                    },
                    _ => Fate::Failed {
                        task_id: task_id.clone(),
                        may_be_charged: matches!(
                            input["error"]["recovery"].as_str(),
                            Some("unconfirmed" | "results_lost")
                        ),
                    },
                };
                Outcome {
                    label: input["input"].as_str().unwrap().to_owned(),
                    fate,
                    tasks: task_id
                        .and_then(|id| self.tasks.get(&id).cloned())
                        .into_iter()
                        .collect(),
                }
            })
            .collect()
    }
}

/// The folders of one scenario: 50 inputs, an empty output folder.
fn folders(name: &str) -> (PathBuf, PathBuf) {
    (
        png_folder(&format!("matrix-{name}-in"), INPUTS),
        temp_dir(&format!("matrix-{name}-out")),
    )
}

fn matrix_args(emulator: &Emulator, inputs: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut all = vec!["--qps", "10", "--jobs", "16"];
    if !extra.contains(&"--request-timeout") {
        // Well past any answer the faults delay (they are time-scaled), well inside the run's
        // limit: a request nobody answers fails as a timeout instead of stalling the run.
        all.extend_from_slice(&["--request-timeout", "20"]);
    }
    all.extend_from_slice(extra);
    generate_args(emulator, KEY, inputs, out, SCALE, &all)
}

async fn run_cli(emulator: &Emulator, args: &[String], out: &Path) -> Run {
    let before: HashSet<String> = emulator.tasks().into_iter().map(|t| t.task_id).collect();
    let output = run(args, Duration::from_secs(80)).await;
    let summary = summary(&output);
    let tasks: HashMap<String, backdrop_emulator::TaskInfo> = emulator
        .tasks()
        .into_iter()
        .map(|t| (t.task_id.clone(), t))
        .collect();
    let run = Run {
        summary,
        journal: journal(out),
        counters: emulator.counters(),
        new_tasks: tasks
            .keys()
            .filter(|id| !before.contains(*id))
            .cloned()
            .collect(),
        tasks,
        output,
    };
    check_invariants(&run);
    run
}

/// What holds after every run, whatever the fault.
fn check_invariants(run: &Run) {
    assert_no_panic(&run.output);
    let code = run.output.status.code();
    assert!(
        matches!(code, Some(0 | 1)),
        "exit {code:?}: {}",
        run.stderr()
    );
    let inputs = run.inputs();
    assert_eq!(inputs.len(), INPUTS, "every input is in the summary");
    assert_eq!(
        run.summary["succeeded"].as_u64().unwrap()
            + run.summary["already_done"].as_u64().unwrap()
            + run.summary["failed"].as_u64().unwrap(),
        INPUTS as u64,
        "{:#}",
        run.summary
    );
    assert_eq!(code == Some(0), run.summary["failed"] == 0);
    let journal_entries = entries(&run.journal);
    for input in &inputs {
        let name = input["input"].as_str().unwrap();
        let entry = journal_entries
            .iter()
            .find(|e| e["label"] == name)
            .unwrap_or_else(|| panic!("{name} has no journal entry"));
        match input["status"].as_str().unwrap() {
            "succeeded" | "already_done" => {
                let outputs = outputs(input);
                assert_eq!(outputs.len(), 1, "{input:#}");
                assert!(outputs.iter().all(|o| is_jpeg(o)), "{input:#}");
                assert_eq!(entry["stage"], "done", "{entry:#}");
                assert_eq!(entry["task_id"], input["task_id"]);
            }
            "failed" => {
                let error = &input["error"];
                assert!(
                    error["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "{input:#}"
                );
                assert!(outputs(input).is_empty());
                let state = entry["stage"].as_str().unwrap();
                assert!(
                    matches!(state, "failed" | "unconfirmed" | "created" | "expired"),
                    "{entry:#}"
                );
                assert_eq!(state == "unconfirmed", error["maybe_accepted"] == true);
                assert!(entry["failure"].is_object(), "{entry:#}");
            }
            other => panic!("unexpected status {other}: {input:#}"),
        }
    }
    assert_eq!(in_state(&run.journal, "sending"), 0);
    // Tasks the run does not know of come only from creates whose answer it never saw.
    let known = run.known_tasks();
    assert!(known.iter().all(|id| run.tasks.contains_key(id)));
    let orphans = run.new_tasks.difference(&known).count();
    assert!(
        orphans <= run.unconfirmed(),
        "{orphans} tasks nobody knows of, {} unconfirmed",
        run.unconfirmed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_500s_on_creates_are_unconfirmed_and_never_resent() {
    let emulator = emulator(Scenario::Http500).await;
    let (inputs, out) = folders("500");
    let _cleanup = Cleanup(vec![inputs.clone(), out.clone()]);
    let args = matrix_args(&emulator, &inputs, &out, &[]);
    let run = run_cli(&emulator, &args, &out).await;
    matrix::check(Scenario::Http500, &run.outcomes(), &emulator);
    // The failures are the creates answered 500, left unconfirmed in the journal.
    for failed in run.failed() {
        assert_eq!(failed["error"]["maybe_accepted"], true, "{failed:#}");
    }
    assert_eq!(run.unconfirmed(), INPUTS - run.succeeded());
    // Run again as printed: nothing is created again.
    emulator.set_faults(Faults::default());
    let creates = run.counters.create_requests;
    let again = run_cli(&emulator, &args, &out).await;
    assert_eq!(
        again.counters.create_requests,
        creates,
        "{}",
        again.stderr()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_connections_leave_creates_unconfirmed_until_asked() {
    let emulator = emulator(Scenario::DroppedConnections).await;
    let (inputs, out) = folders("drop");
    let _cleanup = Cleanup(vec![inputs.clone(), out.clone()]);
    let args = matrix_args(&emulator, &inputs, &out, &[]);
    let run = run_cli(&emulator, &args, &out).await;
    matrix::check(Scenario::DroppedConnections, &run.outcomes(), &emulator);
    // The only failures are unanswered creates, left unconfirmed in the journal.
    for failed in run.failed() {
        assert_eq!(failed["error"]["maybe_accepted"], true, "{failed:#}");
    }
    assert_eq!(run.unconfirmed(), INPUTS - run.succeeded());

    // Told to, the next run creates them again (the emulator no longer drops anything).
    emulator.set_faults(Faults::default());
    let unconfirmed = run.unconfirmed();
    let args = [args, vec!["--retry-unconfirmed".into()]].concat();
    let again = run_cli(&emulator, &args, &out).await;
    assert_eq!(again.output.status.code(), Some(0), "{}", again.stderr());
    assert_eq!(
        again.summary["succeeded"].as_u64().unwrap() as usize,
        unconfirmed
    );
    assert_eq!(
        again.counters.create_requests,
        (INPUTS + unconfirmed) as u64
    );
    assert_eq!(again.counters.tasks_created, INPUTS as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_slower_than_the_client_timeout() {
    let scenario = Scenario::SlowAnswers { delay_ms: 1500 };
    let emulator = emulator(scenario).await;
    let (inputs, out) = folders("slow");
    let _cleanup = Cleanup(vec![inputs.clone(), out.clone()]);
    let args = matrix_args(&emulator, &inputs, &out, &["--request-timeout", "0.5"]);
    let run = run_cli(&emulator, &args, &out).await;
    matrix::check(scenario, &run.outcomes(), &emulator);
    for failed in run.failed() {
        assert_eq!(failed["error"]["maybe_accepted"], true, "{failed:#}");
        assert!(
            failed["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--retry-unconfirmed")
        );
    }
    assert_eq!(run.unconfirmed(), run.failed().len(), "{}", run.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn create_answers_lost_after_the_server_accepted() {
    let scenario = Scenario::LostCreateAnswers { rate: 0.1 };
    let emulator = emulator(scenario).await;
    let (inputs, out) = folders("lost");
    let _cleanup = Cleanup(vec![inputs.clone(), out.clone()]);
    let run = run_cli(&emulator, &matrix_args(&emulator, &inputs, &out, &[]), &out).await;
    matrix::check(scenario, &run.outcomes(), &emulator);
    let lost = run.counters.create_answers_lost as usize;
    assert_eq!(run.unconfirmed(), lost);
    // Without --retry-unconfirmed, the next run sends nothing for them.
    let again = run_cli(&emulator, &matrix_args(&emulator, &inputs, &out, &[]), &out).await;
    assert_eq!(again.counters.create_requests, INPUTS as u64);
    assert_eq!(
        again.summary["already_done"].as_u64().unwrap() as usize,
        INPUTS - lost
    );
    assert_eq!(again.unconfirmed(), lost);
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_failing_with_each_documented_negative_state() {
    let failing: Vec<i32> = TaskState::DOCUMENTED
        .iter()
        .map(|s| s.code())
        .filter(|c| *c < 0)
        .collect();
    let emulator = std::sync::Arc::new(
        emulator_with(EmulatorConfig {
            faults: Faults {
                fail_rate: 1.0,
                fail_state: Some(failing[0]),
                ..Faults::default()
            },
            seed: Some(5),
            ..config()
        })
        .await,
    );
    // Each new task fails with the next state of `rotation` (creates close together may share
    // one: the runs go on until every state was seen).
    let rotation = std::sync::Arc::new(std::sync::Mutex::new(failing.clone()));
    let rotate = {
        let (emulator, rotation) = (emulator.clone(), rotation.clone());
        tokio::spawn(async move {
            let mut seen = 0;
            loop {
                let created = emulator.counters().tasks_created;
                if created != seen {
                    seen = created;
                    let states = rotation.lock().unwrap().clone();
                    emulator.set_faults(Faults {
                        fail_rate: 1.0,
                        fail_state: Some(states[seen as usize % states.len()]),
                        ..Faults::default()
                    });
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let (inputs, out) = folders("states");
    let _cleanup = Cleanup(vec![inputs.clone(), out.clone()]);
    let mut states = HashSet::new();
    for attempt in 1..=4u64 {
        // Failed tasks cost nothing: every run creates each input again.
        let run = run_cli(&emulator, &matrix_args(&emulator, &inputs, &out, &[]), &out).await;
        assert_eq!(run.output.status.code(), Some(1));
        assert_eq!(run.failed().len(), INPUTS);
        assert_eq!(run.counters.tasks_created, attempt * INPUTS as u64);
        assert_eq!(run.counters.create_requests, attempt * INPUTS as u64);
        for failed in run.failed() {
            let task_id = failed["task_id"].as_str().unwrap();
            let state = failed["error"]["task_state"].as_i64().unwrap() as i32;
            assert_eq!(run.tasks[task_id].state, state, "{failed:#}");
            assert!(failing.contains(&state));
            assert_eq!(
                failed["error"]["transient"],
                TaskState::from_code(state).is_transient_failure()
            );
            assert!(
                failed["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(task_id),
                "the task id is quoted for support"
            );
            states.insert(state);
        }
        assert_eq!(in_state(&run.journal, "failed"), INPUTS);
        assert_eq!(run.counters.credits_charged, 0);
        assert_eq!(run.counters.responses_429, 0);
        let missing: Vec<i32> = failing
            .iter()
            .copied()
            .filter(|s| !states.contains(s))
            .collect();
        if missing.is_empty() {
            break;
        }
        *rotation.lock().unwrap() = missing;
    }
    rotate.abort();
    assert_eq!(states.len(), failing.len(), "every state seen: {states:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_that_never_finish_time_out_and_are_resumed_not_recreated() {
    let emulator = emulator(Scenario::NeverFinish).await;
    let (inputs, out) = folders("never");
    let _cleanup = Cleanup(vec![inputs.clone(), out.clone()]);
    let args = matrix_args(&emulator, &inputs, &out, &["--timeout", "2"]);
    let run = run_cli(&emulator, &args, &out).await;
    matrix::check(Scenario::NeverFinish, &run.outcomes(), &emulator);
    let stuck: HashSet<String> = run
        .tasks
        .values()
        .filter(|t| t.became_final_at.is_none())
        .map(|t| t.task_id.clone())
        .collect();
    assert!(!stuck.is_empty());
    assert_eq!(run.failed().len(), stuck.len());
    for failed in run.failed() {
        let task_id = failed["task_id"].as_str().unwrap();
        assert!(stuck.contains(task_id));
        assert_eq!(failed["error"]["transient"], true);
        assert!(
            failed["error"]["message"]
                .as_str()
                .unwrap()
                .contains("run the same command again to resume it")
        );
    }
    assert_eq!(in_state(&run.journal, "created"), stuck.len());
    assert_eq!(run.counters.tasks_created, INPUTS as u64);
    assert_eq!(run.counters.create_requests, INPUTS as u64);

    // The next run waits for the same tasks again instead of creating new ones.
    let polls: HashMap<String, u64> = stuck
        .iter()
        .map(|id| (id.clone(), run.tasks[id].polls))
        .collect();
    let args = matrix_args(&emulator, &inputs, &out, &["--timeout", "1"]);
    let again = run_cli(&emulator, &args, &out).await;
    assert_eq!(again.counters.create_requests, INPUTS as u64);
    assert_eq!(again.failed().len(), stuck.len());
    for id in &stuck {
        assert!(
            again.tasks[id].polls > polls[id],
            "task {id} was polled again"
        );
    }
    assert_eq!(again.counters.responses_429, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn result_urls_that_expire_before_download() {
    let emulator = emulator(Scenario::ExpiredResults).await;
    let (inputs, out) = folders("expired");
    let _cleanup = Cleanup(vec![inputs.clone(), out.clone()]);
    let args = matrix_args(&emulator, &inputs, &out, &[]);
    let run = run_cli(&emulator, &args, &out).await;
    matrix::check(Scenario::ExpiredResults, &run.outcomes(), &emulator);
    for failed in run.failed() {
        let message = failed["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("expire") && message.contains("--regenerate-expired"),
            "{message}"
        );
        assert_eq!(failed["error"]["http_status"], 403);
    }
    assert_eq!(in_state(&run.journal, "expired"), INPUTS);

    // Charged already: not generated again unless asked.
    emulator.set_faults(Faults::default());
    let again = run_cli(&emulator, &args, &out).await;
    assert_eq!(again.failed().len(), INPUTS);
    assert_eq!(again.counters.create_requests, INPUTS as u64);
    let args = [args, vec!["--regenerate-expired".into()]].concat();
    let regenerated = run_cli(&emulator, &args, &out).await;
    assert_eq!(
        regenerated.output.status.code(),
        Some(0),
        "{}",
        regenerated.stderr()
    );
    assert_eq!(regenerated.counters.tasks_created, 2 * INPUTS as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_storm_from_a_server_slower_than_configured() {
    // The client is told 10 requests per (scaled) second; the server allows 6.
    let emulator = emulator_with(EmulatorConfig {
        qps: 6,
        seed: Some(Scenario::RateLimitStorm.seed()),
        ..config()
    })
    .await;
    let (inputs, out) = folders("storm");
    let _cleanup = Cleanup(vec![inputs.clone(), out.clone()]);
    let run = run_cli(&emulator, &matrix_args(&emulator, &inputs, &out, &[]), &out).await;
    matrix::check(Scenario::RateLimitStorm, &run.outcomes(), &emulator);
    eprintln!("storm: {:?}\n{}", run.counters, run.stderr());
}
