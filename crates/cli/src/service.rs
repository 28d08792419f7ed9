//! Reaching the service: the real one, any server that follows the spec, or the built-in emulator.

use std::time::Duration;

use backdrop_core::{Client, ClientConfig, DEFAULT_EXPECTED_PROCESSING, RateLimit, RetryPolicy};
use backdrop_emulator::{Emulator, EmulatorConfig, ProcessingTime};

use crate::args::ServiceArgs;
use crate::error::CliError;

/// A client, and the in-process emulator it talks to when no service was configured.
pub struct Service {
    /// The client every request goes through.
    pub client: Client,
    /// The emulator, kept alive for the client's lifetime.
    pub emulator: Option<Emulator>,
    /// Which service the tasks live at, as the journal records it: the base URL without
    /// credentials, or [`BUILT_IN`] with this process's id for the in-process emulator (whose
    /// tasks end with the run, so a later run never takes them for its own).
    pub identity: String,
}

/// The [`Service::identity`] of the built-in emulator.
pub const BUILT_IN: &str = "built-in emulator";

impl Service {
    /// Connects as configured; with neither a key nor a base URL, starts the emulator.
    pub async fn connect(args: &ServiceArgs) -> Result<Service, CliError> {
        let (key, base_url, emulator) = match (&args.api_key, &args.base_url) {
            (None, None) => {
                let emulator = Emulator::start(EmulatorConfig {
                    processing: ProcessingTime::Uniform {
                        min: Duration::from_secs(2),
                        max: Duration::from_secs(5),
                    },
                    ..EmulatorConfig::default()
                })
                .await
                .map_err(CliError::Emulator)?;
                eprintln!(
                    "backdrop: PICWISH_API_KEY and PICWISH_BASE_URL are not set: using the built-in \
                     emulator at {} (no network, no credits, stand-in images)",
                    emulator.base_url()
                );
                (
                    emulator.api_key().to_owned(),
                    emulator.base_url(),
                    Some(emulator),
                )
            }
            (None, Some(base)) => {
                return Err(CliError::Api(backdrop_core::Error::Config(format!(
                    "PICWISH_BASE_URL is {base} but PICWISH_API_KEY is not set; set the key the \
                     server expects (the emulator's default is \"emulator-key\")"
                ))));
            }
            (Some(key), base) => (
                key.clone(),
                base.clone()
                    .unwrap_or_else(|| backdrop_core::spec::DEFAULT_BASE_URL.to_owned()),
                None,
            ),
        };
        let scale = args.time_scale;
        let default_retry = RetryPolicy::default();
        let limit = RateLimit::per_second(args.qps).scaled(scale);
        let mut builder = ClientConfig::builder(key.clone());
        if let Some(shared) = &args.shared_budget {
            builder = crate::budget::attach(builder, shared, &key, limit).await?;
        }
        let config = builder
            .base_url(base_url)
            .rate_limit(limit)
            .retry(RetryPolicy {
                initial_backoff: default_retry.initial_backoff.div_f64(scale),
                max_backoff: default_retry.max_backoff.div_f64(scale),
                ..default_retry
            })
            .expected_processing(
                DEFAULT_EXPECTED_PROCESSING.0.div_f64(scale),
                DEFAULT_EXPECTED_PROCESSING.1.div_f64(scale),
            )
            .request_timeout(Duration::from_secs_f64(args.request_timeout))
            .build()?;
        let identity = if emulator.is_some() {
            // Its tasks end with this run: no later run can resume them.
            format!("{BUILT_IN} of process {}", std::process::id())
        } else {
            // Credentials in the URL never reach the journal.
            config.service_identity()
        };
        Ok(Service {
            client: Client::new(config)?,
            emulator,
            identity,
        })
    }

    /// Stops the emulator, if one was started.
    pub async fn shutdown(self) {
        if let Some(emulator) = self.emulator {
            emulator.shutdown().await;
        }
    }
}
