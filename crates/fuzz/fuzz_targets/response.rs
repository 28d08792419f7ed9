//! The API's answers: the `{status, message, data}` envelope of a create answer and of a query
//! answer, parsed into the typed results the client uses, and what a poll does with them.
//!
//! The input is an answer body. Checked, beyond "no panic":
//! - a parsed task has a non-empty id, a state class that follows the spec's rule (1 succeeded,
//!   below 0 failed, else pending), at most two non-blank result fields and 0, 3 or 6 credits;
//! - numbers read leniently are finite, and a parsed task serialises and parses back to itself;
//! - every result field reads as a URL or inline bytes within the download cap, or is refused;
//! - a create answer's task id, when present, is what the client would poll;
//! - each line of the input, read as one poll's answer in turn, keeps the poll forecast's
//!   probabilities within 0..=1.
#![no_main]

use std::time::Duration;

use backdrop_core::StateClass;
use backdrop_core::__private::{CreatedTask, DurationModel, Envelope, TaskForecast};
use backdrop_core::{ResultLocation, TaskInfo};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokio::time::Instant;

/// The download cap the checks use (small, so the fuzzer can reach it).
const CAP: usize = 4096;

fuzz_target!(|data: &[u8]| {
    // What `effective_status` reads first: any envelope.
    if let Ok(envelope) = serde_json::from_slice::<Envelope<Value>>(data) {
        let _ = envelope.status.and_then(|s| u16::try_from(s).ok());
    }

    if let Ok(envelope) = serde_json::from_slice::<Envelope<CreatedTask>>(data)
        && let Some(created) = envelope.data
        && let Some(id) = created.task_id.filter(|id| !id.trim().is_empty())
    {
        assert!(!id.trim().is_empty());
    }

    if let Ok(envelope) = serde_json::from_slice::<Envelope<TaskInfo>>(data)
        && let Some(info) = envelope.data
    {
        check_task(&info);
    }

    // A sequence of polls, one answer per line.
    let model = DurationModel::with_prior(Duration::from_secs(10), Duration::from_secs(30));
    let created = Instant::now();
    let mut forecast = TaskForecast::new(created);
    for (i, line) in data.split(|b| *b == b'\n').take(64).enumerate() {
        let Ok(envelope) = serde_json::from_slice::<Envelope<TaskInfo>>(line) else {
            continue;
        };
        let Some(info) = envelope.data else { continue };
        let at = created + Duration::from_millis(250 * (i as u64 + 1));
        let before = forecast.poll_value(at, &model);
        forecast.observe(at, info.state, info.progress);
        for probability in [
            before,
            forecast.poll_value(at + Duration::from_secs(1), &model),
            forecast.done_by(at, &model),
            forecast.done_by(at + Duration::from_secs(3600), &model),
        ] {
            assert!(
                (0.0..=1.0).contains(&probability),
                "{probability} after {info:?}"
            );
        }
    }
});

fn check_task(info: &TaskInfo) {
    assert!(!info.task_id.is_empty());
    let code = info.state.code();
    let class = match code {
        1 => StateClass::Succeeded,
        c if c < 0 => StateClass::Failed,
        _ => StateClass::Pending,
    };
    assert_eq!(info.class(), class);
    assert!(!info.state.to_string().is_empty());
    for number in [info.progress, info.time_elapsed].into_iter().flatten() {
        assert!(number.is_finite(), "{info:?}");
    }

    let fields = info.result_fields();
    assert!(fields.len() <= 2);
    for (index, field) in &fields {
        assert!(matches!(index, 1 | 2));
        assert!(!field.is_empty() && field.trim() == *field);
        match ResultLocation::parse_capped(field, CAP) {
            Ok(ResultLocation::Url(url)) => assert!(matches!(url.scheme(), "http" | "https")),
            Ok(ResultLocation::Inline(bytes)) => assert!(bytes.len() <= CAP),
            Err(error) => assert!(!error.0.is_empty()),
        }
    }
    let credits = info.credits_charged();
    match class {
        StateClass::Succeeded => assert_eq!(credits, [0, 3, 6][fields.len()]),
        _ => assert_eq!(credits, 0),
    }

    // What the CLI's JSON output and the Lambda's records carry reads back the same.
    let json = serde_json::to_string(info).unwrap();
    let mut again: TaskInfo = serde_json::from_str(&json).unwrap();
    // serde_json's default float parsing may land one ulp away: compare numbers by value.
    for (a, b) in [
        (&mut again.progress, info.progress),
        (&mut again.time_elapsed, info.time_elapsed),
    ] {
        match (*a, b) {
            (Some(x), Some(y)) => assert!((x - y).abs() <= (y.abs() * 1e-15).max(1e-300), "{json}"),
            (x, y) => assert_eq!(x, y, "{json}"),
        }
        *a = b;
    }
    assert_eq!(&again, info, "{json}");
}
