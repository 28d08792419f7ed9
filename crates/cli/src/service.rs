//! Reaching the service: the real one, any server that follows the spec, or the built-in emulator
//! (in builds with the default `emulator` feature).

use std::time::Duration;

use backdrop_core::{Client, ClientConfig, RateLimit};
#[cfg(feature = "emulator")]
use backdrop_emulator::{Emulator, EmulatorConfig, ProcessingTime};

use crate::args::ServiceArgs;
use crate::error::CliError;

/// A build without the `emulator` feature has no built-in emulator: no value of this type exists.
#[cfg(not(feature = "emulator"))]
#[derive(Debug)]
pub enum Emulator {}

#[cfg(not(feature = "emulator"))]
impl Emulator {
    async fn shutdown(self) {
        match self {}
    }
}

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
    /// Checks the configuration before anything is started or written: a base URL needs a key,
    /// and so does every run of a build without the built-in emulator.
    pub fn check(args: &ServiceArgs) -> Result<(), CliError> {
        match (&args.api_key, &args.base_url) {
            (None, Some(base)) => Err(CliError::Api(backdrop_core::Error::Config(format!(
                "PICWISH_BASE_URL is {base} but PICWISH_API_KEY is not set; set the key the \
                 server expects (the emulator's default is \"emulator-key\")"
            )))),
            (None, None) if !cfg!(feature = "emulator") => Err(emulator_left_out()),
            _ => Ok(()),
        }
    }

    /// Connects as configured; with neither a key nor a base URL, starts the emulator.
    pub async fn connect(args: &ServiceArgs) -> Result<Service, CliError> {
        Service::check(args)?;
        let (key, base_url, emulator) = match (&args.api_key, &args.base_url) {
            (Some(key), base) => (
                key.clone(),
                base.clone()
                    .unwrap_or_else(|| backdrop_core::spec::DEFAULT_BASE_URL.to_owned()),
                None,
            ),
            (None, _) => start_built_in().await?,
        };
        let limit = RateLimit::per_second(args.qps);
        let mut builder = ClientConfig::builder(key.clone());
        if let Some(shared) = &args.shared_budget {
            builder = crate::budget::attach(builder, shared, &key, limit).await?;
        }
        let config = builder
            .base_url(base_url)
            .rate_limit(limit)
            .time_scale(args.time_scale)
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

/// Starts the built-in emulator: its key, its base URL, and the emulator to keep alive.
#[cfg(feature = "emulator")]
async fn start_built_in() -> Result<(String, String, Option<Emulator>), CliError> {
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
    Ok((
        emulator.api_key().to_owned(),
        emulator.base_url(),
        Some(emulator),
    ))
}

/// A build without the `emulator` feature has nothing to start ([`Service::check`] says so
/// before anything else happens).
#[cfg(not(feature = "emulator"))]
async fn start_built_in() -> Result<(String, String, Option<Emulator>), CliError> {
    Err(emulator_left_out())
}

/// The error of a run with no key in a build without the built-in emulator.
fn emulator_left_out() -> CliError {
    CliError::Api(backdrop_core::Error::Config(
        "PICWISH_API_KEY is not set, and the built-in emulator was left out of this build of \
         backdrop (built without the default `emulator` feature), so there is nothing to run \
         against: set PICWISH_API_KEY (or --api-key) to your PicWish API key, from \
         https://picwish.com/my-account?subRoute=api-key (and PICWISH_BASE_URL only for \
         another server that follows the API)"
            .into(),
    ))
}
