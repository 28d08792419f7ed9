//! Admin routes for tests and scripts (no key, no faults, no rate limit):
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /__emulator/counters` | [`Counters`](crate::Counters) as JSON |
//! | `POST /__emulator/reset-counters` | the counters before they were set to zero |
//! | `GET /__emulator/tasks` | every task as a JSON list of [`TaskInfo`](crate::TaskInfo), oldest first |
//! | `GET /__emulator/faults` | the [`Faults`] in force |
//! | `PUT /__emulator/faults` | replaces the faults (JSON body, missing fields default); 400 if invalid |

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};

use crate::app::{App, lock};
use crate::config::Faults;
use crate::counters::Counters;
use crate::tasks::TaskInfo;

/// The admin routes.
pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/__emulator/counters", get(counters))
        .route("/__emulator/reset-counters", post(reset_counters))
        .route("/__emulator/tasks", get(tasks))
        .route("/__emulator/faults", get(faults).put(set_faults))
}

async fn counters(State(app): State<Arc<App>>) -> Json<Counters> {
    Json(app.counters.snapshot())
}

async fn reset_counters(State(app): State<Arc<App>>) -> Json<Counters> {
    Json(app.counters.reset())
}

async fn tasks(State(app): State<Arc<App>>) -> Json<Vec<TaskInfo>> {
    Json(app.tasks.list(Instant::now(), app.config.progress))
}

async fn faults(State(app): State<Arc<App>>) -> Json<Faults> {
    Json(app.faults())
}

async fn set_faults(
    State(app): State<Arc<App>>,
    body: Result<Json<Faults>, JsonRejection>,
) -> Response {
    let faults = match body {
        Ok(Json(faults)) => faults,
        Err(rejection) => return (StatusCode::BAD_REQUEST, rejection.body_text()).into_response(),
    };
    if let Err(problem) = faults.validate() {
        return (StatusCode::BAD_REQUEST, problem).into_response();
    }
    *lock(&app.faults) = faults.clone();
    Json(faults).into_response()
}
