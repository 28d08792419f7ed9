//! # backdrop-core
//!
//! Everything PicWish's Generate Background API is, in one crate: its facts ([`spec`]), its task
//! states ([`state`]), local pre-validation of inputs ([`validate`]), request types
//! ([`request`]), and an async [`Client`] that creates tasks, waits for them under the key's rate
//! limit and downloads the results.
//!
//! ```no_run
//! # async fn run() -> backdrop_core::Result<()> {
//! use backdrop_core::{Client, ClientConfig, GenerateRequest, WaitControl, WaitOptions};
//!
//! let client = Client::new(ClientConfig::builder("YOUR_API_KEY").build()?)?;
//! let request = GenerateRequest::builder()
//!     .image_path("product.png")
//!     .prompt("a marble countertop in soft morning light")
//!     .batch_size(1)
//!     .build()?;
//! let generation = client
//!     .generate(&request, WaitOptions::default(), |task| {
//!         eprintln!("state {} progress {:?}", task.state, task.progress);
//!         WaitControl::Continue
//!     })
//!     .await?;
//! for image in &generation.images {
//!     std::fs::write(format!("out-{}.{}", image.index, image.format.extension()), &image.bytes)
//!         .ok();
//! }
//! # Ok(())
//! # }
//! ```

pub mod budget;
pub mod client;
pub mod config;
pub mod download;
pub mod error;
pub mod files;
pub mod forecast;
pub mod generate;
pub mod ledger;
pub mod rate_limit;
pub mod request;
pub mod response;
pub mod result;
pub mod scheduler;
#[cfg(test)]
mod simulation;
pub mod spec;
pub mod state;
pub mod validate;
pub mod wait;

pub use client::Client;
pub use config::{
    ApiKey, ClientConfig, ClientConfigBuilder, DEFAULT_EXPECTED_PROCESSING, DEFAULT_MAX_IN_FLIGHT,
    RateLimit, RetryPolicy,
};
pub use error::{Error, Operation, Recovery, Result};
pub use generate::Generation;
pub use request::{
    Background, BatchSize, GenerateRequest, GenerateRequestBuilder, GenerationOptions, ImageSource,
};
pub use response::TaskInfo;
pub use result::{GeneratedImage, ImageFormat, ResultLocation};
pub use scheduler::PollPolicy;
pub use state::{StateClass, TaskState};
pub use validate::{PngInfo, ValidationError};
pub use wait::{WaitControl, WaitOptions};
