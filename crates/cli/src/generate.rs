//! `backdrop generate`: every input through create, wait and download, concurrently, under the
//! key's shared rate limit; continue on error; a summary at the end.
//!
//! Every step is recorded in the output folder's [journal](crate::journal) before it is taken,
//! so running the same command again after a crash or Ctrl-C skips finished inputs, resumes
//! created tasks by id and never creates an input twice without being asked to.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backdrop_core::{
    Client, GenerateRequest, GenerateRequestBuilder, GeneratedImage, TaskInfo, WaitControl,
    WaitOptions,
};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::args::GenerateArgs;
use crate::error::{CliError, EXIT_FAILED};
use crate::inputs::{self, Input, InputSource};
use crate::journal::{self, Entry, EntryState, Journal};
use crate::output;
use crate::progress::Progress;
use crate::service::{BUILT_IN, Service};
use crate::summary::{FailureRecord, InputOutcome, OutcomeStatus, Summary};

/// Runs `backdrop generate`.
pub async fn run(args: GenerateArgs) -> Result<Summary, CliError> {
    let inputs = inputs::expand(&args.inputs)?;
    // Check the options once, before any input: a bad prompt fails the run, not each input.
    request_for(&args, GenerateRequest::builder().image_path("probe.png")).build()?;
    check_output_folder(&args.out)?;
    let journal = Journal::open(&args.out)?;
    let service = Service::connect(&args.service).await?;
    let progress = Arc::new(Progress::for_inputs(inputs.len()));
    let interrupt = watch_for_interrupt(progress.clone(), journal.path().to_owned());
    let running = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let scale = args.service.time_scale;
    let wait = WaitOptions {
        policy: args.poll.into(),
        max_wait: Duration::from_secs(args.timeout),
        poll_interval: backdrop_core::spec::POLL_INTERVAL.div_f64(scale),
    };
    let options = options_text(&args);
    let mut outcomes: Vec<(usize, InputOutcome)> =
        futures_util::stream::iter(inputs.into_iter().enumerate())
            .map(|(position, input)| {
                let job = Job {
                    client: &service.client,
                    service: &service.identity,
                    journal: &journal,
                    args: &args,
                    options: &options,
                    progress: &progress,
                    running: &running,
                    interrupt: interrupt.clone(),
                    wait,
                };
                async move {
                    let outcome = job.process(&input).await;
                    job.progress.advance();
                    (position, outcome)
                }
            })
            .buffer_unordered(args.jobs as usize)
            .collect()
            .await;
    progress.finish();
    service.shutdown().await;
    outcomes.sort_by_key(|(position, _)| *position);
    let mut summary = Summary::new(
        outcomes.into_iter().map(|(_, outcome)| outcome).collect(),
        started.elapsed().as_secs_f64(),
    );
    summary.stopped = *interrupt.borrow() > 0;
    if summary.stopped && summary.skipped + summary.interrupted > 0 {
        eprintln!(
            "backdrop: interrupted: {} inputs not started, {} tasks left running; the journal {} \
             keeps every task id. To finish, run the same command again (finished inputs are \
             skipped, running tasks resumed, nothing is created twice):\n  {}",
            summary.skipped,
            summary.interrupted,
            journal.path().display(),
            resume_command()
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

/// The options that change a result, as canonical text for the journal's input keys.
fn options_text(args: &GenerateArgs) -> String {
    format!(
        "batch={}\nprompt={:?}\nscene={:?}\nnegative={:?}",
        args.batch, args.prompt, args.scene, args.negative
    )
}

/// How an input ended, when it did not fail.
enum Finished {
    /// Outputs written by this run.
    Generated,
    /// Outputs written by an earlier run.
    AlreadyDone,
    /// Not started: the run is stopping.
    Skipped,
    /// Created, then the run stopped waiting for it.
    Interrupted,
}

/// What every input's job shares.
struct Job<'a> {
    client: &'a Client,
    service: &'a str,
    journal: &'a Journal,
    args: &'a GenerateArgs,
    options: &'a str,
    progress: &'a Progress,
    running: &'a AtomicUsize,
    interrupt: watch::Receiver<u8>,
    wait: WaitOptions,
}

impl Job<'_> {
    async fn process(&self, input: &Input) -> InputOutcome {
        let started = Instant::now();
        let mut outcome = InputOutcome {
            input: input.label(),
            status: OutcomeStatus::Failed,
            task_id: None,
            outputs: Vec::new(),
            seconds: 0.0,
            credits: 0,
            error: None,
        };
        if self.stopping() {
            outcome.status = OutcomeStatus::Skipped;
            return outcome;
        }
        self.running.fetch_add(1, Ordering::SeqCst);
        match self.generate(input, &mut outcome).await {
            Ok(Finished::Generated) => {
                outcome.status = OutcomeStatus::Succeeded;
                self.progress.event(format!(
                    "done {} ({} images, {} credits)",
                    outcome.input,
                    outcome.outputs.len(),
                    outcome.credits
                ));
            }
            Ok(Finished::AlreadyDone) => {
                outcome.status = OutcomeStatus::AlreadyDone;
                self.progress
                    .event(format!("skipped {}, already done", outcome.input));
            }
            Ok(Finished::Skipped) => outcome.status = OutcomeStatus::Skipped,
            Ok(Finished::Interrupted) => {
                outcome.status = OutcomeStatus::Interrupted;
                self.progress.event(format!(
                    "left {} running as task {}",
                    outcome.input,
                    outcome.task_id.as_deref().unwrap_or("?")
                ));
            }
            Err(error) => {
                self.progress
                    .event(format!("FAIL {}: {}", outcome.input, error.message));
                outcome.error = Some(error);
            }
        }
        outcome.seconds = started.elapsed().as_secs_f64();
        self.running.fetch_sub(1, Ordering::SeqCst);
        outcome
    }

    /// True once Ctrl-C was pressed: nothing new starts.
    fn stopping(&self) -> bool {
        *self.interrupt.borrow() > 0
    }

    /// Returns once Ctrl-C was pressed twice: waits stop.
    async fn quitting(&self) {
        let mut interrupt = self.interrupt.clone();
        if interrupt.wait_for(|level| *level >= 2).await.is_err() {
            // The watcher is gone (no signal handling): never.
            std::future::pending::<()>().await;
        }
    }

    async fn generate(
        &self,
        input: &Input,
        outcome: &mut InputOutcome,
    ) -> Result<Finished, FailureRecord> {
        let request = self.request(input)?;
        let key = self.key(input).await?;
        let previous = self
            .journal
            .get(&key)
            .filter(|entry| self.resumable(entry) || entry.state == EntryState::Done);
        if let Some(entry) = previous {
            match entry.state {
                EntryState::Done if self.outputs_exist(&entry) => {
                    outcome.task_id = entry.task_id.clone();
                    outcome.outputs = entry
                        .outputs
                        .iter()
                        .map(|o| self.args.out.join(o))
                        .collect();
                    return Ok(Finished::AlreadyDone);
                }
                EntryState::Done | EntryState::Created if self.resumable(&entry) => {
                    if let Some(task_id) = entry.task_id.clone() {
                        self.progress
                            .event(format!("resuming {} as task {task_id}", outcome.input));
                        return self.finish(&key, entry, task_id, input, outcome).await;
                    }
                }
                EntryState::Submitting | EntryState::Unconfirmed
                    if !self.args.retry_unconfirmed =>
                {
                    return Err(self.unconfirmed(&key, entry).await);
                }
                EntryState::Expired if !self.args.regenerate_expired => {
                    outcome.task_id = entry.task_id.clone();
                    return Err(entry.failure.unwrap_or_else(|| {
                        FailureRecord::local(
                            "its task finished but the results expired before they were \
                             downloaded; run with --regenerate-expired to generate it again"
                                .into(),
                        )
                    }));
                }
                _ => {}
            }
        }
        if self.stopping() {
            return Ok(Finished::Skipped);
        }
        let mut entry = Entry::new(input, self.service, EntryState::Submitting);
        // "submitting" reaches the disk once the create has its share of the budget and before
        // it is sent: a run killed earlier sent nothing and leaves nothing to confirm.
        let record_submitting = || async {
            self.journal
                .record(&key, entry.clone())
                .await
                .map_err(|e| backdrop_core::Error::Config(format!("{e}; nothing was sent")))
        };
        let created = self
            .client
            .create_task_recorded(&request, record_submitting)
            .await;
        let task_id = match created {
            Ok(task_id) => task_id,
            Err(error) => {
                let mut failure = FailureRecord::from_error(&error);
                entry.state = if failure.maybe_accepted {
                    failure.message.push_str(
                        "; the journal marks it unconfirmed: run again with --retry-unconfirmed \
                         to create it again (it may then be charged twice)",
                    );
                    EntryState::Unconfirmed
                } else {
                    EntryState::Failed
                };
                entry.failure = Some(failure.clone());
                self.save(&key, entry).await;
                return Err(failure);
            }
        };
        self.progress
            .event(format!("sent {} as task {task_id}", outcome.input));
        entry.state = EntryState::Created;
        entry.task_id = Some(task_id.clone());
        self.save(&key, entry.clone()).await;
        self.finish(&key, entry, task_id, input, outcome).await
    }

    /// The request for `input`, checked locally (refused inputs send and record nothing).
    fn request(&self, input: &Input) -> Result<GenerateRequest, FailureRecord> {
        let invalid = |error| FailureRecord::from_error(&backdrop_core::Error::Invalid(error));
        let builder = match &input.source {
            InputSource::File(path) => {
                backdrop_core::validate::inspect_png_file(path).map_err(|error| match error {
                    backdrop_core::validate::InspectFileError::Invalid(rule) => invalid(rule),
                    backdrop_core::validate::InspectFileError::Io(source) => {
                        FailureRecord::from_error(&backdrop_core::Error::Io {
                            action: "read",
                            path: path.clone(),
                            source,
                        })
                    }
                })?;
                GenerateRequest::builder().image_path(path.clone())
            }
            InputSource::Url(url) => GenerateRequest::builder().image_url(url),
        };
        request_for(self.args, builder).build().map_err(invalid)
    }

    /// The journal key of `input` (reads the file).
    async fn key(&self, input: &Input) -> Result<String, FailureRecord> {
        let (owned, options) = (input.clone(), self.options.to_owned());
        let key = tokio::task::spawn_blocking(move || journal::input_key(&owned, &options))
            .await
            .map_err(|e| FailureRecord::local(format!("cannot read the input: {e}")))?;
        key.map_err(|source| {
            let path = match &input.source {
                InputSource::File(path) => path.clone(),
                InputSource::Url(url) => PathBuf::from(url),
            };
            FailureRecord::from_error(&backdrop_core::Error::Io {
                action: "read",
                path,
                source,
            })
        })
    }

    /// True when `entry`'s task can be reached from this run: the same service, and not the
    /// built-in emulator (whose tasks end with the run that started it).
    fn resumable(&self, entry: &Entry) -> bool {
        entry.service == self.service && self.service != BUILT_IN
    }

    fn outputs_exist(&self, entry: &Entry) -> bool {
        !entry.outputs.is_empty()
            && entry
                .outputs
                .iter()
                .all(|o| self.args.out.join(o).is_file())
    }

    /// The failure of an input whose earlier create may have been accepted; marks it
    /// unconfirmed (an entry still "submitting" belongs to a run that died mid-create).
    async fn unconfirmed(&self, key: &str, mut entry: Entry) -> FailureRecord {
        let failure = FailureRecord {
            message: format!(
                "an earlier run sent its create and never saw the answer ({}): the service may \
                 have accepted it and charged for it, and the API has no way to find out; not \
                 created again. Run with --retry-unconfirmed to create it again (it may then be \
                 charged twice)",
                entry
                    .failure
                    .as_ref()
                    .map_or("the run stopped while the create was on its way", |f| {
                        f.message.as_str()
                    })
            ),
            http_status: None,
            task_state: None,
            transient: false,
            refused_locally: false,
            maybe_accepted: true,
            exit_code: EXIT_FAILED,
        };
        if entry.state == EntryState::Submitting {
            entry.state = EntryState::Unconfirmed;
            entry.failure = Some(failure.clone());
            self.save(key, entry).await;
        }
        failure
    }

    /// Waits for a created task, downloads and writes its results, and records the end.
    async fn finish(
        &self,
        key: &str,
        mut entry: Entry,
        task_id: String,
        input: &Input,
        outcome: &mut InputOutcome,
    ) -> Result<Finished, FailureRecord> {
        outcome.task_id = Some(task_id.clone());
        let fetched = tokio::select! {
            fetched = self.fetch(&task_id, &outcome.input) => fetched,
            () = self.quitting() => return Ok(Finished::Interrupted),
        };
        let (task, images) = match fetched {
            Ok(fetched) => fetched,
            Err(error) => {
                let mut failure = FailureRecord::from_error(&error);
                entry.state = match error {
                    backdrop_core::Error::TaskFailed { .. }
                    | backdrop_core::Error::ResultMissing { .. } => EntryState::Failed,
                    backdrop_core::Error::ResultExpired { .. } => {
                        failure.message.push_str(&format!(
                            "; task {task_id} was charged: run with --regenerate-expired to \
                             generate it again (charged again)"
                        ));
                        EntryState::Expired
                    }
                    backdrop_core::Error::NotFound { .. } => {
                        failure.message.push_str(&format!(
                            "; the service no longer knows task {task_id} (it keeps results \
                             about 1 hour): run with --regenerate-expired to generate it again \
                             (charged again if the task had succeeded)"
                        ));
                        EntryState::Expired
                    }
                    _ => {
                        failure.message.push_str(&format!(
                            "; the journal keeps task {task_id}: run the same command again to \
                             resume it"
                        ));
                        EntryState::Created
                    }
                };
                entry.failure = Some(failure.clone());
                self.save(key, entry).await;
                return Err(failure);
            }
        };
        outcome.credits = task.credits_charged();
        let mut written = Vec::new();
        for image in images {
            let relative = output::result_path(
                Path::new(""),
                &input.output_stem,
                image.index,
                image.format.extension(),
            );
            let path = self.args.out.join(&relative);
            output::write_atomically(&path, &image.bytes).map_err(|e| {
                FailureRecord::local(format!(
                    "{e}; the journal keeps task {task_id}: run again to download it again"
                ))
            })?;
            outcome.outputs.push(path);
            written.push(relative);
        }
        entry.state = EntryState::Done;
        entry.outputs = written;
        entry.credits = outcome.credits;
        entry.failure = None;
        self.save(key, entry).await;
        Ok(Finished::Generated)
    }

    /// Waits for the task and downloads its results.
    async fn fetch(
        &self,
        task_id: &str,
        label: &str,
    ) -> Result<(TaskInfo, Vec<GeneratedImage>), backdrop_core::Error> {
        let task = self
            .client
            .wait_for_task_with(task_id, self.wait, |task| {
                self.progress.status(format!(
                    "{} running; {} state {} {:.0}%",
                    self.running.load(Ordering::SeqCst),
                    label,
                    task.state.code(),
                    task.progress.unwrap_or(0.0)
                ));
                WaitControl::Continue
            })
            .await?;
        let images = self.client.download_results(&task).await?;
        Ok((task, images))
    }

    /// Records `entry`; a journal that cannot be written is reported, and the work goes on (the
    /// task exists either way).
    async fn save(&self, key: &str, entry: Entry) {
        if let Err(error) = self.journal.record(key, entry).await {
            self.progress.event(format!("backdrop: {error}"));
        }
    }
}

/// First Ctrl-C: no new input starts, running tasks finish. Second: stop waiting for them (the
/// journal keeps their ids). Third: quit at once. The level goes 0 → 1 → 2.
fn watch_for_interrupt(progress: Arc<Progress>, journal: PathBuf) -> watch::Receiver<u8> {
    let (level, receiver) = watch::channel(0u8);
    let level = Arc::new(level);
    watch_for_termination(level.clone(), progress.clone());
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        level.send_modify(|level| *level = (*level).max(1));
        progress.event(
            "backdrop: stopping: no new input starts; running tasks finish (Ctrl-C again to stop \
             waiting for them: the next run resumes them)"
                .into(),
        );
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        level.send_replace(2);
        progress.event(
            "backdrop: no longer waiting; saving the journal (Ctrl-C again to quit at once)".into(),
        );
        if tokio::signal::ctrl_c().await.is_ok() {
            progress.finish();
            eprintln!(
                "backdrop: quit; the journal {} keeps every task id: run the same command again \
                 to resume:\n  {}",
                journal.display(),
                resume_command()
            );
            std::process::exit(i32::from(crate::error::EXIT_INTERRUPTED));
        }
    });
    receiver
}

/// SIGTERM (a supervisor, `timeout`, `kill`) acts like a second Ctrl-C: nothing new starts, no
/// task is waited for any longer, and the journal is saved with every task id.
#[cfg(unix)]
fn watch_for_termination(level: Arc<watch::Sender<u8>>, progress: Arc<Progress>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::spawn(async move {
        if terminate.recv().await.is_some() {
            level.send_replace(2);
            progress.event(
                "backdrop: terminated (SIGTERM): no longer waiting; saving the journal".into(),
            );
        }
    });
}

#[cfg(not(unix))]
fn watch_for_termination(_level: Arc<watch::Sender<u8>>, _progress: Arc<Progress>) {}

/// This process's command line, quoted for a POSIX shell, with any `--api-key` value replaced
/// by `"$PICWISH_API_KEY"`.
fn resume_command() -> String {
    let mut words = Vec::new();
    let mut hide_next = false;
    for argument in std::env::args_os() {
        let argument = argument.to_string_lossy().into_owned();
        if hide_next {
            words.push("\"$PICWISH_API_KEY\"".to_owned());
            hide_next = false;
        } else if argument == "--api-key" {
            hide_next = true;
            words.push(argument);
        } else if argument.starts_with("--api-key=") {
            words.push("--api-key=\"$PICWISH_API_KEY\"".to_owned());
        } else {
            words.push(shell_quote(&argument));
        }
    }
    words.join(" ")
}

fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Output folder check done before anything is sent.
pub fn check_output_folder(out: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(out).map_err(|source| CliError::OutputFolder {
        path: out.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("generate"), "generate");
        assert_eq!(shell_quote("--out=./x"), "--out=./x");
        assert_eq!(shell_quote("a marble top"), "'a marble top'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
