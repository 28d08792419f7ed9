//! Command-line options of the `backdrop-emulator` binary, reusable by other command lines
//! (`#[command(flatten)] emulator: EmulatorArgs`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::Emulator;

use crate::config::{
    EmulatorConfig, Faults, LostAnswer, ProcessingTime, ProgressMode, ResultFormat,
};

/// Serve a local emulator of PicWish's Generate Background API.
#[derive(Debug, Clone, Parser)]
#[command(name = "backdrop-emulator", version, about)]
pub struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub bind: SocketAddr,
    /// Accepted API key (repeat for several; default "emulator-key").
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
    /// Requests per second accepted per key (0: unlimited). Default: the service's QPS.
    #[arg(long)]
    pub qps: Option<u32>,
    /// Divide every service duration (queue, processing, QPS window, URL lifetime) by this.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Fixed processing time in milliseconds (instead of the log-normal default).
    #[arg(long, value_name = "MS", conflicts_with_all = ["median_ms", "p95_ms"])]
    pub processing_ms: Option<u64>,
    /// Median of the log-normal processing time, in milliseconds (default 10000).
    #[arg(long, value_name = "MS")]
    pub median_ms: Option<u64>,
    /// 95th percentile of the log-normal processing time, in milliseconds (default 30000).
    #[arg(long, value_name = "MS")]
    pub p95_ms: Option<u64>,
    /// Time in the queue (state 0), in milliseconds.
    #[arg(long, value_name = "MS")]
    pub queue_ms: Option<u64>,
    /// Time preparing (state 2), in milliseconds.
    #[arg(long, value_name = "MS")]
    pub prepare_ms: Option<u64>,
    /// How data.progress moves.
    #[arg(long, value_enum, default_value_t = ProgressArg::Grows)]
    pub progress: ProgressArg,
    /// How results are returned in data.image_1 / data.image_2.
    #[arg(long, value_enum, default_value_t = ResultFormatArg::Url)]
    pub result_format: ResultFormatArg,
    /// Seed for deterministic random choices.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Base of result URLs (default: the Host the client used).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Share of API requests answered 500.
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    pub error_500_rate: f64,
    /// Share of API requests whose connection is closed without an answer.
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    pub drop_rate: f64,
    /// Share of API requests answered after --slow-delay-ms.
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    pub slow_rate: f64,
    /// Delay of slow answers, in milliseconds.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub slow_delay_ms: u64,
    /// Share of accepted creates whose answer is lost (task created, connection then closed).
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    pub lost_answer_rate: f64,
    /// What a lost create answer looks like: the connection closed, a gateway's 504, or a
    /// garbled HTTP 200.
    #[arg(long, value_enum, default_value_t = LostAnswerArg::Closed)]
    pub lost_answer_as: LostAnswerArg,
    /// Negative state that --fail-rate tasks end in.
    #[arg(long, allow_negative_numbers = true, value_name = "STATE", default_value_t = -1)]
    pub fail_state: i32,
    /// Share of tasks that end in --fail-state.
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    pub fail_rate: f64,
    /// Share of tasks that stay in state 4 forever.
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    pub never_finish_rate: f64,
    /// Result URLs answer 403 as if expired.
    #[arg(long)]
    pub expire_results: bool,
}

/// `--progress` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressArg {
    /// Progress rises during processing.
    Grows,
    /// Progress stays 0 until the task ends.
    Withheld,
}

/// `--lost-answer-as` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LostAnswerArg {
    /// The connection is closed.
    Closed,
    /// HTTP 504 from a gateway.
    GatewayTimeout,
    /// HTTP 200 with a cut body.
    Garbled,
}

/// `--result-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResultFormatArg {
    /// Signed result URLs.
    Url,
    /// Raw standard base64.
    Base64,
    /// data:image/jpeg;base64,... URIs.
    DataUri,
}

impl EmulatorArgs {
    /// The configuration these options describe; fails with a message for invalid values.
    pub fn into_config(self) -> Result<EmulatorConfig, String> {
        let defaults = EmulatorConfig::default();
        let ms = Duration::from_millis;
        let processing = match (self.processing_ms, self.median_ms, self.p95_ms) {
            (Some(fixed), _, _) => ProcessingTime::Fixed(ms(fixed)),
            (None, None, None) => defaults.processing,
            (None, median, p95) => {
                let median = median.unwrap_or(10_000);
                ProcessingTime::LogNormal {
                    median: ms(median),
                    p95: ms(p95.unwrap_or(median.saturating_mul(3))),
                }
            }
        };
        let config = EmulatorConfig {
            bind: self.bind,
            api_keys: if self.keys.is_empty() {
                defaults.api_keys
            } else {
                self.keys
            },
            qps: self.qps.unwrap_or(defaults.qps),
            time_scale: self.time_scale,
            processing,
            queue_time: self.queue_ms.map_or(defaults.queue_time, ms),
            prepare_time: self.prepare_ms.map_or(defaults.prepare_time, ms),
            progress: match self.progress {
                ProgressArg::Grows => ProgressMode::GrowsWithTime,
                ProgressArg::Withheld => ProgressMode::Withheld,
            },
            result_format: match self.result_format {
                ResultFormatArg::Url => ResultFormat::Url,
                ResultFormatArg::Base64 => ResultFormat::Base64,
                ResultFormatArg::DataUri => ResultFormat::DataUri,
            },
            faults: Faults {
                error_500_rate: self.error_500_rate,
                drop_rate: self.drop_rate,
                slow_rate: self.slow_rate,
                slow_delay: ms(self.slow_delay_ms),
                lost_answer_rate: self.lost_answer_rate,
                lost_answer_as: match self.lost_answer_as {
                    LostAnswerArg::Closed => LostAnswer::Closed,
                    LostAnswerArg::GatewayTimeout => LostAnswer::GatewayTimeout,
                    LostAnswerArg::Garbled => LostAnswer::Garbled,
                },
                fail_state: Some(self.fail_state),
                fail_rate: self.fail_rate,
                never_finish_rate: self.never_finish_rate,
                expire_results: self.expire_results,
            },
            seed: self.seed,
            public_url: self.public_url,
            ..defaults
        };
        if self.fail_rate > 0.0 && self.fail_state >= 0 {
            return Err(format!(
                "--fail-state must be a negative task state, not {}",
                self.fail_state
            ));
        }
        config.validate()?;
        Ok(config)
    }
}

/// Why [`serve`] stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The options do not make a valid configuration.
    #[error("{0}")]
    Config(String),
    /// The server could not start (e.g. the address is taken).
    #[error("cannot start: {0}")]
    Start(#[from] std::io::Error),
}

/// Serves an emulator configured by `args` until Ctrl-C or SIGTERM.
///
/// Prints `backdrop-emulator listening on http://ADDR` on stdout once it accepts connections, so
/// that scripts can wait for that line.
pub async fn serve(args: EmulatorArgs) -> Result<(), ServeError> {
    use std::io::Write;

    let config = args.into_config().map_err(ServeError::Config)?;
    let emulator = Emulator::start(config).await?;
    let mut stdout = std::io::stdout().lock();
    // Scripts wait for this line; if stdout is gone, keep serving anyway.
    let _ = writeln!(
        stdout,
        "backdrop-emulator listening on {}",
        emulator.base_url()
    );
    let _ = stdout.flush();
    drop(stdout);
    wait_for_stop_signal().await;
    emulator.shutdown().await;
    Ok(())
}

/// Waits for Ctrl-C, or SIGTERM on Unix.
async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<EmulatorConfig, String> {
        let mut all = vec!["backdrop-emulator"];
        all.extend_from_slice(args);
        EmulatorArgs::try_parse_from(all)
            .map_err(|e| e.to_string())?
            .into_config()
    }

    #[test]
    fn defaults() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.bind.port(), 8787);
        assert_eq!(config.api_keys, vec!["emulator-key".to_owned()]);
        assert_eq!(config.qps, backdrop_core::spec::DEFAULT_QPS);
        assert_eq!(config.processing, ProcessingTime::default());
    }

    #[test]
    fn every_flag() {
        let config = parse(&[
            "--bind",
            "0.0.0.0:9000",
            "--key",
            "a",
            "--key",
            "b",
            "--qps",
            "5",
            "--time-scale",
            "10",
            "--processing-ms",
            "250",
            "--progress",
            "withheld",
            "--result-format",
            "data-uri",
            "--fail-state",
            "-15",
            "--fail-rate",
            "0.5",
            "--drop-rate",
            "0.1",
            "--lost-answer-rate",
            "0.25",
            "--expire-results",
        ])
        .unwrap();
        assert_eq!(config.api_keys, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(config.qps, 5);
        assert_eq!(config.time_scale, 10.0);
        assert_eq!(
            config.processing,
            ProcessingTime::Fixed(Duration::from_millis(250))
        );
        assert_eq!(config.progress, ProgressMode::Withheld);
        assert_eq!(config.result_format, ResultFormat::DataUri);
        assert_eq!(config.faults.fail_state, Some(-15));
        assert_eq!(config.faults.lost_answer_rate, 0.25);
        assert!(config.faults.expire_results);
        let config = parse(&["--median-ms", "2000", "--p95-ms", "4000"]).unwrap();
        assert_eq!(
            config.processing,
            ProcessingTime::LogNormal {
                median: Duration::from_secs(2),
                p95: Duration::from_secs(4)
            }
        );
    }

    #[test]
    fn invalid_values() {
        assert!(parse(&["--time-scale", "0"]).is_err());
        assert!(parse(&["--drop-rate", "2"]).is_err());
        assert!(parse(&["--lost-answer-rate", "1.5"]).is_err());
        assert!(parse(&["--fail-rate", "0.5", "--fail-state", "3"]).is_err());
        assert!(parse(&["--processing-ms", "5", "--median-ms", "7"]).is_err());
    }
}
