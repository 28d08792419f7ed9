//! The fault matrix both adapters run — the CLI through its binary, the Lambda through its
//! handler and moto's S3: which faults each scenario injects, what became of each input in
//! terms either adapter can report, and the checks that hold whichever adapter ran it. A matrix
//! test states only what its adapter does differently (how it runs, what its records say, what a
//! second run or a redelivery must do).

use backdrop_emulator::{Counters, Emulator, Faults, TaskInfo};

/// Inputs per run.
pub const INPUTS: usize = 50;

/// One fault the matrix injects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scenario {
    /// HTTP 500 on a tenth of the requests (before any task is made).
    Http500,
    /// A tenth of the connections dropped before any answer.
    DroppedConnections,
    /// A tenth of the answers slower than the client's timeout (`delay`, on the emulator's
    /// clock).
    SlowAnswers {
        /// How late a slow answer comes.
        delay_ms: u64,
    },
    /// Creates accepted (and charged) whose answer is then lost, at `rate`.
    LostCreateAnswers {
        /// Share of the creates.
        rate: f64,
    },
    /// A fifth of the tasks never finish.
    NeverFinish,
    /// Result URLs that have expired by the time they are downloaded.
    ExpiredResults,
    /// No injected fault: a server granting fewer requests per second than the client was
    /// told (the adapter sets both QPS).
    RateLimitStorm,
}

impl Scenario {
    /// The faults the emulator injects.
    pub fn faults(self) -> Faults {
        match self {
            Scenario::Http500 => Faults {
                error_500_rate: 0.1,
                ..Faults::default()
            },
            Scenario::DroppedConnections => Faults {
                drop_rate: 0.1,
                ..Faults::default()
            },
            Scenario::SlowAnswers { delay_ms } => Faults {
                slow_rate: 0.1,
                slow_delay: std::time::Duration::from_millis(delay_ms),
                ..Faults::default()
            },
            Scenario::LostCreateAnswers { rate } => Faults {
                lost_answer_rate: rate,
                ..Faults::default()
            },
            Scenario::NeverFinish => Faults {
                never_finish_rate: 0.2,
                ..Faults::default()
            },
            Scenario::ExpiredResults => Faults {
                expire_results: true,
                ..Faults::default()
            },
            Scenario::RateLimitStorm => Faults::default(),
        }
    }

    /// The emulator's seed: fixed, one per scenario.
    pub fn seed(self) -> u64 {
        match self {
            Scenario::Http500 => 1,
            Scenario::DroppedConnections => 2,
            Scenario::SlowAnswers { .. } => 3,
            Scenario::LostCreateAnswers { .. } => 4,
            Scenario::NeverFinish => 6,
            Scenario::ExpiredResults => 7,
            Scenario::RateLimitStorm => 8,
        }
    }
}

/// What became of one input, as either adapter reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// Whole outputs, from this task.
    Outputs {
        /// The task the outputs came from.
        task_id: String,
    },
    /// A readable failure record.
    Failed {
        /// The task the record names, if any.
        task_id: Option<String>,
        /// The record says credits may have been spent (a create that may have been accepted,
        /// results lost after a success).
        may_be_charged: bool,
    },
}

/// One input after a run: its fate and the emulator's tasks the adapter can attribute to it
/// (by its task id, or by a prompt unique to the input).
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The input, for messages.
    pub label: String,
    /// Outputs or a failure record.
    pub fate: Fate,
    /// The emulator's tasks of this input.
    pub tasks: Vec<TaskInfo>,
}

impl Outcome {
    fn failed(&self) -> Option<(Option<&str>, bool)> {
        match &self.fate {
            Fate::Failed {
                task_id,
                may_be_charged,
            } => Some((task_id.as_deref(), *may_be_charged)),
            Fate::Outputs { .. } => None,
        }
    }
}

/// The checks of `scenario` that hold whichever adapter ran it, against the emulator of that
/// run (every task it holds was created by the run). Panics naming the input and the rule.
pub fn check(scenario: Scenario, outcomes: &[Outcome], emulator: &Emulator) {
    let counters = emulator.counters();
    let all_tasks = emulator.tasks();
    assert_eq!(outcomes.len(), INPUTS, "every input has an outcome");
    check_every_run(scenario, outcomes, &all_tasks, &counters);
    let failed = || outcomes.iter().filter_map(|o| o.failed().map(|f| (o, f)));
    match scenario {
        // A 500 may come from a gateway after it passed the create on: the create is never
        // sent again, and its record says credits may have been spent (the emulator's 500s
        // come before any task, so none exists). Queries answered 500 are sent again.
        Scenario::Http500 => {
            assert!(counters.responses_500_injected > 0, "{counters:?}");
            assert_eq!(
                counters.create_requests as usize, INPUTS,
                "no create sent twice: {counters:?}"
            );
            for (outcome, (_, may_be_charged)) in failed() {
                assert!(
                    may_be_charged && outcome.tasks.is_empty(),
                    "{scenario:?}: {outcome:?}"
                );
            }
            assert_eq!(
                counters.tasks_created as usize,
                INPUTS - failed().count(),
                "every other input succeeded: {counters:?}"
            );
        }
        // A 429 to a create surely made no task: an input whose retries ran out failed with
        // nothing charged and no task (the adapter may run it again).
        Scenario::RateLimitStorm => {
            for (outcome, (_, may_be_charged)) in failed() {
                assert!(!may_be_charged && outcome.tasks.is_empty(), "{outcome:?}");
            }
            assert_eq!(
                counters.tasks_created as usize,
                INPUTS - failed().count(),
                "{counters:?}"
            );
        }
        // A create that got no answer may have landed: it is not sent again, and its record
        // says credits may have been spent. Queries cut short are simply sent again.
        Scenario::DroppedConnections | Scenario::SlowAnswers { .. } => {
            assert_eq!(counters.create_requests as usize, INPUTS, "{counters:?}");
            for (outcome, (_, may_be_charged)) in failed() {
                assert!(may_be_charged, "{scenario:?}: {outcome:?}");
            }
            if scenario == Scenario::DroppedConnections {
                assert!(counters.dropped_connections > 0, "{counters:?}");
                // The emulator drops before creating anything.
                for (outcome, _) in failed() {
                    assert!(outcome.tasks.is_empty(), "{outcome:?}");
                }
                assert_eq!(counters.tasks_created as usize, INPUTS - failed().count());
            } else {
                assert!(failed().count() > 0, "some creates were slow: {counters:?}");
            }
        }
        // The task exists and is charged, its id never arrived: never created again.
        Scenario::LostCreateAnswers { .. } => {
            assert!(counters.create_answers_lost > 0, "{counters:?}");
            assert_eq!(counters.create_requests as usize, INPUTS, "nothing resent");
            assert_eq!(
                counters.tasks_created as usize, INPUTS,
                "one task per input"
            );
            assert_eq!(failed().count() as u64, counters.create_answers_lost);
            for outcome in outcomes {
                let lost = outcome.failed().is_some();
                assert!(
                    outcome.tasks.iter().all(|t| t.answer_lost == lost),
                    "{outcome:?}"
                );
                if let Some((_, may_be_charged)) = outcome.failed() {
                    assert!(may_be_charged, "{outcome:?}");
                }
            }
        }
        // Charged, results gone: a record naming the task, never generated again unasked.
        Scenario::ExpiredResults => {
            assert_eq!(failed().count(), INPUTS, "every result expired");
            for (outcome, (task_id, may_be_charged)) in failed() {
                assert!(may_be_charged, "{outcome:?}");
                let [task] = outcome.tasks.as_slice() else {
                    panic!("one task: {outcome:?}");
                };
                assert_eq!(task.state, 1, "{outcome:?}");
                assert_eq!(task_id, Some(task.task_id.as_str()), "{outcome:?}");
            }
        }
        // Waits run out; what comes next is the adapter's (a resume by id). One task per
        // input, but for a create cut off on the wire by an adapter's deadline (a Lambda
        // invocation on a busy machine): recorded as may-have-landed, it may have made none.
        Scenario::NeverFinish => {
            let cut_off = failed()
                .filter(|(o, (task_id, may_be_charged))| {
                    task_id.is_none() && *may_be_charged && o.tasks.is_empty()
                })
                .count();
            assert_eq!(
                counters.tasks_created as usize,
                INPUTS - cut_off,
                "{counters:?}"
            );
            assert!(failed().count() > 0, "some tasks never finish");
        }
    }
}

/// What holds after any run: whole outputs come from a succeeded task of their input, no input
/// has two tasks, tasks no input claims come only from creates whose answer never arrived, and
/// no 429 outside the storm — where every `Retry-After` was honoured.
fn check_every_run(
    scenario: Scenario,
    outcomes: &[Outcome],
    all_tasks: &[TaskInfo],
    counters: &Counters,
) {
    for outcome in outcomes {
        assert!(
            outcome.tasks.len() <= 1,
            "{scenario:?}: two tasks: {outcome:?}"
        );
        if let Fate::Outputs { task_id } = &outcome.fate {
            let [task] = outcome.tasks.as_slice() else {
                panic!("{scenario:?}: outputs of no task: {outcome:?}");
            };
            assert_eq!(&task.task_id, task_id, "{outcome:?}");
            assert_eq!(task.state, 1, "{outcome:?}");
        }
    }
    let claimed = outcomes.iter().map(|o| o.tasks.len()).sum::<usize>();
    let unanswered = outcomes
        .iter()
        .filter(|o| matches!(o.failed(), Some((None, true))) && o.tasks.is_empty())
        .count();
    assert!(
        all_tasks.len() - claimed <= unanswered,
        "{scenario:?}: {} tasks no input knows of, {unanswered} creates left unanswered",
        all_tasks.len() - claimed
    );
    if scenario == Scenario::RateLimitStorm {
        assert!(counters.responses_429 > 0, "a storm: {counters:?}");
        assert_eq!(counters.retry_after_ignored, 0, "{counters:?}");
        // Backing off keeps the refusals a minority of the requests.
        let requests = counters.create_requests + counters.query_requests;
        assert!(
            counters.responses_429 * 2 <= requests,
            "{} of {requests} requests refused",
            counters.responses_429
        );
    } else {
        assert_eq!(counters.responses_429, 0, "{scenario:?}: {counters:?}");
    }
}
