//! What the function asks of SQS itself: to deliver a message again only after a backoff,
//! instead of after the queue's visibility timeout (36 minutes with the template's settings).

use std::future::Future;
use std::time::Duration;

use crate::error::LambdaError;

/// The SQS calls of the function.
pub trait MessageQueue: Send + Sync {
    /// Delays the next delivery of the message received with `receipt_handle` from the queue
    /// `queue_arn` by `delay` (its visibility timeout from now).
    fn delay(
        &self,
        queue_arn: &str,
        receipt_handle: &str,
        delay: Duration,
    ) -> impl Future<Output = Result<(), LambdaError>> + Send;
}

/// No queue to talk to (direct S3 or EventBridge events, tests without SQS): a delay is refused,
/// so the message comes back after the queue's own visibility timeout.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoQueue;

impl MessageQueue for NoQueue {
    async fn delay(&self, queue_arn: &str, _: &str, _: Duration) -> Result<(), LambdaError> {
        Err(LambdaError::Sqs {
            operation: "ChangeMessageVisibility",
            queue: queue_arn.to_owned(),
            message: "this function has no SQS client".into(),
        })
    }
}

/// The parts of an SQS queue's ARN (`arn:aws:sqs:region:account:name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueArn<'a> {
    /// The account that owns the queue.
    pub account: &'a str,
    /// The queue's name.
    pub name: &'a str,
}

impl<'a> QueueArn<'a> {
    /// Reads an SQS queue ARN, or `None`.
    pub fn parse(arn: &'a str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        let (prefix, _partition, service) = (parts.next()?, parts.next()?, parts.next()?);
        let (_region, account, name) = (parts.next()?, parts.next()?, parts.next()?);
        (prefix == "arn" && service == "sqs" && !name.is_empty())
            .then_some(QueueArn { account, name })
    }
}

/// [`MessageQueue`] over the AWS SDK's SQS client; queue URLs are looked up once per queue
/// (`GetQueueUrl`, so the client's endpoint — real SQS or a local server — decides the URL).
#[cfg(feature = "aws")]
#[derive(Debug)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    urls: tokio::sync::Mutex<std::collections::HashMap<String, String>>,
}

#[cfg(feature = "aws")]
impl SqsQueue {
    /// Wraps an SDK client.
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        SqsQueue {
            client,
            urls: tokio::sync::Mutex::default(),
        }
    }

    async fn url(&self, queue_arn: &str) -> Result<String, LambdaError> {
        let mut urls = self.urls.lock().await;
        if let Some(url) = urls.get(queue_arn) {
            return Ok(url.clone());
        }
        let error = |message: String| LambdaError::Sqs {
            operation: "GetQueueUrl",
            queue: queue_arn.to_owned(),
            message,
        };
        let arn = QueueArn::parse(queue_arn)
            .ok_or_else(|| error("the event source is not an SQS queue ARN".into()))?;
        let mut request = self.client.get_queue_url().queue_name(arn.name);
        if !arn.account.is_empty() {
            request = request.queue_owner_aws_account_id(arn.account);
        }
        let answer = request
            .send()
            .await
            .map_err(|e| error(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        let url = answer
            .queue_url()
            .ok_or_else(|| error("no queue URL in the answer".into()))?
            .to_owned();
        urls.insert(queue_arn.to_owned(), url.clone());
        Ok(url)
    }
}

#[cfg(feature = "aws")]
impl MessageQueue for SqsQueue {
    async fn delay(
        &self,
        queue_arn: &str,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), LambdaError> {
        let url = self.url(queue_arn).await?;
        // SQS allows 0 to 43200 s.
        let seconds = i32::try_from(delay.as_secs().min(43_200)).unwrap_or(43_200);
        self.client
            .change_message_visibility()
            .queue_url(&url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|e| LambdaError::Sqs {
                operation: "ChangeMessageVisibility",
                queue: url,
                message: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_arns_are_read() {
        assert_eq!(
            QueueArn::parse("arn:aws:sqs:eu-west-1:123456789012:backdrop-UploadQueue-X1"),
            Some(QueueArn {
                account: "123456789012",
                name: "backdrop-UploadQueue-X1"
            })
        );
        assert_eq!(QueueArn::parse("arn:aws:sns:eu-west-1:1:topic"), None);
        assert_eq!(QueueArn::parse("not an arn"), None);
    }
}
