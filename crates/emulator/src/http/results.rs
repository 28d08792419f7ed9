//! `GET /results/{task_id}/{n}.jpg?expires=<unix>&sig=<hex>`: result downloads, answered like an
//! object store: 403 with an XML error for a missing, bad or expired signature, 404 for an unknown
//! object, else the JPEG. Not subject to the API faults, key or rate limit.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::App;

/// The download handler.
pub(crate) async fn download(
    State(app): State<Arc<App>>,
    Path((task_id, file)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(n) = image_number(&file) else {
        return xml_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    };
    let (mut expires, mut sig) = (None, None);
    for pair in query.as_deref().unwrap_or_default().split('&') {
        match pair.split_once('=') {
            Some(("expires", value)) => expires = value.parse::<u64>().ok(),
            Some(("sig", value)) => sig = Some(value.to_owned()),
            _ => {}
        }
    }
    let (Some(expires), Some(sig)) = (expires, sig) else {
        return xml_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Query-string authentication requires the expires and sig parameters.",
        );
    };
    if !app.signer.verify(&task_id, n, expires, &sig) {
        return xml_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    let expired = || xml_error(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired");
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    if app.faults().expire_results || now_unix > expires as f64 {
        return expired();
    }
    let ttl = app.result_ttl();
    let now = Instant::now();
    let found = app.tasks.with(&task_id, |task| {
        let outcome = task.outcome.as_ref()?;
        if task.results_purged || now.saturating_duration_since(outcome.at) >= ttl {
            return Some(Err(()));
        }
        outcome.images.get(usize::from(n) - 1).cloned().map(Ok)
    });
    match found.flatten() {
        Some(Ok(image)) => {
            app.counters.update(|c| c.result_downloads += 1);
            ([(header::CONTENT_TYPE, "image/jpeg")], image).into_response()
        }
        Some(Err(())) => expired(),
        None => xml_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        ),
    }
}

/// `1.jpg` → 1, `2.jpg` → 2.
fn image_number(file: &str) -> Option<u8> {
    match file {
        "1.jpg" => Some(1),
        "2.jpg" => Some(2),
        _ => None,
    }
}

/// An object-store style XML error.
fn xml_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>\n"
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}
