//! The function as an operator runs it: retries timed by the function through SQS (moto's SQS
//! honours `ChangeMessageVisibility`), the last delivery ending in a failure record, S3 refusing
//! the role (moto with IAM enforcement), one span per message in the logs, and EMF metrics that
//! agree with the emulator's counters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use backdrop_emulator::{Emulator, EmulatorConfig, Faults, ProcessingTime};
use backdrop_lambda::metrics::MetricsSink;
use backdrop_lambda::{Config, Deps, NoQueue, S3Store, SqsQueue, handle, logging};
use backdrop_tests::{fast_config, fast_emulator, fixture};
use serde_json::{Value, json};
use support::*;

fn bottle() -> Vec<u8> {
    std::fs::read(fixture("bottle.png")).unwrap()
}

fn sqs_client_at(endpoint: &str) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// A queue on moto: its URL and ARN. With `dead_letter`, a redrive policy to a new dead-letter
/// queue after `max_receive_count` receives; returns that queue's URL too.
async fn queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    dead_letter: Option<u32>,
) -> (String, String, Option<String>) {
    let name = format!("{name}-{}", std::process::id());
    let mut dlq_url = None;
    let mut request = sqs.create_queue().queue_name(&name);
    if let Some(max_receive_count) = dead_letter {
        let dlq = sqs
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .unwrap();
        let url = dlq.queue_url().unwrap().to_owned();
        let arn = arn_of(sqs, &url).await;
        request = request.attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count}).to_string(),
        );
        dlq_url = Some(url);
    }
    let url = request
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let arn = arn_of(sqs, &url).await;
    (url, arn, dlq_url)
}

async fn arn_of(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()
        .get(&QueueAttributeName::QueueArn)
        .unwrap()
        .clone()
}

/// Receives one message (waiting up to `wait`), as the Lambda event source would deliver it:
/// the SQS event of that one message, with its receipt handle, receive count and queue ARN.
async fn receive(sqs: &aws_sdk_sqs::Client, url: &str, arn: &str, wait: Duration) -> Option<Value> {
    let answer = sqs
        .receive_message()
        .queue_url(url)
        .wait_time_seconds(i32::try_from(wait.as_secs()).unwrap())
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .max_number_of_messages(1)
        .send()
        .await
        .unwrap();
    let message = answer.messages().first()?.clone();
    let attributes: serde_json::Map<String, Value> = message
        .attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                .collect()
        })
        .unwrap_or_default();
    Some(json!({"Records": [{
        "messageId": message.message_id(), "receiptHandle": message.receipt_handle(),
        "body": message.body(), "attributes": attributes, "messageAttributes": {},
        "md5OfBody": message.md5_of_body(), "eventSource": "aws:sqs",
        "eventSourceARN": arn, "awsRegion": "us-east-1"}]}))
}

/// What the Lambda service does with a batch response: deletes the messages not listed.
async fn settle(sqs: &aws_sdk_sqs::Client, url: &str, event: &Value, answer: &Value) {
    let failed = failed_ids(answer);
    for record in event["Records"].as_array().unwrap() {
        if !failed.contains(&record["messageId"].as_str().unwrap().to_owned()) {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(record["receiptHandle"].as_str().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

fn notification(bucket: &str, key: &str) -> String {
    json!({"Records": [s3_record(bucket, key)]}).to_string()
}

fn operations_config() -> Config {
    Config {
        retry_base: Duration::from_secs(2),
        retry_max: Duration::from_secs(60),
        ..config()
    }
}

fn deps_with_queue(emulator: &Emulator, config: Config) -> Deps<S3Store, SqsQueue> {
    Deps {
        store: S3Store::new(s3_client()),
        queue: SqsQueue::new(sqs_client_at(&s3_endpoint())),
        client: backdrop_tests::client_for(emulator, 2),
        config,
        metrics: MetricsSink::Stdout,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transient_failure_comes_back_after_its_backoff_and_resumes_its_task() {
    let (s3, sqs) = (s3_client(), sqs_client_at(&s3_endpoint()));
    let bucket = bucket(&s3, "backoff").await;
    let (url, arn, _) = queue(&sqs, "backoff", None).await;
    upload(&s3, &bucket, "incoming/slow.png", bottle(), &[]).await;
    // A task of about 12 s: a first invocation with 8 s left gives up waiting for it.
    let emulator = fast_emulator(EmulatorConfig {
        processing: ProcessingTime::Fixed(Duration::from_secs(120)),
        ..fast_config()
    })
    .await;
    let deps = deps_with_queue(&emulator, operations_config());
    sqs.send_message()
        .queue_url(&url)
        .message_body(notification(&bucket, "incoming/slow.png"))
        .send()
        .await
        .unwrap();
    let first = receive(&sqs, &url, &arn, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        first["Records"][0]["attributes"]["ApproximateReceiveCount"],
        "1"
    );
    let answer = handle(&deps, invocation(first.clone(), 8)).await.unwrap();
    let returned = Instant::now();
    assert_eq!(failed_ids(&answer).len(), 1, "{answer}");
    settle(&sqs, &url, &first, &answer).await;
    assert_eq!(emulator.counters().tasks_created, 1);

    // Not before its backoff (2 s; the queue's own visibility timeout is 30 s)…
    assert!(receive(&sqs, &url, &arn, Duration::ZERO).await.is_none());
    let second = receive(&sqs, &url, &arn, Duration::from_secs(10))
        .await
        .unwrap();
    let back_after = returned.elapsed();
    assert!(
        back_after >= Duration::from_millis(1500) && back_after < Duration::from_secs(12),
        "came back after {back_after:?}"
    );
    assert_eq!(
        second["Records"][0]["attributes"]["ApproximateReceiveCount"],
        "2"
    );

    // …and then the recorded task is resumed: no second create.
    let answer = handle(&deps, invocation(second.clone(), 60)).await.unwrap();
    assert!(failed_ids(&answer).is_empty(), "{answer}");
    settle(&sqs, &url, &second, &answer).await;
    assert_eq!(emulator.counters().tasks_created, 1);
    assert!(
        keys(&s3, &bucket)
            .await
            .contains(&"generated/slow/manifest.json".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_delivery_writes_a_failure_record_and_nothing_reaches_the_dlq_without_one() {
    let (s3, sqs) = (s3_client(), sqs_client_at(&s3_endpoint()));
    let bucket = bucket(&s3, "last").await;
    let (url, arn, dlq) = queue(&sqs, "last", Some(2)).await;
    let dlq = dlq.unwrap();
    // Two objects: one whose creates never reach the service (every connection refused: surely
    // nothing was created, so trying again is safe), one whose task never finishes (created,
    // then never done).
    upload(&s3, &bucket, "incoming/refused.png", bottle(), &[]).await;
    upload(&s3, &bucket, "incoming/stuck.png", bottle(), &[]).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let stuck = fast_emulator(EmulatorConfig {
        faults: Faults {
            never_finish_rate: 1.0,
            ..Faults::default()
        },
        ..fast_config()
    })
    .await;
    let config = Config {
        retry_base: Duration::from_secs(1),
        max_receive_count: 2,
        ..operations_config()
    };
    let refusing = backdrop_tests::client_with(&stuck, 2, |builder| builder.base_url(closed));
    for (key, client) in [
        ("incoming/refused.png", refusing),
        ("incoming/stuck.png", backdrop_tests::client_for(&stuck, 2)),
    ] {
        let deps = Deps {
            client,
            ..deps_with_queue(&stuck, config.clone())
        };
        sqs.send_message()
            .queue_url(&url)
            .message_body(notification(&bucket, key))
            .send()
            .await
            .unwrap();
        for delivery in 1..=2 {
            let event = receive(&sqs, &url, &arn, Duration::from_secs(10))
                .await
                .unwrap();
            let answer = handle(&deps, invocation(event.clone(), 8)).await.unwrap();
            // The first delivery asks for another; the last ends with a record instead.
            assert_eq!(
                failed_ids(&answer).len(),
                usize::from(delivery == 1),
                "{key} #{delivery}: {answer}"
            );
            settle(&sqs, &url, &event, &answer).await;
        }
    }
    assert!(
        receive(&sqs, &url, &arn, Duration::from_secs(2))
            .await
            .is_none()
    );
    assert!(
        receive(&sqs, &dlq, &arn, Duration::from_secs(1))
            .await
            .is_none(),
        "nothing reached the dead-letter queue"
    );
    let refused =
        serde_json::from_slice::<Value>(&read(&s3, &bucket, "failed/refused.png.json").await)
            .unwrap();
    assert_eq!(refused["stage"], "retries");
    assert_eq!(refused["recovery"], "retry");
    assert_eq!(refused["credits_spent"], false);
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("gave up after 2 deliveries")
    );
    let stuck_record =
        serde_json::from_slice::<Value>(&read(&s3, &bucket, "failed/stuck.png.json").await)
            .unwrap();
    assert_eq!(stuck_record["stage"], "retries");
    assert_eq!(stuck_record["recovery"], "resume");
    assert_eq!(
        stuck_record["credits_spent"], true,
        "the task may still finish and be charged"
    );
    assert_eq!(
        stuck_record["task_id"],
        json!(stuck.tasks()[0].task_id),
        "{stuck_record:#}"
    );
    // One task in all: the stuck object's (the refused one never reached a server).
    assert_eq!(stuck.counters().tasks_created, 1);
}

/// A server process, stopped when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A moto server of its own with IAM enforced after `free_actions` unauthenticated requests.
fn moto_with_iam(free_actions: u32) -> (String, Server) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let server = backdrop_tests::moto_program();
    let server = Server(
        Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", free_actions.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs (tests/run installs it)"),
    );
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (format!("http://127.0.0.1:{port}"), server);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("moto_server did not start on port {port}");
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_refusing_the_role_is_a_configuration_failure_with_no_retry() {
    // Five free actions: the bucket, the upload, the user, its policy, its access key.
    let (endpoint, _moto) = moto_with_iam(5);
    let admin = s3_client_at(&endpoint, "testing", "testing");
    admin.create_bucket().bucket("locked").send().await.unwrap();
    admin
        .put_object()
        .bucket("locked")
        .key("incoming/a.png")
        .body(bottle().into())
        .send()
        .await
        .unwrap();
    let iam = iam_client(&endpoint);
    iam.create_user()
        .user_name("function")
        .send()
        .await
        .unwrap();
    // Everything the function needs but reading the uploads.
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": ["arn:aws:s3:::locked/state/*", "arn:aws:s3:::locked/generated/*", "arn:aws:s3:::locked/failed/*"]},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::locked"}]});
    iam.put_user_policy()
        .user_name("function")
        .policy_name("almost")
        .policy_document(policy.to_string())
        .send()
        .await
        .unwrap();
    let key = iam
        .create_access_key()
        .user_name("function")
        .send()
        .await
        .unwrap();
    let key = key.access_key().unwrap();
    let function = s3_client_at(&endpoint, key.access_key_id(), key.secret_access_key());
    let store = S3Store::new(function.clone());
    let emulator = fast_emulator(fast_config()).await;
    let deps = Deps {
        store,
        queue: NoQueue,
        client: backdrop_tests::client_for(&emulator, 2),
        config: config(),
        metrics: MetricsSink::Stdout,
    };
    let answer = handle(
        &deps,
        invocation(sqs_event("locked", &["incoming/a.png"]), 30),
    )
    .await
    .unwrap();
    assert!(failed_ids(&answer).is_empty(), "not retried: {answer}");
    // Read back with the function's keys: IAM now applies to every request.
    let record: Value = serde_json::from_slice(
        &function
            .get_object()
            .bucket("locked")
            .key("failed/a.png.json")
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes(),
    )
    .unwrap();
    assert_eq!(record["stage"], "configuration", "{record:#}");
    let message = record["message"].as_str().unwrap();
    assert!(
        message.contains("s3:GetObject") && message.contains("403"),
        "{message}"
    );
    assert_eq!(emulator.counters().create_requests, 0);
}

fn s3_client_at(endpoint: &str, id: &str, secret: &str) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .force_path_style(true)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(id, secret, None, None, "tests"))
            .build(),
    )
}

fn iam_client(endpoint: &str) -> aws_sdk_iam::Client {
    use aws_sdk_iam::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .build(),
    )
}

/// A log sink.
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

#[test]
fn the_log_lines_of_concurrent_messages_carry_their_own_message_id() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    // The function's own subscriber (the deployed JSON format), for this thread: a
    // current-thread runtime polls every message's future here.
    let subscriber = logging::subscriber(
        logging::filter(|name| (name == "AWS_LAMBDA_LOG_LEVEL").then(|| "DEBUG".to_owned())),
        move || writer.clone(),
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys = ["incoming/a.png", "incoming/b.png", "incoming/c.png"];
    runtime.block_on(async {
        let s3 = s3_client();
        let bucket = bucket(&s3, "spans").await;
        for key in keys {
            upload(&s3, &bucket, key, bottle(), &[]).await;
        }
        let emulator = fast_emulator(fast_config()).await;
        let deps = deps(&emulator, config());
        let answer = handle(&deps, invocation(sqs_event(&bucket, &keys), 60))
            .await
            .unwrap();
        assert!(failed_ids(&answer).is_empty(), "{answer}");
    });
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let mut checked = 0;
    for line in text.lines() {
        let line: Value = serde_json::from_str(line).expect("every line is JSON");
        let Some(key) = line["fields"]["key"].as_str() else {
            continue;
        };
        let expected = format!("msg-{}", keys.iter().position(|k| *k == key).unwrap());
        assert_eq!(line["span"]["message_id"], expected, "{line}");
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} lines name an object:\n{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn metric_lines_are_emf_and_agree_with_the_emulator() {
    let s3 = s3_client();
    let bucket = bucket(&s3, "metrics").await;
    upload(&s3, &bucket, "incoming/ok-1.png", bottle(), &[]).await;
    upload(
        &s3,
        &bucket,
        "incoming/ok-2.png",
        bottle(),
        &[("batch-size", "1")],
    )
    .await;
    upload(
        &s3,
        &bucket,
        "incoming/refused.png",
        bottle(),
        &[("prompt", "x emulator:fail=-17")],
    )
    .await;
    upload(
        &s3,
        &bucket,
        "incoming/opaque.png",
        backdrop_tests::opaque_png(300, 300),
        &[],
    )
    .await;
    // A server with a lower QPS than the client's: some requests are answered 429.
    let emulator = fast_emulator(EmulatorConfig {
        qps: 1,
        ..fast_config()
    })
    .await;
    let kept = Arc::new(Mutex::new(Vec::new()));
    let deps = Deps {
        metrics: MetricsSink::Memory(kept.clone()),
        client: backdrop_tests::client_for(&emulator, 4),
        ..deps(&emulator, config())
    };
    let keys = [
        "incoming/ok-1.png",
        "incoming/ok-2.png",
        "incoming/refused.png",
        "incoming/opaque.png",
    ];
    let answer = handle(&deps, invocation(sqs_event(&bucket, &keys), 120))
        .await
        .unwrap();
    assert!(failed_ids(&answer).is_empty(), "{answer}");
    let lines: Vec<Value> = kept
        .lock()
        .unwrap()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let base = &lines[0];
    // EMF: every declared metric and dimension has a value on the line.
    for line in &lines {
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert!(line["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
        for name in directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
        {
            assert!(!line[name].is_null(), "{name} in {line}");
        }
        for dimension in directive["Dimensions"][0].as_array().unwrap() {
            assert!(line[dimension.as_str().unwrap()].is_string(), "{line}");
        }
    }
    let counters = emulator.counters();
    assert_eq!(base["TasksCreated"], counters.tasks_created, "{base}");
    assert_eq!(base["ObjectsSucceeded"], 2);
    assert_eq!(base["ObjectsFailed"], 2);
    assert_eq!(
        base["CreditsCharged"], counters.credits_charged,
        "{base} {counters:?}"
    );
    assert_eq!(
        base["RateLimited"],
        counters.responses_by_status.get(&429).copied().unwrap_or(0),
        "{base} {counters:?}"
    );
    assert_eq!(base["TaskSeconds"].as_array().unwrap().len(), 2);
    let stages: Vec<(&str, u64)> = lines[1..]
        .iter()
        .map(|l| {
            (
                l["Stage"].as_str().unwrap(),
                l["ObjectsFailed"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(stages, vec![("task", 1), ("validation", 1)]);
}
