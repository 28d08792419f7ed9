//! What happens to one uploaded object: guard, validate, claim, create (or resume), wait, store.
//!
//! Every object ends in one of three ways: outputs and a manifest, a failure record, or — for
//! transient trouble — a retry through the event source, which resumes the recorded task.

use std::time::Duration;

use backdrop_core::validate::{PngHeaderReader, PngStep, check_file_size};
use backdrop_core::{
    Client, Error as ApiError, GenerateRequest, StateClass, TaskInfo, WaitControl, WaitOptions,
    spec,
};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::config::{Config, SubmitMode};
use crate::error::LambdaError;
use crate::event::ObjectRef;
use crate::params::Parameters;
use crate::records::{
    ClaimRecord, ClaimStatus, FailureRecord, Manifest, Source, Timings, now_unix,
};
use crate::store::{ObjectStore, WriteCondition, WriteOutcome};

/// Bytes fetched by the first ranged GET of the header check.
const HEADER_PREFIX_BYTES: usize = 64 * 1024;

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
    /// A failure record was written; retrying would not help.
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

/// Where the work on one object version stands, with the ETag of its claim object.
struct Claim {
    record: ClaimRecord,
    etag: String,
    key: String,
}

/// The object being processed and where its records go.
struct Job<'a, S> {
    deps: &'a Deps<S>,
    source: Source,
    /// The key below the input prefix, `.png` included.
    relative: String,
    deadline: Instant,
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
    deadline: Instant,
) -> Outcome {
    let config = &deps.config;
    if !is_input_key(config, &object.key) {
        return Outcome::Skipped(format!(
            "{} is not under {} or not a .png",
            object.key, config.input_prefix
        ));
    }
    let left = deadline.saturating_duration_since(Instant::now());
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
    let job = Job {
        deps,
        relative: object.key[config.input_prefix.len()..].to_owned(),
        // Always the version S3 has now: a newer upload's own event then finds this claim.
        source: Source {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            etag: head.etag.clone(),
        },
        deadline,
    };
    job.run(head.size, &head.metadata).await
}

impl<S: ObjectStore> Job<'_, S> {
    async fn run(
        &self,
        size: u64,
        metadata: &std::collections::HashMap<String, String>,
    ) -> Outcome {
        // 1. Validate before spending: size, then the PNG header from a ranged GET.
        if let Err(rule) = check_file_size(size) {
            return self.fail("validation", rule.to_string(), None, 0).await;
        }
        match self.check_header(size).await {
            Ok(Ok(())) => {}
            Ok(Err(rule)) => return self.fail("validation", rule, None, 0).await,
            Err(e) => return Outcome::Retry(e.to_string()),
        }
        let parameters = match Parameters::resolve(metadata, &self.deps.config.defaults) {
            Ok(parameters) => parameters,
            Err(reason) => return self.fail("parameters", reason, None, 0).await,
        };
        // 2. Claim the object version, or find what an earlier delivery did.
        let mut claim = match self.claim().await {
            Ok(Ok(claim)) => claim,
            Ok(Err(outcome)) => return outcome,
            Err(e) => return Outcome::Retry(e.to_string()),
        };
        // 3. Create a task, unless one is recorded.
        let task_id = match claim.record.task_id.clone() {
            Some(task_id) => {
                tracing::info!(key = %self.source.key, task_id = %task_id, "resuming the recorded task");
                task_id
            }
            None => match self.create(&mut claim, &parameters).await {
                Ok(task_id) => task_id,
                Err(outcome) => return outcome,
            },
        };
        // 4. Wait, download and store.
        self.finish(&mut claim, &task_id, &parameters).await
    }

    async fn check_header(&self, size: u64) -> Result<Result<(), String>, LambdaError> {
        let store = &self.deps.store;
        let (bucket, key, etag) = (&self.source.bucket, &self.source.key, &self.source.etag);
        let mut reader = match PngHeaderReader::new(size) {
            Ok(reader) => reader,
            Err(rule) => return Ok(Err(rule.to_string())),
        };
        let mut window_start = 0u64;
        let mut window = store
            .get_range(bucket, key, etag, 0, HEADER_PREFIX_BYTES)
            .await?;
        let mut step = reader.first_step();
        loop {
            match step {
                PngStep::Done(_) => return Ok(Ok(())),
                PngStep::Need { offset, len } => {
                    let end = offset + len as u64;
                    let window_end = window_start + window.len() as u64;
                    if offset < window_start || (end > window_end && window_end < size) {
                        window_start = offset;
                        window = store
                            .get_range(bucket, key, etag, offset, HEADER_PREFIX_BYTES.max(len))
                            .await?;
                    }
                    let from = usize::try_from(offset - window_start)
                        .unwrap_or(usize::MAX)
                        .min(window.len());
                    let to = from.saturating_add(len).min(window.len());
                    step = match reader.feed(&window[from..to]) {
                        Ok(next) => next,
                        Err(rule) => return Ok(Err(rule.to_string())),
                    };
                }
            }
        }
    }

    fn state_key(&self) -> String {
        let mut hash = Sha256::new();
        for part in [&self.source.bucket, &self.source.key, &self.source.etag] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        let digest: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        format!("{}{digest}.json", self.deps.config.state_prefix)
    }

    fn state_bucket(&self) -> &str {
        self.deps.config.output_bucket_for(&self.source.bucket)
    }

    /// Claims the object version with a conditional write, or reads the existing claim and
    /// decides: skip finished work, resume a task, take over a dead claim, or retry later.
    async fn claim(&self) -> Result<Result<Claim, Outcome>, LambdaError> {
        let key = self.state_key();
        let bucket = self.state_bucket().to_owned();
        let fresh = ClaimRecord {
            source: self.source.clone(),
            status: ClaimStatus::Claimed,
            task_id: None,
            attempts: 0,
            submitted_at: None,
            updated_at: now_unix(),
            note: None,
        };
        if let WriteOutcome::Written(etag) = self
            .write_claim(&bucket, &key, &fresh, WriteCondition::IfAbsent)
            .await?
        {
            return Ok(Ok(Claim {
                record: fresh,
                etag,
                key,
            }));
        }
        let Some((body, etag)) = self.deps.store.get(&bucket, &key).await? else {
            return Ok(Err(Outcome::Retry(
                "the claim object vanished while being read".into(),
            )));
        };
        let mut record: ClaimRecord = match serde_json::from_slice(&body) {
            Ok(record) => record,
            Err(e) => {
                return Ok(Err(Outcome::Retry(format!(
                    "the claim object s3://{bucket}/{key} is unreadable ({e}); remove it to start over"
                ))));
            }
        };
        let age = now_unix() - record.updated_at;
        match record.status {
            ClaimStatus::Succeeded | ClaimStatus::Failed => Ok(Err(Outcome::Skipped(
                format!("already {:?} (duplicate event)", record.status).to_lowercase(),
            ))),
            ClaimStatus::Submitted if record.task_id.is_some() => {
                Ok(Ok(Claim { record, etag, key }))
            }
            ClaimStatus::Claimed if age < self.deps.config.stale_claim.as_secs_f64() => Ok(Err(
                Outcome::Retry("another invocation is submitting this object".into()),
            )),
            // A retry-pending claim, or one whose invocation died before recording a task: take
            // it over, conditionally, so that only one invocation does.
            _ => {
                record.status = ClaimStatus::Claimed;
                record.task_id = None;
                record.updated_at = now_unix();
                match self
                    .write_claim(&bucket, &key, &record, WriteCondition::IfMatch(etag))
                    .await?
                {
                    WriteOutcome::Written(etag) => Ok(Ok(Claim { record, etag, key })),
                    WriteOutcome::ConditionFailed => Ok(Err(Outcome::Retry(
                        "another invocation took over this object".into(),
                    ))),
                }
            }
        }
    }

    async fn write_claim(
        &self,
        bucket: &str,
        key: &str,
        record: &ClaimRecord,
        condition: WriteCondition,
    ) -> Result<WriteOutcome, LambdaError> {
        let body = serde_json::to_vec_pretty(record)
            .map_err(|e| LambdaError::Config(format!("claim JSON: {e}")))?;
        self.deps
            .store
            .put(
                bucket,
                key,
                Bytes::from(body),
                "application/json",
                condition,
            )
            .await
    }

    /// Updates the claim; a lost race is logged (the work done stays valid).
    async fn update_claim(&self, claim: &mut Claim) -> Result<(), LambdaError> {
        claim.record.updated_at = now_unix();
        let bucket = self.state_bucket().to_owned();
        match self
            .write_claim(
                &bucket,
                &claim.key,
                &claim.record,
                WriteCondition::IfMatch(claim.etag.clone()),
            )
            .await?
        {
            WriteOutcome::Written(etag) => claim.etag = etag,
            WriteOutcome::ConditionFailed => {
                tracing::warn!(key = %self.source.key, "the claim changed under this invocation; writing it anyway");
                if let WriteOutcome::Written(etag) = self
                    .write_claim(&bucket, &claim.key, &claim.record, WriteCondition::Always)
                    .await?
                {
                    claim.etag = etag;
                }
            }
        }
        Ok(())
    }

    async fn create(&self, claim: &mut Claim, parameters: &Parameters) -> Result<String, Outcome> {
        let config = &self.deps.config;
        if claim.record.attempts >= config.max_task_attempts {
            let reason = format!(
                "{} tasks failed on the service's side for this object; the last: {}",
                claim.record.attempts,
                claim.record.note.as_deref().unwrap_or("unknown")
            );
            return Err(self
                .fail_claimed(claim, "task", reason, None, None, false)
                .await);
        }
        let request = match self.request(parameters).await {
            Ok(Ok(request)) => request,
            Ok(Err(rule)) => {
                return Err(self
                    .fail_claimed(claim, "parameters", rule, None, None, false)
                    .await);
            }
            Err(e) => return Err(self.release(claim, e.to_string()).await),
        };
        match self.deps.client.create_task(&request).await {
            Ok(task_id) => {
                claim.record.status = ClaimStatus::Submitted;
                claim.record.task_id = Some(task_id.clone());
                claim.record.attempts += 1;
                claim.record.submitted_at = Some(now_unix());
                if let Err(e) = self.update_claim(claim).await {
                    // The task exists; keep going, the outputs are what matters.
                    tracing::warn!(key = %self.source.key, task_id = %task_id, error = %e, "cannot record the task id");
                }
                tracing::info!(key = %self.source.key, task_id = %task_id, attempt = claim.record.attempts, "task created");
                Ok(task_id)
            }
            Err(error) if error.may_have_created_task() => {
                let reason = format!(
                    "{error}. A task may have been created and charged; check the PicWish account, then upload \
                     the object again to retry"
                );
                Err(self
                    .fail_claimed(claim, "create", reason, None, None, true)
                    .await)
            }
            Err(error) if error.is_transient() => Err(self.release(claim, error.to_string()).await),
            Err(error) => {
                let status = error.http_status();
                Err(self
                    .fail_claimed(claim, "create", error.to_string(), status, None, false)
                    .await)
            }
        }
    }

    async fn request(
        &self,
        parameters: &Parameters,
    ) -> Result<Result<GenerateRequest, String>, LambdaError> {
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
                    return Ok(Err(
                        "the object was deleted before it could be uploaded".into()
                    ));
                };
                let name = key.rsplit('/').next().unwrap_or("image.png").to_owned();
                GenerateRequest::builder().image_bytes(bytes, name)
            }
        };
        Ok(parameters.request(builder).map_err(|e| e.to_string()))
    }

    async fn finish(&self, claim: &mut Claim, task_id: &str, parameters: &Parameters) -> Outcome {
        let left = self
            .deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(self.deps.config.deadline_margin);
        let options = WaitOptions {
            max_wait: left.min(spec::MAX_POLL_DURATION),
            ..WaitOptions::default()
        };
        let task = match self
            .deps
            .client
            .wait_for_task_with(task_id, options, |_| WaitControl::Continue)
            .await
        {
            Ok(task) => task,
            Err(error) => return self.wait_failed(claim, task_id, error).await,
        };
        let images = match self.deps.client.download_results(&task).await {
            Ok(images) => images,
            Err(error @ (ApiError::ResultExpired { .. } | ApiError::ResultMissing { .. })) => {
                let reason = format!(
                    "{error}; the task was charged, upload the object again to generate anew"
                );
                return self
                    .fail_claimed(
                        claim,
                        "download",
                        reason,
                        error.http_status(),
                        Some(&task),
                        false,
                    )
                    .await;
            }
            Err(error) => return Outcome::Retry(error.to_string()),
        };
        match self.store_outputs(claim, &task, parameters, images).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }

    async fn wait_failed(&self, claim: &mut Claim, task_id: &str, error: ApiError) -> Outcome {
        match &error {
            ApiError::TaskFailed { state, .. } if state.is_transient_failure() => {
                tracing::warn!(key = %self.source.key, task_id, state = state.code(), "task failed on the service's side");
                self.release(claim, error.to_string()).await
            }
            ApiError::TaskFailed { state, .. } => {
                let state = *state;
                self.fail_state(
                    claim,
                    error.to_string(),
                    task_id,
                    state.code(),
                    state.meaning(),
                )
                .await
            }
            // The service does not know the task: it surely did not run; a new one may be created.
            ApiError::NotFound { .. } => self.release(claim, error.to_string()).await,
            ApiError::Timeout { .. } => {
                let waited = claim
                    .record
                    .submitted_at
                    .map(|at| now_unix() - at)
                    .unwrap_or(0.0);
                if waited > spec::MAX_POLL_DURATION.as_secs_f64() {
                    let reason = format!(
                        "the task did not finish within {} s of its creation",
                        spec::MAX_POLL_DURATION.as_secs()
                    );
                    self.fail_claimed(claim, "task", reason, None, None, false)
                        .await
                } else {
                    Outcome::Retry(format!("{error} (the next delivery resumes it)"))
                }
            }
            _ if error.is_transient() => Outcome::Retry(error.to_string()),
            _ => {
                let status = error.http_status();
                self.fail_claimed(claim, "task", error.to_string(), status, None, false)
                    .await
            }
        }
    }

    async fn store_outputs(
        &self,
        claim: &mut Claim,
        task: &TaskInfo,
        parameters: &Parameters,
        images: Vec<backdrop_core::GeneratedImage>,
    ) -> Result<Outcome, LambdaError> {
        let config = &self.deps.config;
        let bucket = config.output_bucket_for(&self.source.bucket).to_owned();
        let folder = format!("{}{}", config.output_prefix, strip_png(&self.relative));
        let mut outputs = Vec::new();
        for image in images {
            let key = format!("{folder}/{}.{}", image.index, image.format.extension());
            self.deps
                .store
                .put(
                    &bucket,
                    &key,
                    image.bytes,
                    image.format.mime_type(),
                    WriteCondition::Always,
                )
                .await?;
            outputs.push(key);
        }
        let finished_at = now_unix();
        let credits = task.credits_charged();
        let manifest = Manifest {
            source: self.source.clone(),
            task_id: task.task_id.clone(),
            parameters: parameters.clone(),
            state: task.state.code(),
            credits_charged: credits,
            attempts: claim.record.attempts,
            timings: Timings {
                submitted_at: claim.record.submitted_at,
                finished_at,
                seconds: claim.record.submitted_at.map(|at| finished_at - at),
                service_time_elapsed_ms: task.time_elapsed,
                service_created_at: task.created_at.clone(),
                service_completed_at: task.completed_at.clone(),
            },
            outputs: outputs.clone(),
        };
        let body = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| LambdaError::Config(format!("manifest JSON: {e}")))?;
        let manifest_key = format!("{folder}/manifest.json");
        self.deps
            .store
            .put(
                &bucket,
                &manifest_key,
                Bytes::from(body),
                "application/json",
                WriteCondition::Always,
            )
            .await?;
        claim.record.status = ClaimStatus::Succeeded;
        claim.record.note = None;
        self.update_claim(claim).await?;
        tracing::info!(
            key = %self.source.key,
            task_id = %task.task_id,
            state = task.state.code(),
            seconds = manifest.timings.seconds,
            credits,
            outputs = outputs.len(),
            "object done"
        );
        Ok(Outcome::Done {
            task_id: task.task_id.clone(),
            outputs,
            credits,
        })
    }

    /// Gives the claim back for a later delivery (no task is running for it).
    async fn release(&self, claim: &mut Claim, reason: String) -> Outcome {
        claim.record.status = ClaimStatus::RetryPending;
        claim.record.task_id = None;
        claim.record.note = Some(reason.clone());
        if let Err(e) = self.update_claim(claim).await {
            tracing::warn!(key = %self.source.key, error = %e, "cannot release the claim");
        }
        Outcome::Retry(reason)
    }

    async fn fail_state(
        &self,
        claim: &mut Claim,
        reason: String,
        task_id: &str,
        state: i32,
        meaning: &'static str,
    ) -> Outcome {
        let record = FailureRecord {
            source: self.source.clone(),
            stage: "task",
            state: Some(state),
            state_meaning: Some(meaning),
            http_status: None,
            message: reason,
            task_id: Some(task_id.to_owned()),
            credits_spent: false,
            attempts: claim.record.attempts,
            failed_at: now_unix(),
        };
        self.write_failure(Some(claim), record).await
    }

    async fn fail_claimed(
        &self,
        claim: &mut Claim,
        stage: &'static str,
        reason: String,
        http_status: Option<u16>,
        task: Option<&TaskInfo>,
        credits_spent: bool,
    ) -> Outcome {
        let record = FailureRecord {
            source: self.source.clone(),
            stage,
            state: task.map(|t| t.state.code()),
            state_meaning: task.map(|t| t.state.meaning()),
            http_status,
            credits_spent: credits_spent
                || task.is_some_and(|t| t.class() == StateClass::Succeeded),
            message: reason,
            task_id: task
                .map(|t| t.task_id.clone())
                .or_else(|| claim.record.task_id.clone()),
            attempts: claim.record.attempts,
            failed_at: now_unix(),
        };
        self.write_failure(Some(claim), record).await
    }

    /// A failure before any claim (validation, parameters): no task, nothing spent.
    async fn fail(
        &self,
        stage: &'static str,
        reason: String,
        http_status: Option<u16>,
        attempts: u32,
    ) -> Outcome {
        let record = FailureRecord {
            source: self.source.clone(),
            stage,
            state: None,
            state_meaning: None,
            http_status,
            message: reason,
            task_id: None,
            credits_spent: false,
            attempts,
            failed_at: now_unix(),
        };
        self.write_failure(None, record).await
    }

    async fn write_failure(&self, claim: Option<&mut Claim>, record: FailureRecord) -> Outcome {
        let config = &self.deps.config;
        let bucket = config.output_bucket_for(&self.source.bucket).to_owned();
        let key = format!("{}{}.json", config.failed_prefix, self.relative);
        let body = match serde_json::to_vec_pretty(&record) {
            Ok(body) => body,
            Err(e) => return Outcome::Retry(format!("failure record JSON: {e}")),
        };
        if let Err(e) = self
            .deps
            .store
            .put(
                &bucket,
                &key,
                Bytes::from(body),
                "application/json",
                WriteCondition::Always,
            )
            .await
        {
            return Outcome::Retry(e.to_string());
        }
        if let Some(claim) = claim {
            claim.record.status = ClaimStatus::Failed;
            claim.record.note = Some(record.message.clone());
            if let Err(e) = self.update_claim(claim).await {
                tracing::warn!(key = %self.source.key, error = %e, "cannot mark the claim failed");
            }
        }
        tracing::info!(
            key = %self.source.key,
            stage = record.stage,
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
}

fn strip_png(relative: &str) -> &str {
    let cut = relative.len().saturating_sub(4);
    match relative.get(cut..) {
        Some(ext) if ext.eq_ignore_ascii_case(".png") => &relative[..cut],
        _ => relative,
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

    #[test]
    fn png_suffix_is_stripped_once() {
        assert_eq!(strip_png("sub/mug.png"), "sub/mug");
        assert_eq!(strip_png("MUG.PNG"), "MUG");
        assert_eq!(strip_png("x"), "x");
    }
}
