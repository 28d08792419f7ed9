//! The HTTP side: routes, the JSON envelope and the handlers.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /api/tasks/visual/background` | create a task ([`create`]) |
//! | `GET /api/tasks/visual/background/{task_id}` | query a task ([`query`]) |
//! | `GET /results/{task_id}/{n}.jpg?expires=&sig=` | download a result ([`results`]) |
//! | `/__emulator/...` | counters, task list, faults ([`admin`]) |
//!
//! The two API routes pass through [`gate`] first: fault injection, key check, rate limit and
//! counting.

pub(crate) mod admin;
pub(crate) mod create;
pub(crate) mod gate;
pub(crate) mod query;
pub(crate) mod results;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use backdrop_core::spec::{self, HttpStatus};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::app::App;

/// The message of successful answers.
pub(crate) use backdrop_core::spec::SUCCESS_MESSAGE;

/// All routes of an emulator.
pub(crate) fn router(app: Arc<App>) -> Router {
    let query_path = format!("{}/{{task_id}}", spec::QUERY_TASK_PATH_PREFIX);
    let api = Router::new()
        .route(spec::CREATE_TASK_PATH, post(create::create))
        .route(&query_path, get(query::query))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&app), gate::gate))
        .layer(DefaultBodyLimit::max(app.config.max_body_bytes));
    Router::new()
        .merge(api)
        .route("/results/{task_id}/{file}", get(results::download))
        .merge(admin::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

/// `{"status": code, "message": ..., "data": ...}` with the same HTTP status.
pub(crate) fn envelope(status: StatusCode, message: &str, data: Value) -> Response {
    let body = json!({
        "status": status.as_u16(),
        "message": message,
        "data": data,
    });
    (status, Json(body)).into_response()
}

/// An error answer of a documented status; `detail` (if any) names the problem.
pub(crate) fn api_error(status: HttpStatus, detail: Option<&str>) -> Response {
    let code = StatusCode::from_u16(status.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = detail.unwrap_or(status.meaning());
    envelope(code, message, json!({}))
}

async fn not_found() -> Response {
    api_error(HttpStatus::NotFound, None)
}

async fn method_not_allowed() -> Response {
    envelope(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed: create tasks with POST, query them with GET",
        json!({}),
    )
}

/// Reads and discards a request body (at most `limit` bytes), so that a client still sending its
/// upload reads the answer instead of a reset connection.
pub(crate) async fn drain(body: Body, limit: usize) {
    let mut stream = body.into_data_stream();
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        seen = seen.saturating_add(chunk.len());
        if seen > limit {
            break;
        }
    }
}
