//! The job of one task, spawned when the task is created: get and check the source image, wait
//! out the task's timeline, render the results and record how the task ended.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use backdrop_core::{BatchSize, TaskState, spec};
use bytes::Bytes;
use image::RgbaImage;

use crate::app::App;
use crate::input::{self, InputFailure};
use crate::render::{self, Backdrop, Palette};
use crate::tasks::{Outcome, Timeline};

/// Where the source image comes from.
#[derive(Debug)]
pub(crate) enum Source {
    /// Uploaded bytes (`image_file`).
    File(Bytes),
    /// A URL to download (`image_url`).
    Url(String),
}

/// Everything a task job needs.
#[derive(Debug)]
pub(crate) struct JobPlan {
    pub(crate) id: String,
    pub(crate) source: Source,
    pub(crate) backdrop: Backdrop,
    pub(crate) batch_size: BatchSize,
    /// The state to fail with after processing (fail trigger or injected fault).
    pub(crate) failure: Option<TaskState>,
    pub(crate) never_finish: bool,
    pub(crate) created: Instant,
    pub(crate) timeline: Timeline,
}

/// Runs a task to its end.
///
/// A bad source image ends the task when the preparing phase is over (or when the check is done,
/// if later); a planned failure ends it when the processing time is over; otherwise the results
/// are rendered once the processing time is over (state 5 while that runs) and the task succeeds.
pub(crate) async fn run(app: Arc<App>, plan: JobPlan) {
    let foreground = match plan.source {
        Source::File(bytes) => decode(&app, bytes).await,
        Source::Url(url) => match input::fetch(&app.http, &url).await {
            Ok(bytes) => decode(&app, bytes).await,
            Err(failure) => Err(failure),
        },
    };
    sleep_until(plan.created + plan.timeline.prepared).await;
    let foreground = match foreground {
        Ok(foreground) => foreground,
        Err(failure) => {
            finish(&app, &plan.id, plan.batch_size, failed(failure, false));
            return;
        }
    };
    if plan.never_finish {
        // Stays in state 4; its progress is computed from the clock and stops at 99.
        return;
    }
    sleep_until(plan.created + plan.timeline.processed).await;
    if let Some(state) = plan.failure {
        let failure = InputFailure {
            state,
            detail: state.meaning().to_owned(),
        };
        finish(&app, &plan.id, plan.batch_size, failed(failure, true));
        return;
    }
    let outcome = match render_results(&app, foreground, plan.backdrop, plan.batch_size).await {
        Ok(images) => Outcome {
            state: TaskState::Completed,
            detail: TaskState::Completed.meaning().to_owned(),
            images,
            processing_started: true,
            at: Instant::now(),
            wall: SystemTime::now(),
        },
        Err(detail) => failed(
            InputFailure {
                state: TaskState::Failed,
                detail,
            },
            true,
        ),
    };
    finish(&app, &plan.id, plan.batch_size, outcome);
}

async fn sleep_until(deadline: Instant) {
    tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
}

/// Checks and decodes the source on a blocking thread.
async fn decode(app: &App, bytes: Bytes) -> Result<RgbaImage, InputFailure> {
    let _permit = app.cpu.acquire().await;
    tokio::task::spawn_blocking(move || input::decode_source(&bytes))
        .await
        .unwrap_or_else(|error| {
            Err(InputFailure {
                state: TaskState::Failed,
                detail: format!("processing failed: the decoder crashed ({error})"),
            })
        })
}

/// Renders the batch on a blocking thread.
async fn render_results(
    app: &App,
    foreground: RgbaImage,
    backdrop: Backdrop,
    batch_size: BatchSize,
) -> Result<Vec<Bytes>, String> {
    let _permit = app.cpu.acquire().await;
    let count = usize::from(batch_size.count());
    tokio::task::spawn_blocking(move || {
        let palette = Palette::for_backdrop(&backdrop);
        (0..count)
            .map(|variant| render::render_jpeg(&foreground, &palette, variant).map(Bytes::from))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("processing failed: cannot encode the result ({error})"))
    })
    .await
    .unwrap_or_else(|error| Err(format!("processing failed: the renderer crashed ({error})")))
}

fn failed(failure: InputFailure, processing_started: bool) -> Outcome {
    Outcome {
        state: failure.state,
        detail: failure.detail,
        images: Vec::new(),
        processing_started,
        at: Instant::now(),
        wall: SystemTime::now(),
    }
}

/// Records the outcome and counts it.
fn finish(app: &App, id: &str, batch_size: BatchSize, outcome: Outcome) {
    let succeeded = outcome.state == TaskState::Completed;
    let images = outcome.images.len();
    if !app.tasks.finish(id, outcome) {
        return;
    }
    app.counters.update(|c| {
        if succeeded {
            c.tasks_succeeded += 1;
            let credits = spec::credits_for_images(images)
                .or_else(|| spec::credits_for_images(usize::from(batch_size.count())))
                .unwrap_or(0);
            c.credits_charged += u64::from(credits);
        } else {
            c.tasks_failed += 1;
        }
    });
}
