//! The fault matrix of issue 7, Lambda half: for each fault, 50 objects in moto's S3 go through
//! the handler (SQS batches of 10, all batches at once, every object of a batch concurrently)
//! against an emulator injecting that fault, on the sped-up clock. Failed messages are delivered
//! again, like SQS would, until every object has settled. Each run then asserts from S3 and the
//! emulator's counters and task list:
//!
//! * every input is accounted for: its outputs and manifest, or a readable failure record;
//! * at most one task per input (the emulator names each task's prompt, which is unique to its
//!   input), except where documented retries make more (transient task states);
//! * delivering the whole batch again creates no task;
//! * no 429, except in the storm, where the client honours `Retry-After`;
//! * no panic (a panic fails the test).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use backdrop_core::{ClientConfigBuilder, TaskState};
use backdrop_emulator::{Emulator, EmulatorConfig, Faults, ProcessingTime, TaskInfo};
use backdrop_lambda::{Config, Deps, S3Store, handle};
use backdrop_tests::matrix::{self, INPUTS, Outcome, Scenario};
use backdrop_tests::{client_with, fast_config, fast_emulator, fixture};
use futures_util::future::join_all;
use serde_json::Value;
use support::*;

/// Objects per run of the task state case, for each negative state.
const PER_STATE: usize = 5;
/// Messages per SQS batch (the SQS event source's default batch size).
const SQS_BATCH: usize = 10;
/// The key's QPS in every run but the storm, at the emulator and in the client alike (on the
/// scaled clock: 200 requests per real second at the emulator, fewer at the client after its
/// jitter margin).
const QPS: u32 = 20;
/// Seconds before each invocation's deadline.
const INVOCATION_SECONDS: u64 = 60;
/// Deliveries at most before every object must have settled.
const MAX_ROUNDS: usize = 6;

/// One input object.
struct Input {
    key: String,
    /// Unique to the input: the emulator's task list tells which input a task belongs to.
    prompt: String,
}

/// Where one input ended up.
#[derive(Debug)]
enum Fate {
    /// Its manifest (every output it lists exists).
    Outputs(Value),
    /// Its failure record.
    Failed(Value),
}

impl Fate {
    fn record(&self) -> Option<&Value> {
        match self {
            Fate::Failed(record) => Some(record),
            Fate::Outputs(_) => None,
        }
    }
}

/// One run: a bucket of inputs, an emulator with a fault, the handler's dependencies.
struct Run {
    name: &'static str,
    s3: aws_sdk_s3::Client,
    bucket: String,
    emulator: Emulator,
    deps: Deps<S3Store>,
    inputs: Vec<Input>,
    started: Instant,
}

impl Run {
    /// Uploads one input per prompt suffix and starts the emulator; the client is set for `qps`
    /// and then by `client`.
    async fn start(
        name: &'static str,
        suffixes: Vec<String>,
        emulator: EmulatorConfig,
        qps: u32,
        client: impl FnOnce(ClientConfigBuilder) -> ClientConfigBuilder,
    ) -> Run {
        let started = Instant::now();
        let s3 = s3_client();
        let bucket = bucket(&s3, name).await;
        let png = std::fs::read(fixture("bottle.png")).unwrap();
        let inputs: Vec<Input> = suffixes
            .into_iter()
            .enumerate()
            .map(|(i, suffix)| Input {
                key: format!("incoming/{name}/item-{i:02}.png"),
                prompt: format!("{name} item-{i:02} {suffix}").trim().to_owned(),
            })
            .collect();
        join_all(inputs.iter().map(|input| {
            let (s3, bucket, png) = (&s3, &bucket, png.clone());
            async move {
                let metadata = [("prompt", input.prompt.as_str()), ("batch-size", "1")];
                upload(s3, bucket, &input.key, png, &metadata).await;
            }
        }))
        .await;
        let emulator = fast_emulator(emulator).await;
        let deps = Deps {
            store: S3Store::new(s3_client()),
            queue: backdrop_lambda::NoQueue,
            metrics: backdrop_lambda::metrics::MetricsSink::Stdout,
            client: client_with(&emulator, qps, client),
            config: Config {
                deadline_margin: Duration::from_secs(1),
                ..Config::default()
            },
        };
        Run {
            name,
            s3,
            bucket,
            emulator,
            deps,
            inputs,
            started,
        }
    }

    /// Delivers the inputs `which` once, in SQS batches handled concurrently, each invocation
    /// with `seconds` before its deadline; returns the inputs whose message must be delivered
    /// again.
    async fn deliver(&self, which: &[usize], seconds: u64) -> Vec<usize> {
        let batches = which.chunks(SQS_BATCH).map(|batch| async move {
            let keys: Vec<&str> = batch.iter().map(|&i| self.inputs[i].key.as_str()).collect();
            let response = handle(
                &self.deps,
                invocation(sqs_event(&self.bucket, &keys), seconds),
            )
            .await
            .expect("an SQS event always gets a batch response");
            failed_ids(&response)
                .iter()
                .map(|id| {
                    let position: usize = id.trim_start_matches("msg-").parse().unwrap();
                    batch[position]
                })
                .collect::<Vec<_>>()
        });
        join_all(batches).await.into_iter().flatten().collect()
    }

    /// Delivers every input, then the failed ones again until none fails; returns the number of
    /// deliveries.
    async fn settle(&self) -> usize {
        let mut pending: Vec<usize> = (0..self.inputs.len()).collect();
        for round in 1..=MAX_ROUNDS {
            pending = self.deliver(&pending, INVOCATION_SECONDS).await;
            if pending.is_empty() {
                return round;
            }
        }
        panic!(
            "{}: {} inputs still failing after {MAX_ROUNDS} deliveries: {:?}",
            self.name,
            pending.len(),
            pending
                .iter()
                .map(|&i| &self.inputs[i].key)
                .collect::<Vec<_>>()
        );
    }

    /// Where every input ended up; panics for an input with neither outputs nor a failure
    /// record, or with both.
    async fn fates(&self) -> Vec<Fate> {
        let keys: HashSet<String> = keys(&self.s3, &self.bucket).await.into_iter().collect();
        let mut fates = Vec::new();
        for input in &self.inputs {
            let relative = &input.key["incoming/".len()..];
            let manifest_key = format!(
                "generated/{}/manifest.json",
                &relative[..relative.len() - 4]
            );
            let record_key = format!("failed/{relative}.json");
            let fate = match (keys.contains(&manifest_key), keys.contains(&record_key)) {
                (true, false) => {
                    let manifest = self.json(&manifest_key).await;
                    let outputs = manifest["outputs"].as_array().expect("outputs listed");
                    assert!(!outputs.is_empty(), "{manifest}");
                    for output in outputs {
                        let output = output.as_str().unwrap();
                        assert!(keys.contains(output), "{output} of {manifest}");
                        let image = read(&self.s3, &self.bucket, output).await;
                        // Written whole: JPEG start and end markers.
                        assert!(
                            image.starts_with(&[0xFF, 0xD8, 0xFF])
                                && image.ends_with(&[0xFF, 0xD9]),
                            "{output} is not a whole JPEG"
                        );
                    }
                    assert_eq!(manifest["source"]["key"], input.key.as_str());
                    Fate::Outputs(manifest)
                }
                (false, true) => {
                    let record = self.json(&record_key).await;
                    assert_eq!(record["source"]["key"], input.key.as_str(), "{record}");
                    assert!(record["stage"].as_str().is_some(), "{record}");
                    assert!(
                        record["message"].as_str().is_some_and(|m| !m.is_empty()),
                        "{record}"
                    );
                    Fate::Failed(record)
                }
                (outputs, record) => panic!(
                    "{}: {} has outputs: {outputs}, a failure record: {record}",
                    self.name, input.key
                ),
            };
            fates.push(fate);
        }
        fates
    }

    async fn json(&self, key: &str) -> Value {
        serde_json::from_slice(&read(&self.s3, &self.bucket, key).await)
            .unwrap_or_else(|e| panic!("{key} is not JSON: {e}"))
    }

    /// The emulator's tasks of each input, by prompt; every task belongs to an input.
    fn tasks_by_input(&self) -> Vec<Vec<TaskInfo>> {
        let mut by_input: Vec<Vec<TaskInfo>> = self.inputs.iter().map(|_| Vec::new()).collect();
        for task in self.emulator.tasks() {
            let owner = self
                .inputs
                .iter()
                .position(|input| task.prompt.as_deref() == Some(input.prompt.as_str()))
                .unwrap_or_else(|| panic!("a task of no input: {task:?}"));
            by_input[owner].push(task);
        }
        by_input
    }

    /// Delivers every input once more, as a duplicate of the whole batch: nothing is retried
    /// and no task is created.
    async fn redeliver_everything(&self) {
        let before = self.emulator.counters().tasks_created;
        let all: Vec<usize> = (0..self.inputs.len()).collect();
        let retried = self.deliver(&all, INVOCATION_SECONDS).await;
        assert!(retried.is_empty(), "{}: {retried:?} retried", self.name);
        assert_eq!(
            self.emulator.counters().tasks_created,
            before,
            "{}: a redelivery created tasks",
            self.name
        );
    }

    /// Each input's fate and tasks, for the matrix's shared checks.
    fn outcomes(&self, fates: &[Fate], tasks: &[Vec<TaskInfo>]) -> Vec<Outcome> {
        self.inputs
            .iter()
            .zip(fates)
            .zip(tasks)
            .map(|((input, fate), tasks)| Outcome {
                label: input.key.clone(),
                fate: match fate {
                    Fate::Outputs(manifest) => matrix::Fate::Outputs {
                        task_id: manifest["task_id"].as_str().unwrap().to_owned(),
                    },
                    Fate::Failed(record) => matrix::Fate::Failed {
                        task_id: record["task_id"].as_str().map(str::to_owned),
                        may_be_charged: record["credits_spent"] == true,
                    },
                },
                tasks: tasks.clone(),
            })
            .collect()
    }

    /// Settles every input, runs the matrix's shared checks of `scenario`, and returns the
    /// fates and tasks for the checks of this adapter.
    async fn settle_and_check(&self, scenario: Scenario) -> (Vec<Fate>, Vec<Vec<TaskInfo>>) {
        self.settle().await;
        let (fates, tasks) = (self.fates().await, self.tasks_by_input());
        matrix::check(scenario, &self.outcomes(&fates, &tasks), &self.emulator);
        (fates, tasks)
    }

    /// The checks of every run but the storm: no 429, at most `max_tasks` tasks per input.
    fn assert_common(&self, tasks: &[Vec<TaskInfo>], max_tasks: usize) {
        let counters = self.emulator.counters();
        assert_eq!(counters.responses_429, 0, "{}: {counters:?}", self.name);
        for (input, tasks) in self.inputs.iter().zip(tasks) {
            assert!(
                tasks.len() <= max_tasks,
                "{}: {} tasks for {}: {tasks:?}",
                self.name,
                tasks.len(),
                input.key
            );
        }
    }

    fn finish(self) {
        let counters = self.emulator.counters();
        eprintln!(
            "{}: {} inputs in {:.1} s; {} creates sent, {} tasks, {} queries, {} x 429, {} x 500, \
             {} dropped, {} answers lost",
            self.name,
            self.inputs.len(),
            self.started.elapsed().as_secs_f64(),
            counters.create_requests,
            counters.tasks_created,
            counters.query_requests,
            counters.responses_429,
            counters.responses_500_injected,
            counters.dropped_connections,
            counters.create_answers_lost,
        );
    }
}

fn plain_inputs() -> Vec<String> {
    vec![String::new(); INPUTS]
}

/// The emulator of the runs: quick tasks at the test time scale, the run's QPS, `faults`.
fn emulator_with(faults: Faults) -> EmulatorConfig {
    EmulatorConfig {
        qps: QPS,
        processing: ProcessingTime::Fixed(Duration::from_secs(1)),
        faults,
        ..fast_config()
    }
}

/// The emulator of `scenario`: its faults and seed.
fn emulator_for(scenario: Scenario) -> EmulatorConfig {
    EmulatorConfig {
        seed: Some(scenario.seed()),
        ..emulator_with(scenario.faults())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http_500s_on_a_tenth_of_requests() {
    let scenario = Scenario::Http500;
    let run = Run::start(
        "five-hundreds",
        plain_inputs(),
        emulator_for(scenario),
        QPS,
        |b| b,
    )
    .await;
    run.settle_and_check(scenario).await;
    run.redeliver_everything().await;
    run.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_connections() {
    let scenario = Scenario::DroppedConnections;
    let run = Run::start(
        "dropped",
        plain_inputs(),
        emulator_for(scenario),
        QPS,
        |b| b,
    )
    .await;
    let (fates, _) = run.settle_and_check(scenario).await;
    // A dropped create is recorded as one that may have been charged.
    for record in fates.iter().filter_map(Fate::record) {
        assert_eq!(record["stage"], "create", "{record}");
    }
    run.redeliver_everything().await;
    run.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_slower_than_the_client_timeout() {
    let scenario = Scenario::SlowAnswers { delay_ms: 2500 };
    let run = Run::start("slow", plain_inputs(), emulator_for(scenario), QPS, |b| {
        b.request_timeout(Duration::from_secs(1))
    })
    .await;
    let (fates, _) = run.settle_and_check(scenario).await;
    // A create that timed out is recorded as one that may have been charged.
    for record in fates.iter().filter_map(Fate::record) {
        assert_eq!(record["stage"], "create", "{record}");
    }
    run.redeliver_everything().await;
    run.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn create_answers_lost_after_acceptance() {
    let scenario = Scenario::LostCreateAnswers { rate: 0.2 };
    let run = Run::start("lost", plain_inputs(), emulator_for(scenario), QPS, |b| b).await;
    let (fates, tasks) = run.settle_and_check(scenario).await;
    // The input's prompt finds its task although the id never arrived: exactly one each.
    assert!(tasks.iter().all(|t| t.len() == 1), "{tasks:?}");
    for record in fates.iter().filter_map(Fate::record) {
        assert_eq!(record["stage"], "create", "{record}");
    }
    run.redeliver_everything().await;
    run.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_failing_with_every_documented_negative_state() {
    let states: Vec<TaskState> = TaskState::DOCUMENTED
        .into_iter()
        .filter(|state| state.code() < 0)
        .collect();
    assert_eq!(states.len(), 14);
    let suffixes = states
        .iter()
        .flat_map(|state| std::iter::repeat_n(format!("emulator:fail={}", state.code()), PER_STATE))
        .collect();
    let run = Run::start(
        "states",
        suffixes,
        emulator_with(Faults::default()),
        QPS,
        |b| b,
    )
    .await;
    let rounds = run.settle().await;
    let (fates, tasks) = (run.fates().await, run.tasks_by_input());
    let attempts = run.deps.config.max_task_attempts as usize;
    run.assert_common(&tasks, attempts);
    for (i, ((input, fate), tasks)) in run.inputs.iter().zip(&fates).zip(&tasks).enumerate() {
        let state = states[i / PER_STATE];
        let record = fate
            .record()
            .unwrap_or_else(|| panic!("{} ({state}) has outputs", input.key));
        assert_eq!(record["stage"], "task", "{record}");
        assert_eq!(record["credits_spent"], false, "{record}");
        assert!(
            tasks.iter().all(|t| t.state == state.code()),
            "{}: {tasks:?}",
            input.key
        );
        if state.is_transient_failure() {
            // Service-side trouble: a new task per delivery, MAX_TASK_ATTEMPTS in all, then the
            // record.
            assert_eq!(tasks.len(), attempts, "{} ({state}): {tasks:?}", input.key);
            assert_eq!(record["attempts"], attempts, "{record}");
        } else {
            // A verdict on the input: one task, its state in the record.
            assert_eq!(tasks.len(), 1, "{} ({state}): {tasks:?}", input.key);
            assert_eq!(record["state"], state.code(), "{record}");
            assert_eq!(record["task_id"], tasks[0].task_id.as_str(), "{record}");
        }
    }
    assert_eq!(
        rounds,
        attempts + 1,
        "transient states settle on the last delivery"
    );
    run.redeliver_everything().await;
    run.finish();
}

/// The ledger entries (key and body) whose task was created and has not ended.
async fn created_claims(run: &Run) -> Vec<(String, Value)> {
    let mut created = Vec::new();
    for key in keys(&run.s3, &run.bucket).await {
        if !key.starts_with("state/") || key.starts_with("state/scratch/") {
            continue;
        }
        let claim = run.json(&key).await;
        if claim["stage"] == "created" {
            created.push((key, claim));
        }
    }
    created
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_that_never_finish() {
    let run = Run::start(
        "never",
        plain_inputs(),
        emulator_for(Scenario::NeverFinish),
        QPS,
        |b| b,
    )
    .await;
    // Short invocations: the waits for never-finishing tasks run out at the deadline, and their
    // messages come back for a later delivery, which resumes the recorded task.
    let all: Vec<usize> = (0..INPUTS).collect();
    let seconds = 7;
    let mut pending = run.deliver(&all, seconds).await;
    assert!(!pending.is_empty(), "some tasks never finish");
    // SQS keeps delivering them for as long as its redrive policy allows; the function gives up
    // on a task 300 s after creating it. Let those 300 s pass between deliveries: move the
    // recorded creation times back in the claim objects. The next delivery resumes each
    // recorded task, waits once more, and gives up on it. (On a busy machine an invocation can
    // also end before an object got as far as its create, or before a resumed task's first
    // poll: those messages come back once more, which is what SQS would do too.)
    let mut moved = 0;
    let mut deliveries = 1;
    while !pending.is_empty() {
        assert!(
            deliveries < 6,
            "{pending:?} still coming back after {deliveries} deliveries"
        );
        for (key, mut claim) in created_claims(&run).await {
            let at = claim["sent_at_ms"].as_u64().unwrap();
            claim["sent_at_ms"] = Value::from(at.saturating_sub(301_000));
            run.s3
                .put_object()
                .bucket(&run.bucket)
                .key(&key)
                .body(serde_json::to_vec(&claim).unwrap().into())
                .send()
                .await
                .unwrap();
            moved += 1;
        }
        pending = run.deliver(&pending, seconds).await;
        deliveries += 1;
    }
    assert!(moved > 0, "no recorded task was resumed");
    let (fates, tasks) = (run.fates().await, run.tasks_by_input());
    matrix::check(
        Scenario::NeverFinish,
        &run.outcomes(&fates, &tasks),
        &run.emulator,
    );
    for ((input, fate), tasks) in run.inputs.iter().zip(&fates).zip(&tasks) {
        match fate {
            Fate::Outputs(_) => assert_eq!(tasks.len(), 1, "{}: {tasks:?}", input.key),
            // A busy machine can bring an invocation's cutoff while a create is on the wire:
            // it may have landed, so it is recorded as such and never sent again.
            Fate::Failed(record) if record["recovery"] == "unconfirmed" => {
                assert_eq!(record["stage"], "create", "{record}");
                assert!(tasks.len() <= 1, "{}: {tasks:?}", input.key);
            }
            Fate::Failed(record) => {
                let [task] = tasks.as_slice() else {
                    panic!("{}: one task: {tasks:?} {record}", input.key);
                };
                assert_eq!(task.state, 4, "{}: still processing", input.key);
                assert_eq!(record["stage"], "task", "{record}");
                assert_eq!(record["task_id"], task.task_id.as_str(), "{record}");
                assert!(
                    record["message"]
                        .as_str()
                        .unwrap()
                        .contains("did not finish"),
                    "{record}"
                );
            }
        }
    }
    assert!(fates.iter().any(|f| f.record().is_some()));
    run.redeliver_everything().await;
    run.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn result_urls_expired_before_download() {
    let scenario = Scenario::ExpiredResults;
    let run = Run::start(
        "expired",
        plain_inputs(),
        emulator_for(scenario),
        QPS,
        |b| b,
    )
    .await;
    let (fates, _) = run.settle_and_check(scenario).await;
    // The task succeeded and was charged; its results are gone.
    for record in fates.iter().filter_map(Fate::record) {
        assert_eq!(record["stage"], "download", "{record}");
    }
    run.redeliver_everything().await;
    run.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_storm_from_a_server_below_the_configured_qps() {
    // The client is configured for four times the QPS the server grants.
    let server_qps = 10;
    let run = Run::start(
        "storm",
        plain_inputs(),
        EmulatorConfig {
            qps: server_qps,
            ..emulator_for(Scenario::RateLimitStorm)
        },
        4 * server_qps,
        |b| b,
    )
    .await;
    let (fates, _) = run.settle_and_check(Scenario::RateLimitStorm).await;
    // Delivered again until they got through: every input has its outputs.
    assert!(fates.iter().all(|f| f.record().is_none()), "{fates:?}");
    run.redeliver_everything().await;
    run.finish();
}
