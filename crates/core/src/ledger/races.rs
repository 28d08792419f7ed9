//! Deterministic race tests of the ledger protocol on a paused clock: Lambda-like invocations of
//! one object that stall inside their create, get delivered twice, crash between sending a
//! create and recording its answer, and are killed at their deadline. A store that honours its
//! conditions atomically ([`MemoryStore`]) stands in for S3; a counter stands in for the service.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::ledger::{
    Begin, Clock, ImageIdentity, InputKey, Ledger, MemoryStore, Owner, Policy, Stage, TokioClock,
};
use crate::request::GenerationOptions;

/// Unix ms when the simulations start.
const T0: u64 = 1_800_000_000_000;
/// A Lambda function timeout: the lease of each invocation.
const TIMEOUT: Duration = Duration::from_secs(360);

/// How one invocation goes, with its times.
#[derive(Debug, Clone, Copy)]
struct Script {
    /// When the event is delivered, after the simulation's start.
    start: Duration,
    /// How long the create waits for its share of the rate limit (after the claim).
    budget_wait: Duration,
    /// How long the create's request and its answer each take on the wire.
    wire: Duration,
    /// How long the task takes once created (the wait and the download).
    work: Duration,
    /// When the invocation dies on its own (a crash), after its start; `None`: it runs until
    /// its work is done or its deadline kills it.
    crash_after: Option<Duration>,
}

/// What the simulated service saw.
#[derive(Debug, Default)]
struct Service {
    creates: AtomicU32,
}

async fn invocation(
    ledger: Arc<Ledger<Arc<MemoryStore>>>,
    service: Arc<Service>,
    id: usize,
    script: Script,
) {
    tokio::time::sleep(script.start).await;
    let lease = ledger.now_ms() + TIMEOUT.as_millis() as u64;
    let owner = Owner::leased(format!("invocation-{id}"), lease);
    let life = script.crash_after.unwrap_or(TIMEOUT).min(TIMEOUT);
    // Past its deadline (or at its crash) the invocation is gone mid-step, like a killed process.
    let _ = tokio::time::timeout(life, async {
        let key = key();
        let Ok(begin) = ledger
            .begin(&key, "incoming/mug.png", &owner, |_| true)
            .await
        else {
            return;
        };
        let mut ticket = match begin {
            Begin::Create(mut ticket) => {
                tokio::time::sleep(script.budget_wait).await;
                if ticket.mark_sending().await.is_err() {
                    return; // fenced: someone else owns the input; nothing is sent
                }
                tokio::time::sleep(script.wire).await;
                let n = service.creates.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(script.wire).await;
                let _ = ticket.record_create(&Ok(format!("T{n}"))).await;
                ticket
            }
            Begin::Resume(ticket) => ticket,
            Begin::Done(_) | Begin::Busy(_) | Begin::Refused { .. } => return,
        };
        tokio::time::sleep(script.work).await;
        let _ = ticket.done(vec!["generated/mug/1.jpg".into()], 3).await;
    })
    .await;
}

fn key() -> InputKey {
    let options = GenerationOptions::prompt("a beach").unwrap();
    InputKey::derive(
        &ImageIdentity::S3Object {
            bucket: "shop".into(),
            key: "incoming/mug.png".into(),
            etag: "e1".into(),
        },
        &options,
        "",
    )
}

/// Runs the scripts concurrently on the paused clock; returns the creates and the final stage.
async fn simulate(scripts: &[Script]) -> (u32, Stage) {
    let store = Arc::new(MemoryStore::new());
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(T0));
    let ledger = Arc::new(
        Ledger::new(
            store.clone(),
            "svc",
            Policy::shared(Duration::from_secs(30), 3),
        )
        .with_clock(clock),
    );
    let service = Arc::new(Service::default());
    let runs: Vec<_> = scripts
        .iter()
        .enumerate()
        .map(|(id, script)| tokio::spawn(invocation(ledger.clone(), service.clone(), id, *script)))
        .collect();
    for run in runs {
        run.await.unwrap();
    }
    let stage = store
        .entries()
        .first()
        .map_or(Stage::Claimed, |(_, entry)| entry.stage);
    (service.creates.load(Ordering::SeqCst), stage)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn script(start: u64) -> Script {
    Script {
        start: secs(start),
        budget_wait: secs(1),
        wire: Duration::from_millis(200),
        work: secs(12),
        crash_after: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_create_stalled_past_the_old_stale_claim_limit_is_not_duplicated() {
    // A waits 200 s for its budget (past the 180 s after which claims used to be taken over); a
    // duplicate delivery comes at 190 s, a redelivery after A's deadline.
    let stalled = Script {
        budget_wait: secs(200),
        ..script(0)
    };
    let (creates, stage) = simulate(&[stalled, script(190), script(400)]).await;
    assert_eq!((creates, stage), (1, Stage::Done));
}

#[tokio::test(start_paused = true)]
async fn a_crash_between_sending_and_recording_leaves_it_unconfirmed() {
    let crashed = Script {
        crash_after: Some(Duration::from_millis(1_300)), // after the send, before the answer
        ..script(0)
    };
    let (creates, stage) = simulate(&[crashed, script(30), script(420), script(900)]).await;
    assert_eq!((creates, stage), (1, Stage::Unconfirmed));
}

#[tokio::test(start_paused = true)]
async fn a_task_left_running_by_a_killed_invocation_is_resumed() {
    let killed = Script {
        work: secs(1_000), // longer than the function's timeout: killed while waiting
        ..script(0)
    };
    let (creates, stage) = simulate(&[killed, script(200), script(500)]).await;
    assert_eq!((creates, stage), (1, Stage::Done));
}

/// A small deterministic generator (xorshift64*), so each seed is one reproducible schedule.
struct Schedule(u64);

impl Schedule {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn millis(&mut self, max: u64) -> Duration {
        Duration::from_millis(self.next() % max.max(1))
    }
}

#[tokio::test(start_paused = true)]
async fn no_schedule_of_deliveries_crashes_and_stalls_creates_twice() {
    let mut outcomes = std::collections::BTreeMap::new();
    for seed in 1..=400u64 {
        let mut schedule = Schedule(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let invocations = 2 + schedule.next() % 4;
        let scripts: Vec<Script> = (0..invocations)
            .map(|_| Script {
                start: schedule.millis(1_500_000),
                budget_wait: schedule.millis(250_000),
                wire: schedule.millis(3_000),
                work: schedule.millis(400_000),
                crash_after: schedule
                    .next()
                    .is_multiple_of(3)
                    .then(|| schedule.millis(300_000)),
            })
            .collect();
        let (creates, stage) = simulate(&scripts).await;
        assert!(
            creates <= 1,
            "seed {seed}: {creates} creates for {scripts:?}"
        );
        if creates == 0 {
            assert!(
                matches!(stage, Stage::Claimed),
                "seed {seed}: nothing was sent, yet {stage}"
            );
        }
        *outcomes
            .entry(format!("{creates} create(s), {stage}"))
            .or_insert(0) += 1;
    }
    // The schedules must reach every interesting end, or the test proves little.
    for end in [
        "1 create(s), done",
        "1 create(s), unconfirmed",
        "1 create(s), created",
    ] {
        assert!(
            outcomes.contains_key(end),
            "no schedule ended {end}: {outcomes:?}"
        );
    }
}
