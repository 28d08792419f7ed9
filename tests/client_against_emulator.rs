//! The core client against the emulator: the whole flow, every state and HTTP code path,
//! validation, inline results, expired URLs, retries, and the shared rate limit.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use backdrop_core::{
    Error, GenerateRequest, ImageFormat, Operation, Recovery, StateClass, TaskState, WaitControl,
    WaitOptions,
};
use backdrop_emulator::{EmulatorConfig, Faults, ProcessingTime, ResultFormat};
use backdrop_tests::{
    client_for, client_with, fast_config, fast_emulator, fixture, opaque_png, transparent_png,
};

fn prompt_request(prompt: &str, batch: i64) -> GenerateRequest {
    GenerateRequest::builder()
        .image_path(fixture("bottle.png"))
        .prompt(prompt)
        .batch_size(backdrop_core::BatchSize::try_from(batch).unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_prompt_flow_yields_two_jpegs_and_costs_six_credits() {
    let emulator = fast_emulator(fast_config()).await;
    let client = client_for(&emulator, 2);
    let mut states = Vec::new();
    let generation = client
        .generate(
            &prompt_request("a sunny beach", 2),
            WaitOptions::default(),
            |task| {
                states.push(task.state);
                WaitControl::Continue
            },
        )
        .await
        .unwrap();
    assert_eq!(generation.images.len(), 2);
    for image in &generation.images {
        assert_eq!(image.format, ImageFormat::Jpeg);
        let decoded = image::load_from_memory(&image.bytes).unwrap();
        // bottle.png is 480x640: the result keeps the aspect ratio within 1024x1024.
        assert!(decoded.width() <= 1024 && decoded.height() <= 1024);
        let ratio = decoded.width() as f64 / decoded.height() as f64;
        assert!((ratio - 0.75).abs() < 0.01, "{ratio}");
    }
    assert_eq!(generation.credits, 6);
    assert_eq!(states.last(), Some(&TaskState::Completed));
    assert!(states.iter().all(|s| s.class() != StateClass::Failed));
    let counters = emulator.counters();
    assert_eq!(counters.tasks_created, 1);
    assert_eq!(counters.credits_charged, 6);
    assert_eq!(counters.result_downloads, 2);
    assert_eq!(counters.responses_429, 0);
}

#[tokio::test]
async fn scene_type_with_one_image_costs_three_credits() {
    let emulator = fast_emulator(fast_config()).await;
    let client = client_for(&emulator, 2);
    let request = GenerateRequest::builder()
        .image_bytes(transparent_png(300, 300), "disc.png")
        .scene_type(backdrop_core::SceneType::try_from(105).unwrap())
        .batch_size(backdrop_core::BatchSize::One)
        .build()
        .unwrap();
    let generation = client
        .generate(&request, WaitOptions::default(), |_| WaitControl::Continue)
        .await
        .unwrap();
    assert_eq!(generation.images.len(), 1);
    assert_eq!(generation.credits, 3);
    assert_eq!(emulator.counters().credits_charged, 3);
}

#[tokio::test]
async fn every_documented_failure_state_is_reported_with_its_meaning() {
    let emulator = fast_emulator(EmulatorConfig {
        qps: 20,
        ..fast_config()
    })
    .await;
    let client = Arc::new(client_for(&emulator, 20));
    let failures: Vec<TaskState> = TaskState::DOCUMENTED
        .into_iter()
        .filter(|s| s.class() == StateClass::Failed)
        .collect();
    let runs = failures.iter().map(|state| {
        let client = client.clone();
        let state = *state;
        async move {
            let request = prompt_request(&format!("studio emulator:fail={}", state.code()), 1);
            let result = client
                .generate(&request, WaitOptions::default(), |_| WaitControl::Continue)
                .await;
            (state, result)
        }
    });
    for (state, result) in futures_join(runs).await {
        match result {
            Err(Error::TaskFailed {
                state: got,
                task_id,
                ..
            }) => {
                assert_eq!(got, state);
                assert!(!task_id.is_empty());
                let message = Error::TaskFailed {
                    task_id,
                    state,
                    message: None,
                }
                .to_string();
                assert!(message.contains(state.meaning()), "{message}");
            }
            other => panic!("state {state}: expected TaskFailed, got {other:?}"),
        }
    }
    let counters = emulator.counters();
    assert_eq!(counters.tasks_created as usize, failures.len());
    assert_eq!(counters.credits_charged, 0);
}

async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await);
    }
    out
}

#[tokio::test]
async fn invalid_input_is_refused_before_any_request() {
    let emulator = fast_emulator(fast_config()).await;
    let client = client_for(&emulator, 2);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (opaque_png(400, 400), "no transparency"),
        (transparent_png(200, 400), "at least 256"),
        (b"GIF89a not a png".to_vec(), "not a PNG"),
        (Vec::new(), "empty"),
    ];
    for (bytes, expected) in cases {
        let request = GenerateRequest::builder()
            .image_bytes(bytes, "x.png")
            .prompt("a beach")
            .build()
            .unwrap();
        let error = client.create_task(&request).await.unwrap_err();
        assert!(matches!(error, Error::Invalid(_)), "{error:?}");
        assert!(error.to_string().contains(expected), "{error}");
    }
    let too_large = std::env::temp_dir().join(format!("backdrop-large-{}.png", std::process::id()));
    let file = std::fs::File::create(&too_large).unwrap();
    file.set_len(backdrop_core::spec::MAX_IMAGE_FILE_BYTES + 1)
        .unwrap();
    let request = GenerateRequest::builder()
        .image_path(&too_large)
        .prompt("a beach")
        .build()
        .unwrap();
    let error = client.create_task(&request).await.unwrap_err();
    std::fs::remove_file(&too_large).unwrap();
    assert!(error.to_string().contains("20 MiB"), "{error}");
    let counters = emulator.counters();
    assert_eq!(
        counters.create_requests, 0,
        "nothing may be sent for invalid input"
    );
    assert_eq!(client.requests_sent(), 0);
}

#[tokio::test]
async fn a_wrong_key_is_401_and_not_retried() {
    let emulator = fast_emulator(fast_config()).await;
    let client = backdrop_core::Client::new(
        backdrop_core::ClientConfig::builder("wrong-key-123")
            .base_url(emulator.base_url())
            .build()
            .unwrap(),
    )
    .unwrap();
    let error = client
        .create_task(&prompt_request("a beach", 1))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
    assert_eq!(error.http_status(), Some(401));
    assert!(!error.to_string().contains("wrong-key-123"));
    assert_eq!(emulator.counters().create_requests, 1);
}

#[tokio::test]
async fn an_unknown_task_is_404() {
    let emulator = fast_emulator(fast_config()).await;
    let client = client_for(&emulator, 2);
    let error = client.get_task("no-such-task").await.unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert_eq!(emulator.counters().query_requests, 1);
}

#[tokio::test]
async fn inline_base64_and_data_uri_results_are_decoded() {
    for format in [ResultFormat::Base64, ResultFormat::DataUri] {
        let emulator = fast_emulator(EmulatorConfig {
            result_format: format,
            ..fast_config()
        })
        .await;
        let client = client_for(&emulator, 2);
        let generation = client
            .generate(
                &prompt_request("a forest", 2),
                WaitOptions::default(),
                |_| WaitControl::Continue,
            )
            .await
            .unwrap();
        assert_eq!(generation.images.len(), 2, "{format:?}");
        assert!(
            generation
                .images
                .iter()
                .all(|i| i.format == ImageFormat::Jpeg)
        );
        assert_eq!(
            emulator.counters().result_downloads,
            0,
            "inline results need no download"
        );
    }
}

#[tokio::test]
async fn an_expired_result_url_is_its_own_error() {
    let emulator = fast_emulator(EmulatorConfig {
        faults: Faults {
            expire_results: true,
            ..Faults::default()
        },
        ..fast_config()
    })
    .await;
    let client = client_for(&emulator, 2);
    let task_id = client
        .create_task(&prompt_request("marble", 1))
        .await
        .unwrap();
    let task = client
        .wait_for_task_with(&task_id, WaitOptions::default(), |_| WaitControl::Continue)
        .await
        .unwrap();
    let error = client.download_results(&task).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::ResultExpired {
                status: 403,
                index: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("expire"), "{error}");
}

#[tokio::test]
async fn server_errors_retry_queries_and_leave_creates_unconfirmed() {
    let emulator = fast_emulator(EmulatorConfig {
        faults: Faults {
            error_500_rate: 0.4,
            ..Faults::default()
        },
        ..fast_config()
    })
    .await;
    let client = client_for(&emulator, 2);
    let mut unconfirmed = 0;
    for n in 0..6 {
        match client
            .generate(
                &prompt_request(&format!("kitchen {n}"), 1),
                WaitOptions::default(),
                |_| WaitControl::Continue,
            )
            .await
        {
            Ok(_) => {}
            Err(error) => {
                assert!(
                    matches!(
                        error,
                        Error::Server {
                            during: Operation::Create,
                            status: 500,
                            attempts: 1,
                            ..
                        }
                    ),
                    "{error:?}"
                );
                assert_eq!(error.recovery(), Recovery::Unconfirmed, "{error}");
                assert!(error.to_string().contains("may exist"), "{error}");
                unconfirmed += 1;
            }
        }
    }
    let counters = emulator.counters();
    assert!(counters.responses_500_injected > 0, "{counters:?}");
    assert_eq!(counters.create_requests, 6, "no create was sent twice");
    assert_eq!(counters.tasks_created, 6 - unconfirmed);
}

#[tokio::test]
async fn a_create_whose_answer_never_comes_is_not_sent_again() {
    let emulator = fast_emulator(EmulatorConfig {
        faults: Faults {
            drop_rate: 1.0,
            ..Faults::default()
        },
        ..fast_config()
    })
    .await;
    let client = client_for(&emulator, 2);
    let error = client
        .create_task(&prompt_request("beach", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Network {
                maybe_accepted: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        emulator.counters().create_requests,
        1,
        "a create that may have landed is never repeated"
    );
}

#[tokio::test]
async fn a_slow_create_times_out_once_and_is_not_repeated() {
    let emulator = fast_emulator(EmulatorConfig {
        faults: Faults {
            slow_rate: 1.0,
            slow_delay: Duration::from_secs(2),
            ..Faults::default()
        },
        ..fast_config()
    })
    .await;
    let client = client_with(&emulator, 2, |b| {
        b.request_timeout(Duration::from_millis(300))
    });
    let error = client
        .create_task(&prompt_request("beach", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Network {
                maybe_accepted: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(emulator.counters().create_requests, 1);
}

#[tokio::test]
async fn polls_survive_dropped_connections() {
    let emulator = fast_emulator(fast_config()).await;
    let client = client_for(&emulator, 2);
    let task_id = client
        .create_task(&prompt_request("beach", 1))
        .await
        .unwrap();
    emulator.set_faults(Faults {
        drop_rate: 0.5,
        ..Faults::default()
    });
    let task = client
        .wait_for_task_with(&task_id, WaitOptions::default(), |_| WaitControl::Continue)
        .await
        .unwrap();
    assert_eq!(task.state, TaskState::Completed);
    assert!(emulator.counters().dropped_connections > 0);
}

#[tokio::test]
async fn a_task_that_never_finishes_times_out_with_its_id() {
    let emulator = fast_emulator(EmulatorConfig {
        faults: Faults {
            never_finish_rate: 1.0,
            ..Faults::default()
        },
        ..fast_config()
    })
    .await;
    let client = client_for(&emulator, 2);
    let task_id = client
        .create_task(&prompt_request("beach", 1))
        .await
        .unwrap();
    let options = WaitOptions {
        max_wait: Duration::from_millis(800),
        ..WaitOptions::default()
    };
    let error = client
        .wait_for_task_with(&task_id, options, |_| WaitControl::Continue)
        .await
        .unwrap_err();
    match error {
        Error::Timeout {
            task_id: id,
            last_state,
            ..
        } => {
            assert_eq!(id, task_id);
            assert_eq!(last_state.class(), StateClass::Pending);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn the_observer_sees_progress_and_can_cancel() {
    let emulator = fast_emulator(fast_config()).await;
    let client = client_for(&emulator, 2);
    let task_id = client
        .create_task(&prompt_request("beach", 1))
        .await
        .unwrap();
    let mut seen = 0;
    let error = client
        .wait_for_task_with(&task_id, WaitOptions::default(), |_| {
            seen += 1;
            if seen == 2 {
                WaitControl::Cancel
            } else {
                WaitControl::Continue
            }
        })
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Cancelled { .. }), "{error:?}");
    // Resuming by id later works: the task went on.
    let task = client.wait_for_task(&task_id).await.unwrap();
    assert_eq!(task.state, TaskState::Completed);
}

#[tokio::test]
async fn a_server_with_a_lower_limit_gets_honoured_after_429s() {
    // The key really allows 1 request per window, the client is told 4: the server's 429s
    // (with Retry-After) must slow it down until everything gets through.
    let emulator = fast_emulator(EmulatorConfig {
        qps: 1,
        ..fast_config()
    })
    .await;
    let client = client_with(&emulator, 4, |b| {
        b.retry(backdrop_core::RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(300),
        })
    });
    let generation = client
        .generate(&prompt_request("beach", 1), WaitOptions::default(), |_| {
            WaitControl::Continue
        })
        .await
        .unwrap();
    assert_eq!(generation.images.len(), 1);
    let counters = emulator.counters();
    assert_eq!(counters.tasks_created, 1);
    assert!(counters.responses_429 > 0, "{counters:?}");
}

#[tokio::test]
async fn twenty_concurrent_tasks_share_the_limit_with_zero_429s() {
    let emulator = fast_emulator(EmulatorConfig {
        processing: ProcessingTime::Uniform {
            min: Duration::from_secs(1),
            max: Duration::from_secs(4),
        },
        ..fast_config()
    })
    .await;
    let client = client_for(&emulator, 2);
    let mut handles = Vec::new();
    for i in 0..20 {
        let client = client.clone();
        handles.push(tokio::spawn(async move {
            let request = GenerateRequest::builder()
                .image_path(fixture(if i % 2 == 0 { "bottle.png" } else { "mug.png" }))
                .prompt(format!("scene number {i}"))
                .batch_size(backdrop_core::BatchSize::One)
                .build()
                .unwrap();
            client
                .generate(&request, WaitOptions::default(), |_| WaitControl::Continue)
                .await
        }));
    }
    for handle in handles {
        let generation = handle.await.unwrap().unwrap();
        assert_eq!(generation.images.len(), 1);
    }
    let counters = emulator.counters();
    assert_eq!(counters.tasks_created, 20);
    assert_eq!(counters.responses_429, 0, "{counters:?}");
    assert!(counters.max_requests_in_window <= 2, "{counters:?}");
    assert_eq!(
        client.requests_sent(),
        counters.create_requests + counters.query_requests
    );
}

#[tokio::test]
async fn the_key_never_appears_in_errors_or_debug_output() {
    let emulator = fast_emulator(EmulatorConfig {
        api_keys: vec!["sk-live-SECRET-4242".into()],
        ..fast_config()
    })
    .await;
    let client = client_for(&emulator, 2);
    let shown = format!("{client:?} {:?}", client.config());
    assert!(!shown.contains("SECRET-4242"), "{shown}");
    let error = client.get_task("missing").await.unwrap_err();
    assert!(!format!("{error} {error:?}").contains("SECRET-4242"));
}

#[tokio::test]
async fn the_documented_policy_polls_every_interval_within_the_limit() {
    let emulator = fast_emulator(fast_config()).await;
    let client = client_for(&emulator, 2);
    let options = WaitOptions {
        policy: backdrop_core::PollPolicy::Documented,
        ..WaitOptions::default()
    };
    let mut handles = Vec::new();
    for _ in 0..6 {
        let client = client.clone();
        handles.push(tokio::spawn(async move {
            client
                .generate(&prompt_request("beach", 1), options, |_| {
                    WaitControl::Continue
                })
                .await
        }));
    }
    for handle in handles {
        handle.await.unwrap().unwrap();
    }
    let counters = emulator.counters();
    assert_eq!(counters.tasks_created, 6);
    assert_eq!(counters.responses_429, 0, "{counters:?}");
    assert!(counters.max_requests_in_window <= 2, "{counters:?}");
    // Every task was polled at least once after it was created, and never after it was seen done.
    for task in emulator.tasks() {
        assert!(task.polls >= 1);
        assert!(task.final_seen_at.is_some());
    }
}

#[tokio::test]
async fn a_create_is_recorded_after_its_grant_and_before_it_is_sent() {
    let emulator = fast_emulator(fast_config()).await;
    let client = client_for(&emulator, 2);
    let request = prompt_request("a marble countertop", 1);

    // A record that fails: nothing is sent.
    let refused = client
        .create_task_recorded(&request, None, || async {
            Err(Error::RecordFailed("the journal is full".into()))
        })
        .await
        .expect_err("a failed record stops the create");
    assert!(matches!(refused, Error::RecordFailed(_)), "{refused:?}");
    assert_eq!(refused.recovery(), backdrop_core::Recovery::Retry);
    assert_eq!(emulator.counters().create_requests, 0);

    // The record runs before the request leaves: the service has not seen it yet.
    for done in 0..2 {
        client
            .create_task_recorded(&request, None, || async {
                assert_eq!(emulator.counters().create_requests, done);
                Ok(())
            })
            .await
            .unwrap();
    }
    // Records slower than the rate limit's margin: each create still goes out once, and no
    // window ever holds more than the QPS.
    let creates = (0..4).map(|_| {
        client.create_task_recorded(&request, None, || async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(())
        })
    });
    for created in futures_join(creates).await {
        created.unwrap();
    }
    let counters = emulator.counters();
    assert_eq!(counters.create_requests, 6);
    assert_eq!(counters.tasks_created, 6);
    assert_eq!(counters.responses_429, 0, "{counters:?}");
    assert!(counters.max_requests_in_window <= 2, "{counters:?}");
}
