//! The ledger conformance suite: every transition and every forbidden one, written once and run
//! against every [`LedgerStore`] (the in-memory store here, the CLI's journal file and the
//! Lambda's S3 objects in their crates' tests). Enabled by the `test-support` feature.
//!
//! Each check takes a fresh, empty store from the caller and panics with the check's name on
//! a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test suite: a panic is the report

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Operation, Recovery};
use crate::ledger::{
    Begin, Clock, Entry, Failure, ImageIdentity, InputKey, Ledger, LedgerError, LedgerStore,
    ManualClock, Owner, Policy, Refusal, Stage, Write,
};
use crate::request::GenerationOptions;
use crate::state::TaskState;

/// A fixed start time for the suite's clock (unix ms).
const T0: u64 = 1_800_000_000_000;
/// The lease margin of the suite's shared policy.
const MARGIN: Duration = Duration::from_secs(30);

/// Runs every check, each on a store from `fresh`.
pub async fn run<S: LedgerStore>(mut fresh: impl FnMut() -> S) {
    store_conditions(&fresh()).await;
    entries_keep_every_field(&fresh()).await;
    a_create_walks_every_stage(&fresh()).await;
    a_dead_sender_leaves_unconfirmed(&fresh()).await;
    a_live_owner_is_busy_until_its_lease_ends(&fresh()).await;
    a_created_task_is_resumed_never_created(&fresh()).await;
    a_ticket_taken_over_cannot_send(&fresh()).await;
    a_late_answer_is_reconciled(&fresh()).await;
    failures_follow_their_recovery(&fresh()).await;
    concurrent_begins_claim_once(&fresh()).await;
    forbidden_steps_write_nothing(&fresh()).await;
    a_lost_sending_answer_is_taken_back(&fresh()).await;
    a_send_is_ours_only_with_our_owner_and_time(&fresh()).await;
    stand_in_results_are_not_done_for_the_real_service(&fresh()).await;
    refused_creates_do_not_count_against_the_limit(&fresh()).await;
}

/// A store whose chosen `replace` lands but answers with an error: a write whose answer was
/// lost (a timeout, a 5xx after the write).
#[derive(Debug)]
struct LosesAnswers<'s, S> {
    inner: &'s S,
    lose_next_replace: std::sync::atomic::AtomicBool,
}

impl<S: LedgerStore> LedgerStore for LosesAnswers<'_, S> {
    type Version = S::Version;

    async fn load(
        &self,
        key: &InputKey,
    ) -> Result<Option<(Entry, Self::Version)>, crate::ledger::StoreError> {
        self.inner.load(key).await
    }

    async fn insert(
        &self,
        key: &InputKey,
        entry: &Entry,
    ) -> Result<Write<Self::Version>, crate::ledger::StoreError> {
        self.inner.insert(key, entry).await
    }

    async fn replace(
        &self,
        key: &InputKey,
        entry: &Entry,
        expected: &Self::Version,
    ) -> Result<Write<Self::Version>, crate::ledger::StoreError> {
        let written = self.inner.replace(key, entry, expected).await?;
        if self
            .lose_next_replace
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(crate::ledger::StoreError::new("the answer was lost"));
        }
        Ok(written)
    }
}

fn key(name: &str) -> InputKey {
    let options = GenerationOptions::prompt("a beach").unwrap();
    InputKey::derive(&ImageIdentity::of_bytes(name.as_bytes()), &options, name)
}

fn ledger<'s, S: LedgerStore>(
    store: &'s S,
    policy: Policy,
    clock: &Arc<ManualClock>,
) -> Ledger<&'s S> {
    let clock: Arc<dyn Clock> = clock.clone();
    Ledger::new(store, "svc", policy).with_clock(clock)
}

fn shared() -> Policy {
    Policy::shared(MARGIN, 2)
}

fn owner(id: &str) -> Owner {
    Owner::leased(id, T0 + 60_000)
}

async fn stored<S: LedgerStore>(store: &S, key: &InputKey) -> Entry {
    store.load(key).await.unwrap().expect("an entry").0
}

fn ticket_of<'l, S: LedgerStore>(begin: Begin<'l, S>, check: &str) -> crate::ledger::Ticket<'l, S> {
    match begin {
        Begin::Create(ticket) | Begin::Resume(ticket) => ticket,
        other => panic!("{check}: expected a ticket, got {other:?}"),
    }
}

async fn created<'l, S: LedgerStore>(
    ledger: &'l Ledger<S>,
    key: &InputKey,
    who: &Owner,
    task_id: &str,
) -> crate::ledger::Ticket<'l, S> {
    let begin = ledger.begin(key, "in.png", who, |_| true).await.unwrap();
    let Begin::Create(mut ticket) = begin else {
        panic!("expected Create, got {begin:?}");
    };
    ticket.mark_sending().await.unwrap();
    ticket.record_create(&Ok(task_id.to_owned())).await.unwrap();
    ticket
}

fn failed_task(state: TaskState) -> Error {
    Error::TaskFailed {
        task_id: "T".into(),
        state,
        message: None,
    }
}

/// Insert only where nothing is, replace only the version read.
async fn store_conditions<S: LedgerStore>(store: &S) {
    let check = "store_conditions";
    let key = key(check);
    assert!(store.load(&key).await.unwrap().is_none(), "{check}: empty");
    let entry = Entry::claimed("a.png", "svc", &owner("a"), T0);
    let Write::Written(v1) = store.insert(&key, &entry).await.unwrap() else {
        panic!("{check}: first insert");
    };
    assert!(
        matches!(store.insert(&key, &entry).await.unwrap(), Write::Conflict),
        "{check}: a second insert"
    );
    let mut next = entry.clone();
    next.stage = Stage::Sending;
    let Write::Written(v2) = store.replace(&key, &next, &v1).await.unwrap() else {
        panic!("{check}: replace on the version read");
    };
    assert!(
        matches!(
            store.replace(&key, &entry, &v1).await.unwrap(),
            Write::Conflict
        ),
        "{check}: replace on a stale version"
    );
    let (found, v3) = store.load(&key).await.unwrap().unwrap();
    assert_eq!(found, next, "{check}: the last write is read back");
    assert_eq!(format!("{v2:?}"), format!("{v3:?}"), "{check}: versions");
    assert!(
        store.load(&self::key("other")).await.unwrap().is_none(),
        "{check}: keys are separate"
    );
}

/// Every field survives the store.
async fn entries_keep_every_field<S: LedgerStore>(store: &S) {
    let check = "entries_keep_every_field";
    let key = key(check);
    let entry = Entry {
        stage: Stage::Expired,
        label: "shelf/Café mug \"2\".png".into(),
        service: "https://techhk.aoscdn.com/".into(),
        owner: Some(Owner::leased("req-1", T0)),
        task_id: Some("T-42".into()),
        tasks_created: 3,
        creates_sent: 4,
        stand_in: true,
        sent_at_ms: Some(T0 - 5),
        updated_at_ms: T0,
        outputs: vec!["a/1.jpg".into(), "a/2.jpg".into()],
        credits: 6,
        credits_at_stake: 6,
        failure: Some(Failure {
            message: "result image 1 is no longer available (HTTP 403)".into(),
            recovery: Recovery::ResultsLost,
            http_status: Some(403),
            task_state: Some(1),
            task_id: Some("T-42".into()),
            credits_spent: true,
        }),
    };
    store.insert(&key, &entry).await.unwrap();
    assert_eq!(stored(store, &key).await, entry, "{check}");
}

/// claimed → sending → created → done; done again is done, or resumed when outputs are gone.
async fn a_create_walks_every_stage<S: LedgerStore>(store: &S) {
    let check = "a_create_walks_every_stage";
    let clock = Arc::new(ManualClock::at(T0));
    let ledger = ledger(store, Policy::exclusive(), &clock);
    let key = key(check);
    let me = Owner::exclusive("run-1");
    let mut ticket = ticket_of(
        ledger.begin(&key, "in.png", &me, |_| true).await.unwrap(),
        check,
    );
    let entry = stored(store, &key).await;
    assert_eq!(
        (entry.stage, entry.owner.as_ref()),
        (Stage::Claimed, Some(&me)),
        "{check}"
    );
    clock.advance_ms(10);
    ticket.mark_sending().await.unwrap();
    let entry = stored(store, &key).await;
    assert_eq!(entry.stage, Stage::Sending, "{check}");
    assert_eq!(entry.sent_at_ms, Some(T0 + 10), "{check}");
    ticket.record_create(&Ok("T1".into())).await.unwrap();
    let entry = stored(store, &key).await;
    assert_eq!(
        (entry.stage, entry.task_id.as_deref(), entry.tasks_created),
        (Stage::Created, Some("T1"), 1),
        "{check}"
    );
    ticket.done(vec!["in-1.jpg".into()], 3).await.unwrap();
    let entry = stored(store, &key).await;
    assert_eq!(
        (
            entry.stage,
            entry.outputs.clone(),
            entry.credits,
            entry.owner
        ),
        (Stage::Done, vec!["in-1.jpg".to_owned()], 3, None),
        "{check}"
    );
    let again = Owner::exclusive("run-2");
    assert!(
        matches!(ledger.begin(&key, "in.png", &again, |_| true).await.unwrap(), Begin::Done(e) if e.task_id.as_deref() == Some("T1")),
        "{check}: done with outputs"
    );
    let resumed = ticket_of(
        ledger
            .begin(&key, "in.png", &again, |_| false)
            .await
            .unwrap(),
        check,
    );
    assert_eq!(resumed.task_id(), Some("T1"), "{check}: outputs missing");
    assert_eq!(stored(store, &key).await.tasks_created, 1, "{check}");
}

/// A sender that died after `sending` leaves `unconfirmed`: refused, unless asked.
async fn a_dead_sender_leaves_unconfirmed<S: LedgerStore>(store: &S) {
    let check = "a_dead_sender_leaves_unconfirmed";
    let clock = Arc::new(ManualClock::at(T0));
    let ledger = ledger(store, Policy::exclusive(), &clock);
    let key = key(check);
    let mut ticket = ticket_of(
        ledger
            .begin(&key, "in.png", &Owner::exclusive("dead"), |_| true)
            .await
            .unwrap(),
        check,
    );
    ticket.mark_sending().await.unwrap();
    drop(ticket); // the run dies with the create on its way
    let next = Owner::exclusive("next");
    for _ in 0..2 {
        match ledger.begin(&key, "in.png", &next, |_| true).await.unwrap() {
            Begin::Refused {
                entry,
                refusal: Refusal::Unconfirmed,
            } => {
                assert_eq!(entry.stage, Stage::Unconfirmed, "{check}");
                let failure = entry.failure.expect("a failure");
                assert!(failure.credits_spent, "{check}");
                assert_eq!(failure.recovery, Recovery::Unconfirmed, "{check}");
            }
            other => panic!("{check}: expected Refused(Unconfirmed), got {other:?}"),
        }
    }
    assert_eq!(
        stored(store, &key).await.stage,
        Stage::Unconfirmed,
        "{check}"
    );
    let asked = self::ledger(
        store,
        Policy {
            retry_unconfirmed: true,
            ..Policy::exclusive()
        },
        &clock,
    );
    assert!(
        matches!(
            asked.begin(&key, "in.png", &next, |_| true).await.unwrap(),
            Begin::Create(_)
        ),
        "{check}: retry_unconfirmed creates again"
    );
}

/// In a shared store a live owner's work is left alone until its lease and the margin end.
async fn a_live_owner_is_busy_until_its_lease_ends<S: LedgerStore>(store: &S) {
    let check = "a_live_owner_is_busy_until_its_lease_ends";
    let clock = Arc::new(ManualClock::at(T0));
    let ledger = ledger(store, shared(), &clock);
    let key = key(check);
    let first = ticket_of(
        ledger
            .begin(&key, "in.png", &owner("a"), |_| true)
            .await
            .unwrap(),
        check,
    );
    let b = Owner::leased("b", T0 + 500_000);
    assert!(
        matches!(
            ledger.begin(&key, "in.png", &b, |_| true).await.unwrap(),
            Begin::Busy(_)
        ),
        "{check}: at once"
    );
    clock.advance_ms(60_000 + 30_000);
    assert!(
        matches!(
            ledger.begin(&key, "in.png", &b, |_| true).await.unwrap(),
            Begin::Busy(_)
        ),
        "{check}: at the end of lease and margin"
    );
    clock.advance_ms(1);
    let taken = ticket_of(
        ledger.begin(&key, "in.png", &b, |_| true).await.unwrap(),
        check,
    );
    assert_eq!(
        taken.entry().stage,
        Stage::Claimed,
        "{check}: nothing was sent"
    );
    assert_eq!(stored(store, &key).await.owner, Some(b), "{check}");
    drop(first);
}

/// A created task whose owner is gone (or released it) is resumed by id.
async fn a_created_task_is_resumed_never_created<S: LedgerStore>(store: &S) {
    let check = "a_created_task_is_resumed_never_created";
    let clock = Arc::new(ManualClock::at(T0));
    let ledger = ledger(store, shared(), &clock);
    let key = key(check);
    let mut first = created(&ledger, &key, &owner("a"), "T1").await;
    first.release().await.unwrap();
    let resumed = ticket_of(
        ledger
            .begin(&key, "in.png", &owner("b"), |_| true)
            .await
            .unwrap(),
        check,
    );
    assert_eq!(resumed.task_id(), Some("T1"), "{check}");
    let entry = stored(store, &key).await;
    assert_eq!(
        (entry.stage, entry.tasks_created, entry.owner),
        (Stage::Created, 1, Some(owner("b"))),
        "{check}"
    );
}

/// An owner whose input was taken over cannot move it to `sending`: nothing is sent.
async fn a_ticket_taken_over_cannot_send<S: LedgerStore>(store: &S) {
    let check = "a_ticket_taken_over_cannot_send";
    let clock = Arc::new(ManualClock::at(T0));
    let ledger = ledger(store, shared(), &clock);
    let key = key(check);
    let mut stalled = ticket_of(
        ledger
            .begin(&key, "in.png", &owner("a"), |_| true)
            .await
            .unwrap(),
        check,
    );
    clock.advance_ms(60_000 + 30_001);
    let b = Owner::leased("b", T0 + 500_000);
    let _taken = ticket_of(
        ledger.begin(&key, "in.png", &b, |_| true).await.unwrap(),
        check,
    );
    let refused = stalled.mark_sending().await;
    assert!(
        matches!(refused, Err(LedgerError::Conflict { .. })),
        "{check}: {refused:?}"
    );
    let entry = stored(store, &key).await;
    assert_eq!(
        (entry.stage, entry.owner),
        (Stage::Claimed, Some(b)),
        "{check}: the other claim stands"
    );
}

/// The answer of a create that arrives after the input was marked unconfirmed is recorded.
async fn a_late_answer_is_reconciled<S: LedgerStore>(store: &S) {
    let check = "a_late_answer_is_reconciled";
    let clock = Arc::new(ManualClock::at(T0));
    let ledger = ledger(store, shared(), &clock);
    let key = key(check);
    let mut slow = ticket_of(
        ledger
            .begin(&key, "in.png", &owner("a"), |_| true)
            .await
            .unwrap(),
        check,
    );
    slow.mark_sending().await.unwrap();
    clock.advance_ms(60_000 + 30_001);
    let b = Owner::leased("b", T0 + 500_000);
    assert!(
        matches!(
            ledger.begin(&key, "in.png", &b, |_| true).await.unwrap(),
            Begin::Refused {
                refusal: Refusal::Unconfirmed,
                ..
            }
        ),
        "{check}"
    );
    slow.record_create(&Ok("T1".into())).await.unwrap();
    let entry = stored(store, &key).await;
    assert_eq!(
        (entry.stage, entry.task_id.as_deref()),
        (Stage::Created, Some("T1")),
        "{check}"
    );
    assert!(
        matches!(ledger.begin(&key, "in.png", &b, |_| true).await.unwrap(), Begin::Resume(t) if t.task_id() == Some("T1")),
        "{check}: then resumed"
    );
}

/// Each recovery leaves its stage, and the next begin follows the policy.
async fn failures_follow_their_recovery<S: LedgerStore>(store: &S) {
    let check = "failures_follow_their_recovery";
    let clock = Arc::new(ManualClock::at(T0));
    let lambda = ledger(store, shared(), &clock);
    let cli = ledger(store, Policy::exclusive(), &clock);

    // A failure on the service's side: a new task, up to the limit (2 here).
    let key1 = key("service-side");
    for (n, task) in ["T1", "T2"].into_iter().enumerate() {
        let mut ticket = created(&lambda, &key1, &owner(&format!("o{n}")), task).await;
        ticket
            .fail_with(&failed_task(TaskState::ProcessingTimedOut))
            .await
            .unwrap();
        let entry = stored(store, &key1).await;
        assert_eq!(entry.stage, Stage::Failed, "{check}");
        assert_eq!(entry.failure.unwrap().recovery, Recovery::Retry, "{check}");
    }
    assert!(
        matches!(
            lambda
                .begin(&key1, "in.png", &owner("o3"), |_| true)
                .await
                .unwrap(),
            Begin::Refused {
                refusal: Refusal::TooManyTasks { tasks: 2 },
                ..
            }
        ),
        "{check}: at most 2 tasks"
    );

    // A verdict on the content: final in the Lambda, tried again by a CLI run.
    let key2 = key("verdict");
    let mut ticket = created(&lambda, &key2, &owner("a"), "T1").await;
    ticket
        .fail_with(&failed_task(TaskState::InvalidPrompt))
        .await
        .unwrap();
    assert!(
        matches!(
            lambda
                .begin(&key2, "in.png", &owner("b"), |_| true)
                .await
                .unwrap(),
            Begin::Refused {
                refusal: Refusal::FailedBefore,
                ..
            }
        ),
        "{check}"
    );
    assert!(
        matches!(
            cli.begin(&key2, "in.png", &Owner::exclusive("run"), |_| true)
                .await
                .unwrap(),
            Begin::Create(_)
        ),
        "{check}"
    );

    // A 404 on a task the service issued: expired, charged or maybe.
    let key3 = key("gone");
    let mut ticket = created(&lambda, &key3, &owner("a"), "T1").await;
    ticket
        .fail_with(&Error::NotFound {
            during: Operation::Query,
            message: "no such task".into(),
        })
        .await
        .unwrap();
    let entry = stored(store, &key3).await;
    assert_eq!(entry.stage, Stage::Expired, "{check}");
    assert!(entry.failure.unwrap().credits_spent, "{check}");
    for ledger in [&lambda, &cli] {
        assert!(
            matches!(
                ledger
                    .begin(&key3, "in.png", &owner("b"), |_| true)
                    .await
                    .unwrap(),
                Begin::Refused {
                    refusal: Refusal::ResultsLost,
                    ..
                }
            ),
            "{check}: a 404 never starts a new task on its own"
        );
    }

    // A gateway timeout on the create: unconfirmed.
    let key4 = key("gateway");
    let mut ticket = ticket_of(
        lambda
            .begin(&key4, "in.png", &owner("a"), |_| true)
            .await
            .unwrap(),
        check,
    );
    ticket.mark_sending().await.unwrap();
    ticket
        .record_create(&Err(Error::Server {
            during: Operation::Create,
            status: 504,
            message: "gateway timeout".into(),
            attempts: 1,
        }))
        .await
        .unwrap();
    assert_eq!(
        stored(store, &key4).await.stage,
        Stage::Unconfirmed,
        "{check}"
    );

    // A wait that timed out: the task stays, released, and is resumed at once.
    let key5 = key("timeout");
    let mut ticket = created(&lambda, &key5, &owner("a"), "T1").await;
    ticket
        .fail_with(&Error::Timeout {
            task_id: "T1".into(),
            waited: Duration::from_secs(300),
            last_state: TaskState::Processing,
        })
        .await
        .unwrap();
    let entry = stored(store, &key5).await;
    assert_eq!(
        (entry.stage, entry.owner.is_none()),
        (Stage::Created, true),
        "{check}"
    );
    assert!(
        matches!(lambda.begin(&key5, "in.png", &owner("b"), |_| true).await.unwrap(), Begin::Resume(t) if t.task_id() == Some("T1")),
        "{check}"
    );

    // A create the service surely did not accept: tried again, no task counted.
    let key6 = key("refused");
    let mut ticket = ticket_of(
        lambda
            .begin(&key6, "in.png", &owner("a"), |_| true)
            .await
            .unwrap(),
        check,
    );
    ticket.mark_sending().await.unwrap();
    ticket
        .record_create(&Err(Error::RateLimited {
            during: Operation::Create,
            message: "slow down".into(),
            retry_after: None,
            attempts: 3,
        }))
        .await
        .unwrap();
    let entry = stored(store, &key6).await;
    assert_eq!(
        (entry.stage, entry.tasks_created, entry.creates_sent),
        (Stage::Failed, 0, 0),
        "{check}: a refused create counts as neither a task nor a create that may have landed"
    );
    assert!(
        matches!(
            lambda
                .begin(&key6, "in.png", &owner("b"), |_| true)
                .await
                .unwrap(),
            Begin::Create(_)
        ),
        "{check}"
    );
}

/// Two owners beginning at the same moment: one claim, one busy.
async fn concurrent_begins_claim_once<S: LedgerStore>(store: &S) {
    let check = "concurrent_begins_claim_once";
    let clock = Arc::new(ManualClock::at(T0));
    let ledger = ledger(store, shared(), &clock);
    let key = key(check);
    let (a, b) = (owner("a"), owner("b"));
    let (first, second) = tokio::join!(
        ledger.begin(&key, "in.png", &a, |_| true),
        ledger.begin(&key, "in.png", &b, |_| true)
    );
    let claims = [first.unwrap(), second.unwrap()]
        .iter()
        .filter(|begin| matches!(begin, Begin::Create(_)))
        .count();
    assert_eq!(claims, 1, "{check}");
}

/// Steps out of order are refused and write nothing.
async fn forbidden_steps_write_nothing<S: LedgerStore>(store: &S) {
    let check = "forbidden_steps_write_nothing";
    let clock = Arc::new(ManualClock::at(T0));
    let ledger = ledger(store, shared(), &clock);
    let key = key(check);
    let mut ticket = ticket_of(
        ledger
            .begin(&key, "in.png", &owner("a"), |_| true)
            .await
            .unwrap(),
        check,
    );
    let before = stored(store, &key).await;
    assert!(
        matches!(
            ticket.record_create(&Ok("T1".into())).await,
            Err(LedgerError::OutOfOrder { .. })
        ),
        "{check}: an answer before sending"
    );
    assert!(
        matches!(
            ticket.done(vec![], 0).await,
            Err(LedgerError::OutOfOrder { .. })
        ),
        "{check}: done without a task"
    );
    assert_eq!(stored(store, &key).await, before, "{check}");
    ticket.mark_sending().await.unwrap();
    assert!(
        matches!(
            ticket.mark_sending().await,
            Err(LedgerError::OutOfOrder { .. })
        ),
        "{check}: sending twice"
    );
    ticket.record_create(&Ok("T1".into())).await.unwrap();
    let before = stored(store, &key).await;
    assert!(
        matches!(
            ticket.mark_sending().await,
            Err(LedgerError::OutOfOrder { .. })
        ),
        "{check}: a second create on a created input"
    );
    assert_eq!(stored(store, &key).await, before, "{check}");
}

/// A `sending` write that landed but whose answer was lost: nothing was sent, so the mark is
/// taken back — the input is tried again later, never refused as "may have been charged".
async fn a_lost_sending_answer_is_taken_back<S: LedgerStore>(store: &S) {
    let check = "a_lost_sending_answer_is_taken_back";
    let clock = Arc::new(ManualClock::at(T0));
    let losing = LosesAnswers {
        inner: store,
        lose_next_replace: false.into(),
    };
    let ledger = ledger(&losing, shared(), &clock);
    let key = key(check);
    let mut ticket = ticket_of(
        ledger
            .begin(&key, "in.png", &owner("a"), |_| true)
            .await
            .unwrap(),
        check,
    );
    losing
        .lose_next_replace
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        matches!(ticket.mark_sending().await, Err(LedgerError::Store(_))),
        "{check}: the write's answer was lost"
    );
    let entry = stored(store, &key).await;
    assert_eq!(
        (entry.stage, entry.creates_sent),
        (Stage::Claimed, 0),
        "{check}: the mark was taken back"
    );
    ticket
        .fail(Failure::new("not sent", Recovery::Retry))
        .await
        .unwrap();
    clock.advance_ms(3_600_000);
    assert!(
        matches!(
            ledger
                .begin(&key, "in.png", &owner("b"), |_| true)
                .await
                .unwrap(),
            Begin::Create(_)
        ),
        "{check}: tried again, not refused as unconfirmed"
    );
}

/// Two jobs under one owner id (an invocation holding two deliveries of one object): the one
/// whose send came second is not taken for the first, so only one create goes out.
async fn a_send_is_ours_only_with_our_owner_and_time<S: LedgerStore>(store: &S) {
    let check = "a_send_is_ours_only_with_our_owner_and_time";
    let clock = Arc::new(ManualClock::at(T0));
    let ledger = ledger(store, shared(), &clock);
    let key = key(check);
    let same = owner("invocation");
    let mut first = ticket_of(
        ledger.begin(&key, "in.png", &same, |_| true).await.unwrap(),
        check,
    );
    // The second job claims again over the first's claim (same owner id: not busy).
    let mut second = ticket_of(
        ledger.begin(&key, "in.png", &same, |_| true).await.unwrap(),
        check,
    );
    clock.advance_ms(1);
    second.mark_sending().await.unwrap();
    clock.advance_ms(1);
    assert!(
        matches!(
            first.mark_sending().await,
            Err(LedgerError::Conflict { .. })
        ),
        "{check}: the first job's claim was superseded: it must not send"
    );
    let entry = stored(store, &key).await;
    assert_eq!(
        (entry.stage, entry.creates_sent),
        (Stage::Sending, 1),
        "{check}"
    );
}

/// The built-in emulator's finished entries are done for another stand-in run, and new work for
/// the real service (their images are not generated ones).
async fn stand_in_results_are_not_done_for_the_real_service<S: LedgerStore>(store: &S) {
    let check = "stand_in_results_are_not_done_for_the_real_service";
    let clock = Arc::new(ManualClock::at(T0));
    let cli = Policy::exclusive();
    let stand_in = ledger(store, cli, &clock).with_stand_in(true);
    let key = key(check);
    let mut ticket = created(&stand_in, &key, &owner("emulated run"), "E1").await;
    ticket.done(vec!["mug-1.jpg".into()], 3).await.unwrap();
    assert!(stored(store, &key).await.stand_in, "{check}: marked");
    assert!(
        matches!(
            stand_in
                .begin(&key, "in.png", &owner("next emulated run"), |_| true)
                .await
                .unwrap(),
            Begin::Done(_)
        ),
        "{check}: done for a stand-in"
    );
    let real = ledger(store, cli, &clock);
    let Begin::Create(mut ticket) = real
        .begin(&key, "in.png", &owner("real run"), |_| true)
        .await
        .unwrap()
    else {
        panic!("{check}: a stand-in's result is new work for the real service");
    };
    assert!(!ticket.entry().stand_in, "{check}");
    ticket.mark_sending().await.unwrap();
    ticket.record_create(&Ok("R1".into())).await.unwrap();
    ticket.done(vec!["mug-1.jpg".into()], 6).await.unwrap();
    assert!(
        matches!(
            stand_in
                .begin(&key, "in.png", &owner("emulated again"), |_| true)
                .await
                .unwrap(),
            Begin::Done(_)
        ),
        "{check}: a real result is done for a stand-in too (never overwritten by one)"
    );
}

/// The limit on tasks per input counts creates that may have reached the service: sent and
/// not refused by their answer.
async fn refused_creates_do_not_count_against_the_limit<S: LedgerStore>(store: &S) {
    let check = "refused_creates_do_not_count_against_the_limit";
    let clock = Arc::new(ManualClock::at(T0));
    let lambda = ledger(store, shared(), &clock);
    let key = key(check);
    // Two creates whose tasks failed on the service's side reach the limit of 2…
    for (n, who) in ["a", "b"].into_iter().enumerate() {
        let mut ticket = created(&lambda, &key, &owner(who), &format!("T{n}")).await;
        ticket
            .fail_with(&failed_task(TaskState::InsufficientResources))
            .await
            .unwrap();
    }
    assert!(
        matches!(
            lambda
                .begin(&key, "in.png", &owner("c"), |_| true)
                .await
                .unwrap(),
            Begin::Refused {
                refusal: Refusal::TooManyTasks { tasks: 2 },
                ..
            }
        ),
        "{check}"
    );
    // …while creates refused by a 429 do not count.
    let other = self::key("refused-twice");
    for who in ["a", "b", "c"] {
        let mut ticket = ticket_of(
            lambda
                .begin(&other, "in.png", &owner(who), |_| true)
                .await
                .unwrap(),
            check,
        );
        ticket.mark_sending().await.unwrap();
        ticket
            .record_create(&Err(Error::RateLimited {
                during: Operation::Create,
                message: String::new(),
                retry_after: None,
                attempts: 6,
            }))
            .await
            .unwrap();
    }
    assert_eq!(stored(store, &other).await.creates_sent, 0, "{check}");
}
