//! The function's handler: one event in, every object processed concurrently, failures reported
//! so that only transient ones are delivered again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use futures_util::future::join_all;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::error::LambdaError;
use crate::event::{self, Invocation, SqsBody, SqsItem};
use crate::process::{Deps, Outcome, process_object};
use crate::store::ObjectStore;

/// Handles one invocation.
///
/// For SQS events the answer is a partial batch response listing the messages to deliver again
/// (transient failures only). For direct S3 and EventBridge events, an error asks Lambda to retry
/// the invocation when any object needs it; finished objects are skipped on that retry.
pub async fn handle<S: ObjectStore>(
    deps: &Deps<S>,
    event: LambdaEvent<Value>,
) -> Result<Value, LambdaError> {
    let deadline = deadline_of(&event.context);
    match event::parse(&event.payload)? {
        Invocation::Sqs(items) => {
            let results = join_all(
                items
                    .iter()
                    .map(|item| handle_message(deps, item, deadline)),
            )
            .await;
            let mut response = SqsBatchResponse::default();
            for (item, retry) in items.iter().zip(results) {
                if retry {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = item.message_id.clone();
                    response.batch_item_failures.push(failure);
                }
            }
            serde_json::to_value(&response)
                .map_err(|e| LambdaError::Event(format!("batch response: {e}")))
        }
        Invocation::Direct(objects) => {
            let outcomes = join_all(
                objects
                    .iter()
                    .map(|object| process_object(deps, object, deadline)),
            )
            .await;
            let retries: Vec<&Outcome> = outcomes.iter().filter(|o| o.needs_retry()).collect();
            if !retries.is_empty() {
                return Err(LambdaError::Event(format!(
                    "{} of {} objects must be retried: {:?}",
                    retries.len(),
                    outcomes.len(),
                    retries
                )));
            }
            Ok(json!({ "objects": outcomes.iter().map(describe).collect::<Vec<_>>() }))
        }
    }
}

/// Processes one SQS message; true when it must be delivered again.
async fn handle_message<S: ObjectStore>(deps: &Deps<S>, item: &SqsItem, deadline: Instant) -> bool {
    let span = tracing::info_span!("message", message_id = %item.message_id);
    let _entered = span.enter();
    match &item.body {
        SqsBody::TestEvent => {
            tracing::info!("s3:TestEvent acknowledged");
            false
        }
        SqsBody::Unreadable(reason) => {
            // Delivering it again cannot make it readable: acknowledge and say so.
            tracing::warn!(reason = %reason, "message ignored");
            false
        }
        SqsBody::Objects(objects) => {
            let outcomes = join_all(
                objects
                    .iter()
                    .map(|object| process_object(deps, object, deadline)),
            )
            .await;
            for (object, outcome) in objects.iter().zip(&outcomes) {
                tracing::info!(bucket = %object.bucket, key = %object.key, outcome = %describe(outcome), "record handled");
            }
            outcomes.iter().any(Outcome::needs_retry)
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
        Outcome::Failed { record, reason } => {
            json!({"status": "failed", "record": record, "reason": reason})
        }
        Outcome::Skipped(reason) => json!({"status": "skipped", "reason": reason}),
        Outcome::Retry(reason) => json!({"status": "retry", "reason": reason}),
    }
}

/// The invocation's deadline as an [`Instant`] (15 minutes from now when the context has none).
pub fn deadline_of(context: &Context) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let left = if context.deadline > 0 {
        Duration::from_millis(context.deadline.saturating_sub(now_ms))
    } else {
        Duration::from_secs(15 * 60)
    };
    Instant::now() + left
}
