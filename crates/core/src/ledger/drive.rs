//! One input's life, written once: begin → create or resume → wait → download → store →
//! record. The CLI and the Lambda supply only what is theirs ([`Adapter`]): where the request's
//! image comes from when a create is due, and where the images go.
//!
//! Every rule is the ledger's or [`Error::recovery`]'s; this module only walks them in order:
//!
//! 1. [`Ledger::begin`] says whether the input is done, busy, refused, or to be created or
//!    resumed.
//! 2. A create is prepared by the adapter only now (a file is read, a URL presigned), then sent
//!    through [`Ticket::create_task_by`] — by the cutoff when there is one: a create cut off is
//!    recorded unconfirmed when it may have gone out; an answer that came in is always recorded.
//! 3. The task is awaited (at most the spec's 300 s polling limit past its creation: a task
//!    still unfinished then is given up, its results counted as lost), its results downloaded
//!    and handed to the adapter to store; the entry is `done` with the outputs' names.
//! 4. Anything that stops the walk is recorded by its recovery and returned as a [`Driven`]
//!    the adapter words in its own way.

use std::future::Future;

use tokio::time::Instant;

use crate::client::Client;
use crate::error::{Error, Operation, Recovery};
use crate::ledger::entry::{Entry, Failure, Owner};
use crate::ledger::key::InputKey;
use crate::ledger::protocol::{Begin, Ledger, LedgerError, Ticket};
use crate::ledger::rules::Refusal;
use crate::ledger::store::LedgerStore;
use crate::request::GenerateRequest;
use crate::response::TaskInfo;
use crate::result::GeneratedImage;
use crate::spec;
use crate::wait::{WaitControl, WaitOptions};

/// What an adapter (the CLI, the Lambda) supplies to an input's life.
pub trait Adapter: Send + Sync {
    /// The adapter's own error (a file that cannot be written, S3 trouble).
    type Error: std::fmt::Display + Send;

    /// The request to send, made only when a create is due (after the input was claimed):
    /// `Ok(None)` when the input went away meanwhile (deleted, replaced). Nothing was sent
    /// either way when this fails.
    fn request(
        &self,
        key: &InputKey,
    ) -> impl Future<Output = Result<Option<GenerateRequest>, Self::Error>> + Send;

    /// Stores a succeeded task's images (`entry`: the input's entry as walked, with its send
    /// time and tasks so far); returns the outputs' names (paths, keys) as the ledger records
    /// them. When it fails the task stays recorded, to fetch again later.
    fn store(
        &self,
        key: &InputKey,
        entry: &Entry,
        task: &TaskInfo,
        images: Vec<GeneratedImage>,
    ) -> impl Future<Output = Result<Vec<String>, Self::Error>> + Send;

    /// Told once the task has ended (succeeded or failed): the service needs nothing more
    /// (the Lambda deletes its copy of the image).
    fn task_ended(&self, key: &InputKey) -> impl Future<Output = ()> + Send {
        let _ = key;
        async {}
    }

    /// Told of the walk's steps, for progress lines and metrics.
    fn event(&self, event: Event<'_>) {
        let _ = event;
    }
}

/// A step of the walk, for the adapter's progress lines and metrics.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A create was answered with this task id.
    Created(&'a str),
    /// A recorded task is resumed by its id.
    Resumed(&'a str),
    /// The task was seen in a state (each answer of the wait).
    Polled(&'a TaskInfo),
}

/// How a walk may be stopped short.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// How long a wait may take (the spec's 300 s polling limit is kept whatever this says).
    pub wait: WaitOptions,
    /// When every call must have ended (a Lambda invocation's deadline less its margin): a
    /// create cut off there is recorded unconfirmed when it may have gone out; a wait,
    /// download or store cut off leaves the task recorded to resume.
    pub cutoff: Option<Instant>,
}

/// Where one input's walk ended.
#[derive(Debug)]
pub enum Driven<E> {
    /// Its outputs were stored by this walk.
    Stored {
        /// The entry, done.
        entry: Entry,
        /// The task, as its last answer gave it.
        task: TaskInfo,
        /// The outputs' names.
        outputs: Vec<String>,
    },
    /// An earlier walk stored its outputs.
    AlreadyDone(Entry),
    /// Another owner works on it: come back later.
    Busy(Entry),
    /// The ledger does not work on it again (see [`Refusal`]).
    Refused {
        /// The entry as it stands.
        entry: Entry,
        /// Why.
        refusal: Refusal,
    },
    /// The input went away before its create: nothing was sent.
    Gone,
    /// The adapter could not prepare the request: nothing was sent.
    Unprepared(E),
    /// The create, the wait or the download failed; recorded by its recovery.
    Failed {
        /// The entry as recorded.
        entry: Entry,
        /// The failure recorded (its recovery says what can be done).
        failure: Failure,
        /// The call it happened in.
        during: Operation,
        /// The error itself.
        error: Error,
    },
    /// The outputs could not be stored: the task stays recorded, to fetch again.
    NotStored {
        /// The entry as recorded.
        entry: Entry,
        /// The adapter's error.
        error: E,
    },
    /// Stopped by the caller or the cutoff while its task ran: recorded, to resume by id.
    Stopped {
        /// The entry as recorded.
        entry: Entry,
    },
}

impl<S: LedgerStore> Ledger<S> {
    /// Walks the input `key` through its life for `owner` (see the module): the one path the
    /// CLI and the Lambda share. `stop` ends the wait early (a second Ctrl-C) without touching
    /// the task; a ledger that cannot be read or written is the only error.
    #[allow(clippy::too_many_arguments)]
    pub async fn drive<A: Adapter>(
        &self,
        key: &InputKey,
        label: &str,
        owner: &Owner,
        client: &Client,
        adapter: &A,
        outputs_present: impl Fn(&Entry) -> bool,
        limits: Limits,
        stop: impl Future<Output = ()> + Send,
    ) -> Result<Driven<A::Error>, LedgerError> {
        let mut ticket = match self.begin(key, label, owner, outputs_present).await? {
            Begin::Done(entry) => return Ok(Driven::AlreadyDone(entry)),
            Begin::Busy(entry) => return Ok(Driven::Busy(entry)),
            Begin::Refused { entry, refusal } => return Ok(Driven::Refused { entry, refusal }),
            Begin::Resume(ticket) => {
                adapter.event(Event::Resumed(ticket.task_id().unwrap_or_default()));
                ticket
            }
            Begin::Create(mut ticket) => {
                let request = match adapter.request(key).await {
                    Ok(Some(request)) => request,
                    Ok(None) => {
                        release(&mut ticket).await;
                        return Ok(Driven::Gone);
                    }
                    Err(error) => {
                        release(&mut ticket).await;
                        return Ok(Driven::Unprepared(error));
                    }
                };
                // Cut off, the create is recorded unconfirmed when it may have gone out, else
                // given back; an answer that came in is always recorded.
                match ticket.create_task_by(client, &request, limits.cutoff).await {
                    Ok(task_id) => adapter.event(Event::Created(&task_id)),
                    Err(Error::Ledger(error)) => return Err(error),
                    Err(error) => return Ok(failed(&ticket, Operation::Create, error)),
                }
                ticket
            }
        };
        let finished = async {
            tokio::select! {
                finished = finish(&mut ticket, client, adapter, limits.wait) => Some(finished),
                () = stop => None,
            }
        };
        let finished = match limits.cutoff {
            Some(cutoff) => tokio::time::timeout_at(cutoff, finished)
                .await
                .unwrap_or(None),
            None => finished.await,
        };
        match finished {
            Some(Ok(driven)) => Ok(driven),
            Some(Err(error)) => Err(error),
            None => {
                // Stopped or cut off while the task ran: it stays recorded, and anyone may
                // resume it at once.
                release(&mut ticket).await;
                Ok(Driven::Stopped {
                    entry: ticket.entry().clone(),
                })
            }
        }
    }
}

/// Waits for the ticket's task, downloads its results, has the adapter store them, and
/// records the end.
async fn finish<S: LedgerStore, A: Adapter>(
    ticket: &mut Ticket<'_, S>,
    client: &Client,
    adapter: &A,
    wait: WaitOptions,
) -> Result<Driven<A::Error>, LedgerError> {
    let task_id = ticket.task_id().unwrap_or_default().to_owned();
    let key = ticket.key().clone();
    let waited = client
        .wait_for_task_with(&task_id, wait, |task| {
            adapter.event(Event::Polled(task));
            WaitControl::Continue
        })
        .await;
    if matches!(&waited, Ok(_) | Err(Error::TaskFailed { .. })) {
        adapter.task_ended(&key).await;
    }
    let task = match waited {
        Ok(task) => task,
        Err(error) => return record_failure(ticket, Operation::Query, error).await,
    };
    let images = match client.download_results(&task).await {
        Ok(images) => images,
        Err(error) => return record_failure(ticket, Operation::Download, error).await,
    };
    let outputs = match adapter.store(&key, ticket.entry(), &task, images).await {
        Ok(outputs) => outputs,
        Err(error) => {
            // The task is done and paid: it stays recorded, so the next walk fetches again.
            let failure = Failure::new(error.to_string(), Recovery::Resume);
            if let Err(e) = ticket.fail(failure).await {
                tracing::warn!(input = %ticket.entry().label, error = %e, "cannot record the failed store");
            }
            return Ok(Driven::NotStored {
                entry: ticket.entry().clone(),
                error,
            });
        }
    };
    if let Err(e) = ticket.done(outputs.clone(), task.credits_charged()).await {
        tracing::warn!(input = %ticket.entry().label, task_id = %task_id, error = %e, "cannot record the outputs; they are stored");
    }
    Ok(Driven::Stored {
        entry: ticket.entry().clone(),
        task,
        outputs,
    })
}

/// Records an error met while waiting or downloading by its recovery. A task still unfinished
/// past the spec's polling limit from its creation is given up: had it succeeded later, it
/// would have been charged, so its results count as lost.
async fn record_failure<S: LedgerStore, E>(
    ticket: &mut Ticket<'_, S>,
    during: Operation,
    error: Error,
) -> Result<Driven<E>, LedgerError> {
    let mut failure = Failure::from_error(&error, ticket.task_id());
    if failure.recovery == Recovery::Resume && ticket.polling_window_over() {
        failure.message = format!(
            "{}; the task did not finish within {} s of its creation, so it is given up (had it \
             succeeded later it would have been charged)",
            failure.message,
            spec::MAX_POLL_DURATION.as_secs()
        );
        failure.recovery = Recovery::ResultsLost;
        failure.credits_spent = true;
    }
    if let Err(e) = ticket.fail(failure.clone()).await {
        tracing::warn!(input = %ticket.entry().label, error = %e, "cannot record the failure");
    }
    Ok(Driven::Failed {
        entry: ticket.entry().clone(),
        failure,
        during,
        error,
    })
}

/// A failed create, as [`Ticket::create_task`] recorded it.
fn failed<S: LedgerStore, E>(ticket: &Ticket<'_, S>, during: Operation, error: Error) -> Driven<E> {
    let failure = ticket
        .entry()
        .failure
        .clone()
        .unwrap_or_else(|| Failure::from_error(&error, None));
    Driven::Failed {
        entry: ticket.entry().clone(),
        failure,
        during,
        error,
    }
}

/// Stops owning the input (nothing sent, or a task anyone may resume at once).
async fn release<S: LedgerStore>(ticket: &mut Ticket<'_, S>) {
    if let Err(e) = ticket.release().await {
        tracing::warn!(input = %ticket.entry().label, error = %e, "cannot release the claim");
    }
}
