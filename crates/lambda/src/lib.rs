//! # backdrop-lambda
//!
//! An AWS Lambda function that turns transparent product PNGs uploaded to S3 into generated
//! backgrounds: S3 (directly, through SQS, or through EventBridge) → validate → claim (core's
//! task ledger, kept in S3) → create or resume a PicWish task → wait → write the images, a
//! manifest, or a failure record back to S3.
//!
//! `main` only wires the runtime; [`handler::handle`] is a plain async function over an
//! [`store::ObjectStore`] and the core client, so tests call it directly.

pub mod claims;
pub mod config;
pub mod error;
pub mod event;
pub mod handler;
pub mod inspect;
pub mod logging;
pub mod metadata;
pub mod metrics;
pub mod outputs;
pub mod params;
pub mod process;
pub mod queue;
pub mod records;
pub mod report;
#[cfg(feature = "aws")]
pub mod secrets;
pub mod sizing;
pub mod store;

pub use config::Config;
pub use error::LambdaError;
pub use handler::handle;
pub use process::{Delivery, Deps, Lease, Outcome};
#[cfg(feature = "aws")]
pub use queue::SqsQueue;
pub use queue::{MessageQueue, NoQueue};
pub use store::ObjectStore;
#[cfg(feature = "aws")]
pub use store::S3Store;
