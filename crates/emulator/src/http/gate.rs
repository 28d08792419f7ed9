//! What every API request goes through before its handler, in this order:
//!
//! 1. counting (create or query request; the key's arrivals within the QPS window);
//! 2. injected faults, before anything else: dropped connection, 500, slow answer;
//! 3. the API key (401);
//! 4. the key's QPS limit (429 with `Retry-After`);
//!
//! and, after the handler, counting the answer's status (unless the create handler cut the
//! connection to lose the answer: [`AnswerLost`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use backdrop_core::spec::{self, HttpStatus};

use crate::app::{App, chance, lock};
use crate::conn::ConnHandle;
use crate::http::{api_error, drain};
use crate::rate::retry_after_secs;

/// Marks a response that is never sent: the handler cut the connection after accepting the
/// request (a lost create answer). It is not counted as an answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AnswerLost;

/// The middleware of the two API routes.
pub(crate) async fn gate(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let is_create = request.method() == Method::POST;
    app.counters.update(|c| {
        if is_create {
            c.create_requests += 1;
        } else {
            c.query_requests += 1;
        }
    });
    let key = request
        .headers()
        .get(spec::API_KEY_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|key| app.config.api_keys.iter().any(|known| known == key))
        .map(str::to_owned);
    if let Some(key) = &key {
        let (seen, early) = {
            let mut rate = lock(&app.rate);
            let now = Instant::now();
            (rate.arrive(key, now), rate.ignores_retry_after(key, now))
        };
        app.counters.update(|c| {
            c.max_requests_in_window = c.max_requests_in_window.max(seen);
            c.retry_after_ignored += u64::from(early);
        });
    }

    let faults = app.faults();
    let (drop, fail, slow) = {
        let mut rng = lock(&app.rng);
        (
            chance(&mut rng, faults.drop_rate),
            chance(&mut rng, faults.error_500_rate),
            chance(&mut rng, faults.slow_rate),
        )
    };
    if drop
        && let Some(ConnectInfo(connection)) = request
            .extensions()
            .get::<ConnectInfo<ConnHandle>>()
            .cloned()
    {
        // The whole request arrived, then the connection died: from the client's side the
        // create may have landed (a client that never finished sending knows it did not).
        let uri = request.uri().clone();
        drain(request.into_body(), app.config.max_body_bytes).await;
        connection.kill();
        app.counters.update(|c| c.dropped_connections += 1);
        tracing::debug!(uri = %uri, "fault: dropping the connection");
        // Never written: the connection fails on the first write.
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if fail || drop {
        drain(request.into_body(), app.config.max_body_bytes).await;
        app.counters.update(|c| c.responses_500_injected += 1);
        return counted(&app, api_error(HttpStatus::InternalServerError, None));
    }
    if slow {
        tokio::time::sleep(faults.slow_delay).await;
    }

    let Some(key) = key else {
        drain(request.into_body(), app.config.max_body_bytes).await;
        return counted(&app, api_error(HttpStatus::Unauthorized, None));
    };
    let admitted = lock(&app.rate).admit(&key, Instant::now());
    if let Err(wait) = admitted {
        drain(request.into_body(), app.config.max_body_bytes).await;
        app.counters.update(|c| c.responses_429 += 1);
        let seconds = retry_after_secs(wait);
        let mut response = api_error(HttpStatus::TooManyRequests, None);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        // From now: the answer is about to be written.
        lock(&app.rate).told_to_wait(&key, Instant::now(), Duration::from_secs(seconds));
        return counted(&app, response);
    }

    let response = next.run(request).await;
    if response.extensions().get::<AnswerLost>().is_some() {
        return response;
    }
    counted(&app, response)
}

/// Counts an answer by status and passes it on.
fn counted(app: &App, response: Response) -> Response {
    app.counters.response(response.status().as_u16());
    response
}
