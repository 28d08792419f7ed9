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

/// The API key, from `--api-key-file` / `PICWISH_API_KEY_FILE` (its first line; `-` is
/// standard input), else `--api-key` / `PICWISH_API_KEY`; `None` when neither is set. A key
/// typed on the command line works, with a warning: `ps` and shell history show it.
pub fn api_key(args: &ServiceArgs) -> Result<Option<String>, CliError> {
    if let Some(path) = &args.api_key_file {
        return read_key_file(path).map(Some);
    }
    if args.api_key.is_some() && key_on_command_line() {
        eprintln!(
            "backdrop: warning: the API key was given with --api-key, where other users see it \
             (ps) and your shell history keeps it; export PICWISH_API_KEY or use \
             --api-key-file PATH instead"
        );
    }
    Ok(args.api_key.clone())
}

/// True when `--api-key` is on this process's command line (not only in the environment).
fn key_on_command_line() -> bool {
    std::env::args_os().any(|argument| {
        let argument = argument.to_string_lossy();
        argument == "--api-key" || argument.starts_with("--api-key=")
    })
}

/// The key in `path` (`-`: standard input): its first line, trimmed. Errors name the file,
/// never a byte of its content.
fn read_key_file(path: &std::path::Path) -> Result<String, CliError> {
    use std::io::Read;
    let shown = if path.as_os_str() == "-" {
        "standard input".to_owned()
    } else {
        path.display().to_string()
    };
    let unusable = |reason: String| {
        CliError::Api(backdrop_core::Error::Config(format!(
            "cannot read the API key from {shown} (--api-key-file / PICWISH_API_KEY_FILE):              {reason}"
        )))
    };
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(64 * 1024)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|file| file.take(64 * 1024).read_to_string(&mut text))
    };
    read.map_err(|e| unusable(format!("{e}; give a readable file holding the key")))?;
    let key = text.lines().next().unwrap_or_default().trim().to_owned();
    if key.is_empty() {
        return Err(unusable(
            "its first line is empty; put the key from \
             https://picwish.com/my-account?subRoute=api-key on it"
                .into(),
        ));
    }
    Ok(key)
}

impl Service {
    /// Checks the configuration before anything is started or written: a base URL needs a key,
    /// and so does every run of a build without the built-in emulator. Returns the key.
    pub fn check(args: &ServiceArgs) -> Result<Option<String>, CliError> {
        let key = api_key(args)?;
        match (&key, &args.base_url) {
            (None, Some(base)) => Err(CliError::Api(backdrop_core::Error::Config(format!(
                "PICWISH_BASE_URL is {base} but PICWISH_API_KEY is not set; set the key the \
                 server expects (the emulator's default is \"emulator-key\")"
            )))),
            (None, None) if !cfg!(feature = "emulator") => Err(emulator_left_out()),
            _ => Ok(key),
        }
    }

    /// Connects as configured with `key` (from [`Service::check`]); with neither a key nor a
    /// base URL, starts the emulator.
    pub async fn connect(
        args: &ServiceArgs,
        key: Option<String>,
        credit_cap: Option<backdrop_core::credits::CreditCap>,
    ) -> Result<Service, CliError> {
        let (key, base_url, emulator) = match (&key, &args.base_url) {
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
        if let Some(cap) = credit_cap {
            builder = builder.credit_cap(cap);
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

    /// The identity a run with `key` would record, and whether it would be a stand-in (the
    /// built-in emulator), found without starting or reaching anything (a dry run).
    pub fn planned_identity(
        args: &ServiceArgs,
        key: Option<&str>,
    ) -> Result<(String, bool), CliError> {
        match key {
            Some(key) => {
                let config = ClientConfig::builder(key)
                    .base_url(
                        args.base_url
                            .clone()
                            .unwrap_or_else(|| backdrop_core::spec::DEFAULT_BASE_URL.to_owned()),
                    )
                    .build()?;
                Ok((config.service_identity(), false))
            }
            None => Ok((
                format!("{BUILT_IN} of process {}", std::process::id()),
                true,
            )),
        }
    }

    /// True when the service is the built-in emulator: its images are stand-ins.
    pub fn is_stand_in(&self) -> bool {
        self.emulator.is_some()
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
