#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]
//! A real S3-compatible server (moto in server mode) and the emulator, wired to the handler.

use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use backdrop_emulator::Emulator;
use backdrop_lambda::{Config, Deps, S3Store};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

/// A server this process started: the `sh` that stops it when its stdin (held here) closes.
type OwnedServer = Mutex<Option<(Child, ChildStdin)>>;

/// The moto server of this test binary: `BACKDROP_S3_ENDPOINT` when set (to reuse a running one),
/// else a `moto_server` started here, stopped when this process ends (its stdin closes).
pub fn s3_endpoint() -> String {
    static ENDPOINT: OnceLock<(String, OwnedServer)> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            if let Ok(endpoint) = std::env::var("BACKDROP_S3_ENDPOINT") {
                return (endpoint, Mutex::new(None));
            }
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let server = backdrop_tests::moto_program();
            let script = format!("\"$0\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; read _; kill $m");
            // The shell lives as long as this process holds its stdin; it is never waited on.
            #[allow(clippy::zombie_processes)]
            let mut child = Command::new("sh")
                .args(["-c", &script, &server])
                .stdin(Stdio::piped())
                .spawn()
                .expect("sh runs");
            let stdin = child.stdin.take().expect("piped stdin");
            let endpoint = format!("http://127.0.0.1:{port}");
            for _ in 0..200 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return (endpoint, Mutex::new(Some((child, stdin))));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!(
                "moto_server did not start on port {port}: install it (tests/run does: pip install 'moto[server]') \
                 or set BACKDROP_S3_ENDPOINT"
            );
        })
        .0
        .clone()
}

/// An S3 client of the moto server.
pub fn s3_client() -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(s3_endpoint())
        .force_path_style(true)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A new, empty bucket with a unique name.
pub async fn bucket(s3: &aws_sdk_s3::Client, name: &str) -> String {
    let bucket = format!("{name}-{}-{}", std::process::id(), rand_suffix());
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    bucket
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

/// Uploads `body` with user metadata.
pub async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    metadata: &[(&str, &str)],
) {
    let mut request = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("image/png")
        .body(ByteStream::from(body));
    for (name, value) in metadata {
        request = request.metadata(*name, *value);
    }
    request.send().await.expect("upload");
}

/// Every key in the bucket, sorted.
pub async fn keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let listing = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list");
    let mut keys: Vec<String> = listing
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    keys.sort();
    keys
}

/// An object's bytes.
pub async fn read(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get");
    object
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// The handler's dependencies: moto for S3, `emulator` for the API.
pub fn deps(emulator: &Emulator, config: Config) -> Deps<S3Store> {
    Deps {
        store: S3Store::new(s3_client()),
        queue: backdrop_lambda::NoQueue,
        metrics: backdrop_lambda::metrics::MetricsSink::Stdout,
        client: backdrop_tests::client_for(emulator, 2),
        config,
    }
}

/// The test configuration: a default prompt, a short deadline margin.
pub fn config() -> Config {
    Config {
        deadline_margin: Duration::from_secs(1),
        defaults: backdrop_lambda::config::Defaults {
            prompt: Some("a sunny kitchen counter".into()),
            ..Default::default()
        },
        ..Config::default()
    }
}

/// An S3 notification record as S3-compatible servers send it (no userIdentity), key encoded.
pub fn s3_record(bucket: &str, key: &str) -> Value {
    json!({"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-25T12:00:00.000Z", "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "backdrop",
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encode_key(key), "size": 1}}})
}

/// S3's key encoding in notifications: `+` for space, `%xx` for the rest.
pub fn encode_key(key: &str) -> String {
    let mut out = String::new();
    for byte in key.bytes() {
        match byte {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// An SQS event whose messages carry S3 notifications of `keys`.
pub fn sqs_event(bucket: &str, keys: &[&str]) -> Value {
    let records: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let body = json!({"Records": [s3_record(bucket, key)]}).to_string();
            json!({"messageId": format!("msg-{i}"), "receiptHandle": "r", "body": body, "attributes": {},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:backdrop", "awsRegion": "us-east-1"})
        })
        .collect();
    json!({"Records": records})
}

/// A Lambda event with `seconds` left before the deadline.
pub fn invocation(payload: Value, seconds: u64) -> LambdaEvent<Value> {
    let mut context = Context::default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    context.deadline = now + seconds * 1000;
    LambdaEvent::new(payload, context)
}

/// The message ids a batch response asks to deliver again.
pub fn failed_ids(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["itemIdentifier"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A DynamoDB client of moto (the same server as S3).
pub fn dynamodb() -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(s3_endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .build(),
    )
}
