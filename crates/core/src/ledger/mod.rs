//! The task ledger: never pay twice, by construction.
//!
//! The API has no idempotency key and no way to list tasks, so a create whose answer was lost
//! can never be confirmed, and a second create for the same input is a second charge. The ledger
//! records the life of each input durably, *before* acting on it, so that whoever picks the
//! input up next — the same run after a retry, the next run after a crash, another Lambda
//! invocation — knows what may exist:
//!
//! ```text
//! claimed → sending → created(task id) → done(outputs)
//!                                      ↘ failed(reason, charged?) | expired
//!             sending ↘ unconfirmed (sent, answer never seen)
//! ```
//!
//! - **When a create may be sent**: only from `claimed`, and only after the entry went to
//!   `sending` with a conditional write made once the create holds its share of the rate
//!   limit ([`Ticket::create_task`]). A crash before that write sent nothing; a crash after it
//!   leaves `sending`, which the next owner turns into `unconfirmed` — never a second create
//!   unless the user asks ([`Policy::retry_unconfirmed`]).
//! - **Who may take over what** ([`Policy`], [`Takeover`], [`Refusal`]): an owner keeps a
//!   `claimed` or `sending` input while its lease lasts (a Lambda invocation's deadline) or, in
//!   a store held by one process (the CLI's locked folder), until its run ends; then a
//!   `claimed` input, which sent nothing, is claimed again. A `created` task is resumed by id
//!   by whoever comes: waiting costs nothing.
//! - **What an error means** for the input comes from [`Error::recovery`](crate::Error::recovery)
//!   and nothing else: a 404 on a task the service issued is `expired` (its results are lost,
//!   and it may have been charged), a lost create answer is `unconfirmed`, a failed task is
//!   `failed` and may be tried again when the failure was the service's.
//! - **A write that loses a race is read again and reconciled**, never overwritten: facts about
//!   the same task move forward, anything else stops the owner ([`LedgerError::Conflict`]).
//!
//! Entries live in a [`LedgerStore`]: the CLI's journal file, the Lambda's S3 objects,
//! [`MemoryStore`]. An input's [`InputKey`] hashes its [`ImageIdentity`], its
//! [`GenerationOptions`](crate::GenerationOptions) and its destination: new parameters are new
//! work, identical ones are the same input.
//!
//! ```
//! use backdrop_core::ledger::{Begin, ImageIdentity, InputKey, Ledger, MemoryStore, Owner, Policy};
//! use backdrop_core::GenerationOptions;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let ledger = Ledger::new(MemoryStore::new(), "https://techhk.aoscdn.com", Policy::exclusive());
//! let options = GenerationOptions::prompt("a marble countertop")?;
//! let key = InputKey::derive(&ImageIdentity::of_bytes(b"..."), &options, "mug");
//! match ledger.begin(&key, "mug.png", &Owner::exclusive("run-1"), |_| true).await? {
//!     Begin::Create(mut ticket) => {
//!         // let task_id = ticket.create_task(&client, &request).await?;
//!         ticket.mark_sending().await?;
//!         ticket.record_create(&Ok("TASK_ID".to_owned())).await?;
//!         ticket.done(vec!["mug-1.jpg".into()], 3).await?;
//!     }
//!     Begin::Resume(ticket) => { /* wait for ticket.task_id() */ }
//!     Begin::Done(_) | Begin::Busy(_) | Begin::Refused { .. } => {}
//! }
//! # Ok(()) }
//! ```

#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
mod drive;
mod entry;
mod key;
mod protocol;
#[cfg(test)]
mod races;
mod rules;
mod store;

pub use drive::{Adapter, Driven, Event, Limits};
pub use entry::{Entry, Failure, Owner, Stage};
pub use key::{ImageIdentity, InputKey};
pub use protocol::{Begin, Clock, Ledger, LedgerError, Plan, SystemClock, Ticket};
/// Clocks for tests: tokio's (paused in tests) and one set by hand.
#[cfg(any(test, feature = "test-support"))]
pub use protocol::{ManualClock, TokioClock};
pub use rules::{Policy, Refusal, Takeover};
pub use store::{LedgerStore, MemoryStore, StoreError, Write};

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_memory_store_conforms() {
        super::conformance::run(super::MemoryStore::new).await;
    }
}
