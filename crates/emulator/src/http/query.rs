//! `GET /api/tasks/visual/background/{task_id}`: the state of a task and, once it succeeded, its
//! results.
//!
//! `data` carries every documented field: `task_id`, `state`, `progress`, `created_at`,
//! `processed_at` (once processing started), `completed_at` and `time_elapsed` (once the task is
//! final; real milliseconds from creation to the end), `image_1` / `image_2` (on success;
//! `image_2` only for a batch of 2), `return_type` (1 = URL, 2 = base64) and `state_detail`.
//! Timestamps are unix seconds as strings, like the spec's example. A failed task is answered 200
//! too, with the failure in `data.state` and its explanation in `message` and `data.state_detail`.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use backdrop_core::spec::HttpStatus;
use backdrop_core::{StateClass, TaskState};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::config::ResultFormat;
use crate::http::{SUCCESS_MESSAGE, api_error, envelope};
use crate::tasks::TaskView;

/// The query handler (after the gate).
pub(crate) async fn query(
    State(app): State<Arc<App>>,
    Path(task_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let now = Instant::now();
    let view = app.tasks.with(&task_id, |task| {
        task.polls += 1;
        let view = task.view(now, app.config.progress);
        if view.state.is_final() && task.final_seen_wall.is_none() {
            task.final_seen_wall = Some(SystemTime::now());
        }
        view
    });
    let Some(view) = view else {
        return api_error(
            HttpStatus::NotFound,
            Some("the requested URL or resource does not exist: no task has this task_id"),
        );
    };
    let message = if view.state.class() == StateClass::Failed {
        view.detail.clone()
    } else {
        SUCCESS_MESSAGE.to_owned()
    };
    let base = result_base(&app, &headers);
    envelope(StatusCode::OK, &message, data(&app, &view, &base))
}

/// The `data` object of a query answer.
fn data(app: &App, view: &TaskView, base_url: &str) -> Value {
    let mut data = Map::new();
    data.insert("task_id".into(), json!(view.task_id));
    data.insert("state".into(), json!(view.state.code()));
    data.insert("progress".into(), json!(view.progress));
    data.insert("created_at".into(), json!(unix_string(view.created_wall)));
    if let Some(processed) = view.processed_wall {
        data.insert("processed_at".into(), json!(unix_string(processed)));
    }
    if let Some(completed) = view.completed_wall {
        data.insert("completed_at".into(), json!(unix_string(completed)));
    }
    if view.state == TaskState::Completed {
        let format = app.config.result_format;
        for (index, image) in view.images.iter().enumerate() {
            let n = u8::try_from(index + 1).unwrap_or(u8::MAX);
            let value = match format {
                ResultFormat::Url => result_url(app, base_url, &view.task_id, n, view),
                ResultFormat::Base64 => STANDARD.encode(image),
                ResultFormat::DataUri => {
                    format!("data:image/jpeg;base64,{}", STANDARD.encode(image))
                }
            };
            data.insert(format!("image_{n}"), json!(value));
        }
    }
    data.insert(
        "return_type".into(),
        json!(app.config.result_format.return_type()),
    );
    data.insert("state_detail".into(), json!(view.detail));
    if let Some(elapsed) = view.elapsed {
        data.insert(
            "time_elapsed".into(),
            json!(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)),
        );
    }
    Value::Object(data)
}

/// The signed URL of result `n`, valid until the task's end plus the (scaled) URL lifetime.
fn result_url(app: &App, base_url: &str, task_id: &str, n: u8, view: &TaskView) -> String {
    let completed = view.completed_wall.unwrap_or_else(SystemTime::now);
    let expiry = completed + app.result_ttl();
    let expires = expiry
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
        .unwrap_or(0);
    let sig = app.signer.sign(task_id, n, expires);
    format!("{base_url}/results/{task_id}/{n}.jpg?expires={expires}&sig={sig}")
}

/// Where result URLs point: the configured public URL, else the host the client used, else the
/// bound address.
fn result_base(app: &App, headers: &HeaderMap) -> String {
    if let Some(url) = &app.config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .filter(|host| {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c))
        })
        .map_or_else(|| app.base_url.clone(), |host| format!("http://{host}"))
}

/// Unix seconds as a string, like the spec's `"1634884056"`.
fn unix_string(time: SystemTime) -> String {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string()
}
