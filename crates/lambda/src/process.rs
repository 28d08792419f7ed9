//! What happens to one uploaded object: guard, validate, claim, create (or resume), wait, store.
//!
//! Every object ends in one of three ways: outputs and a manifest, a failure record, or — for
//! transient trouble — a retry through the event source, which resumes the recorded task. What
//! may be created, resumed or refused, and what an error means, is core's task ledger
//! ([`backdrop_core::ledger`]) and [`Recovery`]; this module only carries it out in S3.

use std::time::Duration;

use backdrop_core::ledger::{
    Adapter, Driven, Entry, Event, Failure, ImageIdentity, InputKey, Ledger, Limits, Owner, Policy,
};
use backdrop_core::validate::check_file_size;
use backdrop_core::{
    Client, Error as ApiError, GenerateRequest, GeneratedImage, TaskInfo, WaitOptions, spec,
};
use tokio::time::Instant;

use crate::claims::ClaimStore;
use crate::config::{Config, SubmitMode};
use crate::error::LambdaError;
use crate::event::ObjectRef;
use crate::inspect::{Verdict, check_object};
use crate::metrics::{Metrics, MetricsSink};
use crate::outputs::{Destination, Results, store_results};
use crate::params::Parameters;
use crate::queue::{MessageQueue, NoQueue};
use crate::records::{FailureRecord, FailureStage, Manifest, Source, now_unix};
use crate::store::{ObjectHead, ObjectStore};

mod stops;

use stops::Stop;
pub(crate) use stops::remedy_of;

/// The shortest time left before the deadline in which new work is started.
const MIN_TIME_TO_START: Duration = Duration::from_secs(5);

/// What the handler needs: storage, the queue, the API client, the configuration and where
/// metrics go.
#[derive(Debug, Clone)]
pub struct Deps<S, Q = NoQueue> {
    /// S3.
    pub store: S,
    /// SQS (to delay a message's next delivery).
    pub queue: Q,
    /// The PicWish client (its rate limiter is this instance's share of the key).
    pub client: Client,
    /// The configuration.
    pub config: Config,
    /// Where the invocation's metric lines go.
    pub metrics: MetricsSink,
}

/// One delivery of an object's event.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The invocation.
    pub lease: &'a Lease,
    /// The record within the invocation (an SQS message id and the record's place in it):
    /// with the invocation's request id it makes the object's ledger owner, so that two
    /// deliveries of one object in one batch are two owners, never one.
    pub record: &'a str,
    /// True when the event source will not deliver the event again (the SQS message's last
    /// receive): transient trouble then ends in a failure record, never in silence.
    pub last: bool,
    /// The invocation's metrics.
    pub metrics: &'a Metrics,
}

/// The invocation working on objects: its deadline, and the owner it is in the task ledger
/// (its request id, with its deadline as its lease).
#[derive(Debug, Clone)]
pub struct Lease {
    /// When the platform stops the invocation.
    pub deadline: Instant,
    /// The invocation as a ledger owner (each record works as [`Lease::owner_of`]).
    pub owner: Owner,
}

impl Lease {
    /// The ledger owner of one record of the invocation: the request id and the record, with
    /// the invocation's lease.
    pub fn owner_of(&self, record: &str) -> Owner {
        Owner {
            id: format!("{}/{record}", self.owner.id),
            lease_until_ms: self.owner.lease_until_ms,
        }
    }
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
        /// Where it failed.
        stage: FailureStage,
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
pub async fn process_object<S: ObjectStore, Q: MessageQueue>(
    deps: &Deps<S, Q>,
    object: &ObjectRef,
    delivery: Delivery<'_>,
) -> Outcome {
    let config = &deps.config;
    let lease = delivery.lease;
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
    let relative = &object.key[config.input_prefix.len()..];
    let mut job = ObjectRun {
        deps,
        source: Source {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            etag: object.etag.clone().unwrap_or_default(),
        },
        destination: Destination::of(config, &object_source(object), relative),
        delivery,
        owner: lease.owner_of(delivery.record),
        // Every network call ends here, leaving time to record how it ended.
        cutoff: lease
            .deadline
            .checked_sub(config.deadline_margin)
            .unwrap_or(lease.deadline),
    };
    let head = match deps.store.head(&object.bucket, &object.key).await {
        Ok(Some(head)) => head,
        Ok(None) => {
            return Outcome::Skipped(format!(
                "s3://{}/{} no longer exists",
                object.bucket, object.key
            ));
        }
        Err(error) => {
            let stop = job.trouble(error);
            return job.stopped(stop).await;
        }
    };
    // Always the version S3 has now: a newer upload's own event then finds its own entry.
    job.source.etag = head.etag.clone();
    // Each network call of the run ends by the cutoff and records how; this bound, half the
    // margin later, catches the S3 calls before the create (checks, claims), which record
    // nothing: the next delivery takes up where this one stopped.
    let last_resort = lease
        .deadline
        .checked_sub(config.deadline_margin / 2)
        .unwrap_or(lease.deadline);
    let run = tokio::time::timeout_at(last_resort, job.run(&head)).await;
    match run {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(stop)) => job.stopped(stop).await,
        Err(_) => {
            let stop = Stop::retry(
                format!(
                    "the invocation's time ran out while {} was being checked or claimed; the \
                     next delivery takes up where this one stopped",
                    job.source.label()
                ),
                None,
            );
            job.stopped(stop).await
        }
    }
}

fn object_source(object: &ObjectRef) -> Source {
    Source {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        etag: object.etag.clone().unwrap_or_default(),
    }
}

/// The object being processed and where its records go.
struct ObjectRun<'a, S, Q> {
    deps: &'a Deps<S, Q>,
    source: Source,
    destination: Destination,
    delivery: Delivery<'a>,
    /// This delivery of the object as a ledger owner.
    owner: Owner,
    /// When every network call must have ended: the deadline less its margin.
    cutoff: Instant,
}

impl<S: ObjectStore, Q: MessageQueue> ObjectRun<'_, S, Q> {
    async fn run(&self, head: &ObjectHead) -> Result<Outcome, Stop> {
        // 1. Validate before spending: the parameters, the size, then the whole PNG, streamed.
        let parameters = Parameters::resolve(&head.metadata, &self.deps.config.defaults)
            .map_err(|reason| self.refused(FailureStage::Parameters, reason))?;
        check_file_size(head.size)
            .map_err(|rule| self.refused(FailureStage::Validation, rule.to_string()))?;
        let verdict = check_object(
            &self.deps.store,
            &self.source,
            head.size,
            parameters.pixel_rules(),
        )
        .await
        .map_err(|e| self.trouble(e))?;
        match verdict {
            Verdict::Valid(report) => {
                for warning in &report.warnings {
                    tracing::warn!(key = %self.source.key, warning = %warning, "image accepted with a warning");
                }
            }
            Verdict::Invalid(rule) => {
                return Err(self.refused(FailureStage::Validation, rule.to_string()));
            }
            Verdict::Gone => {
                return Err(Stop::Skip(format!(
                    "{} was deleted or replaced before it could be checked",
                    self.source.label()
                )));
            }
        }

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
            // The metadata is as old as the version: a flag set with it allows one more create
            // for what failed before, not one per delivery.
            flags_given_at_ms: Some(head.last_modified_ms.unwrap_or(0)),
            ..Policy::shared(config.lease_margin, config.max_task_attempts)
        };
        let ledger = Ledger::new(claims, self.deps.client.config().service_identity(), policy);
        let image = ImageIdentity::S3Object {
            bucket: self.source.bucket.clone(),
            key: self.source.key.clone(),
            etag: self.source.etag.clone(),
        };
        let key = InputKey::derive(&image, &parameters.options, "");

        // 3. Core's walk: create (unless a task is recorded), wait, download, store.
        let left = self.cutoff.saturating_duration_since(Instant::now());
        let limits = Limits {
            // The wait ends before the cutoff, so that its timeout is recorded by its rules.
            wait: WaitOptions {
                max_wait: left.min(spec::MAX_POLL_DURATION),
                ..WaitOptions::default()
            },
            cutoff: Some(self.cutoff),
        };
        let side = S3Side {
            job: self,
            parameters: &parameters,
            head,
            scratch: std::sync::Mutex::new(None),
            manifest: std::sync::Mutex::new(None),
        };
        let driven = ledger
            .drive(
                &key,
                &self.source.label(),
                &self.owner,
                &self.deps.client,
                &side,
                |_| true,
                limits,
                std::future::pending(),
            )
            .await
            .map_err(|e| self.ledger_trouble(e, None))?;
        let manifest = side.manifest.lock().ok().and_then(|mut m| m.take());
        self.outcome(driven, manifest)
    }

    /// What follows from the walk, in the Lambda's terms: outputs, a record, a retry or a skip.
    fn outcome(
        &self,
        driven: Driven<LambdaError>,
        manifest: Option<Manifest>,
    ) -> Result<Outcome, Stop> {
        match driven {
            Driven::Stored { task, outputs, .. } => {
                let credits = task.credits_charged();
                // When the service says it finished, against when this delivery saw it.
                let detection_delay = task
                    .completed_at
                    .as_deref()
                    .and_then(|at| at.trim().parse::<f64>().ok())
                    .map(|completed| now_unix() - completed);
                let seconds = manifest.as_ref().and_then(|m| m.timings.seconds);
                self.delivery
                    .metrics
                    .succeeded(credits, seconds, detection_delay);
                tracing::info!(key = %self.source.key, task_id = %task.task_id, seconds, detection_delay, credits, outputs = outputs.len(), "object done");
                Ok(Outcome::Done {
                    task_id: task.task_id,
                    outputs,
                    credits,
                })
            }
            Driven::AlreadyDone(_) => Err(Stop::Skip("already done (duplicate event)".into())),
            Driven::Busy(entry) => Err(Stop::retry(
                format!(
                    "another invocation ({}) is creating a task for this object",
                    entry
                        .owner
                        .as_ref()
                        .map(|o| o.id.as_str())
                        .unwrap_or_default()
                ),
                Some(&entry),
            )),
            Driven::Refused { entry, refusal } => {
                Err(Stop::fail(self.refusal_record(&entry, refusal)))
            }
            Driven::Gone => Err(Stop::Skip(format!(
                "{} was deleted or replaced before it could be sent",
                self.source.label()
            ))),
            Driven::Unprepared(error) => Err(self.trouble(error)),
            Driven::Failed {
                entry,
                error: error @ ApiError::CreditCapReached { .. },
                ..
            } => Err(self.credit_cap_record(&entry, &error)),
            Driven::Failed {
                entry,
                failure,
                during,
                error,
            } => {
                if let ApiError::TaskFailed { state, .. } = &error {
                    tracing::warn!(key = %self.source.key, task_id = entry.task_id.as_deref().unwrap_or_default(), state = state.code(), "task failed");
                }
                let stage = match during {
                    backdrop_core::Operation::Create => FailureStage::Create,
                    backdrop_core::Operation::Download => FailureStage::Download,
                    _ => FailureStage::Task,
                };
                Err(self.stop_for(&failure, stage, &entry))
            }
            Driven::NotStored { entry, error } => Err(match self.trouble(error) {
                Stop::Retry { reason, .. } => Stop::retry(reason, Some(&entry)),
                other => other,
            }),
            Driven::Stopped { entry } => Err(Stop::retry(
                format!(
                    "the invocation's time ran out while task {} was awaited, downloaded or \
                     stored; the next delivery resumes it (no new create)",
                    entry.task_id.as_deref().unwrap_or("?")
                ),
                Some(&entry),
            )),
        }
    }

    /// The record of an object the daily credit cap left: delivering the event again cannot help
    /// before the day turns (SQS would give up sooner), so the record says how to re-drive it.
    fn credit_cap_record(&self, entry: &Entry, error: &ApiError) -> Stop {
        let mut failure = Failure::from_error(error, None);
        failure.message = format!(
            "{}; the cap is the stack's DailyCreditCap (DAILY_CREDIT_CAP), per UTC day. To \
             generate it: raise the cap or wait for the next UTC day, then upload the object \
             again (or copy it onto itself keeping its metadata)",
            failure.message
        );
        tracing::warn!(key = %self.source.key, error = %error, "not started: the daily credit cap");
        Stop::fail(FailureRecord::from_ledger(
            &self.source,
            FailureStage::CreditCap,
            &failure,
            entry.tasks_created,
        ))
    }

    /// The request: a presigned URL of the checked version (the function never holds the
    /// image), or the object streamed to a scratch file, which the create streams in turn
    /// (the function holds a few pieces of it at a time). `None` when the object was deleted or
    /// replaced meanwhile.
    ///
    /// The service must see the version that was checked, never what the key holds by the
    /// time it fetches: URL mode presigns that version's id, or, in a bucket without
    /// versioning, a copy of that version made now (`x-amz-copy-source-if-match`) under the
    /// state prefix; upload mode reads the version by its ETag (`If-Match`).
    async fn request(
        &self,
        parameters: &Parameters,
        scratch: &Scratch,
        head: &ObjectHead,
        input: &InputKey,
    ) -> Result<Option<GenerateRequest>, LambdaError> {
        let config = &self.deps.config;
        let store = &self.deps.store;
        let (bucket, key) = (&self.source.bucket, &self.source.key);
        let builder = match config.submit_mode {
            SubmitMode::Url => {
                let url = match &head.version_id {
                    Some(version) => {
                        store
                            .presign_get(bucket, key, Some(version), config.presign_ttl)
                            .await?
                    }
                    None => {
                        let copy = self.copy_key(input);
                        let copied = store
                            .copy_version(
                                bucket,
                                key,
                                &self.source.etag,
                                &self.destination.bucket,
                                &copy,
                            )
                            .await?;
                        if !copied {
                            return Ok(None);
                        }
                        store
                            .presign_get(&self.destination.bucket, &copy, None, config.presign_ttl)
                            .await?
                    }
                };
                GenerateRequest::builder().image_url(&url)
            }
            SubmitMode::Upload => {
                let downloaded = store
                    .download(bucket, key, &self.source.etag, &scratch.path)
                    .await?;
                if downloaded.is_none() {
                    return Ok(None);
                }
                GenerateRequest::builder().image_path(scratch.path.clone())
            }
        };
        builder
            .options(parameters.options.clone())
            .allow_opaque(parameters.allow_opaque)
            .build()
            .map(Some)
            .map_err(|e| LambdaError::Config(format!("the request cannot be built: {e}")))
    }

    /// Where URL mode copies the checked version of an input in a bucket without versioning:
    /// one key per input (object version and options) under the state prefix.
    fn copy_key(&self, input: &InputKey) -> String {
        format!("{}scratch/{input}.png", self.deps.config.state_prefix)
    }

    /// Deletes the copy URL mode made for the service to fetch, once the task has ended (the
    /// service may fetch it any time until then). A bucket with versioning has no copy.
    async fn remove_copy(&self, input: &InputKey, head: &ObjectHead) {
        if self.deps.config.submit_mode != SubmitMode::Url || head.version_id.is_some() {
            return;
        }
        let copy = self.copy_key(input);
        if let Err(e) = self
            .deps
            .store
            .delete(&self.destination.bucket, &copy)
            .await
        {
            tracing::warn!(key = %copy, error = %e, "cannot delete the scratch copy; the state prefix's expiry removes it");
        }
    }

    /// Where this version's results go: the object's output folder while the key still holds
    /// this version; once a newer version (or a delete) replaced it, a folder of this version's
    /// own below it (`superseded/<etag>/`), so that the results of two versions never mix in
    /// one folder and the paid results of the older one are kept.
    async fn destination_now(&self) -> Destination {
        let current = self
            .deps
            .store
            .head(&self.source.bucket, &self.source.key)
            .await;
        match current {
            Ok(Some(head)) if head.etag == self.source.etag => self.destination.clone(),
            // Unknown (S3 trouble): the folder of this version's own is safe either way.
            _ => {
                tracing::info!(key = %self.source.key, etag = %self.source.etag, "the object was replaced while its task ran: its results go to a folder of their own");
                self.destination.superseded(&self.source.etag)
            }
        }
    }
}

/// The Lambda's side of an object's walk: the request made from S3 when a create is due, the
/// images stored back into S3, and the scratch copy removed once the task ended.
struct S3Side<'j, 'a, S, Q> {
    job: &'j ObjectRun<'a, S, Q>,
    parameters: &'j Parameters,
    head: &'j ObjectHead,
    /// Upload mode's scratch file, kept until the create has streamed it.
    scratch: std::sync::Mutex<Option<Scratch>>,
    /// The manifest written, for the metrics.
    manifest: std::sync::Mutex<Option<Manifest>>,
}

impl<S: ObjectStore, Q: MessageQueue> Adapter for S3Side<'_, '_, S, Q> {
    type Error = LambdaError;

    async fn request(&self, key: &InputKey) -> Result<Option<GenerateRequest>, LambdaError> {
        let scratch = Scratch::create(&self.job.deps.config, key).map_err(LambdaError::Config)?;
        let request = self
            .job
            .request(self.parameters, &scratch, self.head, key)
            .await;
        if let Ok(mut kept) = self.scratch.lock() {
            *kept = Some(scratch);
        }
        request
    }

    async fn store(
        &self,
        _key: &InputKey,
        entry: &Entry,
        task: &TaskInfo,
        images: Vec<GeneratedImage>,
    ) -> Result<Vec<String>, LambdaError> {
        let job = self.job;
        let destination = job.destination_now().await;
        let results = Results {
            task,
            images,
            options: &self.parameters.options,
            attempts: entry.tasks_created,
            submitted_at: entry.sent_at_ms.map(|ms| ms as f64 / 1000.0),
        };
        let manifest = store_results(&job.deps.store, &job.source, &destination, results).await?;
        let outputs = manifest.outputs.clone();
        if let Ok(mut kept) = self.manifest.lock() {
            *kept = Some(manifest);
        }
        Ok(outputs)
    }

    async fn task_ended(&self, key: &InputKey) {
        if let Ok(mut scratch) = self.scratch.lock() {
            scratch.take();
        }
        self.job.remove_copy(key, self.head).await;
    }

    fn event(&self, event: Event<'_>) {
        let key = &self.job.source.key;
        match event {
            Event::Created(task_id) => {
                self.job.delivery.metrics.task_created();
                tracing::info!(key = %key, task_id = %task_id, "task created");
            }
            Event::Resumed(task_id) => {
                tracing::info!(key = %key, task_id = %task_id, "resuming the recorded task");
            }
            Event::Polled(_) => {}
        }
    }
}

/// Where one delivery's image waits to be sent in upload mode: a file of its own, created
/// exclusively under an unpredictable name (two deliveries of one object never share one), and
/// removed when dropped.
struct Scratch {
    path: std::path::PathBuf,
}

impl Scratch {
    fn create(config: &Config, key: &InputKey) -> Result<Self, String> {
        let tag = format!("{:016x}", rand_tag());
        let path = config
            .scratch_dir
            .join(format!("backdrop-{key}-{}-{tag}.png", std::process::id()));
        std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                format!(
                    "cannot create the scratch file {}: {e}; check the function's /tmp space",
                    path.display()
                )
            })?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// 64 bits no one can guess: the standard library's per-process random hash keys, mixed with
/// the time and a counter.
fn rand_tag() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish()
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
