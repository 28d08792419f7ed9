//! `backdrop generate`: every input through create, wait and download, concurrently, under the
//! key's shared rate limit; continue on error; a summary at the end.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backdrop_core::{Client, GenerateRequest, GenerateRequestBuilder, WaitControl, WaitOptions};
use futures_util::StreamExt;

use crate::args::GenerateArgs;
use crate::error::CliError;
use crate::inputs::{self, Input, InputSource};
use crate::output;
use crate::progress::Progress;
use crate::service::Service;
use crate::summary::{FailureRecord, InputOutcome, OutcomeStatus, Summary};

/// Runs `backdrop generate`.
pub async fn run(args: GenerateArgs) -> Result<Summary, CliError> {
    let inputs = inputs::expand(&args.inputs)?;
    // Check the options once, before any input: a bad prompt fails the run, not each input.
    request_for(&args, GenerateRequest::builder().image_path("probe.png")).build()?;
    check_output_folder(&args.out)?;
    let service = Service::connect(&args.service).await?;
    let progress = Arc::new(Progress::for_inputs(inputs.len()));
    let stop = Arc::new(AtomicBool::new(false));
    watch_for_interrupt(stop.clone(), progress.clone());
    let running = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let wait = WaitOptions {
        policy: args.poll.into(),
        max_wait: Duration::from_secs(args.timeout),
        ..WaitOptions::default()
    };
    let mut outcomes: Vec<(usize, InputOutcome)> =
        futures_util::stream::iter(inputs.into_iter().enumerate())
            .map(|(position, input)| {
                let context = Job {
                    client: &service.client,
                    args: &args,
                    progress: &progress,
                    running: &running,
                    wait,
                };
                let stop = stop.clone();
                async move {
                    let outcome = if stop.load(Ordering::SeqCst) {
                        skipped(&input)
                    } else {
                        context.process(&input).await
                    };
                    context.progress.advance();
                    (position, outcome)
                }
            })
            .buffer_unordered(args.jobs as usize)
            .collect()
            .await;
    progress.finish();
    service.shutdown().await;
    outcomes.sort_by_key(|(position, _)| *position);
    let summary = Summary::new(
        outcomes.into_iter().map(|(_, outcome)| outcome).collect(),
        started.elapsed().as_secs_f64(),
    );
    if stop.load(Ordering::SeqCst) && summary.skipped > 0 {
        eprintln!(
            "backdrop: interrupted: {} inputs were not started; run the same command again for them",
            summary.skipped
        );
    }
    Ok(summary)
}

/// Adds the command's background options to a builder that has its image.
fn request_for(args: &GenerateArgs, builder: GenerateRequestBuilder) -> GenerateRequestBuilder {
    let mut builder = builder.batch_size(args.batch);
    if let Some(prompt) = &args.prompt {
        builder = builder.prompt(prompt.clone());
    }
    if let Some(scene) = args.scene {
        builder = builder.scene_type(scene);
    }
    if let Some(negative) = &args.negative {
        builder = builder.negative_prompt(negative.clone());
    }
    builder
}

/// What every input's job shares.
struct Job<'a> {
    client: &'a Client,
    args: &'a GenerateArgs,
    progress: &'a Progress,
    running: &'a AtomicUsize,
    wait: WaitOptions,
}

impl Job<'_> {
    async fn process(&self, input: &Input) -> InputOutcome {
        let started = Instant::now();
        self.running.fetch_add(1, Ordering::SeqCst);
        let mut outcome = InputOutcome {
            input: input.label(),
            status: OutcomeStatus::Failed,
            task_id: None,
            outputs: Vec::new(),
            seconds: 0.0,
            credits: 0,
            error: None,
        };
        if let Err(error) = self.generate(input, &mut outcome).await {
            self.progress
                .event(format!("FAIL {}: {}", outcome.input, error.message));
            outcome.error = Some(error);
        } else {
            outcome.status = OutcomeStatus::Succeeded;
            self.progress.event(format!(
                "done {} ({} images, {} credits)",
                outcome.input,
                outcome.outputs.len(),
                outcome.credits
            ));
        }
        outcome.seconds = started.elapsed().as_secs_f64();
        self.running.fetch_sub(1, Ordering::SeqCst);
        outcome
    }

    async fn generate(
        &self,
        input: &Input,
        outcome: &mut InputOutcome,
    ) -> Result<(), FailureRecord> {
        let core_failure = |error: backdrop_core::Error| FailureRecord::from_error(&error);
        let builder = match &input.source {
            InputSource::File(path) => GenerateRequest::builder().image_path(path.clone()),
            InputSource::Url(url) => GenerateRequest::builder().image_url(url),
        };
        let builder = request_for(self.args, builder);
        let request = builder
            .build()
            .map_err(|e| core_failure(backdrop_core::Error::Invalid(e)))?;
        let task_id = self
            .client
            .create_task(&request)
            .await
            .map_err(core_failure)?;
        outcome.task_id = Some(task_id.clone());
        self.progress
            .event(format!("sent {} as task {task_id}", outcome.input));
        let label = outcome.input.clone();
        let task = self
            .client
            .wait_for_task_with(&task_id, self.wait, |task| {
                self.progress.status(format!(
                    "{} running; {} state {} {:.0}%",
                    self.running.load(Ordering::SeqCst),
                    label,
                    task.state.code(),
                    task.progress.unwrap_or(0.0)
                ));
                WaitControl::Continue
            })
            .await
            .map_err(core_failure)?;
        outcome.credits = task.credits_charged();
        let images = self
            .client
            .download_results(&task)
            .await
            .map_err(core_failure)?;
        for image in images {
            let path = output::result_path(
                &self.args.out,
                &input.output_stem,
                image.index,
                image.format.extension(),
            );
            output::write_atomically(&path, &image.bytes)
                .map_err(|e| FailureRecord::local(e.to_string()))?;
            outcome.outputs.push(path);
        }
        Ok(())
    }
}

fn skipped(input: &Input) -> InputOutcome {
    InputOutcome {
        input: input.label(),
        status: OutcomeStatus::Skipped,
        task_id: None,
        outputs: Vec::new(),
        seconds: 0.0,
        credits: 0,
        error: None,
    }
}

/// First Ctrl-C: stop starting inputs, let running tasks finish. Second: quit at once.
fn watch_for_interrupt(stop: Arc<AtomicBool>, progress: Arc<Progress>) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        stop.store(true, Ordering::SeqCst);
        progress.event(
            "backdrop: stopping: no new inputs will start; running tasks finish (Ctrl-C again to quit now)".into(),
        );
        if tokio::signal::ctrl_c().await.is_ok() {
            progress.finish();
            eprintln!(
                "backdrop: quit; running tasks may still finish on the service (see `backdrop status TASK_ID`)"
            );
            std::process::exit(i32::from(crate::error::EXIT_INTERRUPTED));
        }
    });
}

/// Output folder check done before anything is sent.
pub fn check_output_folder(out: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(out).map_err(|source| CliError::Write {
        path: out.to_owned(),
        source,
    })
}
