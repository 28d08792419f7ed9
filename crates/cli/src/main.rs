//! `backdrop`: generate AI backgrounds for transparent product PNGs from the terminal.

mod advice;
mod args;
mod budget;
mod dry_run;
mod error;
mod generate;
mod inputs;
mod journal;
mod manual;
mod output;
mod progress;
mod report;
mod service;
mod status;
mod summary;
mod validate;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::error::{CliError, EXIT_OK};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match run(cli.command).await {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("backdrop: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

async fn run(command: Command) -> Result<u8, CliError> {
    match command {
        Command::Generate(args) if args.dry_run => dry_run::run(&args).await,
        Command::Generate(args) => {
            let json = args.json;
            let summary = generate::run(args).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&summary).unwrap_or_default()
                );
            } else {
                print!("{}", summary.to_table());
            }
            Ok(summary.exit_code())
        }
        Command::Validate(args) => validate::run(&args),
        Command::Report(args) => {
            let (_, line) = report::rebuild(&args.dir)?;
            println!("{line}");
            Ok(EXIT_OK)
        }
        Command::Status(args) => status::run(&args).await.map(|()| EXIT_OK),
        Command::Completions(args) => manual::completions(args.shell).map(|()| EXIT_OK),
        Command::Man(args) => manual::man(args.dir.as_deref()).map(|()| EXIT_OK),
        #[cfg(feature = "emulator")]
        Command::Emulator(args) => backdrop_emulator::cli::serve(args)
            .await
            .map(|()| EXIT_OK)
            .map_err(CliError::EmulatorServe),
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_on_stderr())
        .with_writer(std::io::stderr)
        .init();
}

/// Colour (ANSI escapes) in log lines only on a terminal, and never with `NO_COLOR` set
/// (no-color.org): a log file or a CI log gets plain text.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
        && std::io::stderr().is_terminal()
}
