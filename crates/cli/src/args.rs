//! Command-line arguments.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

/// Generate AI backgrounds for transparent product PNGs with PicWish's Generate Background API.
///
/// With neither PICWISH_API_KEY nor PICWISH_BASE_URL set, `generate` runs against a local
/// emulator started in-process: no key, no network, no credits, stand-in images (in builds with
/// the default `emulator` feature; other builds need a key).
#[derive(Debug, Parser)]
#[command(name = "backdrop", version, about, long_about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,

    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate backgrounds for PNG files, folders of PNGs, or image URLs.
    Generate(GenerateArgs),
    /// Check PNG files against the service's rules without sending anything.
    Validate(ValidateArgs),
    /// Show the state of a task (and download its results with --out).
    Status(StatusArgs),
    /// Serve the local emulator of the API.
    #[cfg(feature = "emulator")]
    Emulator(backdrop_emulator::cli::EmulatorArgs),
    /// Rebuild an output folder's contact sheet (index.html) from its journal.
    Report(ReportArgs),
    /// Print a completion script for a shell on stdout (e.g. `backdrop completions bash >
    /// ~/.local/share/bash-completion/completions/backdrop`).
    Completions(CompletionsArgs),
    /// Write the manual pages (roff): `backdrop.1` on stdout, or one page per subcommand into
    /// --dir (`backdrop.1`, `backdrop-generate.1`, …).
    Man(ManArgs),
}

/// `backdrop completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `backdrop man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write every page into this folder instead of `backdrop.1` on stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Where the service is and how to reach it.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// PicWish API key. On the command line it shows in `ps` and in shell history: prefer
    /// PICWISH_API_KEY or --api-key-file.
    #[arg(long, env = "PICWISH_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Read the PicWish API key from this file (its first line; `-` reads standard input).
    /// It wins over PICWISH_API_KEY and --api-key.
    #[arg(long, env = "PICWISH_API_KEY_FILE", value_name = "PATH")]
    pub api_key_file: Option<PathBuf>,

    /// Base URL of the API (default https://techhk.aoscdn.com).
    #[arg(long, env = "PICWISH_BASE_URL")]
    pub base_url: Option<String>,

    /// The key's requests-per-second limit; every request of this run shares it.
    #[arg(
        long,
        env = "PICWISH_QPS",
        default_value_t = backdrop_core::spec::DEFAULT_QPS,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub qps: u32,

    /// Give up on one API request (upload included) after this many seconds. A create that
    /// times out may still have been accepted: it is never sent again on its own.
    #[arg(long, value_name = "SECONDS", default_value_t = 120.0, value_parser = positive_number)]
    pub request_timeout: f64,

    /// Share the key's budget with every other process using it — the S3 Lambda, other runs —
    /// through a DynamoDB table (`dynamodb:TABLE`, the stack's BudgetTableName output; AWS
    /// credentials and region from the usual AWS environment): together they stay within the
    /// key's QPS, and this run may use all of it when the others are idle.
    #[arg(long, env = "BACKDROP_SHARED_BUDGET", value_name = "dynamodb:TABLE")]
    pub shared_budget: Option<String>,

    /// For a sped-up emulator (`backdrop emulator --time-scale X`) only: divide the rate-limit
    /// window, the retry backoff and the expected processing times by this.
    #[arg(long, hide = true, default_value_t = 1.0, value_parser = time_scale)]
    pub time_scale: f64,
}

/// A factor [`backdrop_core::time_scale::TimeScale`] accepts.
fn time_scale(value: &str) -> Result<f64, String> {
    let factor: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a number"))?;
    backdrop_core::time_scale::TimeScale::new(factor)
        .map(|scale| scale.factor())
        .map_err(|e| e.to_string())
}

/// A finite number above 0.
fn positive_number(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(number) if number.is_finite() && number > 0.0 && number <= 86_400.0 => Ok(number),
        _ => Err(format!(
            "{value:?} is not a number above 0 (and at most 86400)"
        )),
    }
}

/// `backdrop generate`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("background").required(true).args(["prompt", "scene"])))]
pub struct GenerateArgs {
    /// PNG files, folders (searched for *.png) or http(s) image URLs.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,

    /// Describe the background (at most 1024 characters).
    #[arg(long, short)]
    pub prompt: Option<String>,

    /// Use a background template id instead of a prompt.
    #[arg(long, short, value_name = "ID", allow_negative_numbers = true)]
    pub scene: Option<i64>,

    /// What the background should not contain.
    #[arg(long, short)]
    pub negative: Option<String>,

    /// Images per input: 1 (3 credits) or 2 (6 credits).
    #[arg(long, short, default_value_t = 2, allow_negative_numbers = true)]
    pub batch: i64,

    /// Folder the generated images go to, with the journal (`.backdrop-journal.jsonl`) that lets
    /// the same command, run again, skip finished inputs and resume running tasks.
    #[arg(long, short, default_value = "backdrop-out")]
    pub out: PathBuf,

    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// Do not write the contact sheet: `index.html` in the output folder, one row per input with
    /// its source, generated images, task, seconds, credits and any failure, rewritten as
    /// results land.
    #[arg(long)]
    pub no_report: bool,

    /// Inputs in progress at once (all share the key's rate limit). By default as many as the
    /// key keeps busy: its tasks in flight by Little's law (60 at QPS 2 for typical tasks, 300 at
    /// QPS 10, more once slower tasks are seen), so a raised `--qps` is used whole; fewer leave
    /// the key partly idle (8 jobs: about 40 % of a QPS-2 key).
    #[arg(long, short, value_parser = clap::value_parser!(u32).range(1..=backdrop_core::MAX_IN_FLIGHT as i64))]
    pub jobs: Option<u32>,

    /// How to plan polls: adaptive (from progress and observed times) or documented (every 1 s).
    #[arg(long, value_enum, default_value_t = PollArg::Adaptive)]
    pub poll: PollArg,

    /// Give up waiting for a task after this many seconds (at most 300, the spec's limit).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout: u64,

    /// Create again the inputs whose earlier create may have been accepted without its answer
    /// arriving (the journal marks them "unconfirmed"): each may be charged twice.
    #[arg(long)]
    pub retry_unconfirmed: bool,

    /// Generate again the inputs whose task finished but whose results expired (result URLs
    /// live 1 hour) before they were downloaded: each is charged again.
    #[arg(long)]
    pub regenerate_expired: bool,

    /// Send images in which no pixel is transparent (the background was not removed) or none
    /// is visible: the pixel rules become warnings. The file's structure is checked all the same.
    #[arg(long)]
    pub allow_opaque: bool,

    /// Spend at most this many credits in the output folder, this run and earlier ones
    /// together: a create is sent only when the credits its journal counts (charged, and the
    /// most that creates in flight or unconfirmed can cost) plus this one's most stay within
    /// it. Inputs left are reported "not started" (exit code 5); a rerun with a higher cap
    /// picks them up.
    #[arg(long, env = "PICWISH_MAX_CREDITS", value_name = "CREDITS")]
    pub max_credits: Option<u64>,

    /// Check every input and read the journal, then print what would be sent, resumed,
    /// skipped or refused, and the most the run would cost; nothing is sent.
    #[arg(long)]
    pub dry_run: bool,

    /// How to reach the service.
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// The poll policies, as flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PollArg {
    /// Planned from progress and the processing times seen so far.
    Adaptive,
    /// The spec's flow: every task every second.
    Documented,
}

impl From<PollArg> for backdrop_core::PollPolicy {
    fn from(arg: PollArg) -> Self {
        match arg {
            PollArg::Adaptive => backdrop_core::PollPolicy::Adaptive,
            PollArg::Documented => backdrop_core::PollPolicy::Documented,
        }
    }
}

/// `backdrop validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// PNG files or folders.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Also check this prompt.
    #[arg(long, short)]
    pub prompt: Option<String>,

    /// Print the results as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// Check the header only (signature, size, dimensions, a transparency channel): fast, but
    /// blind to damaged image data and to images with nothing transparent.
    #[arg(long)]
    pub header_only: bool,

    /// Accept images in which no pixel is transparent or none is visible (a warning instead).
    #[arg(long, conflicts_with = "header_only")]
    pub allow_opaque: bool,
}

/// `backdrop report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The output folder of a `generate` run (its `--out`).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// `backdrop status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The task id `generate` printed.
    pub task_id: String,

    /// Download the task's results into this folder.
    #[arg(long, short)]
    pub out: Option<PathBuf>,

    /// Print the task as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// How to reach the service.
    #[command(flatten)]
    pub service: ServiceArgs,
}
