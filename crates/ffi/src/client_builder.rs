//! The client builder: the configuration of a client (key, base URL, rate limit, timeouts,
//! retries, polling), frozen into a shareable `backdrop_client` by `_build`.

#![allow(unsafe_code)] // exports #[no_mangle] functions

use std::ffi::c_char;
use std::time::Duration;

use backdrop_core::credits::CreditCap;
use backdrop_core::{ClientConfig, PollPolicy, RateLimit, RetryPolicy};

use crate::client::{ClientState, backdrop_client};
use crate::error::{Fault, backdrop_error};
use crate::handle::{Castable, OwnershipBox, free_box, to_arc_ptr, to_box_ptr};
use crate::result::backdrop_result;
use crate::result::backdrop_result::BACKDROP_ERR_ALREADY_USED;

/// The configuration of a client, before it is built.
///
/// Made by `backdrop_client_builder_new`, changed by the `backdrop_client_builder_set_*` calls,
/// turned into a client by `backdrop_client_builder_build`, and always freed by the caller with
/// `backdrop_client_builder_free` (also after a build). Mutable: use one builder from one thread
/// at a time.
pub struct backdrop_client_builder {
    _private: [u8; 0],
}

impl Castable for backdrop_client_builder {
    type Ownership = OwnershipBox;
    type RustType = BuilderState;
}

/// What a `backdrop_client_builder` holds: its settings, or nothing once built.
#[derive(Debug)]
pub(crate) struct BuilderState {
    settings: Option<Settings>,
}

/// A client's settings.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) api_key: String,
    base_url: Option<String>,
    rate_limit: RateLimit,
    retry: RetryPolicy,
    connect_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    download_timeout: Option<Duration>,
    pub(crate) poll_interval: Duration,
    pub(crate) poll_policy: PollPolicy,
    max_credits: Option<u64>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("api_key", &"<redacted>")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// The core configuration these settings describe.
    pub(crate) fn config(&self) -> Result<ClientConfig, Fault> {
        let mut builder = ClientConfig::builder(self.api_key.clone())
            .rate_limit(self.rate_limit)
            .retry(self.retry);
        if let Some(base_url) = &self.base_url {
            builder = builder.base_url(base_url.clone());
        }
        if let Some(timeout) = self.connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(timeout) = self.request_timeout {
            builder = builder.request_timeout(timeout);
        }
        if let Some(timeout) = self.download_timeout {
            builder = builder.download_timeout(timeout);
        }
        if let Some(limit) = self.max_credits {
            builder = builder.credit_cap(CreditCap::in_memory(limit, 0));
        }
        builder
            .build()
            .map_err(|error| Fault::from(error).redact(&self.api_key))
    }
}

impl BuilderState {
    fn settings(&mut self) -> Result<&mut Settings, Fault> {
        self.settings.as_mut().ok_or_else(|| {
            Fault::new(
                BACKDROP_ERR_ALREADY_USED,
                "this client builder was already built into a client; make a new builder",
            )
        })
    }
}

/// A positive number of milliseconds, or the invalid-argument failure naming `what`.
fn millis(value: u32, what: &str) -> Result<Duration, Fault> {
    if value == 0 {
        return Err(Fault::invalid_argument(format!(
            "{what} must be at least 1 ms"
        )));
    }
    Ok(Duration::from_millis(u64::from(value)))
}

/// Makes a client builder for the API key `api_key` (UTF-8, copied), with the service's
/// defaults: base URL `https://techhk.aoscdn.com`, 2 requests per second, 10 s to connect, 120 s
/// per request and per download, 6 attempts per request, a poll every second.
///
/// The key is checked by `backdrop_client_builder_build`, and it never appears in any message
/// of the library.
///
/// On success writes the builder to `*builder_out` (the caller frees it with
/// `backdrop_client_builder_free`) and returns `BACKDROP_OK`; otherwise writes nothing and returns
/// `BACKDROP_ERR_NULL_PARAMETER` or `BACKDROP_ERR_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_builder_new(
    api_key: *const c_char,
    builder_out: *mut *mut backdrop_client_builder,
) -> backdrop_result {
    ffi_boundary!({
        let api_key = arg_str!(api_key);
        let builder_out = arg_out!(builder_out);
        let settings = Settings {
            api_key: api_key.to_owned(),
            base_url: None,
            rate_limit: RateLimit::default(),
            retry: RetryPolicy::default(),
            connect_timeout: None,
            request_timeout: None,
            download_timeout: None,
            poll_interval: backdrop_core::spec::POLL_INTERVAL,
            poll_policy: PollPolicy::default(),
            max_credits: None,
        };
        write_out!(
            builder_out,
            to_box_ptr::<backdrop_client_builder>(BuilderState {
                settings: Some(settings)
            })
        );
        Ok(())
    })
}

/// Sets the service's base URL (UTF-8, copied), e.g. an emulator's `http://127.0.0.1:8787`.
/// Checked by `backdrop_client_builder_build`.
///
/// Returns `BACKDROP_OK`, or `BACKDROP_ERR_NULL_PARAMETER`, `BACKDROP_ERR_INVALID_UTF8` or
/// `BACKDROP_ERR_ALREADY_USED` (nothing changed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_builder_set_base_url(
    builder: *mut backdrop_client_builder,
    base_url: *const c_char,
) -> backdrop_result {
    ffi_boundary!({
        let builder = arg_mut!(builder);
        let base_url = arg_str!(base_url);
        builder.settings()?.base_url = Some(base_url.to_owned());
        Ok(())
    })
}

/// Sets the key's rate limit in requests per second (the service's default QPS is 2). Every
/// API request of the client, from every thread, shares this one budget.
///
/// Returns `BACKDROP_OK`, or `BACKDROP_ERR_NULL_PARAMETER`, `BACKDROP_ERR_INVALID_ARGUMENT`
/// (`qps` is 0) or `BACKDROP_ERR_ALREADY_USED` (nothing changed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_builder_set_qps(
    builder: *mut backdrop_client_builder,
    qps: u32,
) -> backdrop_result {
    ffi_boundary!({
        let builder = arg_mut!(builder);
        if qps == 0 {
            return Err(Fault::invalid_argument("qps must be at least 1"));
        }
        builder.settings()?.rate_limit = RateLimit::per_second(qps);
        Ok(())
    })
}

/// Sets the rate limit as at most `max_requests` requests in any window of `window_ms`
/// milliseconds (for a service whose clock runs faster, such as a sped-up emulator). The
/// client keeps a fixed 50 ms safety margin on top of the window (with
/// `backdrop_client_builder_set_qps` the margin adapts: 50 ms, shrinking to 10 ms while no 429
/// comes).
///
/// Returns `BACKDROP_OK`, or `BACKDROP_ERR_NULL_PARAMETER`, `BACKDROP_ERR_INVALID_ARGUMENT`
/// (a 0) or `BACKDROP_ERR_ALREADY_USED` (nothing changed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_builder_set_rate_limit(
    builder: *mut backdrop_client_builder,
    max_requests: u32,
    window_ms: u32,
) -> backdrop_result {
    ffi_boundary!({
        let builder = arg_mut!(builder);
        if max_requests == 0 {
            return Err(Fault::invalid_argument("max_requests must be at least 1"));
        }
        let window = millis(window_ms, "window_ms")?;
        // The window changes; the safety margin stays in real time (it covers network and
        // scheduling jitter, which a shorter window does not shrink), as in core's `scaled`.
        builder.settings()?.rate_limit = RateLimit {
            window,
            ..RateLimit::per_second(max_requests)
        }
        .fixed_margin();
        Ok(())
    })
}

/// Sets the time allowed to open a connection, in milliseconds (default 10 000).
///
/// Returns `BACKDROP_OK`, or `BACKDROP_ERR_NULL_PARAMETER`, `BACKDROP_ERR_INVALID_ARGUMENT` (0)
/// or `BACKDROP_ERR_ALREADY_USED` (nothing changed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_builder_set_connect_timeout_ms(
    builder: *mut backdrop_client_builder,
    timeout_ms: u32,
) -> backdrop_result {
    ffi_boundary!({
        let builder = arg_mut!(builder);
        let timeout = millis(timeout_ms, "the connect timeout")?;
        builder.settings()?.connect_timeout = Some(timeout);
        Ok(())
    })
}

/// Sets the time allowed for one API request, upload included, in milliseconds (default
/// 120 000).
///
/// Returns `BACKDROP_OK`, or `BACKDROP_ERR_NULL_PARAMETER`, `BACKDROP_ERR_INVALID_ARGUMENT` (0)
/// or `BACKDROP_ERR_ALREADY_USED` (nothing changed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_builder_set_request_timeout_ms(
    builder: *mut backdrop_client_builder,
    timeout_ms: u32,
) -> backdrop_result {
    ffi_boundary!({
        let builder = arg_mut!(builder);
        let timeout = millis(timeout_ms, "the request timeout")?;
        builder.settings()?.request_timeout = Some(timeout);
        Ok(())
    })
}

/// Sets the time allowed for one result download, in milliseconds (default 120 000).
///
/// Returns `BACKDROP_OK`, or `BACKDROP_ERR_NULL_PARAMETER`, `BACKDROP_ERR_INVALID_ARGUMENT` (0)
/// or `BACKDROP_ERR_ALREADY_USED` (nothing changed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_builder_set_download_timeout_ms(
    builder: *mut backdrop_client_builder,
    timeout_ms: u32,
) -> backdrop_result {
    ffi_boundary!({
        let builder = arg_mut!(builder);
        let timeout = millis(timeout_ms, "the download timeout")?;
        builder.settings()?.download_timeout = Some(timeout);
        Ok(())
    })
}

/// Sets how failed requests are retried: at most `max_attempts` attempts (the first included;
/// default 6), with exponential backoff from `initial_backoff_ms` (default 500) up to
/// `max_backoff_ms` (default 20 000), jittered. A create is only retried when the service surely
/// did not accept it.
///
/// Returns `BACKDROP_OK`, or `BACKDROP_ERR_NULL_PARAMETER`, `BACKDROP_ERR_INVALID_ARGUMENT`
/// (`max_attempts` 0, or `max_backoff_ms` below `initial_backoff_ms`) or
/// `BACKDROP_ERR_ALREADY_USED` (nothing changed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_builder_set_retry(
    builder: *mut backdrop_client_builder,
    max_attempts: u32,
    initial_backoff_ms: u32,
    max_backoff_ms: u32,
) -> backdrop_result {
    ffi_boundary!({
        let builder = arg_mut!(builder);
        if max_attempts == 0 {
            return Err(Fault::invalid_argument("max_attempts must be at least 1"));
        }
        if max_backoff_ms < initial_backoff_ms {
            return Err(Fault::invalid_argument(
                "max_backoff_ms must not be below initial_backoff_ms",
            ));
        }
        builder.settings()?.retry = RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(u64::from(initial_backoff_ms)),
            max_backoff: Duration::from_millis(u64::from(max_backoff_ms)),
        };
        Ok(())
    })
}

/// Sets the time between two polls of `backdrop_client_wait` under the documented policy, and
/// the longest gap between polls under the adaptive one while the budget is idle, in
/// milliseconds (default 1000, the spec's interval; every poll counts against the rate limit).
///
/// Returns `BACKDROP_OK`, or `BACKDROP_ERR_NULL_PARAMETER`, `BACKDROP_ERR_INVALID_ARGUMENT` (0)
/// or `BACKDROP_ERR_ALREADY_USED` (nothing changed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_builder_set_poll_interval_ms(
    builder: *mut backdrop_client_builder,
    interval_ms: u32,
) -> backdrop_result {
    ffi_boundary!({
        let builder = arg_mut!(builder);
        let interval = millis(interval_ms, "the poll interval")?;
        builder.settings()?.poll_interval = interval;
        Ok(())
    })
}

/// How `backdrop_client_wait` plans its polls.
#[repr(u32)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum backdrop_poll_policy {
    /// The default: polls planned from what is known (processing times this client has seen, the
    /// task's state and progress), so that they land soon after a task is likely done and the
    /// key's budget goes further; spare budget is spent on latency, never less often than the
    /// poll interval.
    BACKDROP_POLL_ADAPTIVE = 0,
    /// The spec's flow: one poll every poll interval (1 s by default).
    BACKDROP_POLL_DOCUMENTED = 1,
}

/// Caps the credits the client may spend at `max_credits`: a create is sent only when the
/// credits spent and reserved by the client so far plus the most this create can cost (3 per
/// image of its batch) stay within the cap; otherwise `backdrop_client_create_task` returns
/// `BACKDROP_ERR_CREDIT_CAP` and sends nothing. A create's reservation is refunded when its
/// answer refused it or its task failed, kept as charged when its task succeeded, and counted
/// as spent when it may have been accepted (see `backdrop_client_credits_spent`). The cap is
/// the client's own: two clients with a cap each may spend both. Default: no cap.
///
/// Returns `BACKDROP_OK`, or `BACKDROP_ERR_NULL_PARAMETER` or `BACKDROP_ERR_ALREADY_USED`
/// (nothing changed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_builder_set_max_credits(
    builder: *mut backdrop_client_builder,
    max_credits: u64,
) -> backdrop_result {
    ffi_boundary!({
        let builder = arg_mut!(builder);
        builder.settings()?.max_credits = Some(max_credits);
        Ok(())
    })
}

/// Sets how `backdrop_client_wait` plans its polls: `BACKDROP_POLL_ADAPTIVE` (the default) or
/// `BACKDROP_POLL_DOCUMENTED`. Either way every request of the client shares its rate limit and
/// no wait goes past the spec's 300 s.
///
/// Returns `BACKDROP_OK`, or `BACKDROP_ERR_NULL_PARAMETER`, `BACKDROP_ERR_INVALID_ARGUMENT` (not
/// a `backdrop_poll_policy`) or `BACKDROP_ERR_ALREADY_USED` (nothing changed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_builder_set_poll_policy(
    builder: *mut backdrop_client_builder,
    policy: u32,
) -> backdrop_result {
    ffi_boundary!({
        let builder = arg_mut!(builder);
        let policy = match policy {
            p if p == backdrop_poll_policy::BACKDROP_POLL_ADAPTIVE as u32 => PollPolicy::Adaptive,
            p if p == backdrop_poll_policy::BACKDROP_POLL_DOCUMENTED as u32 => {
                PollPolicy::Documented
            }
            _ => {
                return Err(Fault::invalid_argument(
                    "policy must be BACKDROP_POLL_ADAPTIVE (0) or BACKDROP_POLL_DOCUMENTED (1)",
                ));
            }
        };
        builder.settings()?.poll_policy = policy;
        Ok(())
    })
}

/// Builds a client from the builder's settings: checks them, starts the client's own worker
/// threads (two) and its connection pool.
///
/// On success writes the client to `*client_out` (the caller releases it with
/// `backdrop_client_free`), marks the builder as used (later setters and builds return
/// `BACKDROP_ERR_ALREADY_USED`; the builder must still be freed) and returns `BACKDROP_OK`.
/// Otherwise writes nothing, leaves the builder as it was and returns
/// `BACKDROP_ERR_NULL_PARAMETER`, `BACKDROP_ERR_ALREADY_USED`, `BACKDROP_ERR_CONFIG` (empty or
/// malformed key, bad base URL) or `BACKDROP_ERR_RUNTIME`, with the detail in `*error_out` if
/// `error_out` is not NULL (the caller frees it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_builder_build(
    builder: *mut backdrop_client_builder,
    client_out: *mut *const backdrop_client,
    error_out: *mut *mut backdrop_error,
) -> backdrop_result {
    ffi_boundary!(error_out = error_out, {
        let builder = arg_mut!(builder);
        let client_out = arg_out!(client_out);
        let settings = builder.settings()?;
        let client = ClientState::start(
            settings.config()?,
            settings.poll_interval,
            settings.poll_policy,
            &settings.api_key,
        )?;
        builder.settings = None;
        write_out!(client_out, to_arc_ptr::<backdrop_client>(client));
        Ok(())
    })
}

/// Frees a client builder, built or not. NULL is a no-op. A client built from it lives on.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_builder_free(builder: *mut backdrop_client_builder) {
    ffi_infallible!((), {
        // SAFETY: the header's contract: NULL or a live builder, freed once.
        unsafe { free_box(builder) }
    })
}
