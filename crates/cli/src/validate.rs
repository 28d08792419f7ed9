//! `backdrop validate`: the service's input rules, checked locally; nothing is sent.
//!
//! By default the whole file is checked — header rules, structure, image data and pixels — and
//! the share of transparent pixels is shown; `--header-only` is the fast path.

use std::path::PathBuf;

use backdrop_core::validate::{self, InspectFileError, PixelCounts, PixelRules, PngReport};
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
    pub info: Option<backdrop_core::validate::PngInfo>,
    /// The pixels by transparency (not with `--header-only`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixels: Option<PixelCounts>,
    /// The share of fully transparent pixels, 0 to 1 (not with `--header-only`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transparent_share: Option<f64>,
    /// Adam7 interlaced (not with `--header-only`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interlaced: Option<bool>,
    /// What may deserve a look, though it refuses nothing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The rule it breaks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Verdict {
    fn accepted(
        file: PathBuf,
        info: backdrop_core::validate::PngInfo,
        report: Option<&PngReport>,
    ) -> Self {
        Verdict {
            file,
            valid: true,
            info: Some(info),
            pixels: report.map(|r| r.pixels),
            transparent_share: report.map(|r| r.transparent_share),
            interlaced: report.map(|r| r.interlaced),
            warnings: report
                .map(|r| r.warnings.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            error: None,
        }
    }

    fn refused(file: PathBuf, error: InspectFileError) -> Self {
        Verdict {
            error: Some(match error {
                InspectFileError::Invalid(rule) => rule.to_string(),
                InspectFileError::Io(io) => format!("cannot read the file: {io}"),
            }),
            file,
            valid: false,
            info: None,
            pixels: None,
            transparent_share: None,
            interlaced: None,
            warnings: Vec::new(),
        }
    }

    fn line(&self) -> String {
        let file = self.file.display();
        match (&self.info, &self.error) {
            (_, Some(error)) => format!("FAIL {file}: {error}"),
            (Some(info), None) => {
                let mut line = format!("ok   {file}: {info}");
                if let (Some(share), Some(pixels)) = (self.transparent_share, &self.pixels) {
                    line.push_str(&format!(
                        "{}; {:.1} % of the pixels transparent ({} of {}), {} partly",
                        if self.interlaced == Some(true) {
                            ", interlaced"
                        } else {
                            ""
                        },
                        share * 100.0,
                        pixels.transparent,
                        pixels.total,
                        pixels.partial
                    ));
                }
                for warning in &self.warnings {
                    line.push_str(&format!("\n     warning: {warning}"));
                }
                line
            }
            (None, None) => format!("?    {file}"),
        }
    }
}

/// Runs `backdrop validate`; returns the exit code.
pub fn run(args: &ValidateArgs) -> Result<u8, CliError> {
    if let Some(prompt) = &args.prompt {
        validate::check_prompt(prompt)?;
    }
    let rules = PixelRules {
        allow_opaque: args.allow_opaque,
        ..PixelRules::default()
    };
    let arguments: Vec<String> = args.files.iter().map(|f| f.display().to_string()).collect();
    let mut verdicts = Vec::new();
    for input in inputs::expand(&arguments)? {
        let InputSource::File(file) = input.source else {
            continue;
        };
        let verdict = if args.header_only {
            match validate::inspect_png_file(&file) {
                Ok(info) => Verdict::accepted(file, info, None),
                Err(error) => Verdict::refused(file, error),
            }
        } else {
            match validate::check_png_file(&file, rules) {
                Ok(report) => Verdict::accepted(file, report.info, Some(&report)),
                Err(error) => Verdict::refused(file, error),
            }
        };
        if !args.json {
            println!("{}", verdict.line());
        }
        verdicts.push(verdict);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&verdicts).unwrap_or_default()
        );
    }
    Ok(if verdicts.iter().all(|v| v.valid) {
        EXIT_OK
    } else {
        EXIT_INVALID_INPUT
    })
}
