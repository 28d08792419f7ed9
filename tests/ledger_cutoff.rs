//! The cutoff (a Lambda invocation's deadline) bounds a create on the wire, never the writes
//! that record its answer. A record cut mid-write could leave the store saying `created` while
//! the walk reported the create lost: the adapter then wrote a failure record, the message was
//! not delivered again, and the paid task was never fetched (seen once in the Lambda's fault
//! matrix on a busy machine: the store's write of `created` was still in flight at the deadline).

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use backdrop_core::ledger::{
    Adapter, Driven, Entry, ImageIdentity, InputKey, Ledger, LedgerStore, Limits, MemoryStore,
    Owner, Policy, Stage, StoreError, Write,
};
use backdrop_core::{GenerateRequest, GeneratedImage, TaskInfo, WaitOptions};
use backdrop_tests::{client_for, fast_config, fast_emulator, fixture};

/// A store whose write of `created` lands at once but is answered `delay` later, as an S3 PUT
/// whose answer is slow.
#[derive(Debug, Default)]
struct SlowToConfirmCreated {
    inner: MemoryStore,
    delay: Duration,
}

impl LedgerStore for SlowToConfirmCreated {
    type Version = <MemoryStore as LedgerStore>::Version;

    async fn load(&self, key: &InputKey) -> Result<Option<(Entry, Self::Version)>, StoreError> {
        self.inner.load(key).await
    }

    async fn insert(
        &self,
        key: &InputKey,
        entry: &Entry,
    ) -> Result<Write<Self::Version>, StoreError> {
        self.inner.insert(key, entry).await
    }

    async fn replace(
        &self,
        key: &InputKey,
        entry: &Entry,
        expected: &Self::Version,
    ) -> Result<Write<Self::Version>, StoreError> {
        let written = self.inner.replace(key, entry, expected).await;
        if entry.stage == Stage::Created && entry.task_id.is_some() {
            tokio::time::sleep(self.delay).await;
        }
        written
    }
}

/// The bottle, for a prompt; its images are counted, not kept.
struct Bottle;

impl Adapter for Bottle {
    type Error = String;

    async fn request(&self, _key: &InputKey) -> Result<Option<GenerateRequest>, String> {
        bottle_request().map(Some).map_err(|e| e.to_string())
    }

    async fn store(
        &self,
        _key: &InputKey,
        _entry: &Entry,
        _task: &TaskInfo,
        images: Vec<GeneratedImage>,
    ) -> Result<Vec<String>, String> {
        Ok((1..=images.len())
            .map(|n| format!("bottle-{n}.jpg"))
            .collect())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cutoff_during_the_record_of_created_leaves_the_task_to_resume() {
    let emulator = fast_emulator(fast_config()).await;
    let client = client_for(&emulator, 2);
    let store = SlowToConfirmCreated {
        inner: MemoryStore::default(),
        delay: Duration::from_secs(6),
    };
    let ledger = Ledger::new(store, emulator.base_url(), Policy::exclusive());
    let request = bottle_request().unwrap();
    let image = ImageIdentity::of_file(&fixture("bottle.png")).unwrap();
    let key = InputKey::derive(&image, request.options(), "out/bottle");
    let owner = Owner::exclusive("run-1");

    // The create is answered well within 2 s; the write of `created` lands at once and is
    // answered 6 s later, so the cutoff falls while it is in flight.
    let cutoff = tokio::time::Instant::now() + Duration::from_secs(2);
    let limits = Limits {
        wait: WaitOptions::default(),
        cutoff: Some(cutoff),
    };
    // One walk of the input, as a delivery of its message makes it.
    let walk = |limits| {
        ledger.drive(
            &key,
            "bottle.png",
            &owner,
            &client,
            &Bottle,
            |_| false,
            limits,
            std::future::pending(),
        )
    };
    let driven = walk(limits).await.unwrap();
    let entry = match driven {
        Driven::Stopped { entry } => entry,
        other => panic!("the task must be left to resume, not reported lost: {other:?}"),
    };
    assert_eq!(entry.stage, Stage::Created, "{entry:?}");
    let task_id = entry.task_id.clone().expect("the task id is recorded");
    assert!(entry.failure.is_none(), "{entry:?}");
    assert_eq!(emulator.counters().tasks_created, 1);

    // The next walk (the message delivered again) resumes that task: no second create.
    let driven = walk(Limits::default()).await.unwrap();
    match driven {
        Driven::Stored { entry, outputs, .. } => {
            assert_eq!(entry.stage, Stage::Done);
            assert_eq!(entry.task_id.as_deref(), Some(task_id.as_str()));
            assert_eq!(outputs.len(), 2);
        }
        other => panic!("the recorded task is resumed and stored: {other:?}"),
    }
    assert_eq!(
        emulator.counters().tasks_created,
        1,
        "resumed, not created again"
    );
}

/// The one input: the bottle on a marble countertop.
fn bottle_request() -> Result<GenerateRequest, backdrop_core::validate::ValidationError> {
    GenerateRequest::builder()
        .image_path(fixture("bottle.png"))
        .prompt("a marble countertop")
        .build()
}
