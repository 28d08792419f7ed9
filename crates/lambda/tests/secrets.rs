//! The API key never leaves the function: the handler runs over a success, permanent failures
//! (a task the service fails, an opaque PNG, a key the service refuses) and transient ones (a
//! task failed on the service's side, a service answering 500), with every crate traced at TRACE
//! (plain text and JSON lines, `log` records included) into a buffer; then every object in the
//! bucket — sources, outputs, manifests, failure records, claim objects, and their metadata —
//! is downloaded, and every byte of it, of the logs, of the handler's answers and of its errors
//! is searched for the key, raw, percent-encoded, base64 (any alignment) and hex.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backdrop_core::{Client, ClientConfig, RateLimit, RetryPolicy};
use backdrop_emulator::{Emulator, EmulatorConfig, Faults};
use backdrop_lambda::{Deps, S3Store, handle};
use backdrop_tests::{
    TEST_RATE_MARGIN, TIME_SCALE, fast_config, fast_emulator, fixture, opaque_png,
};
use serde_json::{Value, json};
use support::*;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// A key with characters that percent-encoding and base64 both change.
const KEY: &str = "sk-LAMBDA/SECRET+7f3a9c=d41e";

/// A log sink shared by the subscriber's layers.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every TRACE event of every crate, on every thread (a global subscriber, not a thread-local
/// one: the runtime's worker threads and the HTTP clients' connection tasks log too), as text
/// and as JSON lines (the deployed format), `log` records bridged in.
fn capture_logs() -> Buffer {
    let buffer = Buffer::default();
    let text = buffer.clone();
    let json = buffer.clone();
    tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::TRACE)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || text.clone()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(move || json.clone()),
        )
        .try_init()
        .expect("the only subscriber of this test binary");
    buffer
}

/// Standard or URL-safe base64, padded.
fn base64(bytes: &[u8], url_safe: bool) -> String {
    let alphabet: &[u8; 64] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Every form of the key to look for. Base64 at each of the three alignments the key can have
/// inside a longer encoded text, keeping only the characters that depend on the key alone.
fn key_forms() -> Vec<String> {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let mut forms = vec![
        KEY.to_owned(),
        // A fragment, for a key cut short or wrapped.
        KEY[3..KEY.len() - 3].to_owned(),
        utf8_percent_encode(KEY, NON_ALPHANUMERIC).to_string(),
        KEY.replace('/', "%2F")
            .replace('+', "%2B")
            .replace('=', "%3D"),
        KEY.replace('/', "%2f")
            .replace('+', "%2b")
            .replace('=', "%3d"),
        serde_json::to_string(KEY)
            .unwrap()
            .trim_matches('"')
            .to_owned(),
        KEY.replace('/', "\\/"),
        KEY.bytes().map(|b| format!("{b:02x}")).collect(),
        KEY.bytes().map(|b| format!("{b:02X}")).collect(),
    ];
    for shift in 0..3usize {
        let mut shifted = vec![0u8; shift];
        shifted.extend_from_slice(KEY.as_bytes());
        let skip = [0, 2, 3][shift];
        let stable = shifted.len() * 8 / 6;
        for url_safe in [false, true] {
            let encoded = base64(&shifted, url_safe);
            forms.push(encoded[skip..stable].to_owned());
        }
    }
    forms.sort();
    forms.dedup();
    forms
}

/// Decodes `%xx` escapes (and `+` as a space would hide nothing here), lossily.
fn percent_decoded(bytes: &[u8]) -> Vec<u8> {
    percent_encoding::percent_decode(bytes).collect()
}

/// The first form of the key found in `bytes`, as they are or percent-decoded, with its
/// surroundings.
fn find_key(bytes: &[u8], forms: &[String]) -> Option<String> {
    let decoded = percent_decoded(bytes);
    for haystack in [bytes, decoded.as_slice()] {
        for form in forms {
            let needle = form.as_bytes();
            if let Some(at) = haystack.windows(needle.len()).position(|w| w == needle) {
                let from = at.saturating_sub(120);
                let to = (at + needle.len() + 120).min(haystack.len());
                return Some(format!(
                    "{form:?} in …{}…",
                    String::from_utf8_lossy(&haystack[from..to])
                ));
            }
        }
    }
    None
}

/// Fails naming `what` when any form of the key occurs in `bytes`.
fn assert_no_key(what: &str, bytes: &[u8], forms: &[String]) {
    if let Some(found) = find_key(bytes, forms) {
        panic!("the API key appears in {what}: {found}");
    }
}

/// A client of `emulator` that sends [`KEY`] whatever keys the emulator accepts, with quick
/// retries.
fn client_with_key(emulator: &Emulator, attempts: u32) -> Client {
    client_at(&emulator.base_url(), attempts)
}

fn client_at(base_url: &str, attempts: u32) -> Client {
    let config = ClientConfig::builder(KEY)
        .time_scale(TIME_SCALE)
        .base_url(base_url)
        .rate_limit(RateLimit {
            margin: TEST_RATE_MARGIN,
            ..RateLimit::per_second(2)
        })
        // Quick retries: 20 ms to 200 ms once scaled.
        .retry(RetryPolicy {
            max_attempts: attempts,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        })
        .build()
        .unwrap();
    Client::new(config).unwrap()
}

fn deps_with(client: Client) -> Deps<S3Store> {
    Deps {
        store: S3Store::new(s3_client()),
        queue: backdrop_lambda::NoQueue,
        metrics: backdrop_lambda::metrics::MetricsSink::Stdout,
        client,
        config: config(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_is_in_no_object_log_line_answer_or_error() {
    let logs = capture_logs();
    let forms = key_forms();
    let s3 = s3_client();
    let bucket = bucket(&s3, "secrets").await;
    let bottle = std::fs::read(fixture("bottle.png")).unwrap();
    let one = [("batch-size", "1")];
    upload(&s3, &bucket, "incoming/good.png", bottle.clone(), &one).await;
    upload(
        &s3,
        &bucket,
        "incoming/refused-image.png",
        bottle.clone(),
        &[("prompt", "a shelf emulator:fail=-7"), ("batch-size", "1")],
    )
    .await;
    upload(
        &s3,
        &bucket,
        "incoming/opaque.png",
        opaque_png(400, 400),
        &[],
    )
    .await;
    upload(
        &s3,
        &bucket,
        "incoming/busy.png",
        bottle.clone(),
        &[("prompt", "busy emulator:fail=-15"), ("batch-size", "1")],
    )
    .await;
    upload(&s3, &bucket, "incoming/wrong-key.png", bottle.clone(), &one).await;
    upload(&s3, &bucket, "incoming/flaky.png", bottle.clone(), &one).await;
    upload(&s3, &bucket, "incoming/unreachable.png", bottle, &one).await;

    let mut shown = Vec::new();

    // The service accepts the key: a success, a task failed for good (-7), an opaque PNG, a
    // task failed on the service's side (-15, retried).
    let service = fast_emulator(EmulatorConfig {
        api_keys: vec![KEY.into()],
        ..fast_config()
    })
    .await;
    assert_eq!(service.api_key(), KEY);
    let deps = deps(&service, config());
    let event = sqs_event(
        &bucket,
        &[
            "incoming/good.png",
            "incoming/refused-image.png",
            "incoming/opaque.png",
            "incoming/busy.png",
        ],
    );
    let answer = handle(&deps, invocation(event, 60)).await.unwrap();
    assert_eq!(failed_ids(&answer), vec!["msg-3"], "{answer}");
    shown.push(format!("{answer} {answer:?}"));
    // Direct S3 events: an answer listing outcomes, and an error for the transient one.
    let direct = json!({"Records": [s3_record(&bucket, "incoming/good.png")]});
    let answer = handle(&deps, invocation(direct, 60)).await.unwrap();
    shown.push(format!("{answer} {answer:?}"));
    let direct = json!({"Records": [s3_record(&bucket, "incoming/busy.png")]});
    let error = handle(&deps, invocation(direct, 60)).await.unwrap_err();
    shown.push(format!("{error} {error:?}"));
    let error = handle(&deps, invocation(json!({"detail-type": 5}), 60))
        .await
        .unwrap_err();
    shown.push(format!("{error} {error:?}"));
    shown.push(format!("{:?}", deps.client));
    let counters = service.counters();
    assert!(counters.tasks_created >= 3, "{counters:?}");

    // A service that refuses the key (401): a failure record.
    let stranger = fast_emulator(EmulatorConfig {
        api_keys: vec!["another-account-key".into()],
        ..fast_config()
    })
    .await;
    let refused = deps_with(client_with_key(&stranger, 2));
    let event = sqs_event(&bucket, &["incoming/wrong-key.png"]);
    let answer = handle(&refused, invocation(event, 60)).await.unwrap();
    assert!(failed_ids(&answer).is_empty(), "{answer}");
    shown.push(format!("{answer}"));
    let counters = stranger.counters();
    assert!(
        counters.responses_by_status.get(&401).copied().unwrap_or(0) >= 1,
        "{counters:?}"
    );

    // A service failing every request (500): the create may have been passed on before the
    // failure, so the object gets a record that quotes the server — and no retry.
    let failing = fast_emulator(EmulatorConfig {
        api_keys: vec![KEY.into()],
        faults: Faults {
            error_500_rate: 1.0,
            ..Faults::default()
        },
        ..fast_config()
    })
    .await;
    let flaky = deps_with(client_with_key(&failing, 3));
    let event = sqs_event(&bucket, &["incoming/flaky.png"]);
    let answer = handle(&flaky, invocation(event, 60)).await.unwrap();
    assert!(failed_ids(&answer).is_empty(), "{answer}");
    shown.push(format!("{answer}"));
    assert!(failing.counters().responses_500_injected >= 1);

    // A service that cannot be reached: retried through SQS, an error for a direct event.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let unreachable = deps_with(client_at(&closed, 3));
    let event = sqs_event(&bucket, &["incoming/unreachable.png"]);
    let answer = handle(&unreachable, invocation(event, 60)).await.unwrap();
    assert_eq!(failed_ids(&answer), vec!["msg-0"], "{answer}");
    shown.push(format!("{answer}"));
    let direct = json!({"Records": [s3_record(&bucket, "incoming/unreachable.png")]});
    let error = handle(&unreachable, invocation(direct, 60))
        .await
        .unwrap_err();
    shown.push(format!("{error} {error:?}"));

    // Every object of the bucket, body and metadata.
    let keys = keys(&s3, &bucket).await;
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    let mut scanned_bytes = 0;
    for key in &keys {
        let kind = if key.starts_with("incoming/") {
            "source"
        } else if key.starts_with("generated/") && key.ends_with("/manifest.json") {
            "manifest"
        } else if key.starts_with("generated/") {
            "output"
        } else if key.starts_with("failed/") {
            "failure record"
        } else if key.starts_with("state/") {
            "claim"
        } else {
            "other"
        };
        *seen.entry(kind).or_default() += 1;
        let body = read(&s3, &bucket, key).await;
        assert!(!body.is_empty(), "{key} is empty");
        scanned_bytes += body.len();
        assert_no_key(&format!("s3://{bucket}/{key}"), &body, &forms);
        let head = s3
            .head_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let metadata = format!(
            "{:?} {:?} {:?}",
            head.metadata(),
            head.content_type(),
            head.content_disposition()
        );
        assert_no_key(
            &format!("the metadata of {key}"),
            metadata.as_bytes(),
            &forms,
        );
    }
    // The scan covered what it claims: each kind of object the function writes.
    for (kind, at_least) in [
        ("source", 6),
        ("output", 1),
        ("manifest", 1),
        ("failure record", 3),
        ("claim", 5),
    ] {
        let count = seen.get(kind).copied().unwrap_or(0);
        assert!(
            count >= at_least,
            "{count} {kind} objects, expected at least {at_least}: {keys:?}"
        );
    }
    assert!(scanned_bytes > 10_000, "{scanned_bytes} bytes scanned");
    let failure_records: Vec<Value> = {
        let mut records = Vec::new();
        for key in keys.iter().filter(|k| k.starts_with("failed/")) {
            records.push(serde_json::from_slice(&read(&s3, &bucket, key).await).unwrap());
        }
        records
    };
    assert!(
        failure_records
            .iter()
            .any(|r| r["http_status"] == 401 || r.to_string().contains("401")),
        "the refused key left a failure record: {failure_records:?}"
    );

    // The claims of the transient failures carry their reasons: those texts were scanned too.
    let mut notes = 0;
    for key in keys
        .iter()
        .filter(|k| k.starts_with("state/") && !k.starts_with("state/scratch/"))
    {
        let claim: Value = serde_json::from_slice(&read(&s3, &bucket, key).await).unwrap();
        if claim["stage"] == "failed"
            && claim["failure"]["recovery"] == "retry"
            && claim["failure"]["message"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
        {
            notes += 1;
        }
    }
    assert!(notes >= 2, "{notes} retry-pending claims with a reason");

    for (i, text) in shown.iter().enumerate() {
        assert!(!text.is_empty());
        assert_no_key(&format!("answer or error #{i}"), text.as_bytes(), &forms);
    }

    let logs = logs.0.lock().unwrap().clone();
    if let Some(path) = std::env::var_os("BACKDROP_SECRETS_LOG") {
        // To read what was scanned.
        std::fs::write(path, &logs).unwrap();
    }
    let text = String::from_utf8_lossy(&logs);
    assert!(
        logs.len() > 20_000,
        "TRACE produced too little output to be a test: {} bytes",
        logs.len()
    );
    for expected in [
        "object done",
        "task created",
        "\"target\":\"backdrop_core",
        "\"target\":\"backdrop_lambda",
        "\"level\":\"TRACE\"",
        " TRACE ",
    ] {
        assert!(
            text.contains(expected),
            "the logs lack {expected:?}: the flows did not run as meant"
        );
    }
    assert_no_key("the logs", &logs, &forms);
    eprintln!(
        "scanned {} objects ({seen:?}, {scanned_bytes} bytes), {} bytes of logs, {} answers and errors",
        keys.len(),
        logs.len(),
        shown.len()
    );
}

/// The scanner itself: every encoding of the key, at any position inside a longer text, is found.
#[test]
fn the_scanner_finds_the_key_in_every_form() {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let forms = key_forms();
    let found = |text: &[u8]| find_key(text, &forms).is_some();
    assert!(!found(b"nothing secret here: sk-LAMBDA"));
    for prefix in ["", "a", "ab", "abc", "x-api-key: "] {
        let mut plain = prefix.as_bytes().to_vec();
        plain.extend_from_slice(KEY.as_bytes());
        plain.extend_from_slice(b"\n and more after it");
        let hex: String = plain.iter().map(|b| format!("{b:02x}")).collect();
        for text in [
            plain.clone(),
            base64(&plain, false).into_bytes(),
            base64(&plain, true).into_bytes(),
            utf8_percent_encode(&String::from_utf8(plain.clone()).unwrap(), NON_ALPHANUMERIC)
                .to_string()
                .into_bytes(),
            hex.into_bytes(),
        ] {
            assert!(found(&text), "{}", String::from_utf8_lossy(&text));
        }
    }
}
