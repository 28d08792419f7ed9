//! # backdrop-budget-dynamodb
//!
//! One PicWish key's request budget shared by every process that uses it — Lambda instances,
//! a CLI run beside them — through one DynamoDB item: a [`BudgetStore`] for
//! [`backdrop_core::budget::SharedRateBudget`], which holds the algorithm (read its
//! documentation). This crate only maps the store's three atomic steps to conditional
//! `UpdateItem` calls:
//!
//! | step | `UpdateItem` | condition |
//! | --- | --- | --- |
//! | advance | `SET next_at = next_at + :interval` | `next_at >= :now` |
//! | restart | `SET next_at = :next` | `attribute_not_exists(next_at) OR next_at < :now` |
//! | pause | `SET paused_until = :until`, then `SET next_at = :until` | each only where lower |
//!
//! The same table keeps a credit cap shared by every process ([`DynamoDbCreditStore`]: one item
//! per UTC day, `credits-<day>`).
//!
//! At saturation a reservation costs one call (advance), for one request or a batch of them;
//! after an idle spell two (advance, then restart). A failed condition is an answer, not an
//! error. The table needs a string partition key `pk` and nothing else (on-demand capacity
//! suits it); the function's role needs `dynamodb:UpdateItem` on that table alone.
//!
//! ```no_run
//! # async fn run(dynamodb: aws_sdk_dynamodb::Client) -> backdrop_core::Result<()> {
//! use std::sync::Arc;
//! use backdrop_budget_dynamodb::DynamoDbBudgetStore;
//! use backdrop_core::{ClientConfig, RateLimit};
//!
//! let key = "YOUR_API_KEY";
//! let store = DynamoDbBudgetStore::new(dynamodb, "backdrop-budget", key);
//! let config = ClientConfig::builder(key)
//!     .rate_limit(RateLimit::per_second(2)) // the whole key's
//!     .shared_budget(Arc::new(store), RateLimit::per_second(1)) // the fallback share
//!     .build()?;
//! # Ok(()) }
//! ```

mod credits;

pub use credits::DynamoDbCreditStore;

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use backdrop_core::budget::{BoxFuture, BudgetError, BudgetState, BudgetStore};
use sha2::{Digest, Sha256};

/// The partition key attribute of the table.
pub const PARTITION_KEY: &str = "pk";

/// Creates a budget table named `table`: on demand, with the string partition key
/// [`PARTITION_KEY`] (what the SAM template's `BudgetTable` declares). For setups without the
/// template, and for tests.
pub async fn create_table(client: &Client, table: &str) -> Result<(), BudgetError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let invalid = |e: aws_sdk_dynamodb::error::BuildError| BudgetError::new(e.to_string());
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(PARTITION_KEY)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(invalid)?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(PARTITION_KEY)
                .key_type(KeyType::Hash)
                .build()
                .map_err(invalid)?,
        )
        .send()
        .await
        .map_err(|e| {
            BudgetError::new(format!(
                "cannot create the budget table {table}: {}",
                e.message().unwrap_or("no message")
            ))
        })?;
    Ok(())
}

/// A [`BudgetStore`] on one item of a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbBudgetStore {
    client: Client,
    table: String,
    item: String,
}

impl DynamoDbBudgetStore {
    /// The budget of the key `api_key` in `table`. The item is named after a SHA-256 of the key
    /// (never the key itself), so every process using the same key shares the same item, and
    /// other keys in the same table get items of their own.
    pub fn new(client: Client, table: impl Into<String>, api_key: &str) -> Self {
        let digest = Sha256::digest(format!("backdrop-budget\0{api_key}").as_bytes());
        let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        DynamoDbBudgetStore::for_item(client, table, format!("key-{hex}"))
    }

    /// The budget in the item `item` of `table` (processes naming the same item share it).
    pub fn for_item(client: Client, table: impl Into<String>, item: impl Into<String>) -> Self {
        DynamoDbBudgetStore {
            client,
            table: table.into(),
            item: item.into(),
        }
    }

    /// The item's partition key.
    pub fn item(&self) -> &str {
        &self.item
    }

    fn update(
        &self,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(self.item.clone()))
    }

    /// Sends a conditional update; `None` when its condition did not hold.
    async fn conditional(
        &self,
        request: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> Result<Option<BudgetState>, BudgetError> {
        match request.return_values(ReturnValue::AllNew).send().await {
            Ok(output) => Ok(Some(state_of(output.attributes()))),
            Err(SdkError::ServiceError(service))
                if service.err().code() == Some("ConditionalCheckFailedException") =>
            {
                Ok(None)
            }
            Err(error) => Err(self.error(&error)),
        }
    }

    fn error<E: ProvideErrorMetadata + std::fmt::Debug>(&self, error: &SdkError<E>) -> BudgetError {
        let detail = describe(error);
        BudgetError::new(format!(
            "DynamoDB UpdateItem on table {} failed ({detail}); check that the table exists with \
             a string partition key `{PARTITION_KEY}` and that this role may call \
             dynamodb:UpdateItem on it",
            self.table
        ))
    }
}

/// What DynamoDB said: its error code and message, or the start of what failed.
pub(crate) fn describe<E: ProvideErrorMetadata + std::fmt::Debug>(error: &SdkError<E>) -> String {
    match error {
        SdkError::ServiceError(service) => format!(
            "{}: {}",
            service.err().code().unwrap_or("error"),
            service.err().message().unwrap_or("")
        ),
        other => format!("{other:?}").chars().take(300).collect(),
    }
}

fn number(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn state_of(attributes: Option<&std::collections::HashMap<String, AttributeValue>>) -> BudgetState {
    let read = |name: &str| {
        attributes
            .and_then(|a| a.get(name))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    BudgetState {
        next_at_ms: read("next_at"),
        paused_until_ms: read("paused_until"),
    }
}

impl BudgetStore for DynamoDbBudgetStore {
    fn advance(
        &self,
        interval_ms: u64,
        not_before_ms: u64,
    ) -> BoxFuture<'_, Result<Option<BudgetState>, BudgetError>> {
        Box::pin(async move {
            let request = self
                .update()
                .update_expression("SET next_at = next_at + :interval")
                .condition_expression("next_at >= :now")
                .expression_attribute_values(":interval", number(interval_ms))
                .expression_attribute_values(":now", number(not_before_ms));
            self.conditional(request).await
        })
    }

    fn restart(
        &self,
        now_ms: u64,
        interval_ms: u64,
    ) -> BoxFuture<'_, Result<Option<BudgetState>, BudgetError>> {
        Box::pin(async move {
            let request = self
                .update()
                .update_expression("SET next_at = :next")
                .condition_expression("attribute_not_exists(next_at) OR next_at < :now")
                .expression_attribute_values(":next", number(now_ms.saturating_add(interval_ms)))
                .expression_attribute_values(":now", number(now_ms));
            self.conditional(request).await
        })
    }

    fn pause(&self, until_ms: u64) -> BoxFuture<'_, Result<(), BudgetError>> {
        Box::pin(async move {
            for attribute in ["paused_until", "next_at"] {
                let request = self
                    .update()
                    .update_expression(format!("SET {attribute} = :until"))
                    .condition_expression(format!(
                        "attribute_not_exists({attribute}) OR {attribute} < :until"
                    ))
                    .expression_attribute_values(":until", number(until_ms));
                self.conditional(request).await?;
            }
            Ok(())
        })
    }
}
