//! `backdrop-emulator`: serve the emulator until Ctrl-C or SIGTERM.
//!
//! Prints `backdrop-emulator listening on http://ADDR` on stdout once it accepts connections, so
//! that scripts can wait for that line.

use std::process::ExitCode;

use backdrop_emulator::cli::{EmulatorArgs, ServeError, serve};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .init();
    match serve(EmulatorArgs::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ ServeError::Config(_)) => {
            eprintln!("backdrop-emulator: {error}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("backdrop-emulator: {error}");
            ExitCode::FAILURE
        }
    }
}
