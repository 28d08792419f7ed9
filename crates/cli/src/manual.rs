//! `backdrop completions` and `backdrop man`: the shell completions and manual pages, generated
//! from the same argument definitions as `--help` (so they never drift from the binary).

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use crate::args::Cli;
use crate::error::CliError;

/// The command's name in completions and pages.
const NAME: &str = "backdrop";

/// Writes the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<(), CliError> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, NAME, &mut script);
    write_stdout(&script)
}

/// Writes `backdrop.1` on stdout, or every page (one per subcommand) into `dir`.
pub fn man(dir: Option<&Path>) -> Result<(), CliError> {
    let command = Cli::command().name(NAME);
    match dir {
        Some(dir) => std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(command, dir))
            .map_err(|source| CliError::Write {
                path: dir.to_owned(),
                source,
            }),
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .map_err(CliError::Stdout)?;
            write_stdout(&page)
        }
    }
}

fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(CliError::Stdout)
}
