//! The rules of the ledger, as pure functions over entries: what an owner may do with an input it
//! finds in a given stage, and how a write that lost a race is reconciled.
//!
//! | found | owner alive | decision |
//! | --- | --- | --- |
//! | nothing, or an entry of another service (not done) | | create |
//! | claimed or sending | another owner, alive | busy: come back later |
//! | claimed | gone | create (nothing was sent) |
//! | sending | gone | unconfirmed (a create went out, its answer was never recorded); created again only with `retry_unconfirmed` |
//! | created | | resume the task by id (waiting costs no credits, so a crashed owner's task is picked up at once) |
//! | done | | done; resume the task to fetch again when the outputs are missing |
//! | done by a stand-in (the built-in emulator), found by a real service | | create: a stand-in's images are not generated ones |
//! | failed, recovery `retry` | | create, unless `max_tasks` creates may have reached the service (sent, and not refused by their answer) |
//! | failed, other recovery | | create only with `retry_failed` |
//! | unconfirmed | | refused; create only with `retry_unconfirmed` (given after it became unconfirmed, when the policy says when flags were given) |
//! | expired | | refused; create only with `regenerate_expired` (likewise) |
//!
//! An owner is gone when the policy is [`Takeover::ExclusiveStore`] (the store is held by one
//! process at a time, so an earlier owner is a dead run) or when its lease ended more than the
//! margin ago ([`Takeover::AfterLease`]).

use std::time::Duration;

use crate::error::Recovery;
use crate::ledger::entry::{Entry, Owner, Stage};

/// An owner without a lease in a leased store (an entry written by an older version) is taken
/// for gone this long after its entry last changed: Lambda's longest invocation.
const LEASE_OF_UNLEASED_OWNER: Duration = Duration::from_secs(15 * 60);

/// When another owner's work may be taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeover {
    /// One process holds the store at a time (the CLI's folder lock): any other owner found in
    /// it belongs to a run that ended.
    ExclusiveStore,
    /// Several processes share the store (Lambda invocations): another owner is gone only once
    /// its lease ended more than `margin` ago (the margin covers clock differences).
    AfterLease {
        /// Time added to a lease before it is taken for over.
        margin: Duration,
    },
}

/// What an adapter allows beyond the default of never paying twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Create again after a create that may have been accepted and charged (the user accepts
    /// paying twice).
    pub retry_unconfirmed: bool,
    /// Create again after a charged task's results were lost (generated and paid again).
    pub regenerate_expired: bool,
    /// Create again after a failure that would repeat (nothing was charged): true where running
    /// again is an explicit request (the CLI), false where it is a duplicate event (the Lambda).
    pub retry_failed: bool,
    /// The most tasks created for one input, counting those that failed on the service's side;
    /// `None` for no limit.
    pub max_tasks: Option<u32>,
    /// When another owner's work may be taken over.
    pub takeover: Takeover,
    /// When `retry_unconfirmed` and `regenerate_expired` were given (unix milliseconds): they
    /// then apply only to entries that became unconfirmed or expired before that moment, so a
    /// flag that stays set — a Lambda object's metadata, as old as its version — allows one
    /// more create, not one per delivery. `None`: they apply to every entry (a CLI run's flags
    /// are given anew by each command).
    pub flags_given_at_ms: Option<u64>,
}

impl Policy {
    /// The policy of a store held by one process (the CLI): failed inputs are tried again on
    /// every run, unconfirmed and expired ones only when asked.
    pub fn exclusive() -> Self {
        Policy {
            retry_unconfirmed: false,
            regenerate_expired: false,
            retry_failed: true,
            max_tasks: None,
            takeover: Takeover::ExclusiveStore,
            flags_given_at_ms: None,
        }
    }

    /// The policy of a shared store (Lambda invocations): leases with `margin`, at most
    /// `max_tasks` tasks per input, failures final.
    pub fn shared(margin: Duration, max_tasks: u32) -> Self {
        Policy {
            retry_unconfirmed: false,
            regenerate_expired: false,
            retry_failed: false,
            max_tasks: Some(max_tasks),
            takeover: Takeover::AfterLease { margin },
            flags_given_at_ms: None,
        }
    }
}

/// Why an input is not worked on although its entry was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A create was sent and its answer never seen: a task may exist and be charged.
    Unconfirmed,
    /// A charged task's results are gone.
    ResultsLost,
    /// The input failed before and would fail the same way.
    FailedBefore,
    /// The input had `tasks` creates that may have reached the service, the most allowed;
    /// each task failed on the service's side (or its create was never confirmed).
    TooManyTasks {
        /// Creates sent for the input that may have reached the service.
        tasks: u32,
    },
}

impl Refusal {
    /// The recovery that applies to the refused input.
    pub fn recovery(self) -> Recovery {
        match self {
            Refusal::Unconfirmed => Recovery::Unconfirmed,
            Refusal::ResultsLost => Recovery::ResultsLost,
            Refusal::FailedBefore | Refusal::TooManyTasks { .. } => Recovery::Permanent,
        }
    }
}

/// What an owner may do with the entry it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Claim it and create a task.
    Create,
    /// Take it over and resume its task.
    Resume,
    /// Its outputs are stored.
    Done,
    /// Another owner works on it.
    Busy,
    /// A create went out and its owner died before recording the answer: mark it unconfirmed.
    MarkUnconfirmed,
    /// Leave it as it is.
    Refuse(Refusal),
}

/// Which service an owner works for: its identity, and whether it is a stand-in (the built-in
/// emulator) whose results are not real.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Here<'a> {
    pub(crate) service: &'a str,
    pub(crate) stand_in: bool,
}

/// The decision for `found` (the entry read, if any) when `me` wants to work on it `here` at
/// `now_ms`. `outputs_present` says whether a done entry's outputs still exist.
pub(crate) fn decide(
    found: Option<&Entry>,
    me: &Owner,
    here: Here<'_>,
    now_ms: u64,
    policy: &Policy,
    outputs_present: bool,
) -> Decision {
    let Some(entry) = found else {
        return Decision::Create;
    };
    // Only a create can be paid twice: only claims and sends are kept for their owner.
    if matches!(entry.stage, Stage::Claimed | Stage::Sending)
        && let Some(owner) = &entry.owner
        && owner_alive(owner, entry, me, now_ms, policy.takeover)
    {
        return Decision::Busy;
    }
    let same_service = entry.service == here.service;
    if !same_service && entry.stage != Stage::Done {
        // Its task lives elsewhere and cannot be reached from here: this is new work here.
        return Decision::Create;
    }
    if entry.stage == Stage::Done && entry.stand_in && !here.stand_in {
        // A stand-in's images are not generated ones: the real service has yet to make them.
        return Decision::Create;
    }
    // A flag given before the entry reached its stage was not given for that stage.
    let flagged = |flag: bool| {
        flag && policy
            .flags_given_at_ms
            .is_none_or(|at| entry.updated_at_ms <= at)
    };
    match entry.stage {
        Stage::Claimed => Decision::Create,
        Stage::Sending if flagged(policy.retry_unconfirmed) => Decision::Create,
        Stage::Sending => Decision::MarkUnconfirmed,
        Stage::Created => Decision::Resume,
        Stage::Done if outputs_present => Decision::Done,
        Stage::Done if same_service && entry.task_id.is_some() => Decision::Resume,
        Stage::Done => Decision::Create,
        Stage::Failed => {
            let recovery = entry.failure.as_ref().map(|f| f.recovery);
            match (recovery, policy.max_tasks) {
                (_, Some(max)) if entry.creates_that_may_have_landed() >= max => {
                    Decision::Refuse(Refusal::TooManyTasks {
                        tasks: entry.creates_that_may_have_landed(),
                    })
                }
                (Some(Recovery::Retry), _) => Decision::Create,
                _ if policy.retry_failed => Decision::Create,
                _ => Decision::Refuse(Refusal::FailedBefore),
            }
        }
        Stage::Unconfirmed if flagged(policy.retry_unconfirmed) => Decision::Create,
        Stage::Unconfirmed => Decision::Refuse(Refusal::Unconfirmed),
        Stage::Expired if flagged(policy.regenerate_expired) => Decision::Create,
        Stage::Expired => Decision::Refuse(Refusal::ResultsLost),
    }
}

/// True when `owner` (found on `entry`) may still be working: not `me`, and its lease not yet
/// over by the policy's rule.
fn owner_alive(owner: &Owner, entry: &Entry, me: &Owner, now_ms: u64, takeover: Takeover) -> bool {
    if owner.id == me.id {
        return false;
    }
    match takeover {
        Takeover::ExclusiveStore => false,
        Takeover::AfterLease { margin } => {
            let lease_end = owner.lease_until_ms.unwrap_or_else(|| {
                entry
                    .updated_at_ms
                    .saturating_add(millis(LEASE_OF_UNLEASED_OWNER))
            });
            now_ms <= lease_end.saturating_add(millis(margin))
        }
    }
}

/// The result of reconciling a write that lost a race with what is there now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reconciled {
    /// Write this instead (conditionally on the version just read).
    Write(Box<Entry>),
    /// What is there already says as much or more: nothing to write.
    AlreadyThere,
    /// Another owner's work contradicts ours: never overwrite it.
    Conflict,
}

/// Reconciles `ours` (the entry a write wanted to leave) with `current` (what another owner
/// left meanwhile). Only facts about the same task move forward:
///
/// - our task is recorded with a later stage there: nothing to do;
/// - our task is recorded with an earlier stage, or the entry was marked unconfirmed while our
///   create's answer was on its way: ours is written (it knows more);
/// - anything else — another task, another owner's claim or create — is a conflict.
pub(crate) fn reconcile(current: &Entry, ours: &Entry) -> Reconciled {
    if current.same_facts(ours) {
        return Reconciled::AlreadyThere;
    }
    let Some(task_id) = &ours.task_id else {
        return Reconciled::Conflict;
    };
    match &current.task_id {
        Some(theirs) if theirs == task_id => {
            if ours.stage.rank() > current.stage.rank() {
                let mut merged = ours.clone();
                merged.tasks_created = merged.tasks_created.max(current.tasks_created);
                Reconciled::Write(Box::new(merged))
            } else {
                Reconciled::AlreadyThere
            }
        }
        None if current.stage == Stage::Unconfirmed => {
            let mut merged = ours.clone();
            merged.tasks_created = merged.tasks_created.max(current.tasks_created);
            Reconciled::Write(Box::new(merged))
        }
        _ => Reconciled::Conflict,
    }
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::entry::Failure;

    const NOW: u64 = 1_000_000_000_000;
    const SVC: Here<'static> = Here {
        service: "svc",
        stand_in: false,
    };
    const ELSEWHERE: Here<'static> = Here {
        service: "elsewhere",
        stand_in: false,
    };

    fn entry(stage: Stage, owner: Option<Owner>) -> Entry {
        let mut entry = Entry::claimed("in.png", "svc", &Owner::exclusive("x"), NOW);
        entry.stage = stage;
        entry.owner = owner;
        if matches!(stage, Stage::Created | Stage::Done) {
            entry.task_id = Some("T1".into());
            entry.tasks_created = 1;
        }
        entry
    }

    fn failed(recovery: Recovery, tasks: u32) -> Entry {
        let mut entry = entry(Stage::Failed, None);
        entry.failure = Some(Failure::new("no", recovery));
        entry.tasks_created = tasks;
        entry
    }

    fn shared() -> Policy {
        Policy::shared(Duration::from_secs(30), 3)
    }

    #[test]
    fn a_live_owner_keeps_its_work_until_its_lease_and_margin_end() {
        let me = Owner::leased("me", NOW + 60_000);
        let other = Owner::leased("other", NOW + 100_000);
        for stage in [Stage::Claimed, Stage::Sending] {
            let found = entry(stage, Some(other.clone()));
            let at = |now| decide(Some(&found), &me, SVC, now, &shared(), true);
            assert_eq!(at(NOW), Decision::Busy, "{stage}");
            assert_eq!(
                at(NOW + 130_000),
                Decision::Busy,
                "{stage}: within the margin"
            );
            assert_ne!(at(NOW + 130_001), Decision::Busy, "{stage}: lease over");
        }
        // The same owner coming back (a retry within one invocation) is not blocked by itself.
        let mine = entry(Stage::Claimed, Some(me.clone()));
        assert_eq!(
            decide(Some(&mine), &me, SVC, NOW, &shared(), true),
            Decision::Create
        );
        // A created task is resumed at once, whoever owns it: waiting costs no credits.
        let found = entry(Stage::Created, Some(other.clone()));
        assert_eq!(
            decide(Some(&found), &me, SVC, NOW, &shared(), true),
            Decision::Resume
        );
        // With an exclusive store, every other owner is a dead run.
        let found = entry(Stage::Claimed, Some(other));
        assert_eq!(
            decide(Some(&found), &me, SVC, NOW, &Policy::exclusive(), true),
            Decision::Create
        );
    }

    #[test]
    fn an_entry_without_a_lease_in_a_shared_store_ends_fifteen_minutes_after_its_change() {
        let me = Owner::leased("me", NOW);
        let found = entry(Stage::Sending, Some(Owner::exclusive("old")));
        let at = |now| decide(Some(&found), &me, SVC, now, &shared(), true);
        assert_eq!(at(NOW + 900_000), Decision::Busy);
        assert_eq!(at(NOW + 930_001), Decision::MarkUnconfirmed);
    }

    #[test]
    fn the_table() {
        let me = Owner::exclusive("me");
        let gone = Some(Owner::exclusive("gone"));
        let cli = Policy::exclusive();
        let lambda = Policy {
            takeover: Takeover::ExclusiveStore,
            ..shared()
        };
        let d = |found: &Entry, policy: &Policy, outputs| {
            decide(Some(found), &me, SVC, NOW, policy, outputs)
        };
        assert_eq!(decide(None, &me, SVC, NOW, &cli, true), Decision::Create);
        assert_eq!(
            d(&entry(Stage::Claimed, gone.clone()), &cli, true),
            Decision::Create
        );
        assert_eq!(
            d(&entry(Stage::Sending, gone.clone()), &cli, true),
            Decision::MarkUnconfirmed
        );
        let retry_unconfirmed = Policy {
            retry_unconfirmed: true,
            ..cli
        };
        assert_eq!(
            d(
                &entry(Stage::Sending, gone.clone()),
                &retry_unconfirmed,
                true
            ),
            Decision::Create
        );
        assert_eq!(
            d(&entry(Stage::Created, gone.clone()), &cli, true),
            Decision::Resume
        );
        assert_eq!(d(&entry(Stage::Done, None), &cli, true), Decision::Done);
        assert_eq!(d(&entry(Stage::Done, None), &cli, false), Decision::Resume);
        // Failures: a service-side one is tried again up to the limit; others as the policy says.
        assert_eq!(
            d(&failed(Recovery::Retry, 2), &lambda, true),
            Decision::Create
        );
        assert_eq!(
            d(&failed(Recovery::Retry, 3), &lambda, true),
            Decision::Refuse(Refusal::TooManyTasks { tasks: 3 })
        );
        assert_eq!(
            d(&failed(Recovery::Permanent, 0), &lambda, true),
            Decision::Refuse(Refusal::FailedBefore)
        );
        assert_eq!(
            d(&failed(Recovery::Permanent, 0), &cli, true),
            Decision::Create
        );
        assert_eq!(
            d(&entry(Stage::Unconfirmed, None), &cli, true),
            Decision::Refuse(Refusal::Unconfirmed)
        );
        assert_eq!(
            d(&entry(Stage::Unconfirmed, None), &retry_unconfirmed, true),
            Decision::Create
        );
        assert_eq!(
            d(&entry(Stage::Expired, None), &cli, true),
            Decision::Refuse(Refusal::ResultsLost)
        );
        let regenerate = Policy {
            regenerate_expired: true,
            ..cli
        };
        assert_eq!(
            d(&entry(Stage::Expired, None), &regenerate, true),
            Decision::Create
        );
    }

    #[test]
    fn a_flag_left_set_allows_one_more_create_not_one_per_delivery() {
        let me = Owner::exclusive("me");
        let given_at = NOW;
        let policy = Policy {
            retry_unconfirmed: true,
            regenerate_expired: true,
            flags_given_at_ms: Some(given_at),
            ..shared()
        };
        for stage in [Stage::Unconfirmed, Stage::Expired] {
            let mut before = entry(stage, None);
            before.updated_at_ms = given_at - 1;
            assert_eq!(
                decide(Some(&before), &me, SVC, NOW, &policy, true),
                Decision::Create,
                "{stage}: the flag was set after it"
            );
            let mut after = before.clone();
            after.updated_at_ms = given_at + 1;
            assert!(
                matches!(
                    decide(Some(&after), &me, SVC, NOW, &policy, true),
                    Decision::Refuse(_)
                ),
                "{stage}: the flag was already there when the retry failed again"
            );
        }
    }

    #[test]
    fn work_of_another_service_is_new_work_here_except_finished_outputs() {
        let me = Owner::exclusive("me");
        let cli = Policy::exclusive();
        for stage in [
            Stage::Created,
            Stage::Unconfirmed,
            Stage::Expired,
            Stage::Sending,
        ] {
            let found = entry(stage, None);
            assert_eq!(
                decide(Some(&found), &me, ELSEWHERE, NOW, &cli, true),
                Decision::Create,
                "{stage}"
            );
        }
        let done = entry(Stage::Done, None);
        assert_eq!(
            decide(Some(&done), &me, ELSEWHERE, NOW, &cli, true),
            Decision::Done
        );
        assert_eq!(
            decide(Some(&done), &me, ELSEWHERE, NOW, &cli, false),
            Decision::Create
        );
    }

    #[test]
    fn reconciling_moves_only_our_own_task_forward() {
        let created = entry(Stage::Created, Some(Owner::exclusive("a")));
        let mut done = created.clone();
        done.stage = Stage::Done;
        done.outputs = vec!["out-1.jpg".into()];
        assert_eq!(
            reconcile(&created, &done),
            Reconciled::Write(Box::new(done.clone()))
        );
        assert_eq!(reconcile(&done, &created), Reconciled::AlreadyThere);
        assert_eq!(reconcile(&done, &done), Reconciled::AlreadyThere);
        // Our create's answer arrives after another owner marked the input unconfirmed.
        let unconfirmed = entry(Stage::Unconfirmed, None);
        assert!(matches!(
            reconcile(&unconfirmed, &created),
            Reconciled::Write(e) if e.task_id.as_deref() == Some("T1")
        ));
        // Another task, another owner's claim: never overwritten.
        let mut other_task = created.clone();
        other_task.task_id = Some("T2".into());
        assert_eq!(reconcile(&other_task, &done), Reconciled::Conflict);
        let claim = entry(Stage::Claimed, Some(Owner::exclusive("b")));
        assert_eq!(reconcile(&claim, &created), Reconciled::Conflict);
        let mut sending = entry(Stage::Sending, Some(Owner::exclusive("me")));
        sending.sent_at_ms = Some(NOW);
        assert_eq!(reconcile(&claim, &sending), Reconciled::Conflict);
    }
}
