//! Client configuration: the key, the base URL, the rate limit, timeouts and retries.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::backoff::{Backoff, Jitter};
use crate::budget::{BudgetStore, SharedBudget, SharedRateBudget};
use crate::credits::CreditCap;
use crate::error::{Error, Result};
use crate::rate_limit::RateLimit;
use crate::spec;
use crate::time_scale::TimeScale;

/// Environment variable holding the API key.
pub const ENV_API_KEY: &str = "PICWISH_API_KEY";
/// Environment variable overriding the base URL.
pub const ENV_BASE_URL: &str = "PICWISH_BASE_URL";
/// Environment variable overriding the requests-per-second limit.
pub const ENV_QPS: &str = "PICWISH_QPS";

/// An API key. Its value never appears in `Debug` or `Display` output.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key; refuses an empty one or one that cannot be sent as a header.
    pub fn new(key: impl Into<String>) -> Result<Self> {
        let key = key.into().trim().to_owned();
        if key.is_empty() {
            return Err(Error::Config(format!(
                "the API key is empty; set {ENV_API_KEY} to your PicWish API key"
            )));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Config(
                "the API key contains spaces or non-ASCII characters; copy it again from your PicWish account".into(),
            ));
        }
        Ok(ApiKey(key))
    }

    /// The key itself, for the request header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The most tasks a client keeps in flight, whatever its key: what a caller's cap may raise it
/// to, and where the number the key's rate asks for stops (a client keeps a small record per
/// task in flight; a CLI run keeps one input in progress per task).
///
/// Below it, a client keeps as many tasks in flight as its key can keep busy: by Little's law,
/// the key's task rate (at most QPS / 2 tasks a second: a create and a poll each) times how long
/// a task stays in flight (the 95th percentile of the processing times seen, doubled for the
/// detection delay and the tail): 60 at QPS 2 for the spec's typical tasks, 300 at QPS 10,
/// 1,500 at QPS 50.
pub const MAX_IN_FLIGHT: usize = 2048;

/// The processing times a client expects before it has observed any, as a median and a 95th
/// percentile. The adaptive poll policy starts from them and learns from every task it sees.
///
/// ```
/// use std::time::Duration;
/// use backdrop_core::ExpectedProcessing;
///
/// let slow = ExpectedProcessing::new(Duration::from_secs(20), Duration::from_secs(60));
/// assert_eq!(ExpectedProcessing::default().median, Duration::from_secs(10));
/// assert!(slow.p95 >= slow.median);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedProcessing {
    /// Half of the tasks are done processing within this.
    pub median: Duration,
    /// 95 % of them within this (never below the median).
    pub p95: Duration,
}

impl ExpectedProcessing {
    /// The spec's typical task: a median of 10 s, 95 % within 30 s.
    pub const TYPICAL: ExpectedProcessing = ExpectedProcessing {
        median: Duration::from_secs(10),
        p95: Duration::from_secs(30),
    };

    /// `median` and `p95`; a `p95` below the median is raised to it.
    pub fn new(median: Duration, p95: Duration) -> Self {
        ExpectedProcessing {
            median,
            p95: p95.max(median),
        }
    }

    /// The same times on a clock `factor` times faster (see
    /// [`ClientConfigBuilder::time_scale`]).
    pub(crate) fn scaled(self, scale: TimeScale) -> Self {
        ExpectedProcessing {
            median: scale.to_real(self.median),
            p95: scale.to_real(self.p95),
        }
    }
}

impl Default for ExpectedProcessing {
    /// [`ExpectedProcessing::TYPICAL`].
    fn default() -> Self {
        ExpectedProcessing::TYPICAL
    }
}

/// How failed requests are retried: exponential backoff with full jitter, bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts at most, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt.
    pub initial_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// The backoff before attempt `attempt + 1` (attempt counts from 1), jittered in
    /// `[half, full]` of the exponential value.
    pub fn backoff(&self, attempt: u32) -> Duration {
        Backoff {
            first: self.initial_backoff,
            longest: self.max_backoff,
            jitter: Jitter::Half,
        }
        .delay(attempt)
    }

    /// The same policy on a clock `scale` times faster: backoffs divided by it.
    fn scaled(self, scale: TimeScale) -> Self {
        RetryPolicy {
            initial_backoff: scale.to_real(self.initial_backoff),
            max_backoff: scale.to_real(self.max_backoff),
            ..self
        }
    }
}

/// Everything a [`Client`](crate::Client) needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub(crate) api_key: ApiKey,
    pub(crate) base_url: Url,
    pub(crate) rate_limit: RateLimit,
    pub(crate) retry: RetryPolicy,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) download_timeout: Duration,
    pub(crate) max_download_bytes: u64,
    pub(crate) max_concurrent_downloads: usize,
    /// The caller's cap on tasks in flight ([`MAX_IN_FLIGHT`] unless set lower).
    pub(crate) max_in_flight: usize,
    pub(crate) expected_processing: ExpectedProcessing,
    pub(crate) time_scale: TimeScale,
    pub(crate) shared_budget: Option<(Arc<dyn SharedBudget>, RateLimit)>,
    pub(crate) credit_cap: Option<CreditCap>,
}

impl ClientConfig {
    /// Starts a configuration for `api_key` with the documented defaults.
    pub fn builder(api_key: impl Into<String>) -> ClientConfigBuilder {
        ClientConfigBuilder {
            api_key: api_key.into(),
            base_url: spec::DEFAULT_BASE_URL.to_owned(),
            rate_limit: RateLimit::default(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            download_timeout: Duration::from_secs(120),
            max_download_bytes: 50 * 1024 * 1024,
            max_concurrent_downloads: 4,
            max_in_flight: MAX_IN_FLIGHT,
            expected_processing: ExpectedProcessing::TYPICAL,
            time_scale: 1.0,
            shared_budget: None,
            credit_cap: None,
        }
    }

    /// A configuration from `PICWISH_API_KEY`, `PICWISH_BASE_URL` and `PICWISH_QPS`.
    pub fn from_env() -> Result<ClientConfig> {
        let key = std::env::var(ENV_API_KEY).map_err(|_| {
            Error::Config(format!(
                "{ENV_API_KEY} is not set; export your PicWish API key (or point {ENV_BASE_URL} at an emulator)"
            ))
        })?;
        let mut builder = ClientConfig::builder(key);
        if let Ok(base) = std::env::var(ENV_BASE_URL) {
            builder = builder.base_url(base);
        }
        if let Ok(qps) = std::env::var(ENV_QPS) {
            let qps: u32 = qps.trim().parse().map_err(|_| {
                Error::Config(format!(
                    "{ENV_QPS}={qps:?} is not a whole number of requests per second"
                ))
            })?;
            builder = builder.rate_limit(RateLimit::per_second(qps));
        }
        builder.build()
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The rate limit every request of the client shares (on the client's clock: see
    /// [`ClientConfigBuilder::time_scale`]).
    pub fn rate_limit(&self) -> RateLimit {
        self.rate_limit
    }

    /// How many times faster than real time the service's clock runs (1 for the real service).
    pub fn time_scale(&self) -> TimeScale {
        self.time_scale
    }

    /// Which service tasks of this configuration live at, for records such as the task ledger:
    /// the base URL without user, password, query or fragment (nothing secret), and without a
    /// trailing slash.
    pub fn service_identity(&self) -> String {
        let mut url = self.base_url.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        url.set_fragment(None);
        url.as_str().trim_end_matches('/').to_owned()
    }
}

/// Builds a [`ClientConfig`]; [`build`](Self::build) checks it.
///
/// ```
/// use std::time::Duration;
/// use backdrop_core::{ClientConfig, RateLimit};
///
/// // A key with 5 requests per second, behind a proxy.
/// let config = ClientConfig::builder("YOUR_API_KEY")
///     .base_url("https://picwish-proxy.example.com")
///     .rate_limit(RateLimit::per_second(5))
///     .request_timeout(Duration::from_secs(60))
///     .build()?;
/// assert_eq!(config.rate_limit().max_requests, 5);
///
/// // The emulator sped up 10×: the client plans on its clock.
/// let emulated = ClientConfig::builder("emulator-key")
///     .base_url("http://127.0.0.1:8799")
///     .time_scale(10.0)
///     .build()?;
/// assert_eq!(emulated.rate_limit().window, Duration::from_millis(100));
/// # Ok::<(), backdrop_core::Error>(())
/// ```
#[derive(Clone)]
pub struct ClientConfigBuilder {
    api_key: String,
    base_url: String,
    rate_limit: RateLimit,
    retry: RetryPolicy,
    connect_timeout: Duration,
    request_timeout: Duration,
    download_timeout: Duration,
    max_download_bytes: u64,
    max_concurrent_downloads: usize,
    max_in_flight: usize,
    expected_processing: ExpectedProcessing,
    time_scale: f64,
    shared_budget: Option<(Arc<dyn BudgetStore>, RateLimit)>,
    credit_cap: Option<CreditCap>,
}

impl fmt::Debug for ClientConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfigBuilder")
            .field("api_key", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("rate_limit", &self.rate_limit)
            .finish_non_exhaustive()
    }
}

impl ClientConfigBuilder {
    /// The service's base URL (default `https://techhk.aoscdn.com`).
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// The key's request budget (default 2 per second).
    pub fn rate_limit(mut self, rate_limit: RateLimit) -> Self {
        self.rate_limit = rate_limit;
        self
    }

    /// Shorthand for [`rate_limit`](Self::rate_limit) with `qps` requests per second.
    pub fn qps(self, qps: u32) -> Self {
        self.rate_limit(RateLimit::per_second(qps))
    }

    /// How failed requests are retried.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Time allowed to open a connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for one API request, upload included (default 120 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Time allowed for one result download (default 120 s).
    pub fn download_timeout(mut self, timeout: Duration) -> Self {
        self.download_timeout = timeout;
        self
    }

    /// The largest result image accepted (default 50 MiB).
    pub fn max_download_bytes(mut self, bytes: u64) -> Self {
        self.max_download_bytes = bytes;
        self
    }

    /// Result downloads running at once (default 4); they never use the API's rate limit.
    pub fn max_concurrent_downloads(mut self, downloads: usize) -> Self {
        self.max_concurrent_downloads = downloads.max(1);
        self
    }

    /// Tasks created and not yet finished, at most; further creates wait. By default as many as
    /// the key's rate keeps busy, learned from the processing times seen (see
    /// [`MAX_IN_FLIGHT`], the ceiling this cap may not pass).
    pub fn max_in_flight(mut self, tasks: usize) -> Self {
        self.max_in_flight = tasks.clamp(1, MAX_IN_FLIGHT);
        self
    }

    /// What processing times to expect before any was observed (default
    /// [`ExpectedProcessing::TYPICAL`]: a median of 10 s, 95 % within 30 s). The adaptive poll
    /// policy starts from it and learns.
    pub fn expected_processing(mut self, expected: ExpectedProcessing) -> Self {
        self.expected_processing = expected;
        self
    }

    /// For an emulated service whose clock runs `factor` times faster than real time (default 1:
    /// the real service). Every duration of the service the client plans with is divided by it
    /// when the configuration is built: the rate limit's window (its jitter margin stays: real
    /// time governs jitter), the retry backoffs, the expected processing times and the
    /// documented poll interval of every wait. Timeouts and the 300 s limit of a wait stay in
    /// real time. The [shared budget](Self::shared_budget) and its fallback share are scaled
    /// with the rate limit. [`build`](Self::build) refuses a factor that is not a
    /// [`TimeScale`].
    pub fn time_scale(mut self, factor: f64) -> Self {
        self.time_scale = factor;
        self
    }

    /// Shares the key's budget with other processes through `store` (see [`crate::budget`]; a
    /// DynamoDB store is in the `backdrop-budget-dynamodb` crate): every request this client
    /// sends also takes a slot of the key's [`rate_limit`](Self::rate_limit), reserved in the
    /// store, so that together the processes stay within it — and a lone one may use all of
    /// it. `fallback` is this process's static share of the key (e.g.
    /// [`RateLimit::share_of`]), kept while the store fails.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use backdrop_core::budget::MemoryBudgetStore;
    /// use backdrop_core::{ClientConfig, RateLimit};
    ///
    /// let key = RateLimit::per_second(2);
    /// let config = ClientConfig::builder("YOUR_API_KEY")
    ///     .rate_limit(key)
    ///     .shared_budget(Arc::new(MemoryBudgetStore::new()), key.share_of(2))
    ///     .build()?;
    /// # Ok::<(), backdrop_core::Error>(())
    /// ```
    pub fn shared_budget(mut self, store: Arc<dyn BudgetStore>, fallback: RateLimit) -> Self {
        self.shared_budget = Some((store, fallback));
        self
    }

    /// Caps the credits this client may spend: no create is sent when the most it could cost
    /// would take the cap's total (spent and reserved, see [`crate::credits`]) past its limit;
    /// it fails with [`Error::CreditCapReached`] instead, having sent nothing. A cap whose store
    /// is shared (a DynamoDB item per day) holds across processes.
    ///
    /// ```
    /// use backdrop_core::ClientConfig;
    /// use backdrop_core::credits::CreditCap;
    ///
    /// // At most 600 credits, 120 of which earlier runs spent.
    /// let config = ClientConfig::builder("YOUR_API_KEY")
    ///     .credit_cap(CreditCap::in_memory(600, 120))
    ///     .build()?;
    /// # Ok::<(), backdrop_core::Error>(())
    /// ```
    pub fn credit_cap(mut self, cap: CreditCap) -> Self {
        self.credit_cap = Some(cap);
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> Result<ClientConfig> {
        let api_key = ApiKey::new(self.api_key)?;
        let base_url = Url::parse(self.base_url.trim()).map_err(|e| {
            Error::Config(format!(
                "base URL {:?} is not a URL ({e}); use e.g. {}",
                self.base_url,
                spec::DEFAULT_BASE_URL
            ))
        })?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(Error::Config(format!(
                "base URL {base_url} must be an http(s) URL such as {}",
                spec::DEFAULT_BASE_URL
            )));
        }
        if self.rate_limit.window.is_zero() || self.rate_limit.max_requests == 0 {
            return Err(Error::Config(
                "the rate limit must allow at least one request per non-zero window".into(),
            ));
        }
        let scale = TimeScale::new(self.time_scale).map_err(|e| Error::Config(e.to_string()))?;
        Ok(ClientConfig {
            api_key,
            base_url,
            rate_limit: self.rate_limit.scaled(scale),
            retry: RetryPolicy {
                max_attempts: self.retry.max_attempts.max(1),
                ..self.retry.scaled(scale)
            },
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            download_timeout: self.download_timeout,
            max_download_bytes: self.max_download_bytes,
            max_concurrent_downloads: self.max_concurrent_downloads,
            max_in_flight: self.max_in_flight,
            expected_processing: self.expected_processing.scaled(scale),
            time_scale: scale,
            shared_budget: self.shared_budget.map(|(store, fallback)| {
                let budget: Arc<dyn SharedBudget> =
                    Arc::new(SharedRateBudget::new(store, self.rate_limit.scaled(scale)));
                (budget, fallback.scaled(scale))
            }),
            credit_cap: self.credit_cap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_of_one_key_split_it_and_stay_within_it() {
        let key = RateLimit::per_second(2);
        assert_eq!(key.share_of(1), key);
        assert_eq!(key.share_of(0), key);
        assert_eq!(key.share_of(2), RateLimit::per_second(1));
        assert_eq!(
            RateLimit::per_second(5).share_of(2),
            RateLimit::per_second(2)
        );
        let slow = key.share_of(5);
        assert_eq!(
            (slow.max_requests, slow.window),
            (1, Duration::from_secs(3))
        );
        // Whatever the split, the holders together never have more than the key per window.
        for holders in 1..=40 {
            let share = key.share_of(holders);
            let per_second = f64::from(share.max_requests) / share.window.as_secs_f64();
            assert!(per_second * f64::from(holders) <= 2.0 + 1e-9, "{holders}");
        }
    }

    #[test]
    fn the_key_never_shows() {
        let config = ClientConfig::builder("sk-very-secret-123").build().unwrap();
        let shown = format!("{config:?} {:?} {}", config.api_key, config.api_key);
        assert!(!shown.contains("very-secret"), "{shown}");
        let builder = ClientConfig::builder("sk-very-secret-123");
        assert!(!format!("{builder:?}").contains("very-secret"));
    }

    #[test]
    fn bad_settings_are_refused_with_advice() {
        assert!(matches!(
            ClientConfig::builder("  ").build(),
            Err(Error::Config(_))
        ));
        let err = ClientConfig::builder("k")
            .base_url("ftp://x")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("http(s)"), "{err}");
        assert!(ClientConfig::builder("k").base_url("nope").build().is_err());
    }

    #[test]
    fn the_service_identity_holds_no_credentials() {
        let config = ClientConfig::builder("k")
            .base_url("https://user:pass@proxy.example/picwish/?token=abc#x")
            .build()
            .unwrap();
        assert_eq!(config.service_identity(), "https://proxy.example/picwish");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy::default();
        for attempt in 1..20 {
            let d = policy.backoff(attempt);
            assert!(d <= policy.max_backoff);
            let full = policy
                .initial_backoff
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(policy.max_backoff);
            assert!(d >= full / 2, "attempt {attempt}: {d:?}");
        }
    }
}
