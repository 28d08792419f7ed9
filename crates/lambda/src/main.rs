//! The Lambda entry point: read the configuration, build the clients once, run the handler.

use std::sync::Arc;

use backdrop_budget_dynamodb::{DynamoDbBudgetStore, DynamoDbCreditStore};
use backdrop_core::credits::CreditCap;
use backdrop_core::{Client, ClientConfig};
use backdrop_lambda::metrics::MetricsSink;
use backdrop_lambda::{Config, Deps, S3Store, SqsQueue, handle, logging, secrets};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON lines on stdout (CloudWatch), at the function's log level.
    let subscriber = logging::subscriber(
        logging::filter(|name| std::env::var(name).ok()),
        std::io::stdout,
    );
    tracing::subscriber::set_global_default(subscriber)?;
    let config = Config::from_env()?;
    if let Some(warning) = &config.fleet_warning {
        tracing::warn!(fleet = %warning, "the fleet is smaller than the key");
    }
    let aws = aws_config::load_from_env().await;
    let force_path_style =
        std::env::var("S3_FORCE_PATH_STYLE").is_ok_and(|v| v == "true" || v == "1");
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws)
            .force_path_style(force_path_style)
            .build(),
    );
    let api_key = secrets::api_key(&aws).await?;
    let mut client = ClientConfig::builder(api_key.clone());
    client = match &config.shared_budget_table {
        // One budget for every instance: each may use the whole key when the others are idle.
        Some(table) => {
            let store =
                DynamoDbBudgetStore::new(aws_sdk_dynamodb::Client::new(&aws), table, &api_key);
            client
                .rate_limit(config.key_rate_limit)
                .shared_budget(Arc::new(store), config.rate_limit)
        }
        None => client.rate_limit(config.rate_limit),
    };
    if let Some(limit) = config.daily_credit_cap {
        // One total per UTC day for every instance, in the budget table; without one each
        // instance holds its own total (the template always makes the table).
        let store: Arc<dyn backdrop_core::credits::CreditStore> = match &config.shared_budget_table
        {
            Some(table) => Arc::new(DynamoDbCreditStore::new(
                aws_sdk_dynamodb::Client::new(&aws),
                table,
                backdrop_report::time::utc_day,
            )),
            None => {
                tracing::warn!(
                    "DAILY_CREDIT_CAP is set without SHARED_BUDGET_TABLE: each instance counts \
                     its own credits, so together they may spend more"
                );
                Arc::new(backdrop_core::credits::MemoryCredits::default())
            }
        };
        client = client.credit_cap(CreditCap { limit, store });
    }
    if let Ok(base_url) = std::env::var(backdrop_core::ENV_BASE_URL) {
        client = client.base_url(base_url);
    }
    let deps = Deps {
        store: S3Store::new(s3),
        queue: SqsQueue::new(aws_sdk_sqs::Client::new(&aws)),
        client: Client::new(client.build()?)?,
        config,
        metrics: MetricsSink::Stdout,
    };
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(deps, event).await.map_err(Error::from)
    }))
    .await
}
