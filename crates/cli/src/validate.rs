//! `backdrop validate`: the service's input rules, checked locally; nothing is sent.

use std::path::PathBuf;

use backdrop_core::validate::{self, InspectFileError};
use serde::Serialize;

use crate::args::ValidateArgs;
use crate::error::{CliError, EXIT_INVALID_INPUT, EXIT_OK};
use crate::inputs::{self, InputSource};

/// The verdict on one file.
#[derive(Debug, Serialize)]
pub struct Verdict {
    /// The file.
    pub file: PathBuf,
    /// True when the service would accept it.
    pub valid: bool,
    /// What its header says, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<backdrop_core::PngInfo>,
    /// The rule it breaks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs `backdrop validate`; returns the exit code.
pub fn run(args: &ValidateArgs) -> Result<u8, CliError> {
    if let Some(prompt) = &args.prompt {
        validate::check_prompt(prompt)?;
    }
    let arguments: Vec<String> = args.files.iter().map(|f| f.display().to_string()).collect();
    let mut verdicts = Vec::new();
    for input in inputs::expand(&arguments)? {
        let InputSource::File(file) = input.source else {
            continue;
        };
        let verdict = match validate::inspect_png_file(&file) {
            Ok(info) => Verdict {
                file,
                valid: true,
                info: Some(info),
                error: None,
            },
            Err(error) => Verdict {
                error: Some(match error {
                    InspectFileError::Invalid(rule) => rule.to_string(),
                    InspectFileError::Io(io) => format!("cannot read the file: {io}"),
                }),
                file,
                valid: false,
                info: None,
            },
        };
        verdicts.push(verdict);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&verdicts).unwrap_or_default()
        );
    } else {
        for verdict in &verdicts {
            match (&verdict.info, &verdict.error) {
                (Some(info), _) => println!("ok   {}: {info}", verdict.file.display()),
                (_, Some(error)) => println!("FAIL {}: {error}", verdict.file.display()),
                _ => {}
            }
        }
    }
    Ok(if verdicts.iter().all(|v| v.valid) {
        EXIT_OK
    } else {
        EXIT_INVALID_INPUT
    })
}
