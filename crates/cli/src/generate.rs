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

use backdrop_core::credits::CreditCap;
use backdrop_core::ledger::{
    Adapter, Driven, Entry, Event, Failure, ImageIdentity, InputKey, Ledger, Limits, Owner, Policy,
    Refusal,
};
use backdrop_core::validate::ValidationError;
use backdrop_core::{
    BatchSize, Client, GenerateRequest, GenerateRequestBuilder, GeneratedImage, Recovery,
    SceneType, TaskInfo, WaitOptions,
};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::advice::with_remedy;
use crate::args::GenerateArgs;
use crate::error::{CliError, EXIT_FAILED};
use crate::inputs::{self, Input, InputSource};
use crate::journal::Journal;
use crate::output;
use crate::progress::Progress;
use crate::report::LiveReport;
use crate::service::Service;
use crate::summary::{CapUse, InputFailure, InputOutcome, OutcomeStatus, Summary};

/// Runs `backdrop generate`.
pub async fn run(args: GenerateArgs) -> Result<Summary, CliError> {
    let inputs = inputs::expand(&args.inputs)?;
    // Check the options once, before any input: a bad prompt fails the run, not each input.
    request_for(&args, GenerateRequest::builder().image_path("probe.png"))?.build()?;
    let key = Service::check(&args.service)?;
    check_output_folder(&args.out)?;
    let journal = Journal::open(&args.out)?;
    // The cap covers the folder: what its journal counts from earlier runs counts here too.
    let counted_before = counted_credits(&journal.entries());
    let cap = args
        .max_credits
        .map(|limit| CreditCap::in_memory(limit, counted_before));
    let service = Service::connect(&args.service, key, cap).await?;
    // Enough inputs in progress to keep the key busy — twice its tasks in flight now, room for
    // learning that tasks are slower — unless the user says how many.
    let jobs = args.jobs.map_or_else(
        || (service.client.in_flight_limit() * 2).min(backdrop_core::MAX_IN_FLIGHT),
        |jobs| jobs as usize,
    );
    let progress = Arc::new(Progress::for_inputs(inputs.len()));
    let interrupt = watch_for_interrupt(progress.clone(), journal.path().to_owned());
    let running = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let wait = WaitOptions {
        policy: args.poll.into(),
        max_wait: Duration::from_secs(args.timeout),
        ..WaitOptions::default()
    };
    let ledger = Ledger::new(
        &journal,
        service.identity.clone(),
        Policy {
            retry_unconfirmed: args.retry_unconfirmed,
            regenerate_expired: args.regenerate_expired,
            ..Policy::exclusive()
        },
    )
    .with_stand_in(service.is_stand_in());
    let owner = Owner::exclusive(run_id());
    let report = LiveReport::start(&args, &owner.id);
    let legacy_options = options_text_before_ledger(&args);
    let work = futures_util::stream::iter(inputs.into_iter().enumerate())
        .map(|(position, input)| {
            let job = Batch {
                client: &service.client,
                ledger: &ledger,
                owner: &owner,
                journal: &journal,
                args: &args,
                legacy_options: &legacy_options,
                progress: &progress,
                running: &running,
                interrupt: interrupt.clone(),
                report: &report,
                wait,
            };
            async move {
                let outcome = job.process(&input).await;
                job.report.input_ended(job.journal, &input, &outcome);
                job.progress.advance();
                (position, outcome)
            }
        })
        .buffer_unordered(jobs)
        .collect::<Vec<(usize, InputOutcome)>>();
    // The page is rewritten as inputs end, while they run.
    let mut outcomes = report.alongside(&journal, work).await;
    progress.finish();
    service.shutdown().await;
    outcomes.sort_by_key(|(position, _)| *position);
    let mut summary = Summary::new(
        outcomes.into_iter().map(|(_, outcome)| outcome).collect(),
        started.elapsed().as_secs_f64(),
    );
    let stop_level = *interrupt.borrow();
    summary.stopped = stop_level > RUNNING;
    summary.terminated = stop_level == TERMINATED;
    summary.stand_in = ledger.is_stand_in();
    if let Some(limit) = args.max_credits {
        summary.credit_cap = Some(CapUse {
            limit,
            counted: counted_credits(&journal.entries()),
            folder: args.out.display().to_string(),
        });
    }
    summary.report = report.finish(&journal, &summary).await;
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

/// Adds the command's background options to a builder that has its image, or names the option
/// the service would refuse.
pub(crate) fn request_for(
    args: &GenerateArgs,
    builder: GenerateRequestBuilder,
) -> Result<GenerateRequestBuilder, ValidationError> {
    let mut builder = builder
        .batch_size(BatchSize::try_from(args.batch)?)
        .allow_opaque(args.allow_opaque);
    if let Some(prompt) = &args.prompt {
        builder = builder.prompt(prompt.clone());
    }
    if let Some(scene) = args.scene {
        builder = builder.scene_type(SceneType::try_from(scene)?);
    }
    if let Some(negative) = &args.negative {
        builder = builder.negative_prompt(negative.clone());
    }
    Ok(builder)
}

/// The request for `input`, checked locally by its header (refused inputs send and record
/// nothing; the whole file is checked when the create is prepared).
pub(crate) fn request_of(
    args: &GenerateArgs,
    input: &Input,
) -> Result<GenerateRequest, InputFailure> {
    let invalid = |error| InputFailure::from_error(&backdrop_core::Error::Invalid(error));
    let builder = match &input.source {
        InputSource::File(path) => {
            backdrop_core::validate::inspect_png_file(path).map_err(|error| match error {
                backdrop_core::validate::InspectFileError::Invalid(rule) => invalid(rule),
                backdrop_core::validate::InspectFileError::Io(source) => {
                    read_failure(path.clone(), source)
                }
            })?;
            GenerateRequest::builder().image_path(path.clone())
        }
        InputSource::Url(url) => GenerateRequest::builder().image_url(url),
    };
    request_for(args, builder)
        .and_then(GenerateRequestBuilder::build)
        .map_err(invalid)
}

/// The ledger key of `input`: its image (the file's bytes, or the URL without its signature),
/// the request's options and its output name. Reads the file.
pub(crate) async fn key_of(
    input: &Input,
    request: &GenerateRequest,
) -> Result<InputKey, InputFailure> {
    let image = match &input.source {
        InputSource::File(path) => {
            let path = path.clone();
            let hashed = path.clone();
            tokio::task::spawn_blocking(move || ImageIdentity::of_file(&hashed))
                .await
                .map_err(|e| InputFailure::local(format!("cannot read the input: {e}")))?
                .map_err(|source| read_failure(path, source))?
        }
        InputSource::Url(url) => ImageIdentity::of_url(url),
    };
    let destination = input.output_stem.to_string_lossy();
    Ok(InputKey::derive(&image, request.options(), &destination))
}

/// The options text backdrop 0.1 keyed its journal with, to adopt the entries of such a journal.
fn options_text_before_ledger(args: &GenerateArgs) -> String {
    format!(
        "batch={}\nprompt={:?}\nscene={:?}\nnegative={:?}",
        args.batch, args.prompt, args.scene, args.negative
    )
}

/// Credits the journal counts against a cap ([`backdrop_core::credits::counted`]).
pub(crate) fn counted_credits(entries: &[(String, Entry)]) -> u64 {
    entries
        .iter()
        .map(|(_, entry)| u64::from(entry.credits_counted()))
        .sum()
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
    /// Not started: the credit cap would have been passed (nothing sent).
    NotStarted(InputFailure),
}

/// A new id for this run, the owner of the inputs it works on.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("backdrop-{}-{nanos:x}", std::process::id())
}

/// What every input's job shares.
struct Batch<'a> {
    client: &'a Client,
    ledger: &'a Ledger<&'a Journal>,
    owner: &'a Owner,
    journal: &'a Journal,
    args: &'a GenerateArgs,
    legacy_options: &'a str,
    progress: &'a Progress,
    running: &'a AtomicUsize,
    interrupt: watch::Receiver<u8>,
    report: &'a LiveReport,
    wait: WaitOptions,
}

impl Batch<'_> {
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
            Ok(Finished::NotStarted(reason)) => {
                outcome.status = OutcomeStatus::NotStarted;
                self.progress.event(format!(
                    "not started {}: the credit cap would be passed",
                    outcome.input
                ));
                outcome.error = Some(reason);
            }
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
        *self.interrupt.borrow() > RUNNING
    }

    /// Returns once Ctrl-C was pressed twice: waits stop.
    async fn quitting(&self) {
        let mut interrupt = self.interrupt.clone();
        if interrupt
            .wait_for(|level| *level >= STOP_WAITING)
            .await
            .is_err()
        {
            // The watcher is gone (no signal handling): never.
            std::future::pending::<()>().await;
        }
    }

    /// One input through core's walk ([`Ledger::drive`]), the CLI supplying only its files.
    async fn generate(
        &self,
        input: &Input,
        outcome: &mut InputOutcome,
    ) -> Result<Finished, InputFailure> {
        let request = request_of(self.args, input)?;
        let key = key_of(input, &request).await?;
        self.report.input_keyed(&key, input);
        self.journal
            .adopt_entry_before_ledger(&key, input, self.legacy_options)
            .await
            .map_err(|e| InputFailure::local(e.to_string()))?;
        if self.stopping() {
            return Ok(Finished::Skipped);
        }
        let files = Files {
            job: self,
            input,
            request,
        };
        let limits = Limits {
            wait: self.wait,
            cutoff: None,
        };
        let driven = self
            .ledger
            .drive(
                &key,
                &input.label(),
                self.owner,
                self.client,
                &files,
                |entry| self.outputs_exist(entry),
                limits,
                self.quitting(),
            )
            .await
            .map_err(|e| InputFailure::local(e.to_string()))?;
        outcome.task_id = match &driven {
            Driven::Stored { entry, .. }
            | Driven::AlreadyDone(entry)
            | Driven::Refused { entry, .. }
            | Driven::Failed { entry, .. }
            | Driven::NotStored { entry, .. }
            | Driven::Stopped { entry } => entry.task_id.clone(),
            _ => None,
        };
        match driven {
            Driven::Stored { task, outputs, .. } => {
                outcome.credits = task.credits_charged();
                outcome.outputs = outputs.iter().map(|o| self.args.out.join(o)).collect();
                Ok(Finished::Generated)
            }
            Driven::AlreadyDone(entry) => {
                outcome.outputs = entry
                    .outputs
                    .iter()
                    .map(|o| self.args.out.join(o))
                    .collect();
                Ok(Finished::AlreadyDone)
            }
            Driven::Busy(entry) => Err(InputFailure::local(format!(
                "another run works on it ({}); wait for it to end",
                entry.owner.map(|o| o.id).unwrap_or_default()
            ))),
            Driven::Refused { entry, refusal } => Err(refused(&entry, refusal)),
            Driven::Gone => Err(InputFailure::local(format!(
                "{} went away before it could be sent",
                input.label()
            ))),
            Driven::Unprepared(error) => Err(InputFailure::local(error)),
            Driven::Failed {
                error: error @ backdrop_core::Error::CreditCapReached { .. },
                ..
            } => {
                let mut reason = InputFailure::from_error(&error);
                reason.message.push_str(
                    " (--max-credits / PICWISH_MAX_CREDITS); run again with a higher cap to \
                     create it",
                );
                Ok(Finished::NotStarted(reason))
            }
            Driven::Failed { failure, error, .. } => {
                let mut record = InputFailure::from_error(&error);
                record.recovery = failure.recovery;
                record.maybe_accepted = failure.recovery == Recovery::Unconfirmed;
                record.message =
                    with_remedy(&failure.message, &failure, outcome.task_id.as_deref());
                Err(record)
            }
            Driven::NotStored { error, .. } => Err(InputFailure::local(format!(
                "{error}; the journal keeps task {}: run again to download it again",
                outcome.task_id.as_deref().unwrap_or("?")
            ))),
            Driven::Stopped { .. } => Ok(Finished::Interrupted),
        }
    }

    fn outputs_exist(&self, entry: &Entry) -> bool {
        !entry.outputs.is_empty()
            && entry
                .outputs
                .iter()
                .all(|o| self.args.out.join(o).is_file())
    }
}

/// The CLI's side of an input's walk: the request checked before the walk, and the output
/// folder its images go to.
struct Files<'a> {
    job: &'a Batch<'a>,
    input: &'a Input,
    request: GenerateRequest,
}

impl Adapter for Files<'_> {
    type Error = String;

    async fn request(&self, _key: &InputKey) -> Result<Option<GenerateRequest>, String> {
        Ok(Some(self.request.clone()))
    }

    /// Writes each image under the name the input reserved in the journal (its own, unless
    /// another input of the folder holds it: [`Journal::destination`]).
    async fn store(
        &self,
        key: &InputKey,
        _entry: &Entry,
        task: &TaskInfo,
        images: Vec<GeneratedImage>,
    ) -> Result<Vec<String>, String> {
        let job = self.job;
        let natural = &self.input.output_stem;
        let stem = job
            .journal
            .destination(key, natural, &job.args.out)
            .await
            .map_err(|e| e.to_string())?;
        if &stem != natural {
            job.progress.event(format!(
                "{}: {} holds another input's results in {}; this one's go to {}",
                self.input.label(),
                natural.display(),
                job.args.out.display(),
                stem.display()
            ));
        }
        let mut written = Vec::new();
        for image in images {
            let relative =
                output::result_path(Path::new(""), &stem, image.index, image.format.extension());
            output::write_atomically(&job.args.out.join(&relative), &image.bytes)
                .map_err(|e| format!("{e} (task {})", task.task_id))?;
            written.push(relative.to_string_lossy().into_owned());
        }
        Ok(written)
    }

    fn event(&self, event: Event<'_>) {
        let job = self.job;
        let label = self.input.label();
        match event {
            Event::Created(task_id) => job
                .progress
                .event(format!("sent {label} as task {task_id}")),
            Event::Resumed(task_id) => job
                .progress
                .event(format!("resuming {label} as task {task_id}")),
            Event::Polled(task) => job.progress.status(format!(
                "{} running; {label} state {} {:.0}%",
                job.running.load(Ordering::SeqCst),
                task.state.code(),
                task.progress.unwrap_or(0.0)
            )),
        }
    }
}

/// The failure of reading an input file.
pub(crate) fn read_failure(path: PathBuf, source: std::io::Error) -> InputFailure {
    InputFailure::from_error(&backdrop_core::Error::Io {
        action: "read",
        path,
        source,
    })
}

/// The failure of an input the ledger refused to work on again.
fn refused(entry: &Entry, refusal: Refusal) -> InputFailure {
    let earlier = entry
        .failure
        .clone()
        .unwrap_or_else(|| Failure::new("no reason recorded", refusal.recovery()));
    let what = match refusal {
        Refusal::Unconfirmed => format!(
            "an earlier run sent its create and never saw the answer ({})",
            earlier.message
        ),
        Refusal::ResultsLost => format!(
            "its task {} finished but its results were lost before they were downloaded ({})",
            entry.task_id.as_deref().unwrap_or("?"),
            earlier.message
        ),
        Refusal::FailedBefore | Refusal::TooManyTasks { .. } => {
            format!(
                "it failed before and would fail the same way: {}",
                earlier.message
            )
        }
    };
    let failure = Failure {
        recovery: refusal.recovery(),
        ..earlier
    };
    let message = with_remedy(&what, &failure, entry.task_id.as_deref());
    let recovery = refusal.recovery();
    InputFailure {
        message,
        http_status: entry.failure.as_ref().and_then(|f| f.http_status),
        task_state: entry.failure.as_ref().and_then(|f| f.task_state),
        transient: false,
        refused_locally: false,
        maybe_accepted: recovery == Recovery::Unconfirmed,
        recovery,
        exit_code: EXIT_FAILED,
    }
}

/// Stop level: no signal yet.
const RUNNING: u8 = 0;
/// Stop level: no new input starts; running tasks finish (first Ctrl-C).
const NO_NEW_INPUT: u8 = 1;
/// Stop level: no task is waited for any longer; the journal keeps their ids (second Ctrl-C).
const STOP_WAITING: u8 = 2;
/// Stop level: as [`STOP_WAITING`], because of SIGTERM (the exit code is then 143).
const TERMINATED: u8 = 3;

/// First Ctrl-C: no new input starts, running tasks finish. Second: stop waiting for them (the
/// journal keeps their ids). Third: quit at once. SIGTERM: as the second, then exit 143.
fn watch_for_interrupt(progress: Arc<Progress>, journal: PathBuf) -> watch::Receiver<u8> {
    let (level, receiver) = watch::channel(RUNNING);
    let level = Arc::new(level);
    watch_for_termination(level.clone(), progress.clone());
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        level.send_modify(|level| *level = (*level).max(NO_NEW_INPUT));
        progress.event(
            "backdrop: stopping: no new input starts; running tasks finish (Ctrl-C again to stop \
             waiting for them: the next run resumes them)"
                .into(),
        );
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        level.send_modify(|level| *level = (*level).max(STOP_WAITING));
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
            level.send_replace(TERMINATED);
            progress.event(
                "backdrop: terminated (SIGTERM): no longer waiting; saving the journal".into(),
            );
        }
    });
}

#[cfg(not(unix))]
fn watch_for_termination(_level: Arc<watch::Sender<u8>>, _progress: Arc<Progress>) {}

/// This process's command line, quoted for a POSIX shell, to finish the run: any `--api-key`
/// value replaced by `"$PICWISH_API_KEY"`, and the flags that pay again
/// ([`PAYING_FLAGS`]) left out — following the printed command never spends credits the user
/// did not choose to spend again.
fn resume_command() -> String {
    resume_command_from(std::env::args_os())
}

/// Flags that create again what may have been charged: a deliberate choice for each run, never
/// repeated by a printed command.
const PAYING_FLAGS: [&str; 2] = ["--retry-unconfirmed", "--regenerate-expired"];

fn resume_command_from(arguments: impl Iterator<Item = std::ffi::OsString>) -> String {
    let mut words = Vec::new();
    let mut hide_next = false;
    for argument in arguments {
        let argument = argument.to_string_lossy().into_owned();
        if hide_next {
            words.push("\"$PICWISH_API_KEY\"".to_owned());
            hide_next = false;
        } else if argument == "--api-key" {
            hide_next = true;
            words.push(argument);
        } else if argument.starts_with("--api-key=") {
            words.push("--api-key=\"$PICWISH_API_KEY\"".to_owned());
        } else if PAYING_FLAGS.contains(&argument.as_str())
            || PAYING_FLAGS
                .iter()
                .any(|flag| argument.starts_with(&format!("{flag}=")))
        {
            continue;
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
    fn the_resume_command_never_pays_again_nor_shows_the_key() {
        let command =
            |words: &[&str]| resume_command_from(words.iter().map(std::ffi::OsString::from));
        assert_eq!(
            command(&[
                "backdrop",
                "generate",
                "shop/",
                "--prompt",
                "a marble top",
                "--retry-unconfirmed",
                "--api-key",
                "SECRET",
                "--regenerate-expired"
            ]),
            "backdrop generate shop/ --prompt 'a marble top' --api-key \"$PICWISH_API_KEY\""
        );
        assert_eq!(
            command(&[
                "backdrop",
                "generate",
                "a.png",
                "--api-key=SECRET",
                "-p",
                "x"
            ]),
            "backdrop generate a.png --api-key=\"$PICWISH_API_KEY\" -p x"
        );
    }

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("generate"), "generate");
        assert_eq!(shell_quote("--out=./x"), "--out=./x");
        assert_eq!(shell_quote("a marble top"), "'a marble top'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
