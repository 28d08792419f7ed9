//! The CLI's errors and exit codes.

use std::path::PathBuf;

/// Exit code: every input succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit code: at least one input failed at the service or on the network.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage or configuration (clap uses it for usage errors too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: every failure was refused locally before anything was sent (nothing spent).
pub const EXIT_INVALID_INPUT: u8 = 3;
/// Exit code: the service refused the API key.
pub const EXIT_UNAUTHORIZED: u8 = 4;
/// Exit code: the credit cap (`--max-credits`) left inputs not started, and nothing else failed:
/// raise the cap and run the same command again to finish them (nothing was spent on them).
pub const EXIT_CREDIT_CAP: u8 = 5;
/// Exit code: Ctrl-C left inputs unfinished (run the same command again to finish them).
pub const EXIT_INTERRUPTED: u8 = 130;
/// Exit code: SIGTERM stopped the run (128 + 15, as a shell reports a process the signal ended;
/// the journal was saved first: run the same command again to finish).
pub const EXIT_TERMINATED: u8 = 143;

/// An error that stops the whole command (per-input failures are reported, not raised).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An INPUT argument is unusable.
    #[error("input {input}: {reason}")]
    Input {
        /// The argument.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// The request options break a rule of the service.
    #[error("{0}")]
    Invalid(#[from] backdrop_core::validate::ValidationError),
    /// The service or the client failed for the whole command.
    #[error("{0}")]
    Api(#[from] backdrop_core::Error),
    /// A file could not be written.
    #[error(
        "cannot write {path}: {source}; choose a folder (--out) that can be created and that this user may write to"
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The output folder cannot be created or written to (checked before anything is sent).
    #[error(
        "cannot use the output folder {path}: {source}; choose a folder (--out) that can be created and that this user may write to"
    )]
    OutputFolder {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Standard output could not be written (a closed pipe, a full disk).
    #[error("cannot write to standard output: {0}; check where it is redirected")]
    Stdout(std::io::Error),
    /// The emulator could not start.
    #[cfg(feature = "emulator")]
    #[error("cannot start the emulator: {0}")]
    Emulator(std::io::Error),
    /// The output folder's journal cannot be used (locked by another run, unreadable).
    #[error("{0}")]
    Journal(String),
    /// `backdrop emulator` could not serve.
    #[cfg(feature = "emulator")]
    #[error("emulator: {0}")]
    EmulatorServe(#[from] backdrop_emulator::cli::ServeError),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Input { .. } | CliError::Journal(_) | CliError::OutputFolder { .. } => {
                EXIT_USAGE
            }
            #[cfg(feature = "emulator")]
            CliError::Emulator(_) | CliError::EmulatorServe(_) => EXIT_USAGE,
            CliError::Invalid(_) => EXIT_INVALID_INPUT,
            CliError::Api(error) => exit_code_for(error),
            CliError::Write { .. } | CliError::Stdout(_) => EXIT_FAILED,
        }
    }
}

/// The exit code a single error calls for.
pub fn exit_code_for(error: &backdrop_core::Error) -> u8 {
    match error {
        backdrop_core::Error::Invalid(_) => EXIT_INVALID_INPUT,
        backdrop_core::Error::Config(_) => EXIT_USAGE,
        backdrop_core::Error::Unauthorized { .. } => EXIT_UNAUTHORIZED,
        backdrop_core::Error::CreditCapReached { .. } => EXIT_CREDIT_CAP,
        _ => EXIT_FAILED,
    }
}
