//! `--shared-budget dynamodb:TABLE`: the key's request budget shared with every other process
//! that uses it, through core's shared budget over a DynamoDB item.

use backdrop_core::{ClientConfigBuilder, RateLimit};

use crate::error::CliError;

/// Adds the shared budget `spec` (`dynamodb:TABLE`) of the key `key` to `builder`. While the
/// table cannot be used, the run keeps to half of `limit` (it shares the key with someone).
pub async fn attach(
    builder: ClientConfigBuilder,
    spec: &str,
    key: &str,
    limit: RateLimit,
) -> Result<ClientConfigBuilder, CliError> {
    let Some(table) = spec
        .strip_prefix("dynamodb:")
        .filter(|t| !t.trim().is_empty())
    else {
        return Err(usage(format!(
            "--shared-budget {spec:?} is not dynamodb:TABLE; give the table the stack created \
             (its BudgetTableName output), e.g. --shared-budget dynamodb:backdrop-BudgetTable-1A2B"
        )));
    };
    connect(builder, table.trim(), key, limit).await
}

#[cfg(feature = "shared-budget")]
async fn connect(
    builder: ClientConfigBuilder,
    table: &str,
    key: &str,
    limit: RateLimit,
) -> Result<ClientConfigBuilder, CliError> {
    use std::sync::Arc;

    use backdrop_budget_dynamodb::DynamoDbBudgetStore;

    let aws = aws_config::load_from_env().await;
    let store = DynamoDbBudgetStore::new(aws_sdk_dynamodb::Client::new(&aws), table, key);
    Ok(builder.shared_budget(Arc::new(store), limit.share_of(2)))
}

#[cfg(not(feature = "shared-budget"))]
async fn connect(
    _builder: ClientConfigBuilder,
    _table: &str,
    _key: &str,
    _limit: RateLimit,
) -> Result<ClientConfigBuilder, CliError> {
    Err(usage(
        "this backdrop was built without the shared-budget feature: build it with \
         `--features shared-budget` to use --shared-budget"
            .into(),
    ))
}

fn usage(message: String) -> CliError {
    CliError::Api(backdrop_core::Error::Config(message))
}
