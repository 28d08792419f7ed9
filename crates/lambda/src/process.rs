//! What happens to one uploaded object: guard, validate, claim, create (or resume), wait, store.
//!
//! Every object ends in one of three ways: outputs and a manifest, a failure record, or — for
//! transient trouble — a retry through the event source, which resumes the recorded task. What
//! may be created, resumed or refused, and what an error means, is core's task ledger
//! ([`backdrop_core::ledger`]) and [`Recovery`]; this module only carries it out in S3.

use std::collections::HashMap;
use std::time::Duration;

use backdrop_core::ledger::{
    Begin, Entry, Failure, ImageIdentity, InputKey, Ledger, Owner, Policy, Refusal, Ticket,
};
use backdrop_core::validate::check_file_size;
use backdrop_core::{
    Client, Error as ApiError, GenerateRequest, Recovery, WaitControl, WaitOptions, spec,
};
use tokio::time::Instant;

use crate::claims::ClaimStore;
use crate::config::{Config, SubmitMode};
use crate::error::LambdaError;
use crate::event::ObjectRef;
use crate::inspect::{HeaderVerdict, check_header};
use crate::outputs::{Destination, Results, store_failure, store_results};
use crate::params::Parameters;
use crate::records::{FailureRecord, FailureStage, Source};
use crate::store::ObjectStore;

/// The shortest time left before the deadline in which new work is started.
const MIN_TIME_TO_START: Duration = Duration::from_secs(5);

/// What the handler needs: storage, the API client and the configuration.
#[derive(Debug, Clone)]
pub struct Deps<S> {
    /// S3.
    pub store: S,
    /// The PicWish client (its rate limiter is this instance's share of the key).
    pub client: Client,
    /// The configuration.
    pub config: Config,
}

/// The invocation working on objects: its deadline, and the owner it is in the task ledger
/// (its request id, with its deadline as its lease).
#[derive(Debug, Clone)]
pub struct Lease {
    /// When the platform stops the invocation.
    pub deadline: Instant,
    /// The ledger owner.
    pub owner: Owner,
}

/// How one object ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Outputs and manifest written.
    Done {
        /// The task.
        task_id: String,
        /// Keys written.
        outputs: Vec<String>,
        /// Credits charged.
        credits: u32,
    },
    /// A failure record was written; delivering the event again would not help.
    Failed {
        /// The failure record's key.
        record: String,
        /// Why.
        reason: String,
    },
    /// Nothing to do (not an input, already done, gone).
    Skipped(String),
    /// Transient trouble: deliver the event again later (the recorded task is resumed).
    Retry(String),
}

impl Outcome {
    /// True when the event must be delivered again.
    pub fn needs_retry(&self) -> bool {
        matches!(self, Outcome::Retry(_))
    }
}

/// Why the work on an object stopped before its outputs.
#[derive(Debug)]
enum Stop {
    /// Write this failure record.
    Fail(FailureRecord),
    /// Deliver the event again later.
    Retry(String),
    /// Nothing to do.
    Skip(String),
}

impl From<LambdaError> for Stop {
    fn from(error: LambdaError) -> Self {
        Stop::Retry(error.to_string())
    }
}

impl From<backdrop_core::ledger::LedgerError> for Stop {
    fn from(error: backdrop_core::ledger::LedgerError) -> Self {
        Stop::Retry(error.to_string())
    }
}

/// True for keys the function must process: under the input prefix, ending in `.png`, and not
/// under any prefix the function writes to (so it can never trigger itself).
pub fn is_input_key(config: &Config, key: &str) -> bool {
    let own_prefixes = [
        &config.output_prefix,
        &config.failed_prefix,
        &config.state_prefix,
    ];
    key.starts_with(&config.input_prefix)
        && key.len() > config.input_prefix.len()
        && key.to_ascii_lowercase().ends_with(".png")
        && !own_prefixes
            .iter()
            .any(|p| !p.is_empty() && key.starts_with(p.as_str()))
}

/// Processes one object; never panics, never returns an error: every path ends in an [`Outcome`].
pub async fn process_object<S: ObjectStore>(
    deps: &Deps<S>,
    object: &ObjectRef,
    lease: &Lease,
) -> Outcome {
    let config = &deps.config;
    if !is_input_key(config, &object.key) {
        return Outcome::Skipped(format!(
            "{} is not under {} or not a .png",
            object.key, config.input_prefix
        ));
    }
    let left = lease.deadline.saturating_duration_since(Instant::now());
    if left < config.deadline_margin + MIN_TIME_TO_START {
        return Outcome::Retry(format!(
            "too close to the invocation's deadline to start ({:.1} s left, {} s needed)",
            left.as_secs_f64(),
            (config.deadline_margin + MIN_TIME_TO_START).as_secs()
        ));
    }
    let head = match deps.store.head(&object.bucket, &object.key).await {
        Ok(Some(head)) => head,
        Ok(None) => {
            return Outcome::Skipped(format!(
                "s3://{}/{} no longer exists",
                object.bucket, object.key
            ));
        }
        Err(e) => return Outcome::Retry(e.to_string()),
    };
    // Always the version S3 has now: a newer upload's own event then finds its own entry.
    let source = Source {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        etag: head.etag.clone(),
    };
    let relative = &object.key[config.input_prefix.len()..];
    let job = Job {
        deps,
        destination: Destination::of(config, &source, relative),
        source,
        lease,
    };
    match job.run(head.size, &head.metadata).await {
        Ok(outcome) => outcome,
        Err(stop) => job.stopped(stop).await,
    }
}

/// The object being processed and where its records go.
struct Job<'a, S> {
    deps: &'a Deps<S>,
    source: Source,
    destination: Destination,
    lease: &'a Lease,
}

type ClaimTicket<'l, 's, S> = Ticket<'l, ClaimStore<'s, S>>;

impl<S: ObjectStore> Job<'_, S> {
    async fn run(&self, size: u64, metadata: &HashMap<String, String>) -> Result<Outcome, Stop> {
        // 1. Validate before spending: size, then the PNG header from a ranged GET.
        check_file_size(size)
            .map_err(|rule| self.refused(FailureStage::Validation, rule.to_string()))?;
        if let HeaderVerdict::Invalid(rule) =
            check_header(&self.deps.store, &self.source, size).await?
        {
            return Err(self.refused(FailureStage::Validation, rule.to_string()));
        }
        let parameters = Parameters::resolve(metadata, &self.deps.config.defaults)
            .map_err(|reason| self.refused(FailureStage::Parameters, reason))?;

        // 2. Find what earlier deliveries did, and claim the input (object version + options).
        let config = &self.deps.config;
        let claims = ClaimStore::new(
            &self.deps.store,
            self.destination.bucket.clone(),
            config.state_prefix.clone(),
        );
        let policy = Policy {
            retry_unconfirmed: parameters.retry_unconfirmed,
            regenerate_expired: parameters.regenerate_expired,
            ..Policy::shared(config.lease_margin, config.max_task_attempts)
        };
        let ledger = Ledger::new(claims, self.deps.client.config().service_identity(), policy);
        let image = ImageIdentity::S3Object {
            bucket: self.source.bucket.clone(),
            key: self.source.key.clone(),
            etag: self.source.etag.clone(),
        };
        let key = InputKey::derive(&image, &parameters.options, "");
        let begin = ledger
            .begin(&key, &self.source.label(), &self.lease.owner, |_| true)
            .await?;

        // 3. Create a task, unless one is recorded; then wait, download and store.
        match begin {
            Begin::Done(_) => Err(Stop::Skip("already done (duplicate event)".into())),
            Begin::Busy(entry) => Err(Stop::Retry(format!(
                "another invocation ({}) is working on this object",
                entry.owner.map(|o| o.id).unwrap_or_default()
            ))),
            Begin::Refused { entry, refusal } => {
                Err(Stop::Fail(self.refusal_record(&entry, refusal)))
            }
            Begin::Resume(ticket) => {
                tracing::info!(key = %self.source.key, task_id = ticket.task_id().unwrap_or_default(), "resuming the recorded task");
                self.finish(ticket, &parameters).await
            }
            Begin::Create(mut ticket) => {
                self.create(&mut ticket, &parameters).await?;
                self.finish(ticket, &parameters).await
            }
        }
    }

    /// Creates the task: the ledger says `sending` once the create holds its budget, before
    /// the request goes out.
    async fn create(
        &self,
        ticket: &mut ClaimTicket<'_, '_, S>,
        parameters: &Parameters,
    ) -> Result<(), Stop> {
        let config = &self.deps.config;
        let left = self
            .lease
            .deadline
            .saturating_duration_since(Instant::now());
        if left < config.deadline_margin + MIN_TIME_TO_START {
            self.release(ticket).await;
            return Err(Stop::Retry(
                "too close to the invocation's deadline to create a task".into(),
            ));
        }
        let request = match self.request(parameters).await {
            Ok(Some(request)) => request,
            Ok(None) => {
                self.release(ticket).await;
                return Err(Stop::Skip(format!(
                    "{} was deleted before it could be uploaded",
                    self.source.label()
                )));
            }
            Err(error) => {
                self.release(ticket).await;
                return Err(error.into());
            }
        };
        match ticket.create_task(&self.deps.client, &request).await {
            Ok(task_id) => {
                tracing::info!(key = %self.source.key, task_id = %task_id, tasks = ticket.entry().tasks_created, "task created");
                Ok(())
            }
            Err(error) => Err(self.stop_for(
                &Failure::from_error(&error, None),
                FailureStage::Create,
                ticket.entry(),
            )),
        }
    }

    /// The request: a presigned URL of the object version (the function never holds the
    /// image), or its bytes. `None` when the object was deleted meanwhile.
    async fn request(
        &self,
        parameters: &Parameters,
    ) -> Result<Option<GenerateRequest>, LambdaError> {
        let config = &self.deps.config;
        let (bucket, key) = (&self.source.bucket, &self.source.key);
        let builder = match config.submit_mode {
            SubmitMode::Url => {
                let url = self
                    .deps
                    .store
                    .presign_get(bucket, key, config.presign_ttl)
                    .await?;
                GenerateRequest::builder().image_url(&url)
            }
            SubmitMode::Upload => {
                let Some((bytes, _)) = self.deps.store.get(bucket, key).await? else {
                    return Ok(None);
                };
                let name = key.rsplit('/').next().unwrap_or("image.png").to_owned();
                GenerateRequest::builder().image_bytes(bytes, name)
            }
        };
        builder
            .options(parameters.options.clone())
            .build()
            .map(Some)
            .map_err(|e| LambdaError::Config(format!("the request cannot be built: {e}")))
    }

    /// Waits for the ticket's task, downloads its results, stores them and records the end.
    async fn finish(
        &self,
        mut ticket: ClaimTicket<'_, '_, S>,
        parameters: &Parameters,
    ) -> Result<Outcome, Stop> {
        let task_id = ticket.task_id().unwrap_or_default().to_owned();
        let left = self
            .lease
            .deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(self.deps.config.deadline_margin);
        let options = WaitOptions {
            max_wait: left.min(spec::MAX_POLL_DURATION),
            ..WaitOptions::default()
        };
        let client = &self.deps.client;
        let task = match client
            .wait_for_task_with(&task_id, options, |_| WaitControl::Continue)
            .await
        {
            Ok(task) => task,
            Err(error) => return Err(self.failed(&mut ticket, &error, FailureStage::Task).await),
        };
        let images = match client.download_results(&task).await {
            Ok(images) => images,
            Err(error) => {
                return Err(self
                    .failed(&mut ticket, &error, FailureStage::Download)
                    .await);
            }
        };
        let entry = ticket.entry();
        let results = Results {
            task: &task,
            images,
            options: &parameters.options,
            attempts: entry.tasks_created,
            submitted_at: entry.sent_at_ms.map(|ms| ms as f64 / 1000.0),
        };
        let manifest = match store_results(
            &self.deps.store,
            &self.source,
            &self.destination,
            results,
        )
        .await
        {
            Ok(manifest) => manifest,
            Err(error) => {
                // The task is done and paid: keep it recorded so the next delivery fetches again.
                let failure = Failure::new(error.to_string(), Recovery::Resume);
                if let Err(e) = ticket.fail(failure).await {
                    tracing::warn!(key = %self.source.key, error = %e, "cannot record the failed store");
                }
                return Err(error.into());
            }
        };
        if let Err(e) = ticket
            .done(manifest.outputs.clone(), manifest.credits_charged)
            .await
        {
            tracing::warn!(key = %self.source.key, task_id = %task_id, error = %e, "cannot mark the claim done; the outputs are written");
        }
        tracing::info!(
            key = %self.source.key,
            task_id = %task_id,
            state = manifest.state,
            seconds = manifest.timings.seconds,
            credits = manifest.credits_charged,
            outputs = manifest.outputs.len(),
            "object done"
        );
        Ok(Outcome::Done {
            task_id,
            outputs: manifest.outputs,
            credits: manifest.credits_charged,
        })
    }

    /// Records an error met while waiting or downloading, and decides what follows from its
    /// recovery. A task still unfinished after the spec's polling limit is given up.
    async fn failed(
        &self,
        ticket: &mut ClaimTicket<'_, '_, S>,
        error: &ApiError,
        stage: FailureStage,
    ) -> Stop {
        let mut failure = Failure::from_error(error, ticket.task_id());
        if failure.recovery == Recovery::Resume && ticket.polling_window_over() {
            failure.message = format!(
                "{}; the task did not finish within {} s of its creation, so it is given up (had \
                 it succeeded later it would have been charged)",
                failure.message,
                spec::MAX_POLL_DURATION.as_secs()
            );
            failure.recovery = Recovery::ResultsLost;
            failure.credits_spent = true;
        }
        if let Err(e) = ticket.fail(failure.clone()).await {
            tracing::warn!(key = %self.source.key, error = %e, "cannot record the failure in the claim");
        }
        if let ApiError::TaskFailed { state, .. } = error {
            tracing::warn!(key = %self.source.key, task_id = ticket.task_id().unwrap_or_default(), state = state.code(), "task failed");
        }
        self.stop_for(&failure, stage, ticket.entry())
    }

    /// What follows from a recorded failure: a new delivery when trying again is safe (a new
    /// task, or the same task resumed), a failure record otherwise.
    fn stop_for(&self, failure: &Failure, stage: FailureStage, entry: &Entry) -> Stop {
        match failure.recovery {
            Recovery::Retry => Stop::Retry(failure.message.clone()),
            Recovery::Resume => Stop::Retry(format!(
                "{} (the next delivery resumes the task)",
                failure.message
            )),
            Recovery::Unconfirmed | Recovery::ResultsLost | Recovery::Permanent => {
                let mut failure = failure.clone();
                advise(&mut failure, stage);
                Stop::Fail(FailureRecord::from_ledger(
                    &self.source,
                    stage,
                    &failure,
                    entry.tasks_created,
                ))
            }
        }
    }

    /// The failure record of an input the ledger will not work on again.
    fn refusal_record(&self, entry: &Entry, refusal: Refusal) -> FailureRecord {
        let mut failure = entry
            .failure
            .clone()
            .unwrap_or_else(|| Failure::new("no reason was recorded", refusal.recovery()));
        if let Refusal::TooManyTasks { tasks } = refusal {
            failure.message = format!(
                "{tasks} tasks failed on the service's side for this object; the last: {}",
                failure.message
            );
        }
        failure.recovery = refusal.recovery();
        let stage = if entry.task_id.is_some() || failure.task_id.is_some() {
            FailureStage::Task
        } else {
            FailureStage::Create
        };
        advise(&mut failure, stage);
        FailureRecord::from_ledger(&self.source, stage, &failure, entry.tasks_created)
    }

    /// A refusal before anything was claimed or sent.
    fn refused(&self, stage: FailureStage, message: String) -> Stop {
        Stop::Fail(FailureRecord::refused(&self.source, stage, message))
    }

    /// Stops owning the input, so that the next delivery need not wait for this lease.
    async fn release(&self, ticket: &mut ClaimTicket<'_, '_, S>) {
        if let Err(e) = ticket.release().await {
            tracing::warn!(key = %self.source.key, error = %e, "cannot release the claim");
        }
    }

    /// The outcome of a stop: the failure record written, or the retry or skip reported.
    async fn stopped(&self, stop: Stop) -> Outcome {
        match stop {
            Stop::Retry(reason) => {
                tracing::info!(key = %self.source.key, reason = %reason, "object to be delivered again");
                Outcome::Retry(reason)
            }
            Stop::Skip(reason) => Outcome::Skipped(reason),
            Stop::Fail(record) => {
                match store_failure(&self.deps.store, &self.destination, &record).await {
                    Ok(key) => {
                        tracing::info!(
                            key = %self.source.key,
                            stage = ?record.stage,
                            state = record.state,
                            task_id = record.task_id.as_deref(),
                            credits_spent = record.credits_spent,
                            reason = %record.message,
                            "object failed"
                        );
                        Outcome::Failed {
                            record: key,
                            reason: record.message,
                        }
                    }
                    Err(e) => Outcome::Retry(e.to_string()),
                }
            }
        }
    }
}

/// What the uploader can do, in the Lambda's words (the meaning is core's [`Recovery`]).
fn advise(failure: &mut Failure, stage: FailureStage) {
    let advice = match failure.recovery {
        Recovery::Unconfirmed => {
            "; to create it anyway (it may then be charged twice), upload the object again with \
             x-amz-meta-retry-unconfirmed: true"
        }
        Recovery::ResultsLost => {
            "; to generate it again (charged again), upload the object again with \
             x-amz-meta-regenerate-expired: true"
        }
        Recovery::Permanent if matches!(stage, FailureStage::Create | FailureStage::Task) => {
            "; new parameters are new work: upload the object again with corrected x-amz-meta-* \
             metadata once the cause is fixed"
        }
        _ => return,
    };
    if !failure.message.ends_with(advice) {
        failure.message.push_str(advice);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_input_pngs_are_processed() {
        let config = Config::default();
        assert!(is_input_key(&config, "incoming/a.png"));
        assert!(is_input_key(&config, "incoming/sub dir/Café.PNG"));
        assert!(!is_input_key(&config, "incoming/a.jpg"));
        assert!(!is_input_key(&config, "generated/a/1.png"));
        assert!(!is_input_key(&config, "incoming/"));
        let flat = Config {
            input_prefix: String::new(),
            ..Config::default()
        };
        assert!(is_input_key(&flat, "a.png"));
        assert!(
            !is_input_key(&flat, "generated/a.png"),
            "own outputs never trigger the function"
        );
        assert!(!is_input_key(&flat, "state/x.png"));
    }
}
