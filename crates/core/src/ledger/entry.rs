//! What the ledger records about one input: its stage, its owner, its task and how it ended.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Recovery};
use crate::request::BatchSize;

/// Where an input stands. The life of an input:
///
/// ```text
/// claimed ──> sending ──> created ──> done
///    │           │           ├──────> failed      (a task failed; nothing charged)
///    │           │           ├──────> expired     (charged, results lost)
///    │           ├──> unconfirmed                 (sent, answer never seen)
///    └───────────┴──> failed                      (refused or surely not accepted)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// An owner works on the input; no create has been sent.
    Claimed,
    /// A create holds its share of the rate limit and is being sent; its answer has not been
    /// seen. Found with its owner gone, it means the owner died mid-create: the task may exist
    /// and be charged.
    Sending,
    /// The service accepted the create; the entry has its task id.
    Created,
    /// The outputs are stored.
    Done,
    /// The input failed and nothing was charged; its failure says whether trying again may help.
    Failed,
    /// A create was sent and no answer was seen: a task may exist and be charged.
    Unconfirmed,
    /// The task was charged (or may have been) and its results are gone.
    Expired,
}

impl Stage {
    /// The stage's name as written in entries: `claimed`, `sending`, `created`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Claimed => "claimed",
            Stage::Sending => "sending",
            Stage::Created => "created",
            Stage::Done => "done",
            Stage::Failed => "failed",
            Stage::Unconfirmed => "unconfirmed",
            Stage::Expired => "expired",
        }
    }

    /// How far along the life of an input the stage is (0 claimed … 3 ended).
    pub(crate) fn rank(self) -> u8 {
        match self {
            Stage::Claimed => 0,
            Stage::Sending => 1,
            Stage::Created => 2,
            Stage::Done | Stage::Failed | Stage::Unconfirmed | Stage::Expired => 3,
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who works on an input: a run of the CLI, a Lambda invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Unique per run or invocation (a random id, a Lambda request id).
    pub id: String,
    /// Unix milliseconds after which the owner is surely gone (a Lambda invocation's deadline,
    /// enforced by the platform); `None` for an owner that holds the store exclusively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until_ms: Option<u64>,
}

impl Owner {
    /// An owner that holds its store exclusively (a CLI run under the folder's lock).
    pub fn exclusive(id: impl Into<String>) -> Self {
        Owner {
            id: id.into(),
            lease_until_ms: None,
        }
    }

    /// An owner that is surely gone after `lease_until_ms` (unix milliseconds).
    pub fn leased(id: impl Into<String>, lease_until_ms: u64) -> Self {
        Owner {
            id: id.into(),
            lease_until_ms: Some(lease_until_ms),
        }
    }
}

/// Why an input has no outputs: recorded with its failed, unconfirmed or expired entry (and,
/// for a task to resume, with its created entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The full message, with what to do.
    pub message: String,
    /// What can be done about it.
    pub recovery: Recovery,
    /// The HTTP status, when the service answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The task state, when a task failed or a wait timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_state: Option<i32>,
    /// The task the failure concerns, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// True when credits were (or may have been) spent for nothing to show.
    pub credits_spent: bool,
}

impl Failure {
    /// The record of a core error, with the task it concerns when the error names none.
    pub fn from_error(error: &Error, task_id: Option<&str>) -> Self {
        let recovery = error.recovery();
        Failure {
            message: error.to_string(),
            recovery,
            http_status: error.http_status(),
            task_state: error.task_state().map(|state| state.code()),
            task_id: error.task_id().or(task_id).map(str::to_owned),
            credits_spent: recovery.may_be_charged(),
        }
    }

    /// A failure that is not a core error (a parameter, an output that cannot be stored).
    pub fn new(message: impl Into<String>, recovery: Recovery) -> Self {
        Failure {
            message: message.into(),
            recovery,
            http_status: None,
            task_state: None,
            task_id: None,
            credits_spent: recovery.may_be_charged(),
        }
    }
}

/// One input's entry in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Where it stands.
    pub stage: Stage,
    /// The input, for people (a path, a URL without its query, `s3://bucket/key`).
    pub label: String,
    /// The service its task lives at (an identity without credentials). A task of another
    /// service cannot be resumed from here.
    pub service: String,
    /// Who works on it, while it is claimed, sending or created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// The current task, once the service accepted a create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Tasks the service accepted for this input so far.
    #[serde(default)]
    pub tasks_created: u32,
    /// Creates sent for this input so far that may have reached the service: every create
    /// sent, less those an answer refused (HTTP 429, a 4xx). At least `tasks_created`; a limit
    /// on tasks per input counts these.
    #[serde(default)]
    pub creates_sent: u32,
    /// True when the entry's work was done by a stand-in for the service (the built-in
    /// emulator): its outputs are not generated images, and they do not count as done for a
    /// real service.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stand_in: bool,
    /// When the current create was sent (unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at_ms: Option<u64>,
    /// When the entry last changed (unix milliseconds).
    pub updated_at_ms: u64,
    /// Where the outputs are (files relative to the output folder, S3 keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    /// Credits the task cost, by the spec's price list.
    #[serde(default)]
    pub credits: u32,
    /// The most the current create can cost (3 per image of its batch), recorded when it is
    /// sent: what a credit cap counts for it until its task's cost is known
    /// ([`Entry::credits_counted`]).
    #[serde(default)]
    pub credits_at_stake: u32,
    /// The last failure, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

impl Entry {
    /// What this entry counts against a credit cap ([`crate::credits`]): a finished task its
    /// cost; a create sent whose task is running, or that may have been accepted, or whose
    /// results were lost, the most it could cost (recorded when it was sent; 6, the most of one
    /// create, for entries of older versions); nothing for a failure (a failed task is not
    /// charged), a claim that sent nothing, or the work of a stand-in (the built-in emulator
    /// charges nothing).
    pub fn credits_counted(&self) -> u32 {
        if self.stand_in {
            return 0;
        }
        let at_stake = if self.credits_at_stake > 0 {
            self.credits_at_stake
        } else {
            BatchSize::Two.credits()
        };
        match self.stage {
            Stage::Done => self.credits,
            Stage::Sending | Stage::Created | Stage::Unconfirmed => at_stake,
            Stage::Expired => self.credits.max(at_stake),
            Stage::Failed | Stage::Claimed => 0,
        }
    }

    /// A claimed entry for `label` at `service`, owned by `owner`.
    pub(crate) fn claimed(label: &str, service: &str, owner: &Owner, now_ms: u64) -> Self {
        Entry {
            stage: Stage::Claimed,
            label: label.to_owned(),
            service: service.to_owned(),
            owner: Some(owner.clone()),
            task_id: None,
            tasks_created: 0,
            creates_sent: 0,
            stand_in: false,
            sent_at_ms: None,
            updated_at_ms: now_ms,
            outputs: Vec::new(),
            credits: 0,
            credits_at_stake: 0,
            failure: None,
        }
    }

    /// True when the entry's task was sent longer ago than the spec's polling limit (300 s):
    /// the service should have ended it (its longest processing is 180 s), so waiting for it
    /// any longer is not worth a request.
    pub fn polling_window_over(&self, now_ms: u64) -> bool {
        let limit = u64::try_from(crate::spec::MAX_POLL_DURATION.as_millis()).unwrap_or(u64::MAX);
        self.sent_at_ms
            .is_some_and(|sent| now_ms.saturating_sub(sent) > limit)
    }

    /// True when the entry is the same as `other` but for when it changed, and, past a
    /// create, for its owner. A claim or a create being sent belongs to one owner and one send:
    /// another owner's claim, or another send (even by the same owner id), is not the same.
    pub(crate) fn same_facts(&self, other: &Entry) -> bool {
        let same_hold = match self.stage {
            Stage::Claimed | Stage::Sending => {
                self.owner.as_ref().map(|o| &o.id) == other.owner.as_ref().map(|o| &o.id)
                    && self.sent_at_ms == other.sent_at_ms
            }
            _ => true,
        };
        self.stage == other.stage
            && self.task_id == other.task_id
            && self.outputs == other.outputs
            && self.failure == other.failure
            && same_hold
    }

    /// Creates that may have reached the service for this input (see
    /// [`creates_sent`](Self::creates_sent); entries of older versions counted only tasks).
    pub fn creates_that_may_have_landed(&self) -> u32 {
        self.creates_sent.max(self.tasks_created)
    }
}
