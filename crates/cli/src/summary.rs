//! What happened to each input, and the totals: printed as a table or as JSON.

use std::path::PathBuf;

use backdrop_core::Recovery;
use serde::{Deserialize, Serialize};

use crate::error::{
    self, EXIT_CREDIT_CAP, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID_INPUT, EXIT_OK,
    EXIT_TERMINATED, EXIT_UNAUTHORIZED,
};

/// The end of one input.
#[derive(Debug, Clone, Serialize)]
pub struct InputOutcome {
    /// The input as given.
    pub input: String,
    /// `succeeded`, `already_done` (by an earlier run), `failed`, `interrupted` (its task may
    /// still finish: run again to resume it), `skipped` (not started: the run was interrupted)
    /// or `not_started` (the credit cap left it: nothing sent, nothing spent).
    pub status: OutcomeStatus,
    /// The task id, once the service accepted the input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Files written.
    pub outputs: Vec<PathBuf>,
    /// Seconds from start to finish.
    pub seconds: f64,
    /// Credits charged, by the spec's price list.
    pub credits: u32,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<InputFailure>,
}

/// How an input ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    /// Outputs written.
    Succeeded,
    /// Outputs written by an earlier run (the journal says so and the files exist): nothing sent.
    AlreadyDone,
    /// See the failure record.
    Failed,
    /// Its task was created, but the run stopped waiting for it (second Ctrl-C); running the
    /// same command again resumes it.
    Interrupted,
    /// Never started (interrupted).
    Skipped,
    /// Not started: its create would have passed the credit cap (`--max-credits`). Nothing was
    /// sent; a rerun with a higher cap picks it up.
    NotStarted,
}

/// A readable failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputFailure {
    /// The full message, with what to do.
    pub message: String,
    /// The HTTP status, when the service answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The task state, when the task failed or timed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_state: Option<i32>,
    /// True when running the same command again may succeed (it retries or resumes; it never
    /// pays twice).
    pub transient: bool,
    /// True when the input was refused locally: nothing was sent, nothing spent.
    pub refused_locally: bool,
    /// True when a create may have been accepted (and charged) although its answer never
    /// arrived: it is not sent again unless asked (`--retry-unconfirmed`).
    #[serde(default)]
    pub maybe_accepted: bool,
    /// What can be done about it: `retry`, `resume`, `unconfirmed`, `results_lost` or
    /// `permanent` (core's [`Recovery`]).
    pub recovery: Recovery,
    /// The exit code this failure alone would give.
    pub exit_code: u8,
}

impl InputFailure {
    /// The record of a core error.
    pub fn from_error(error: &backdrop_core::Error) -> Self {
        let recovery = error.recovery();
        InputFailure {
            message: error.to_string(),
            http_status: error.http_status(),
            task_state: error.task_state().map(|s| s.code()),
            transient: matches!(recovery, Recovery::Retry | Recovery::Resume),
            refused_locally: matches!(
                error,
                backdrop_core::Error::Invalid(_) | backdrop_core::Error::Io { .. }
            ),
            maybe_accepted: recovery == Recovery::Unconfirmed,
            recovery,
            exit_code: error::exit_code_for(error),
        }
    }

    /// The record of a local failure that is not a core error (e.g. writing an output).
    pub fn local(message: String) -> Self {
        InputFailure {
            message,
            http_status: None,
            task_state: None,
            transient: true,
            refused_locally: false,
            maybe_accepted: false,
            recovery: Recovery::Retry,
            exit_code: EXIT_FAILED,
        }
    }
}

/// The credit cap of a run and what it counted.
#[derive(Debug, Clone, Serialize)]
pub struct CapUse {
    /// `--max-credits`.
    pub limit: u64,
    /// Credits counted at the end: charged by this run and earlier ones into the folder, and
    /// the most that creates in flight or unconfirmed may still cost.
    pub counted: u64,
    /// The output folder the cap covers.
    pub folder: String,
}

/// What the summary says of a run against the built-in emulator.
pub const STAND_IN_NOTICE: &str = "STAND-IN IMAGES: no API key was set, so this run used the \
built-in emulator, not PicWish: the images are placeholders and nothing was generated or charged. \
Set PICWISH_API_KEY (or --api-key-file) to generate them for real; the journal does not count \
these as done for the real service.";

/// Every input's outcome and the totals.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// One entry per input, in input order.
    pub inputs: Vec<InputOutcome>,
    /// Inputs.
    pub total: usize,
    /// Inputs that succeeded.
    pub succeeded: usize,
    /// Inputs an earlier run had finished.
    pub already_done: usize,
    /// Inputs that failed.
    pub failed: usize,
    /// Inputs whose task was left running (second Ctrl-C).
    pub interrupted: usize,
    /// Inputs never started.
    pub skipped: usize,
    /// Inputs the credit cap left: not started, nothing spent.
    pub not_started: usize,
    /// The credit cap, when one was set, and the credits it counted at the end (this run and
    /// the folder's earlier ones: charged, and the most of what may still be charged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit_cap: Option<CapUse>,
    /// Credits charged in all.
    pub credits: u32,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
    /// True when Ctrl-C or SIGTERM stopped the run.
    pub stopped: bool,
    /// True when SIGTERM stopped the run (the exit code is then 143).
    pub terminated: bool,
    /// True when the run used the built-in emulator (no key was set): its images are stand-ins,
    /// not generated by PicWish.
    pub stand_in: bool,
    /// The contact sheet written into the output folder (`index.html`), unless `--no-report`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<PathBuf>,
}

impl Summary {
    /// Totals over `inputs`.
    pub fn new(inputs: Vec<InputOutcome>, seconds: f64) -> Self {
        let count = |status| inputs.iter().filter(|i| i.status == status).count();
        Summary {
            total: inputs.len(),
            succeeded: count(OutcomeStatus::Succeeded),
            already_done: count(OutcomeStatus::AlreadyDone),
            failed: count(OutcomeStatus::Failed),
            interrupted: count(OutcomeStatus::Interrupted),
            skipped: count(OutcomeStatus::Skipped),
            not_started: count(OutcomeStatus::NotStarted),
            credit_cap: None,
            credits: inputs.iter().map(|i| i.credits).sum(),
            seconds,
            stopped: false,
            terminated: false,
            stand_in: false,
            report: None,
            inputs,
        }
    }

    /// 143 when SIGTERM stopped the run; 130 when Ctrl-C left inputs unfinished; else 0 when all succeeded; 4 when the key was
    /// refused; 3 when every failure was refused locally; 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.terminated {
            return EXIT_TERMINATED;
        }
        if self.stopped && self.skipped + self.interrupted > 0 {
            return EXIT_INTERRUPTED;
        }
        let failures: Vec<&InputFailure> = self
            .inputs
            .iter()
            .filter(|i| i.status != OutcomeStatus::NotStarted)
            .filter_map(|i| i.error.as_ref())
            .collect();
        if failures.is_empty() && self.not_started > 0 {
            EXIT_CREDIT_CAP
        } else if failures.is_empty() {
            EXIT_OK
        } else if failures.iter().any(|f| f.exit_code == EXIT_UNAUTHORIZED) {
            EXIT_UNAUTHORIZED
        } else if failures.iter().all(|f| f.refused_locally) {
            EXIT_INVALID_INPUT
        } else {
            EXIT_FAILED
        }
    }

    /// A table for people.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        for input in &self.inputs {
            let mark = match input.status {
                OutcomeStatus::Succeeded => "ok  ",
                OutcomeStatus::AlreadyDone => "done",
                OutcomeStatus::Failed => "FAIL",
                OutcomeStatus::Interrupted => "stop",
                OutcomeStatus::Skipped => "skip",
                OutcomeStatus::NotStarted => "cap ",
            };
            out.push_str(&format!(
                "{mark} {}  task {}  {:.1} s  {} credits\n",
                input.input,
                input.task_id.as_deref().unwrap_or("-"),
                input.seconds,
                input.credits
            ));
            for output in &input.outputs {
                out.push_str(&format!("       -> {}\n", output.display()));
            }
            if let Some(error) = &input.error {
                out.push_str(&format!("       {}\n", error.message));
            }
        }
        let mut totals = format!("{} inputs: {} succeeded", self.total, self.succeeded);
        if self.already_done > 0 {
            totals.push_str(&format!(", {} already done", self.already_done));
        }
        totals.push_str(&format!(", {} failed", self.failed));
        if self.interrupted > 0 {
            totals.push_str(&format!(", {} interrupted", self.interrupted));
        }
        if self.not_started > 0 {
            totals.push_str(&format!(", {} not started (credit cap)", self.not_started));
        }
        out.push_str(&format!(
            "{totals}, {} skipped; {} credits; {:.1} s\n",
            self.skipped, self.credits, self.seconds
        ));
        if let Some(cap) = &self.credit_cap {
            out.push_str(&format!(
                "credit cap: {} of {} credits counted in {} (charged, or the most still possible)\n",
                cap.counted, cap.limit, cap.folder
            ));
        }
        if let Some(report) = &self.report {
            out.push_str(&format!("contact sheet: {}\n", report.display()));
        }
        if self.stand_in {
            out.push_str(STAND_IN_NOTICE);
            out.push('\n');
        }
        out
    }
}
