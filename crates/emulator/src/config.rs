//! How an [`Emulator`](crate::Emulator) behaves: keys, rate limit, timing, result format and
//! injected faults.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use backdrop_core::spec;
use backdrop_core::time_scale::TimeScale;
use serde::{Deserialize, Serialize};

/// Default largest request body, in bytes: twice the documented file limit, so that uploads up to
/// and somewhat over [`spec::MAX_IMAGE_FILE_BYTES`] arrive and can be answered 413 with a JSON body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * spec::MAX_IMAGE_FILE_BYTES as usize;

/// The longest any scaled duration gets (about ten years): "never" for practical purposes.
const MAX_SCALED: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The API key accepted when no key is configured.
pub const DEFAULT_API_KEY: &str = "emulator-key";

/// Everything an [`Emulator`](crate::Emulator) can be told. Build it with struct update syntax
/// over [`EmulatorConfig::default`].
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to listen on. Default `127.0.0.1:0` (a free port on loopback).
    pub bind: SocketAddr,
    /// API keys accepted in the `X-API-KEY` header. Default: the single key `"emulator-key"`.
    /// An empty list is replaced by the default key.
    pub api_keys: Vec<String>,
    /// Requests per second accepted for each key (sliding window of 1 s / `time_scale`);
    /// 0 disables the limit. Default [`spec::DEFAULT_QPS`].
    pub qps: u32,
    /// Speed-up factor: every duration of the service — queue, preparing and processing time, the
    /// 1 s QPS window and the 1 h result URL lifetime — is divided by it. Must be finite and
    /// positive. Default 1.0. Wall-clock timestamps and `time_elapsed` stay real time; injected
    /// delays ([`Faults::slow_delay`]) and the `image_url` fetch timeout are not scaled.
    pub time_scale: f64,
    /// How long a task spends processing (state 4).
    pub processing: ProcessingTime,
    /// How long a task waits in the queue (state 0). Default 500 ms.
    pub queue_time: Duration,
    /// How long a task spends preparing (state 2) between the queue and processing. Default 300 ms.
    pub prepare_time: Duration,
    /// How `data.progress` moves while a task runs.
    pub progress: ProgressMode,
    /// How `data.image_1` / `data.image_2` carry the results.
    pub result_format: ResultFormat,
    /// Injected faults; can be changed at run time with
    /// [`Emulator::set_faults`](crate::Emulator::set_faults).
    pub faults: Faults,
    /// Seed of the emulator's random choices (task ids, processing times, faults); `None` draws
    /// one from the operating system.
    pub seed: Option<u64>,
    /// Largest accepted request body in bytes; a larger body is answered 413.
    /// Default [`DEFAULT_MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// Timeout of the whole download of an `image_url` (state -3 when it runs out). Default 30 s.
    pub fetch_timeout: Duration,
    /// Base of the result URLs (`{public_url}/results/...`), without trailing slash. `None` uses
    /// the `Host` header of the query request, or the bound address.
    pub public_url: Option<String>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            api_keys: vec![DEFAULT_API_KEY.to_owned()],
            qps: spec::DEFAULT_QPS,
            time_scale: 1.0,
            processing: ProcessingTime::default(),
            queue_time: Duration::from_millis(500),
            prepare_time: Duration::from_millis(300),
            progress: ProgressMode::default(),
            result_format: ResultFormat::default(),
            faults: Faults::default(),
            seed: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            fetch_timeout: Duration::from_secs(30),
            public_url: None,
        }
    }
}

impl EmulatorConfig {
    /// Checks the values that would make the emulator misbehave.
    pub fn validate(&self) -> Result<(), String> {
        TimeScale::new(self.time_scale).map_err(|e| e.to_string())?;
        self.processing.validate()?;
        self.faults.validate()?;
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "public_url {url:?} must start with http:// or https://"
            ));
        }
        Ok(())
    }

    /// `duration` divided by the time scale, at most [`MAX_SCALED`] (so that adding a few of them
    /// to an instant can never overflow).
    pub(crate) fn scaled(&self, duration: Duration) -> Duration {
        TimeScale::new(self.time_scale)
            .unwrap_or(TimeScale::REAL)
            .to_real(duration)
            .min(MAX_SCALED)
    }
}

/// How long a task spends processing (state 4).
///
/// Every value is capped at [`spec::MAX_PROCESSING_TIME`]; sampled values are also at least 1 s
/// for [`ProcessingTime::LogNormal`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ProcessingTime {
    /// Always this long (not raised to 1 s: short fixed times make quick tests).
    Fixed(Duration),
    /// Log-normally distributed, like real service latencies, clamped to 1 s ..= 180 s.
    LogNormal {
        /// Half of the tasks take less than this.
        median: Duration,
        /// 95 % of the tasks take less than this (a value at or below `median` gives a fixed time).
        p95: Duration,
    },
    /// Uniformly distributed between `min` and `max`.
    Uniform {
        /// Shortest time.
        min: Duration,
        /// Longest time.
        max: Duration,
    },
}

impl Default for ProcessingTime {
    /// Log-normal with a median of 10 s and a 95th percentile of 30 s.
    fn default() -> Self {
        ProcessingTime::LogNormal {
            median: Duration::from_secs(10),
            p95: Duration::from_secs(30),
        }
    }
}

impl ProcessingTime {
    fn validate(&self) -> Result<(), String> {
        match self {
            ProcessingTime::Fixed(_) => Ok(()),
            ProcessingTime::LogNormal { median, .. } if median.is_zero() => {
                Err("the median processing time must be above 0".to_owned())
            }
            ProcessingTime::LogNormal { .. } => Ok(()),
            ProcessingTime::Uniform { min, max } if min > max => Err(format!(
                "the shortest processing time {min:?} is above the longest {max:?}"
            )),
            ProcessingTime::Uniform { .. } => Ok(()),
        }
    }
}

/// How `data.progress` moves while a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressMode {
    /// 0 while queued and preparing, rising roughly linearly to 99 during processing, 100 when
    /// the task succeeded.
    #[default]
    GrowsWithTime,
    /// 0 until the task ends (100 on success), like services that do not report progress.
    Withheld,
}

/// How results are returned in `data.image_1` / `data.image_2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultFormat {
    /// Signed URLs served by the emulator, valid for [`spec::RESULT_URL_TTL`] / time scale
    /// (`data.return_type` 1).
    #[default]
    Url,
    /// The JPEG bytes as raw standard base64 (`data.return_type` 2).
    Base64,
    /// The JPEG bytes as a `data:image/jpeg;base64,...` URI (`data.return_type` 2).
    DataUri,
}

impl ResultFormat {
    /// The `data.return_type` reported with this format: 1 for URLs, 2 for inline base64.
    pub const fn return_type(self) -> u8 {
        match self {
            ResultFormat::Url => 1,
            ResultFormat::Base64 | ResultFormat::DataUri => 2,
        }
    }
}

/// Injected faults. Every rate is a probability in `0.0..=1.0`, drawn independently for each API
/// request (or task); the default injects nothing.
///
/// Request faults (`drop_rate`, `error_500_rate`, `slow_rate`) apply to the two API endpoints only,
/// before anything else (key check, rate limit), in that order; admin routes and result downloads
/// are never affected by them. [`lost_answer_rate`](Self::lost_answer_rate) applies after
/// everything else, to creates that were accepted.
///
/// Besides these, a prompt containing `emulator:fail=<state>` (e.g. `emulator:fail=-17`) makes
/// that task end in `<state>` (a negative code) instead of succeeding.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Share of API requests answered 500 with a JSON body.
    pub error_500_rate: f64,
    /// Share of API requests whose connection is closed without any answer, once the whole
    /// request was read (nothing is created).
    pub drop_rate: f64,
    /// Share of API requests answered only after [`slow_delay`](Self::slow_delay).
    pub slow_rate: f64,
    /// Delay of slow answers (not scaled by the time scale).
    pub slow_delay: Duration,
    /// Share of accepted create requests whose answer is lost: the task is created, runs and is
    /// charged like any other, but the connection is closed without an answer, so the client
    /// never learns the task id. Counted in
    /// [`Counters::create_answers_lost`](crate::Counters::create_answers_lost).
    pub lost_answer_rate: f64,
    /// What the client gets instead of a lost create answer.
    pub lost_answer_as: LostAnswer,
    /// State that failing tasks end in (a negative code such as -1 or -15); `None` or a code that
    /// is not negative disables [`fail_rate`](Self::fail_rate).
    pub fail_state: Option<i32>,
    /// Share of tasks that end in [`fail_state`](Self::fail_state) after their processing time.
    pub fail_rate: f64,
    /// Share of tasks that stay in state 4 forever.
    pub never_finish_rate: f64,
    /// Result URLs answer 403 as if they had expired.
    pub expire_results: bool,
}

/// What a client sees of a create answer that is lost ([`Faults::lost_answer_rate`]): each is a
/// way a create can be accepted (and charged) while the client never reads its task id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LostAnswer {
    /// The connection is closed before a byte of the answer.
    #[default]
    Closed,
    /// HTTP 504 with an HTML body, as a gateway that gave up waiting for the backend answers.
    GatewayTimeout,
    /// HTTP 200 with a body that is not the documented JSON (cut in the middle).
    Garbled,
}

impl Faults {
    /// Checks that every rate is between 0 and 1.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("error_500_rate", self.error_500_rate),
            ("drop_rate", self.drop_rate),
            ("slow_rate", self.slow_rate),
            ("lost_answer_rate", self.lost_answer_rate),
            ("fail_rate", self.fail_rate),
            ("never_finish_rate", self.never_finish_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, not {rate}"));
            }
        }
        Ok(())
    }

    /// The state failing tasks end in, when [`fail_rate`](Self::fail_rate) can apply.
    pub(crate) fn failure_state(&self) -> Option<i32> {
        self.fail_state.filter(|state| *state < 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_scaling_divides() {
        let config = EmulatorConfig::default();
        assert!(config.validate().is_ok());
        let fast = EmulatorConfig {
            time_scale: 4.0,
            ..EmulatorConfig::default()
        };
        assert_eq!(
            fast.scaled(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        let slow = EmulatorConfig {
            time_scale: TimeScale::MIN,
            ..EmulatorConfig::default()
        };
        assert_eq!(slow.scaled(Duration::from_secs(1 << 40)), MAX_SCALED);
    }

    #[test]
    fn invalid_values_are_refused() {
        for scale in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-300] {
            let config = EmulatorConfig {
                time_scale: scale,
                ..EmulatorConfig::default()
            };
            assert!(config.validate().is_err(), "{scale}");
        }
        let config = EmulatorConfig {
            faults: Faults {
                drop_rate: 1.5,
                ..Faults::default()
            },
            ..EmulatorConfig::default()
        };
        assert!(config.validate().is_err());
        let lost = Faults {
            lost_answer_rate: -0.1,
            ..Faults::default()
        };
        assert!(lost.validate().is_err());
        let config = EmulatorConfig {
            processing: ProcessingTime::Uniform {
                min: Duration::from_secs(2),
                max: Duration::from_secs(1),
            },
            ..EmulatorConfig::default()
        };
        assert!(config.validate().is_err());
    }

    #[test]
    fn return_types() {
        assert_eq!(ResultFormat::Url.return_type(), 1);
        assert_eq!(ResultFormat::Base64.return_type(), 2);
        assert_eq!(ResultFormat::DataUri.return_type(), 2);
    }
}
