//! A credit cap shared by every process: a [`CreditStore`] on one DynamoDB item per period (a
//! UTC day for the Lambda), whose `spent` attribute is the total of spent and reserved credits
//! (`backdrop_core::credits` holds the accounting rule):
//!
//! | step | `UpdateItem` | condition |
//! | --- | --- | --- |
//! | reserve | `ADD spent :credits` | `attribute_not_exists(spent) OR spent <= :room` (room = cap − credits) |
//! | refund | `ADD spent :minus` | `spent >= :credits` (never below zero) |
//!
//! A refused reservation reads the item (`GetItem`, strongly consistent) to say how much was
//! spent. The role needs `dynamodb:UpdateItem` and `dynamodb:GetItem` on the table.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use backdrop_core::budget::{BoxFuture, BudgetError};
use backdrop_core::credits::{CreditReceipt, CreditStore, Reservation};

use crate::PARTITION_KEY;

/// A [`CreditStore`] on one item of a DynamoDB table per period: `credits-<period>`, the period
/// named by `period_of(now in unix milliseconds)` (e.g. a UTC day, `2026-12-07`).
#[derive(Clone)]
pub struct DynamoDbCreditStore {
    client: Client,
    table: String,
    period_of: fn(u64) -> String,
}

impl std::fmt::Debug for DynamoDbCreditStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoDbCreditStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl DynamoDbCreditStore {
    /// The credits of each period in `table`, periods named by `period_of`.
    pub fn new(client: Client, table: impl Into<String>, period_of: fn(u64) -> String) -> Self {
        DynamoDbCreditStore {
            client,
            table: table.into(),
            period_of,
        }
    }

    /// The period now.
    pub fn period_now(&self) -> String {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        (self.period_of)(now_ms)
    }

    fn item(period: &str) -> AttributeValue {
        AttributeValue::S(format!("credits-{period}"))
    }

    async fn spent_in(&self, period: &str) -> Result<u64, BudgetError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, Self::item(period))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("GetItem", &e))?;
        Ok(spent_of(output.item()))
    }

    fn error<E: ProvideErrorMetadata + std::fmt::Debug>(
        &self,
        call: &str,
        error: &SdkError<E>,
    ) -> BudgetError {
        let detail = crate::describe(error);
        BudgetError::new(format!(
            "DynamoDB {call} of the credit total on table {} failed ({detail}); check that the \
             table exists with a string partition key `{PARTITION_KEY}` and that this role may \
             call dynamodb:UpdateItem and dynamodb:GetItem on it",
            self.table
        ))
    }
}

fn spent_of(item: Option<&std::collections::HashMap<String, AttributeValue>>) -> u64 {
    item.and_then(|i| i.get("spent"))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
        .map_or(0, |n| u64::try_from(n).unwrap_or(0))
}

fn is_condition_failure<E: ProvideErrorMetadata>(error: &SdkError<E>) -> bool {
    matches!(error, SdkError::ServiceError(service)
        if service.err().code() == Some("ConditionalCheckFailedException"))
}

impl CreditStore for DynamoDbCreditStore {
    fn reserve(&self, credits: u32, cap: u64) -> BoxFuture<'_, Result<Reservation, BudgetError>> {
        Box::pin(async move {
            let period = self.period_now();
            let Some(room) = cap.checked_sub(u64::from(credits)) else {
                let total = self.spent_in(&period).await?;
                return Ok(Reservation::Refused { total });
            };
            let answer = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PARTITION_KEY, Self::item(&period))
                .update_expression("ADD spent :credits")
                .condition_expression("attribute_not_exists(spent) OR spent <= :room")
                .expression_attribute_values(":credits", AttributeValue::N(credits.to_string()))
                .expression_attribute_values(":room", AttributeValue::N(room.to_string()))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match answer {
                Ok(output) => Ok(Reservation::Reserved {
                    total: spent_of(output.attributes()),
                    receipt: CreditReceipt { period, credits },
                }),
                Err(error) if is_condition_failure(&error) => {
                    let total = self.spent_in(&period).await?;
                    Ok(Reservation::Refused { total })
                }
                Err(error) => Err(self.error("UpdateItem", &error)),
            }
        })
    }

    fn refund(
        &self,
        receipt: &CreditReceipt,
        credits: u32,
    ) -> BoxFuture<'_, Result<(), BudgetError>> {
        let period = receipt.period.clone();
        Box::pin(async move {
            let answer = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PARTITION_KEY, Self::item(&period))
                .update_expression("ADD spent :minus")
                .condition_expression("spent >= :credits")
                .expression_attribute_values(":minus", AttributeValue::N(format!("-{credits}")))
                .expression_attribute_values(":credits", AttributeValue::N(credits.to_string()))
                .send()
                .await;
            match answer {
                Ok(_) => Ok(()),
                // Less than the refund is left: nothing to take back (never below zero).
                Err(error) if is_condition_failure(&error) => Ok(()),
                Err(error) => Err(self.error("UpdateItem", &error)),
            }
        })
    }

    fn total(&self) -> BoxFuture<'_, Result<u64, BudgetError>> {
        Box::pin(async move { self.spent_in(&self.period_now()).await })
    }
}
