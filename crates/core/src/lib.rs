//! # backdrop-core
//!
//! A client for PicWish's Generate Background API: give it a transparent product PNG and a
//! prompt (or a scene template), get back one or two photos of the product on a generated
//! background.
//!
//! ## The flow
//!
//! The API is asynchronous. A [`Client`] does each step under the key's rate limit:
//!
//! 1. **Describe** the work with a [`GenerateRequest`] (its builder refuses what the service
//!    would: no image or two, a prompt and a scene type, a blank or overlong prompt).
//! 2. **Create** a task: [`Client::create_task`] first checks the image locally — the whole
//!    PNG, every rule of the service ([`validate`]) — so that a bad input costs nothing, then
//!    sends it and returns the task id. A create is never sent twice on its own.
//! 3. **Wait** for it: [`Client::wait_for_task_with`] polls (planned by progress and the
//!    processing times seen so far, see [`PollPolicy`]) until the task succeeds, fails or 300 s
//!    pass, reporting each state.
//! 4. **Download** the results within the hour their URLs live:
//!    [`Client::download_results`] returns checked JPEG/PNG/WebP bytes.
//!
//! [`Client::generate`] does all four. Every failure is an [`Error`] whose
//! [`recovery`](Error::recovery) says what to do: retry, resume the task by its id, ask before
//! creating again (a create may have been charged), or give up.
//!
//! ```no_run
//! # async fn run() -> backdrop_core::Result<()> {
//! use backdrop_core::{BatchSize, Client, ClientConfig, GenerateRequest, WaitControl, WaitOptions};
//!
//! let client = Client::new(ClientConfig::builder("YOUR_API_KEY").build()?)?;
//! let request = GenerateRequest::builder()
//!     .image_path("product.png")
//!     .prompt("a marble countertop in soft morning light")
//!     .batch_size(BatchSize::One)
//!     .build()?;
//! let generation = client
//!     .generate(&request, WaitOptions::default(), |task| {
//!         eprintln!("state {} progress {:?}", task.state, task.progress);
//!         WaitControl::Continue
//!     })
//!     .await?;
//! for image in &generation.images {
//!     let name = format!("out-{}.{}", image.index, image.format.extension());
//!     std::fs::write(name, &image.bytes).ok();
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ## Where things are
//!
//! The client's own types are at the root: [`Client`]; [`ClientConfig`] and its builder (key,
//! base URL, [`RateLimit`], [`RetryPolicy`], timeouts, tasks in flight, a time scale for
//! emulated services); [`GenerateRequest`], [`GenerationOptions`], [`BatchSize`],
//! [`SceneType`]; [`WaitOptions`], [`PollPolicy`] and [`TaskInfo`] (what a poll reads);
//! [`Error`], [`Recovery`], [`Operation`]; [`TaskState`]; [`GeneratedImage`]. The modules hold
//! what stands on its own:
//!
//! - [`validate`]: the local checks of an input, usable on their own (`backdrop validate`).
//! - [`spec`]: the API's facts — paths, fields, limits, prices, status codes.
//! - [`ledger`]: the durable record of each input's life that keeps batch runs from paying
//!   twice across crashes, and [`ledger::Ledger::drive`], the one walk of an input (begin,
//!   create or resume, wait, download, store, record) that the CLI and the Lambda adapt.
//! - [`remedy`]: what to do about a failure, in each adapter's own words.
//! - [`credits`]: what a create may cost, reserved before it is sent, and a cap on it.
//! - [`budget`]: one rate budget shared by several processes.
//! - [`backoff`] and [`time_scale`]: the one backoff formula and the one checked time scale.

#![deny(missing_docs)]

pub mod backoff;
pub mod budget;
mod client;
mod config;
pub mod credits;
mod download;
mod error;
mod files;
mod forecast;
mod generate;
pub mod ledger;
mod rate_limit;
pub mod remedy;
mod request;
mod response;
mod result;
mod scheduler;
#[cfg(test)]
mod simulation;
pub mod spec;
mod state;
pub mod time_scale;
pub mod validate;
mod wait;

/// README's Rust examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// The library guide's Rust examples (`docs/library.md`), compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/library.md")]
pub struct LibraryGuideDoctests;

/// The client's internals that its fuzz targets and adversarial tests reach into: no part of
/// the API, no stability promise.
#[doc(hidden)]
pub mod __private {
    pub use crate::client::{MAX_API_ANSWER_BYTES, max_query_answer_bytes};
    pub use crate::files::{sync_folder, write_atomically, write_atomically_with};
    pub use crate::forecast::{DurationModel, TaskForecast};
    pub use crate::response::{CreatedTask, Envelope};
}

pub use client::Client;
pub use config::{
    ApiKey, ClientConfig, ClientConfigBuilder, ENV_API_KEY, ENV_BASE_URL, ENV_QPS,
    ExpectedProcessing, MAX_IN_FLIGHT, RetryPolicy,
};
pub use error::{Error, Operation, Recovery, Result};
pub use generate::Generation;
pub use rate_limit::RateLimit;
pub use request::{
    Background, BatchSize, GenerateRequest, GenerateRequestBuilder, GenerationOptions, ImageSource,
    SceneType,
};
pub use response::TaskInfo;
pub use result::{GeneratedImage, ImageFormat, ResultFieldError, ResultLocation};
pub use scheduler::{PollPolicy, tasks_in_flight};
pub use state::{StateClass, TaskState};
pub use wait::{WaitControl, WaitOptions};
