//! The function's handler: one event in, every object processed concurrently, failures reported
//! so that only transient ones are delivered again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use backdrop_core::ledger::Owner;
use futures_util::future::join_all;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::LambdaError;
use crate::event::ObjectRef;
use crate::event::{self, Invocation, SqsBody, SqsItem};
use crate::metrics::Metrics;
use crate::process::{Delivery, Deps, Lease, Outcome, process_object};
use crate::queue::MessageQueue;
use crate::report::record_outcomes;
use crate::store::ObjectStore;

/// Handles one invocation, then writes its metrics.
///
/// For SQS events the answer is a partial batch response listing the messages to deliver again
/// (transient failures only); each such message is first delayed by a backoff
/// ([`Config::retry_delay`](crate::Config::retry_delay)) so that it comes back in seconds or
/// minutes, well inside the hour its task's results live. On a message's last delivery
/// ([`Config::max_receive_count`](crate::Config)) transient trouble ends in a failure record
/// instead, so nothing reaches the dead-letter queue without one. For direct S3 and
/// EventBridge events, an error asks Lambda to retry the invocation when any object needs it;
/// finished objects are skipped on that retry.
pub async fn handle<S: ObjectStore, Q: MessageQueue>(
    deps: &Deps<S, Q>,
    event: LambdaEvent<Value>,
) -> Result<Value, LambdaError> {
    let lease = lease_of(&event.context);
    let metrics = Metrics::default();
    let rate_limited_before = deps.client.rate_limited_answers();
    tracing::debug!(deadline_ms = event.context.deadline, owner = %lease.owner.id, "invocation");
    let answer = match event::parse(&event.payload) {
        Err(error) => Err(error),
        Ok(Invocation::Sqs(items)) => {
            let results = join_all(
                items
                    .iter()
                    .map(|item| handle_message(deps, item, &lease, &metrics)),
            )
            .await;
            // The day's report, once every object has its outcome.
            let finished: Vec<(&ObjectRef, &Outcome)> = results
                .iter()
                .flat_map(|(_, outcomes)| {
                    outcomes.iter().map(|(object, outcome)| (*object, outcome))
                })
                .collect();
            record_outcomes(deps, &finished, report_deadline(deps, &lease)).await;
            let mut response = SqsBatchResponse::default();
            for (item, (retry, _)) in items.iter().zip(&results) {
                if *retry {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = item.message_id.clone();
                    response.batch_item_failures.push(failure);
                }
            }
            serde_json::to_value(&response)
                .map_err(|e| LambdaError::Event(format!("batch response: {e}")))
        }
        Ok(Invocation::Direct(objects)) => {
            let records: Vec<String> = (0..objects.len()).map(|n| format!("record-{n}")).collect();
            let outcomes = join_all(objects.iter().zip(&records).map(|(object, record)| {
                let delivery = Delivery {
                    lease: &lease,
                    record,
                    last: false,
                    metrics: &metrics,
                };
                process_object(deps, object, delivery)
            }))
            .await;
            let finished: Vec<(&ObjectRef, &Outcome)> = objects.iter().zip(&outcomes).collect();
            record_outcomes(deps, &finished, report_deadline(deps, &lease)).await;
            let retries: Vec<&Outcome> = outcomes.iter().filter(|o| o.needs_retry()).collect();
            for _ in &retries {
                metrics.retried();
            }
            if retries.is_empty() {
                Ok(json!({ "objects": outcomes.iter().map(describe).collect::<Vec<_>>() }))
            } else {
                Err(LambdaError::Retry(format!(
                    "{} of {} objects must be retried: {:?}",
                    retries.len(),
                    outcomes.len(),
                    retries
                )))
            }
        }
    };
    metrics.rate_limited(
        deps.client
            .rate_limited_answers()
            .saturating_sub(rate_limited_before),
    );
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    deps.metrics
        .write(metrics.emf_lines(&deps.config.function_name, now_ms));
    answer
}

/// When the day's report must have ended: the deadline less half its margin (the objects'
/// own calls end a whole margin before it).
fn report_deadline<S, Q>(deps: &Deps<S, Q>, lease: &Lease) -> Instant {
    lease
        .deadline
        .checked_sub(deps.config.deadline_margin / 2)
        .unwrap_or(lease.deadline)
}

/// Processes one SQS message: true when it must be delivered again (after its backoff), and
/// its objects' outcomes. Its log lines carry its message id (one span per message, entered
/// only while its future runs).
async fn handle_message<'i, S: ObjectStore, Q: MessageQueue>(
    deps: &Deps<S, Q>,
    item: &'i SqsItem,
    lease: &Lease,
    metrics: &Metrics,
) -> (bool, Vec<(&'i ObjectRef, Outcome)>) {
    let span = tracing::info_span!("message", message_id = %item.message_id, receive_count = item.receive_count);
    async {
        let outcomes = handle_message_body(deps, item, lease, metrics).await;
        let retry = outcomes.iter().any(|(_, outcome)| outcome.needs_retry());
        if retry {
            metrics.retried();
            delay_next_delivery(deps, item).await;
        }
        (retry, outcomes)
    }
    .instrument(span)
    .await
}

async fn handle_message_body<'i, S: ObjectStore, Q: MessageQueue>(
    deps: &Deps<S, Q>,
    item: &'i SqsItem,
    lease: &Lease,
    metrics: &Metrics,
) -> Vec<(&'i ObjectRef, Outcome)> {
    match &item.body {
        SqsBody::TestEvent => {
            tracing::info!("s3:TestEvent acknowledged");
            Vec::new()
        }
        SqsBody::Unreadable(reason) => {
            // Delivering it again cannot make it readable: acknowledge and say so.
            tracing::warn!(reason = %reason, "message ignored");
            Vec::new()
        }
        SqsBody::Objects(objects) => {
            // One ledger owner per record: two messages for one object in one batch (an
            // uploader that sent the same bytes twice) are two owners, and one of them creates.
            let records: Vec<String> = (0..objects.len())
                .map(|n| format!("{}#{n}", item.message_id))
                .collect();
            let last = deps.config.last_delivery(item.receive_count);
            let outcomes = join_all(objects.iter().zip(&records).map(|(object, record)| {
                let delivery = Delivery {
                    lease,
                    record,
                    last,
                    metrics,
                };
                process_object(deps, object, delivery)
            }))
            .await;
            for (object, outcome) in objects.iter().zip(&outcomes) {
                tracing::info!(bucket = %object.bucket, key = %object.key, outcome = %describe(outcome), "record handled");
            }
            objects.iter().zip(outcomes).collect()
        }
    }
}

/// Asks SQS to deliver the message again only after its backoff; without that (no receipt
/// handle, SQS refused) it comes back after the queue's visibility timeout.
async fn delay_next_delivery<S, Q: MessageQueue>(deps: &Deps<S, Q>, item: &SqsItem) {
    let delay = deps.config.retry_delay(item.receive_count);
    let (Some(queue), Some(handle)) = (&item.queue_arn, &item.receipt_handle) else {
        tracing::warn!(
            "the message has no queue ARN or receipt handle: it comes back after the queue's visibility timeout"
        );
        return;
    };
    match deps.queue.delay(queue, handle, delay).await {
        Ok(()) => tracing::info!(delay_s = delay.as_secs(), "next delivery delayed"),
        Err(error) => {
            tracing::warn!(error = %error, "cannot delay the next delivery: it comes back after the queue's visibility timeout")
        }
    }
}

fn describe(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Done {
            task_id,
            outputs,
            credits,
        } => {
            json!({"status": "done", "task_id": task_id, "outputs": outputs, "credits": credits})
        }
        Outcome::Failed {
            record,
            stage,
            reason,
        } => {
            json!({"status": "failed", "stage": stage.as_str(), "record": record, "reason": reason})
        }
        Outcome::Skipped(reason) => json!({"status": "skipped", "reason": reason}),
        Outcome::Retry(reason) => json!({"status": "retry", "reason": reason}),
    }
}

/// Unix milliseconds of 2001-09-09: no real deadline is earlier.
const EPOCH_MS_FLOOR: u64 = 1_000_000_000_000;

/// The invocation's lease: its deadline, and its ledger owner — the request id, whose work
/// another invocation may take over only after that deadline (the platform stops the invocation
/// then).
pub fn lease_of(context: &Context) -> Lease {
    let deadline = deadline_of(context);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let left_ms = deadline
        .saturating_duration_since(Instant::now())
        .as_millis() as u64;
    let id = if context.request_id.is_empty() {
        // Local runtimes may send none: an id unique to this process and call.
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("invocation-{}-{now_ms}-{call}", std::process::id())
    } else {
        context.request_id.clone()
    };
    Lease {
        deadline,
        owner: Owner::leased(id, now_ms.saturating_add(left_ms)),
    }
}

/// The invocation's deadline as an [`Instant`].
///
/// Lambda sends the deadline in Unix milliseconds. Some local runtimes (`cargo lambda watch`
/// 1.9 sends `600000`) send the time left instead: a value below any real Unix time is read as
/// milliseconds from now. No deadline at all means 15 minutes, Lambda's longest.
pub fn deadline_of(context: &Context) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let left = match context.deadline {
        0 => Duration::from_secs(15 * 60),
        relative if relative < EPOCH_MS_FLOOR => Duration::from_millis(relative),
        absolute => Duration::from_millis(absolute.saturating_sub(now_ms)),
    };
    Instant::now() + left
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(deadline: u64) -> Context {
        let mut context = Context::default();
        context.deadline = deadline;
        context
    }

    #[test]
    fn deadlines_absolute_relative_and_missing() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let left =
            |deadline| deadline_of(&context(deadline)).saturating_duration_since(Instant::now());
        let absolute = left(now_ms + 30_000);
        assert!(
            absolute > Duration::from_secs(28) && absolute <= Duration::from_secs(30),
            "{absolute:?}"
        );
        let relative = left(600_000);
        assert!(relative > Duration::from_secs(598) && relative <= Duration::from_secs(600));
        assert!(left(0) > Duration::from_secs(14 * 60));
        assert_eq!(left(now_ms - 5_000), Duration::ZERO);
    }
}
