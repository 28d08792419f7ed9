//! The function's configuration, read once from the environment.

use std::time::Duration;

use backdrop_core::backoff::{Backoff, Jitter};
use backdrop_core::{BatchSize, RateLimit, spec};

use crate::error::LambdaError;

/// How the source image reaches the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitMode {
    /// A short-lived presigned GET URL (`image_url`): the function never holds the image.
    Url,
    /// The object's bytes, uploaded as `image_file`.
    Upload,
}

/// Background defaults applied when an object's metadata names none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Defaults {
    /// `DEFAULT_PROMPT`.
    pub prompt: Option<String>,
    /// `DEFAULT_NEGATIVE_PROMPT`.
    pub negative_prompt: Option<String>,
    /// `DEFAULT_SCENE_TYPE`.
    pub scene_type: Option<i64>,
    /// `DEFAULT_BATCH_SIZE` (default 2).
    pub batch_size: BatchSize,
}

/// Everything the handler needs to know besides its clients.
#[derive(Debug, Clone)]
pub struct Config {
    /// Only keys under this prefix are processed (`INPUT_PREFIX`, default `incoming/`).
    pub input_prefix: String,
    /// Generated images and manifests go here (`OUTPUT_PREFIX`, default `generated/`).
    pub output_prefix: String,
    /// Failure records go here (`FAILED_PREFIX`, default `failed/`).
    pub failed_prefix: String,
    /// Claim objects go here (`STATE_PREFIX`, default `state/`).
    pub state_prefix: String,
    /// Where outputs are written (`OUTPUT_BUCKET`; default: the source object's bucket).
    pub output_bucket: Option<String>,
    /// Background defaults.
    pub defaults: Defaults,
    /// `SUBMIT_MODE`: `url` (default) or `upload`.
    pub submit_mode: SubmitMode,
    /// Lifetime of the presigned URL given to the service (`PRESIGN_SECONDS`, default 600).
    pub presign_ttl: Duration,
    /// The key's whole budget (`KEY_QPS` requests per second): what one instance may use when the
    /// budget is shared through `SHARED_BUDGET_TABLE`.
    pub key_rate_limit: RateLimit,
    /// This instance's static share of the key (`KEY_QPS / MAX_INSTANCES`): its budget without a
    /// shared table, and while the shared budget fails.
    pub rate_limit: RateLimit,
    /// Whether this fleet can keep the key busy: `None`, or what to change (from `KEY_QPS`,
    /// `MAX_INSTANCES` and `RECORDS_PER_INVOCATION`, the event source's batch size; see
    /// [`crate::sizing`]). Logged once when an instance starts.
    pub fleet_warning: Option<String>,
    /// The DynamoDB table through which every instance (and any other process using the key)
    /// shares one budget (`SHARED_BUDGET_TABLE`); none: each instance keeps its static share.
    pub shared_budget_table: Option<String>,
    /// Tasks tried for one object version before it gets a failure record (`MAX_TASK_ATTEMPTS`,
    /// default 3); only service-side task failures start another attempt.
    pub max_task_attempts: u32,
    /// Time kept free before the invocation's deadline for writing results (`DEADLINE_MARGIN_SECONDS`,
    /// default 10).
    pub deadline_margin: Duration,
    /// Time added to an invocation's deadline before another invocation may take over its
    /// work on an object (`LEASE_MARGIN_SECONDS`, default 30): covers clock differences between
    /// instances. Before that, the input is left to its owner (the platform stops every
    /// invocation at its deadline).
    pub lease_margin: Duration,
    /// The first delay before an SQS message is delivered again after transient trouble
    /// (`RETRY_BASE_SECONDS`, default 30); it doubles with each delivery.
    pub retry_base: Duration,
    /// The longest such delay (`RETRY_MAX_SECONDS`, default 600).
    pub retry_max: Duration,
    /// The queue's `maxReceiveCount` (`MAX_RECEIVE_COUNT`, default 5): on that delivery the
    /// function writes a failure record instead of asking for another, so that no message
    /// reaches the dead-letter queue without one.
    pub max_receive_count: u32,
    /// The name the function's metrics carry (`AWS_LAMBDA_FUNCTION_NAME`, set by Lambda).
    pub function_name: String,
    /// Where upload mode streams an object before sending it (`TMPDIR`, default `/tmp`).
    pub scratch_dir: std::path::PathBuf,
    /// The most credits every instance together spends in one UTC day (`DAILY_CREDIT_CAP`;
    /// 0 or unset: no cap), kept in `SHARED_BUDGET_TABLE` (one item per day). A create that
    /// would pass it is not sent: the object gets a `credit_cap` failure record.
    pub daily_credit_cap: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            input_prefix: "incoming/".into(),
            output_prefix: "generated/".into(),
            failed_prefix: "failed/".into(),
            state_prefix: "state/".into(),
            output_bucket: None,
            defaults: Defaults::default(),
            submit_mode: SubmitMode::Url,
            presign_ttl: Duration::from_secs(600),
            key_rate_limit: RateLimit::per_second(spec::DEFAULT_QPS),
            rate_limit: RateLimit::per_second(spec::DEFAULT_QPS),
            fleet_warning: None,
            shared_budget_table: None,
            max_task_attempts: 3,
            deadline_margin: Duration::from_secs(10),
            lease_margin: Duration::from_secs(30),
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(600),
            max_receive_count: 5,
            function_name: "backdrop-lambda".into(),
            scratch_dir: std::env::temp_dir(),
            daily_credit_cap: None,
        }
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config, LambdaError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, LambdaError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let number = |name: &str| -> Result<Option<i64>, LambdaError> {
            get(name)
                .map(|v| {
                    v.parse::<i64>().map_err(|_| {
                        LambdaError::Config(format!("{name}={v:?} is not a whole number"))
                    })
                })
                .transpose()
        };
        let prefix = |name: &str, default: &str| {
            let mut value = get(name).unwrap_or_else(|| default.to_owned());
            if !value.is_empty() && !value.ends_with('/') {
                value.push('/');
            }
            value
        };
        let mut config = Config {
            input_prefix: prefix("INPUT_PREFIX", "incoming/"),
            output_prefix: prefix("OUTPUT_PREFIX", "generated/"),
            failed_prefix: prefix("FAILED_PREFIX", "failed/"),
            state_prefix: prefix("STATE_PREFIX", "state/"),
            output_bucket: get("OUTPUT_BUCKET"),
            ..Config::default()
        };
        config.defaults = Defaults {
            prompt: get("DEFAULT_PROMPT"),
            negative_prompt: get("DEFAULT_NEGATIVE_PROMPT"),
            scene_type: number("DEFAULT_SCENE_TYPE")?,
            batch_size: match number("DEFAULT_BATCH_SIZE")? {
                Some(value) => BatchSize::try_from(value)
                    .map_err(|e| LambdaError::Config(format!("DEFAULT_BATCH_SIZE: {e}")))?,
                None => BatchSize::default(),
            },
        };
        if config.defaults.prompt.is_some() && config.defaults.scene_type.is_some() {
            return Err(LambdaError::Config(
                "DEFAULT_PROMPT and DEFAULT_SCENE_TYPE are both set; set one of them".into(),
            ));
        }
        config.submit_mode = match get("SUBMIT_MODE")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("url") => SubmitMode::Url,
            Some("upload") => SubmitMode::Upload,
            Some(other) => {
                return Err(LambdaError::Config(format!(
                    "SUBMIT_MODE={other:?}: use \"url\" or \"upload\""
                )));
            }
        };
        let seconds = |name: &str, default: u64| -> Result<Duration, LambdaError> {
            Ok(match number(name)? {
                Some(v) if v > 0 => Duration::from_secs(v.unsigned_abs()),
                Some(v) => return Err(LambdaError::Config(format!("{name}={v} must be above 0"))),
                None => Duration::from_secs(default),
            })
        };
        config.presign_ttl = seconds("PRESIGN_SECONDS", 600)?;
        config.deadline_margin = seconds("DEADLINE_MARGIN_SECONDS", 10)?;
        config.lease_margin = seconds("LEASE_MARGIN_SECONDS", 30)?;
        config.retry_base = seconds("RETRY_BASE_SECONDS", 30)?;
        config.retry_max = seconds("RETRY_MAX_SECONDS", 600)?;
        if config.retry_max < config.retry_base {
            return Err(LambdaError::Config(format!(
                "RETRY_MAX_SECONDS ({}) is below RETRY_BASE_SECONDS ({})",
                config.retry_max.as_secs(),
                config.retry_base.as_secs()
            )));
        }
        config.max_receive_count = match number("MAX_RECEIVE_COUNT")? {
            Some(v) if v >= 1 => u32::try_from(v).unwrap_or(u32::MAX),
            Some(v) => {
                return Err(LambdaError::Config(format!(
                    "MAX_RECEIVE_COUNT={v} must be at least 1 (the queue's maxReceiveCount)"
                )));
            }
            None => 5,
        };
        if let Some(name) = get("AWS_LAMBDA_FUNCTION_NAME") {
            config.function_name = name;
        }
        if let Some(dir) = get("TMPDIR") {
            config.scratch_dir = dir.into();
        }
        config.max_task_attempts = match number("MAX_TASK_ATTEMPTS")? {
            Some(v) if v >= 1 => u32::try_from(v).unwrap_or(u32::MAX),
            Some(v) => {
                return Err(LambdaError::Config(format!(
                    "MAX_TASK_ATTEMPTS={v} must be at least 1"
                )));
            }
            None => 3,
        };
        let key_qps = number("KEY_QPS")?.unwrap_or(i64::from(spec::DEFAULT_QPS));
        let instances = number("MAX_INSTANCES")?.unwrap_or(1);
        config.rate_limit = instance_share(key_qps, instances)?;
        config.key_rate_limit = instance_share(key_qps, 1)?;
        let records = match number("RECORDS_PER_INVOCATION")? {
            None => crate::sizing::RECORDS_PER_INVOCATION,
            Some(v) if v >= 1 => u32::try_from(v).unwrap_or(u32::MAX),
            Some(v) => {
                return Err(LambdaError::Config(format!(
                    "RECORDS_PER_INVOCATION={v} must be at least 1 (the SQS event source's \
                     BatchSize)"
                )));
            }
        };
        // A deployment states its fleet (the template sets MAX_INSTANCES); a local run that
        // does not has none to size. Both numbers were checked positive by instance_share.
        if get("MAX_INSTANCES").is_some() {
            config.fleet_warning = crate::sizing::undersized(
                u32::try_from(key_qps).unwrap_or(u32::MAX),
                u32::try_from(instances).unwrap_or(u32::MAX),
                records,
            );
        }
        config.shared_budget_table = get("SHARED_BUDGET_TABLE");
        config.daily_credit_cap = match number("DAILY_CREDIT_CAP")? {
            None | Some(0) => None,
            Some(v) if v > 0 => Some(v.unsigned_abs()),
            Some(v) => {
                return Err(LambdaError::Config(format!(
                    "DAILY_CREDIT_CAP={v} must be 0 (no cap) or more"
                )));
            }
        };
        Ok(config)
    }

    /// How long the message of a delivery that ends in transient trouble waits before it is
    /// delivered again: `retry_base × 2^(receive_count − 1)`, at most `retry_max`.
    pub fn retry_delay(&self, receive_count: u32) -> Duration {
        Backoff {
            first: self.retry_base,
            longest: self.retry_max,
            // A schedule the operator reads (and the tests check): no jitter.
            jitter: Jitter::None,
        }
        .delay(receive_count)
    }

    /// True when the delivery numbered `receive_count` is the last the queue makes.
    pub fn last_delivery(&self, receive_count: u32) -> bool {
        receive_count >= self.max_receive_count
    }

    /// The bucket outputs of an object in `source_bucket` go to.
    pub fn output_bucket_for<'a>(&'a self, source_bucket: &'a str) -> &'a str {
        self.output_bucket.as_deref().unwrap_or(source_bucket)
    }
}

/// One instance's share of the key's budget, so that `instances` instances together stay within
/// `key_qps` (core's [`RateLimit::share_of`]).
pub fn instance_share(key_qps: i64, instances: i64) -> Result<RateLimit, LambdaError> {
    let (Ok(qps), Ok(instances)) = (u32::try_from(key_qps), u32::try_from(instances)) else {
        return Err(LambdaError::Config(format!(
            "KEY_QPS={key_qps} and MAX_INSTANCES={instances} must be positive"
        )));
    };
    if qps == 0 || instances == 0 {
        return Err(LambdaError::Config(
            "KEY_QPS and MAX_INSTANCES must be at least 1".into(),
        ));
    }
    Ok(RateLimit::per_second(qps).share_of(instances))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, LambdaError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn a_deployed_fleet_too_small_for_its_key_is_named() {
        assert_eq!(config(&[]).unwrap().fleet_warning, None, "a local run");
        let sized = config(&[
            ("KEY_QPS", "50"),
            ("MAX_INSTANCES", "100"),
            ("RECORDS_PER_INVOCATION", "15"),
        ]);
        assert_eq!(sized.unwrap().fleet_warning, None);
        let small = config(&[("KEY_QPS", "50"), ("MAX_INSTANCES", "20")]).unwrap();
        let warning = small.fleet_warning.unwrap();
        assert!(
            warning.contains("MAX_INSTANCES=20 × RECORDS_PER_INVOCATION=10 holds 200"),
            "{warning}"
        );
        assert!(config(&[("RECORDS_PER_INVOCATION", "0")]).is_err());
    }

    #[test]
    fn defaults_and_prefix_slashes() {
        let c = config(&[("OUTPUT_PREFIX", "out"), ("DEFAULT_PROMPT", "a beach")]).unwrap();
        assert_eq!(c.input_prefix, "incoming/");
        assert_eq!(c.output_prefix, "out/");
        assert_eq!(c.defaults.prompt.as_deref(), Some("a beach"));
        assert_eq!(c.submit_mode, SubmitMode::Url);
        assert_eq!(c.rate_limit, RateLimit::per_second(2));
    }

    #[test]
    fn contradictions_and_bad_values_are_refused() {
        assert!(config(&[("DEFAULT_PROMPT", "x"), ("DEFAULT_SCENE_TYPE", "3")]).is_err());
        assert!(config(&[("DEFAULT_BATCH_SIZE", "3")]).is_err());
        assert!(config(&[("SUBMIT_MODE", "carrier-pigeon")]).is_err());
        assert!(config(&[("KEY_QPS", "0")]).is_err());
        assert!(config(&[("MAX_TASK_ATTEMPTS", "zero")]).is_err());
    }

    #[test]
    fn retries_back_off_and_the_last_delivery_is_known() {
        let c = config(&[]).unwrap();
        let delays: Vec<u64> = (1..=7).map(|n| c.retry_delay(n).as_secs()).collect();
        assert_eq!(delays, vec![30, 60, 120, 240, 480, 600, 600]);
        assert!(!c.last_delivery(4) && c.last_delivery(5));
        assert!(config(&[("RETRY_BASE_SECONDS", "60"), ("RETRY_MAX_SECONDS", "30")]).is_err());
        assert!(config(&[("MAX_RECEIVE_COUNT", "0")]).is_err());
    }

    #[test]
    fn the_key_budget_is_shared_between_instances() {
        assert_eq!(instance_share(2, 1).unwrap(), RateLimit::per_second(2));
        assert_eq!(instance_share(2, 2).unwrap(), RateLimit::per_second(1));
        assert!(instance_share(0, 2).is_err() && instance_share(2, 0).is_err());
        assert!(instance_share(-1, 2).is_err());
    }
}
