//! The cutoff (a Lambda invocation's deadline) bounds a create on the wire, never the writes
//! that record its answer. A record cut mid-write could leave the store saying `created` while
//! the walk reported the create lost: the adapter then wrote a failure record, the message was
//! not delivered again, and the paid task was never fetched (seen once in the Lambda's fault
//! matrix on a busy machine: the store's write of `created` was still in flight at the deadline).
//!
//! And a create cut off before its request went out whole made no task: it is given back to be
//! sent again, not recorded as "may have been charged" (seen in the same matrix: an invocation
//! whose deadline fell while a create was still being sent left a failure record that blocked
//! the input for good, although the service never saw the create).

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use backdrop_core::ledger::{
    Adapter, Driven, Entry, ImageIdentity, InputKey, Ledger, LedgerStore, Limits, MemoryStore,
    Owner, Policy, Stage, StoreError, Write,
};
use backdrop_core::{
    Client, ClientConfig, Error, GenerateRequest, GeneratedImage, Operation, Recovery, TaskInfo,
    WaitOptions,
};
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

/// What the silent server does with a connection: it never answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Silence {
    /// It reads nothing: a large request stalls once the socket buffers are full.
    ReadsNothing,
    /// It reads everything sent and answers nothing.
    ReadsEverything,
}

/// A server on 127.0.0.1 that accepts connections and never answers; counts the connections.
async fn silent_server(silence: Silence) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicU64::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if silence == Silence::ReadsEverything {
                    let mut buffer = vec![0u8; 64 * 1024];
                    while matches!(socket.read(&mut buffer).await, Ok(n) if n > 0) {}
                }
                // Held open, unanswered, until the test ends.
                std::future::pending::<()>().await;
                drop(socket);
            });
        }
    });
    (format!("http://{address}/"), connections)
}

/// A client of `base_url` with the documented default rate limit.
fn client_of(base_url: &str) -> Client {
    let config = ClientConfig::builder("test-key")
        .base_url(base_url)
        .build()
        .unwrap();
    Client::new(config).unwrap()
}

/// A valid input far larger than loopback's socket buffers: an opaque disc of noise (which no
/// compression shrinks) on a transparent square, about 9 MB.
fn large_noisy_png() -> Vec<u8> {
    let side = 2400u32;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let image = image::RgbaImage::from_fn(side, side, |x, y| {
        let (dx, dy) = (x as f32 - side as f32 / 2.0, y as f32 - side as f32 / 2.0);
        if dx * dx + dy * dy > (side as f32 * 0.35).powi(2) {
            return image::Rgba([0, 0, 0, 0]);
        }
        // xorshift64: fast, deterministic noise.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let [r, g, b, ..] = state.to_le_bytes();
        image::Rgba([r, g, b, 255])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// One walk of `request` against `client` with a cutoff `after` from now.
async fn walk_with_cutoff<S: LedgerStore>(
    ledger: &Ledger<S>,
    key: &InputKey,
    client: &Client,
    request: GenerateRequest,
    after: Duration,
) -> Driven<String> {
    let adapter = Prepared(std::sync::Mutex::new(Some(request)));
    let limits = Limits {
        wait: WaitOptions::default(),
        cutoff: Some(tokio::time::Instant::now() + after),
    };
    ledger
        .drive(
            key,
            "large.png",
            &Owner::exclusive("run-1"),
            client,
            &adapter,
            |_| false,
            limits,
            std::future::pending(),
        )
        .await
        .unwrap()
}

/// An adapter handing over one prepared request.
struct Prepared(std::sync::Mutex<Option<GenerateRequest>>);

impl Adapter for Prepared {
    type Error = String;

    async fn request(&self, _key: &InputKey) -> Result<Option<GenerateRequest>, String> {
        Ok(self.0.lock().unwrap().take())
    }

    async fn store(
        &self,
        _key: &InputKey,
        _entry: &Entry,
        _task: &TaskInfo,
        _images: Vec<GeneratedImage>,
    ) -> Result<Vec<String>, String> {
        Err("no task can finish here".to_owned())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_cut_off_while_its_image_is_on_the_way_is_given_back() {
    let (base_url, connections) = silent_server(Silence::ReadsNothing).await;
    let client = client_of(&base_url);
    let png = bytes::Bytes::from(large_noisy_png());
    assert!(png.len() > 8_000_000, "{} bytes", png.len());
    let request = || {
        GenerateRequest::builder()
            .image_bytes(png.clone(), "large.png")
            .prompt("a marble countertop")
            .build()
            .unwrap()
    };
    let ledger = Ledger::new(
        MemoryStore::default(),
        base_url.clone(),
        Policy::exclusive(),
    );
    let key = InputKey::derive(
        &ImageIdentity::of_bytes(&png),
        request().options(),
        "out/large",
    );

    let driven = walk_with_cutoff(&ledger, &key, &client, request(), Duration::from_secs(2)).await;
    let Driven::Failed {
        entry,
        failure,
        during,
        error,
    } = driven
    else {
        panic!("the create is given up at the cutoff: {driven:?}");
    };
    assert_eq!(during, Operation::Create);
    assert!(
        matches!(
            error,
            Error::Abandoned {
                during: Operation::Create,
                maybe_accepted: false
            }
        ),
        "{error:?}"
    );
    assert_eq!(failure.recovery, Recovery::Retry, "{failure:?}");
    assert_eq!(entry.stage, Stage::Failed, "{entry:?}");
    assert_eq!(
        entry.creates_sent, 0,
        "nothing reached the service whole: {entry:?}"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 1);

    // The input is not blocked: the next walk sends the create again.
    let driven = walk_with_cutoff(&ledger, &key, &client, request(), Duration::from_secs(2)).await;
    assert!(
        matches!(driven, Driven::Failed { ref failure, .. } if failure.recovery == Recovery::Retry),
        "{driven:?}"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 2, "sent again");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_cut_off_after_it_went_out_whole_is_unconfirmed() {
    let (base_url, connections) = silent_server(Silence::ReadsEverything).await;
    let client = client_of(&base_url);
    let request = bottle_request().unwrap();
    let ledger = Ledger::new(
        MemoryStore::default(),
        base_url.clone(),
        Policy::exclusive(),
    );
    let image = ImageIdentity::of_file(&fixture("bottle.png")).unwrap();
    let key = InputKey::derive(&image, request.options(), "out/bottle");

    let driven = walk_with_cutoff(&ledger, &key, &client, request, Duration::from_secs(2)).await;
    let Driven::Failed {
        entry,
        failure,
        error,
        ..
    } = driven
    else {
        panic!("the create is given up at the cutoff: {driven:?}");
    };
    assert!(
        matches!(
            error,
            Error::Abandoned {
                during: Operation::Create,
                maybe_accepted: true
            }
        ),
        "{error:?}"
    );
    assert_eq!(failure.recovery, Recovery::Unconfirmed, "{failure:?}");
    assert_eq!(entry.stage, Stage::Unconfirmed, "{entry:?}");
    assert_eq!(entry.creates_sent, 1, "{entry:?}");

    // Not sent again on its own.
    let again = bottle_request().unwrap();
    let driven = walk_with_cutoff(&ledger, &key, &client, again, Duration::from_secs(2)).await;
    assert!(matches!(driven, Driven::Refused { .. }), "{driven:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 1, "never sent twice");
}
