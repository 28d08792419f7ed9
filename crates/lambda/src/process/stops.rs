//! How the work on an object stops short of its outputs — a failure record, another delivery,
//! or nothing to do — and what each failure means for the uploader: the decisions taken from
//! core's [`Recovery`] of a failure, in the Lambda's words.

use backdrop_core::ledger::{Entry, Failure, Refusal};
use backdrop_core::remedy::{Actions, Fix, remedy};
use backdrop_core::{Recovery, TaskState};

use super::ObjectRun;
use crate::error::LambdaError;
use crate::outputs::store_failure;
use crate::process::Outcome;
use crate::queue::MessageQueue;
use crate::records::{FailureRecord, FailureStage};
use crate::store::ObjectStore;

/// Why the work on an object stopped before its outputs.
#[derive(Debug)]
pub(super) enum Stop {
    /// Write this failure record.
    Fail(Box<FailureRecord>),
    /// Deliver the event again later; the ledger entry as it stands, when one was read.
    Retry {
        reason: String,
        entry: Option<Box<Entry>>,
    },
    /// Nothing to do.
    Skip(String),
}

impl Stop {
    pub(super) fn retry(reason: impl Into<String>, entry: Option<&Entry>) -> Self {
        Stop::Retry {
            reason: reason.into(),
            entry: entry.map(|e| Box::new(e.clone())),
        }
    }

    pub(super) fn fail(record: FailureRecord) -> Self {
        Stop::Fail(Box::new(record))
    }
}

impl<S: ObjectStore, Q: MessageQueue> ObjectRun<'_, S, Q> {
    /// What follows from a recorded failure: a new delivery when trying again is safe (a new
    /// task, or the same task resumed), a failure record otherwise.
    pub(super) fn stop_for(&self, failure: &Failure, stage: FailureStage, entry: &Entry) -> Stop {
        match failure.recovery {
            Recovery::Retry => Stop::retry(failure.message.clone(), Some(entry)),
            Recovery::Resume => Stop::retry(
                format!("{} (the next delivery resumes the task)", failure.message),
                Some(entry),
            ),
            Recovery::Unconfirmed | Recovery::ResultsLost | Recovery::Permanent => {
                let mut failure = failure.clone();
                advise(&mut failure, stage);
                Stop::fail(FailureRecord::from_ledger(
                    &self.source,
                    stage,
                    &failure,
                    entry.tasks_created,
                ))
            }
        }
    }

    /// The failure record of an input the ledger will not work on again.
    pub(super) fn refusal_record(&self, entry: &Entry, refusal: Refusal) -> FailureRecord {
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
    pub(super) fn refused(&self, stage: FailureStage, message: String) -> Stop {
        Stop::fail(FailureRecord::refused(&self.source, stage, message))
    }

    /// S3 trouble: a failure record when the function's role is refused (retrying cannot help
    /// until the role changes; an ERROR log names what is missing), else a retry.
    pub(super) fn trouble(&self, error: LambdaError) -> Stop {
        if !error.access_denied() {
            return Stop::retry(error.to_string(), None);
        }
        let message = format!(
            "{error}; S3 refused the function's role, so delivering the event again cannot help. \
             The role needs s3:GetObject on the input prefix (and kms:Decrypt on the bucket's \
             key for SSE-KMS), s3:ListBucket on the bucket (so that a deleted object answers \
             404, not 403), and s3:GetObject and s3:PutObject on the state prefix, s3:PutObject \
             on the output and failed prefixes. Fix the role, then upload the object again"
        );
        tracing::error!(key = %self.source.key, error = %error, "S3 refused the function's role: a configuration problem");
        Stop::fail(FailureRecord::refused(
            &self.source,
            FailureStage::Configuration,
            message,
        ))
    }

    /// Trouble with the claim objects: S3's refusals as [`trouble`](Self::trouble), the rest
    /// (a lost race, a store that failed) a retry.
    pub(super) fn ledger_trouble(
        &self,
        error: backdrop_core::ledger::LedgerError,
        entry: Option<&Entry>,
    ) -> Stop {
        let s3 =
            std::error::Error::source(&error).and_then(|cause| cause.downcast_ref::<LambdaError>());
        match s3 {
            Some(s3) if s3.access_denied() => {
                let s3 = LambdaError::S3 {
                    operation: "claim",
                    bucket: self.destination.bucket.clone(),
                    key: self.deps.config.state_prefix.clone(),
                    status: Some(403),
                    code: None,
                    message: error.to_string(),
                };
                self.trouble(s3)
            }
            _ => Stop::retry(error.to_string(), entry),
        }
    }

    /// The outcome of a stop: the failure record written, or the retry or skip reported. On
    /// the last delivery a retry becomes a failure record saying what is left (a task that may
    /// still finish, credits that may be spent).
    pub(super) async fn stopped(&self, stop: Stop) -> Outcome {
        let stop = match stop {
            Stop::Retry { reason, entry } if self.delivery.last => {
                Stop::fail(self.exhausted_record(reason, entry.as_deref()))
            }
            other => other,
        };
        match stop {
            Stop::Retry { reason, .. } => {
                tracing::info!(key = %self.source.key, reason = %reason, "object to be delivered again");
                Outcome::Retry(reason)
            }
            Stop::Skip(reason) => Outcome::Skipped(reason),
            Stop::Fail(record) => {
                match store_failure(&self.deps.store, &self.destination, &record).await {
                    Ok(key) => {
                        self.delivery.metrics.failed(record.stage.as_str());
                        tracing::info!(
                            key = %self.source.key,
                            stage = record.stage.as_str(),
                            state = record.state,
                            task_id = record.task_id.as_deref(),
                            credits_spent = record.credits_spent,
                            reason = %record.message,
                            "object failed"
                        );
                        Outcome::Failed {
                            record: key,
                            stage: record.stage,
                            reason: record.message,
                        }
                    }
                    Err(e) if e.access_denied() || self.delivery.last => {
                        // Nothing more can be done from here: say so where operators look.
                        tracing::error!(key = %self.source.key, error = %e, reason = %record.message, "cannot write the failure record");
                        self.delivery.metrics.failed(record.stage.as_str());
                        Outcome::Failed {
                            record: String::new(),
                            stage: record.stage,
                            reason: format!(
                                "{}; the failure record could not be written: {e}",
                                record.message
                            ),
                        }
                    }
                    Err(e) => Outcome::Retry(e.to_string()),
                }
            }
        }
    }

    /// The failure record of transient trouble on the last delivery.
    pub(super) fn exhausted_record(&self, reason: String, entry: Option<&Entry>) -> FailureRecord {
        let task = entry.and_then(|e| e.task_id.clone());
        let running = entry.is_some_and(|e| e.stage == backdrop_core::ledger::Stage::Created);
        let mut message = format!(
            "gave up after {} deliveries of the event: {reason}",
            self.deps.config.max_receive_count
        );
        let recovery = if running {
            message.push_str(&format!(
                "; task {} may still finish (and then be charged): upload the object again with \
                 the same metadata within the hour to fetch its results",
                task.as_deref().unwrap_or("?")
            ));
            Recovery::Resume
        } else {
            message.push_str("; nothing was charged: upload the object again to try again");
            Recovery::Retry
        };
        let mut failure = Failure::new(message, recovery);
        failure.task_id = task;
        failure.credits_spent = running;
        FailureRecord::from_ledger(
            &self.source,
            FailureStage::Retries,
            &failure,
            entry.map_or(0, |e| e.tasks_created),
        )
    }
}

/// The Lambda's words for what an uploader can do ([`backdrop_core::remedy`] holds the
/// meaning).
pub(crate) const ACTIONS: Actions<'static> = Actions {
    try_again: "the function tries again on the next delivery of the event",
    resume: "the next delivery of the event resumes it",
    retry_unconfirmed: "set x-amz-meta-retry-unconfirmed: true on the object after this record \
                        (copy it onto itself, or upload it again)",
    regenerate_expired: "set x-amz-meta-regenerate-expired: true on the object after this record \
                         (copy it onto itself, or upload it again)",
    change_prompt: "upload the object again with another x-amz-meta-prompt",
    change_image: "upload a corrected image (a transparent PNG with only the product)",
    check_key: "check the API key in the function's secret (PICWISH_API_KEY_SECRET_ID)",
    change_input: "upload the object again with corrected x-amz-meta-* metadata (or change the \
                   function's DEFAULT_* settings)",
};

/// What the uploader can do about a failure of `stage`, in the Lambda's words.
pub(crate) fn remedy_of(
    recovery: Recovery,
    stage: FailureStage,
    task_state: Option<i32>,
    http_status: Option<u16>,
    charged: bool,
    task_id: Option<&str>,
) -> String {
    let fix = match stage {
        FailureStage::Validation => Fix::ImageRule,
        FailureStage::Parameters => Fix::OptionsRule,
        _ => Fix::of(task_state.map(TaskState::from_code), http_status),
    };
    remedy(recovery, fix, charged, task_id, &ACTIONS)
}

/// Appends what the uploader can do to a failure that needs the uploader (one that the next
/// delivery does not take care of).
fn advise(failure: &mut Failure, stage: FailureStage) {
    if matches!(failure.recovery, Recovery::Retry | Recovery::Resume) {
        return;
    }
    let advice = remedy_of(
        failure.recovery,
        stage,
        failure.task_state,
        failure.http_status,
        failure.credits_spent,
        failure.task_id.as_deref(),
    );
    if !failure.message.ends_with(&advice) {
        failure.message = format!("{}; {advice}", failure.message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remedies_are_in_the_lambdas_words() {
        let say = |recovery, stage, state| remedy_of(recovery, stage, state, None, false, None);
        assert!(
            say(Recovery::Unconfirmed, FailureStage::Create, None).contains("retry-unconfirmed")
        );
        assert!(
            say(Recovery::ResultsLost, FailureStage::Download, None).contains("regenerate-expired")
        );
        assert!(
            say(Recovery::Permanent, FailureStage::Task, Some(-17)).contains("x-amz-meta-prompt")
        );
        let refused = say(Recovery::Permanent, FailureStage::Validation, None);
        assert!(refused.contains("transparent PNG") && refused.ends_with("nothing was sent"));
    }
}
