//! Reaching the service: the real one, any server that follows the spec, or the built-in emulator.

use std::time::Duration;

use backdrop_core::{Client, ClientConfig};
use backdrop_emulator::{Emulator, EmulatorConfig, ProcessingTime};

use crate::args::ServiceArgs;
use crate::error::CliError;

/// A client, and the in-process emulator it talks to when no service was configured.
pub struct Service {
    /// The client every request goes through.
    pub client: Client,
    /// The emulator, kept alive for the client's lifetime.
    pub emulator: Option<Emulator>,
}

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
        let config = ClientConfig::builder(key)
            .base_url(base_url)
            .qps(args.qps)
            .build()?;
        Ok(Service {
            client: Client::new(config)?,
            emulator,
        })
    }

    /// Stops the emulator, if one was started.
    pub async fn shutdown(self) {
        if let Some(emulator) = self.emulator {
            emulator.shutdown().await;
        }
    }
}
