//! The ledger protocol: an owner begins work on an input, then moves its entry through the
//! stages with conditional writes, each one fenced (a write that finds another owner's work is
//! reconciled or refused, never forced).

use std::sync::Arc;
#[cfg(any(test, feature = "test-support"))]
use std::sync::atomic::{AtomicU64, Ordering};

use crate::client::Client;
use crate::error::{Error, Recovery};
use crate::ledger::entry::{Entry, Failure, Owner, Stage};
use crate::ledger::key::InputKey;
use crate::ledger::rules::{Decision, Here, Policy, Reconciled, Refusal, decide, reconcile};
use crate::ledger::store::{LedgerStore, StoreError, Write};
use crate::request::GenerateRequest;

/// How many times [`Ledger::begin`] reads an entry again after losing a write race.
const MAX_RACES: u32 = 8;

/// Why a ledger operation failed. The operation left the entry as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The store could not be read or written.
    #[error("the task ledger cannot be read or written: {0}")]
    Store(#[from] StoreError),
    /// Another owner changed the entry in a way this owner's work contradicts.
    #[error(
        "another owner ({owner}) changed the ledger entry of {label} (it is now {stage}); this \
         owner stops working on it so that no second task is created for it"
    )]
    Conflict {
        /// The input.
        label: String,
        /// The stage found.
        stage: Stage,
        /// The owner found, if any.
        owner: String,
    },
    /// The entry kept changing while being read and claimed.
    #[error(
        "the ledger entry of {label} changed under {attempts} attempts to claim it; try again later"
    )]
    Contended {
        /// The input.
        label: String,
        /// Attempts made.
        attempts: u32,
    },
    /// A step was asked for in a stage it cannot follow (a bug in the caller).
    #[error("the ledger entry of {label} cannot go from {from} to {to}")]
    OutOfOrder {
        /// The input.
        label: String,
        /// The stage the entry is in.
        from: Stage,
        /// The stage asked for.
        to: Stage,
    },
}

/// The time, in unix milliseconds, as the ledger sees it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in unix milliseconds.
    fn now_ms(&self) -> u64;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

#[cfg(any(test, feature = "test-support"))]
/// A clock that follows tokio's (so a paused test runtime moves it): `start_ms` when made, then
/// whatever time tokio says has passed.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start_ms: u64,
    start: tokio::time::Instant,
}

#[cfg(any(test, feature = "test-support"))]
impl TokioClock {
    /// A clock that reads `start_ms` now.
    pub fn starting_at(start_ms: u64) -> Self {
        TokioClock {
            start_ms,
            start: tokio::time::Instant::now(),
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        let passed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.start_ms.saturating_add(passed)
    }
}

#[cfg(any(test, feature = "test-support"))]
/// A clock set by hand (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

#[cfg(any(test, feature = "test-support"))]
impl ManualClock {
    /// A clock that reads `now_ms`.
    pub fn at(now_ms: u64) -> Self {
        ManualClock(AtomicU64::new(now_ms))
    }

    /// Moves the clock forward.
    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

#[cfg(any(test, feature = "test-support"))]
impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The task ledger of one service: the protocol over a [`LedgerStore`].
#[derive(Debug)]
pub struct Ledger<S> {
    store: S,
    service: String,
    stand_in: bool,
    policy: Policy,
    clock: Arc<dyn Clock>,
}

/// What [`Ledger::begin`] found, with the ticket to go on where there is work to do.
#[derive(Debug)]
pub enum Begin<'l, S: LedgerStore> {
    /// The input is claimed: create a task with the ticket.
    Create(Ticket<'l, S>),
    /// The input has a task (`ticket.task_id()`): resume it, never create.
    Resume(Ticket<'l, S>),
    /// The input's outputs are stored.
    Done(Entry),
    /// Another owner is working on it: come back later.
    Busy(Entry),
    /// It is not worked on again unless the policy allows it (see [`Refusal`]).
    Refused {
        /// The entry as it stands.
        entry: Entry,
        /// Why.
        refusal: Refusal,
    },
}

impl<S: LedgerStore> Ledger<S> {
    /// The ledger of `service` (an identity of the endpoint, without credentials) over `store`.
    pub fn new(store: S, service: impl Into<String>, policy: Policy) -> Self {
        Ledger {
            store,
            service: service.into(),
            stand_in: false,
            policy,
            clock: Arc::new(SystemClock),
        }
    }

    /// Marks the service as a stand-in (the built-in emulator): the entries it finishes say
    /// so, and a real service does not take them for done (their images are not generated).
    pub fn with_stand_in(mut self, stand_in: bool) -> Self {
        self.stand_in = stand_in;
        self
    }

    /// True when the service is a stand-in (see [`with_stand_in`](Self::with_stand_in)).
    pub fn is_stand_in(&self) -> bool {
        self.stand_in
    }

    /// Reads time from `clock` instead of the system's.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Now, by the ledger's clock (unix milliseconds).
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The entry of `key`, if any.
    pub async fn entry(&self, key: &InputKey) -> Result<Option<Entry>, LedgerError> {
        Ok(self.store.load(key).await?.map(|(entry, _)| entry))
    }

    /// What [`begin`](Self::begin) would do with the input `key` for `owner`, without writing
    /// anything: for a dry run.
    pub async fn plan(
        &self,
        key: &InputKey,
        owner: &Owner,
        outputs_present: impl Fn(&Entry) -> bool,
    ) -> Result<(Plan, Option<Entry>), LedgerError> {
        let found = self.store.load(key).await?.map(|(entry, _)| entry);
        let present = found.as_ref().is_some_and(&outputs_present);
        let here = Here {
            service: &self.service,
            stand_in: self.stand_in,
        };
        let decision = decide(
            found.as_ref(),
            owner,
            here,
            self.now_ms(),
            &self.policy,
            present,
        );
        let plan = match decision {
            Decision::Create => Plan::Create,
            Decision::Resume => Plan::Resume,
            Decision::Done => Plan::Done,
            Decision::Busy => Plan::Busy,
            Decision::MarkUnconfirmed => Plan::Refused(Refusal::Unconfirmed),
            Decision::Refuse(refusal) => Plan::Refused(refusal),
        };
        Ok((plan, found))
    }

    /// Begins `owner`'s work on the input `key` (`label` is for people): reads its entry and,
    /// by the rules, claims it for a create, takes its task over, or says why not.
    /// `outputs_present` tells whether a done entry's outputs still exist (else its task is
    /// resumed to fetch them again).
    pub async fn begin(
        &self,
        key: &InputKey,
        label: &str,
        owner: &Owner,
        outputs_present: impl Fn(&Entry) -> bool,
    ) -> Result<Begin<'_, S>, LedgerError> {
        for _ in 0..MAX_RACES {
            let found = self.store.load(key).await?;
            let now = self.now_ms();
            let present = found
                .as_ref()
                .is_some_and(|(entry, _)| outputs_present(entry));
            let here = Here {
                service: &self.service,
                stand_in: self.stand_in,
            };
            let decision = decide(
                found.as_ref().map(|(entry, _)| entry),
                owner,
                here,
                now,
                &self.policy,
                present,
            );
            let (next, refusal) = match (decision, &found) {
                (Decision::Done, Some((entry, _))) => return Ok(Begin::Done(entry.clone())),
                (Decision::Busy, Some((entry, _))) => return Ok(Begin::Busy(entry.clone())),
                (Decision::Refuse(refusal), Some((entry, _))) => {
                    return Ok(Begin::Refused {
                        entry: entry.clone(),
                        refusal,
                    });
                }
                (Decision::Create, _) => {
                    let mut next = Entry::claimed(label, &self.service, owner, now);
                    next.stand_in = self.stand_in;
                    if let Some((old, _)) = &found
                        && old.service == self.service
                    {
                        next.tasks_created = old.tasks_created;
                        next.creates_sent = old.creates_sent;
                    }
                    (next, None)
                }
                (Decision::Resume, Some((old, _))) => {
                    let mut next = old.clone();
                    next.stage = Stage::Created;
                    next.owner = Some(owner.clone());
                    next.outputs.clear();
                    next.failure = None;
                    (next, None)
                }
                (Decision::MarkUnconfirmed, Some((old, _))) => {
                    let mut next = old.clone();
                    next.stage = Stage::Unconfirmed;
                    next.owner = None;
                    next.failure = Some(Failure::new(
                        format!(
                            "a create was sent for it{} and its answer was never recorded (its \
                             sender stopped): the service may have accepted it and charged for \
                             it, and the API has no way to tell",
                            old.owner
                                .as_ref()
                                .map(|o| format!(" by {}", o.id))
                                .unwrap_or_default()
                        ),
                        Recovery::Unconfirmed,
                    ));
                    (next, Some(Refusal::Unconfirmed))
                }
                // Every decision but Create is made on an entry that was found.
                (_, None) => {
                    let mut next = Entry::claimed(label, &self.service, owner, now);
                    next.stand_in = self.stand_in;
                    (next, None)
                }
            };
            let mut next = next;
            next.updated_at_ms = now;
            let write = match &found {
                None => self.store.insert(key, &next).await?,
                Some((_, version)) => self.store.replace(key, &next, version).await?,
            };
            let Write::Written(version) = write else {
                continue;
            };
            if let Some(refusal) = refusal {
                return Ok(Begin::Refused {
                    entry: next,
                    refusal,
                });
            }
            let ticket = Ticket {
                ledger: self,
                key: key.clone(),
                owner: owner.clone(),
                entry: next,
                version,
            };
            return Ok(if ticket.entry.stage == Stage::Created {
                Begin::Resume(ticket)
            } else {
                Begin::Create(ticket)
            });
        }
        Err(LedgerError::Contended {
            label: label.to_owned(),
            attempts: MAX_RACES,
        })
    }
}

/// What [`Ledger::begin`] would do with an input ([`Ledger::plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// A create would be sent (the entry found, if any, says after what).
    Create,
    /// Its task would be resumed by id: nothing new is charged.
    Resume,
    /// Its outputs are stored.
    Done,
    /// Another owner works on it.
    Busy,
    /// It would not be worked on (see [`Refusal`]).
    Refused(Refusal),
}

/// An owner's hold on one input's entry, from [`Ledger::begin`]: every step is a conditional
/// write on the version this ticket last wrote.
#[derive(Debug)]
pub struct Ticket<'l, S: LedgerStore> {
    ledger: &'l Ledger<S>,
    key: InputKey,
    owner: Owner,
    entry: Entry,
    version: S::Version,
}

impl<S: LedgerStore> Ticket<'_, S> {
    /// The input's key.
    pub fn key(&self) -> &InputKey {
        &self.key
    }

    /// The entry as this ticket last wrote it.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The task, once created (or when resuming).
    pub fn task_id(&self) -> Option<&str> {
        self.entry.task_id.as_deref()
    }

    /// True when the task was sent longer ago than the spec's polling limit (see
    /// [`Entry::polling_window_over`]), by the ledger's clock.
    pub fn polling_window_over(&self) -> bool {
        self.entry.polling_window_over(self.ledger.now_ms())
    }

    /// Creates the task: the create waits for its share of the rate limit, then the entry goes
    /// to `sending` (fenced: if another owner took the input, nothing is sent), then the create
    /// is sent and its answer recorded — `created` with the task id, or the failure by its
    /// [`Recovery`] (`unconfirmed` when the create may have been accepted).
    ///
    /// Returns the task id, or the create's error (recorded), or [`Error::Ledger`] when the
    /// entry could not be moved to `sending` (then nothing was sent). When the answer cannot be
    /// recorded the task id is still returned and later steps carry it.
    pub async fn create_task(
        &mut self,
        client: &Client,
        request: &GenerateRequest,
    ) -> Result<String, Error> {
        self.create_task_by(client, request, None).await
    }

    /// [`create_task`](Self::create_task) with a cutoff: the create's wait for its share of
    /// the rate limit and its time on the wire end there ([`Error::Abandoned`]) — a create cut
    /// off before its request went out whole is given back (nothing can have been created),
    /// one cut off after is recorded `unconfirmed`. The writes that record the
    /// answer are never cut: a record cut mid-write could leave the store saying `created`
    /// while the caller reports the create lost, and the paid task would never be fetched.
    pub async fn create_task_by(
        &mut self,
        client: &Client,
        request: &GenerateRequest,
        cutoff: Option<tokio::time::Instant>,
    ) -> Result<String, Error> {
        if self.entry.stage != Stage::Claimed {
            return Err(self.out_of_order(Stage::Sending).into());
        }
        // What a credit cap counts for this create until its task's cost is known.
        self.entry.credits_at_stake = request.batch_size().credits();
        let mut marked = false;
        let this = &mut *self;
        let marked_flag = &mut marked;
        let result = client
            .create_task_recorded(request, cutoff, move || async move {
                let written = this.mark_sending().await;
                *marked_flag = written.is_ok();
                written.map_err(Error::from)
            })
            .await;
        if !marked {
            // Nothing was sent (refused locally, the ledger could not be written, or the cutoff
            // came first): give the input back so that it may be tried again.
            let failure = match &result {
                Err(Error::Abandoned { .. }) => Failure::new(
                    "the caller's time ran out before the create was sent; nothing was sent",
                    Recovery::Retry,
                ),
                Err(error) => Failure::from_error(error, None),
                Ok(_) => Failure::new("the create was not recorded", Recovery::Retry),
            };
            if let Err(e) = self.fail(failure).await {
                tracing::warn!(input = %self.entry.label, error = %e, "cannot record that nothing was sent");
            }
            return result;
        }
        if let Err(e) = self.record_create(&result).await {
            tracing::warn!(input = %self.entry.label, error = %e, "cannot record the create's answer; later steps carry it");
        }
        result
    }

    /// Moves a claimed entry to `sending`: call it once the create holds its share of the rate
    /// limit, just before sending it. On an error nothing may be sent; when the write's answer
    /// was lost, a mark that landed all the same is taken back.
    pub async fn mark_sending(&mut self) -> Result<(), LedgerError> {
        if self.entry.stage != Stage::Claimed {
            return Err(self.out_of_order(Stage::Sending));
        }
        let mut next = self.entry.clone();
        next.stage = Stage::Sending;
        next.sent_at_ms = Some(self.ledger.now_ms());
        next.creates_sent = next.creates_sent.saturating_add(1);
        next.failure = None;
        let mark = next.clone();
        match self.write(next).await {
            Err(error @ LedgerError::Store(_)) => {
                self.take_back(&mark).await;
                Err(error)
            }
            written => written,
        }
    }

    /// After a `sending` write whose answer was lost (a timeout, a 5xx): the write may have
    /// landed all the same. Nothing will be sent, so an entry that is exactly that mark — this
    /// owner, this send time — goes back to the claim it was, or a later owner would take the
    /// input for a create that may have been charged.
    async fn take_back(&mut self, mark: &Entry) {
        let store = &self.ledger.store;
        let found = match store.load(&self.key).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(input = %mark.label, error = %error, "cannot read back a sending mark whose answer was lost");
                return;
            }
        };
        let Some((current, version)) = found else {
            return;
        };
        let ours = current.stage == Stage::Sending
            && current.sent_at_ms == mark.sent_at_ms
            && current.owner.as_ref().map(|o| &o.id) == mark.owner.as_ref().map(|o| &o.id);
        if !ours {
            return;
        }
        let mut claim = self.entry.clone();
        claim.updated_at_ms = self.ledger.now_ms();
        match store.replace(&self.key, &claim, &version).await {
            Ok(Write::Written(version)) => {
                tracing::info!(input = %mark.label, "a sending mark whose answer was lost was taken back: nothing was sent");
                self.entry = claim;
                self.version = version;
            }
            Ok(Write::Conflict) => {}
            Err(error) => {
                tracing::warn!(input = %mark.label, error = %error, "cannot take back a sending mark whose answer was lost")
            }
        }
    }

    /// Records a create's answer after [`mark_sending`](Self::mark_sending): `created`, or the
    /// failure by its recovery. When the store fails, the ticket still remembers the task id,
    /// so the next step records it.
    pub async fn record_create(
        &mut self,
        answer: &Result<String, Error>,
    ) -> Result<(), LedgerError> {
        if self.entry.stage != Stage::Sending {
            return Err(self.out_of_order(Stage::Created));
        }
        match answer {
            Ok(task_id) => {
                let mut next = self.entry.clone();
                next.stage = Stage::Created;
                next.task_id = Some(task_id.clone());
                next.tasks_created = next.tasks_created.saturating_add(1);
                let written = self.write(next.clone()).await;
                if written.is_err() {
                    self.entry = next;
                }
                written
            }
            Err(error) => {
                let failure = Failure::from_error(error, None);
                if matches!(failure.recovery, Recovery::Retry | Recovery::Permanent) {
                    // The answer refused the create: it cannot have made a task.
                    self.entry.creates_sent = self.entry.creates_sent.saturating_sub(1);
                }
                self.fail(failure).await
            }
        }
    }

    /// Records an error met while creating, waiting or downloading, by its [`Recovery`]:
    /// `retry` and `permanent` → failed, `resume` → still created (released, to be resumed),
    /// `unconfirmed` → unconfirmed, `results_lost` → expired.
    pub async fn fail_with(&mut self, error: &Error) -> Result<(), LedgerError> {
        let failure = Failure::from_error(error, self.entry.task_id.as_deref());
        self.fail(failure).await
    }

    /// Records `failure` by its recovery (see [`fail_with`](Self::fail_with)).
    pub async fn fail(&mut self, failure: Failure) -> Result<(), LedgerError> {
        let mut next = self.entry.clone();
        next.owner = None;
        next.stage = match failure.recovery {
            Recovery::Resume if next.task_id.is_some() => Stage::Created,
            Recovery::Resume | Recovery::Retry | Recovery::Permanent => Stage::Failed,
            Recovery::Unconfirmed => Stage::Unconfirmed,
            Recovery::ResultsLost => Stage::Expired,
        };
        let mut failure = failure;
        if failure.recovery == Recovery::Resume && next.stage == Stage::Failed {
            failure.recovery = Recovery::Retry;
        }
        next.failure = Some(failure);
        self.write(next).await
    }

    /// Records the outputs: the input is done.
    pub async fn done(&mut self, outputs: Vec<String>, credits: u32) -> Result<(), LedgerError> {
        if self.entry.task_id.is_none() {
            return Err(self.out_of_order(Stage::Done));
        }
        let mut next = self.entry.clone();
        next.stage = Stage::Done;
        next.owner = None;
        next.outputs = outputs;
        next.credits = credits;
        next.failure = None;
        self.write(next).await
    }

    /// Stops owning the input, leaving its stage as it is (a created task can then be resumed
    /// by anyone at once, without waiting for this owner's lease).
    pub async fn release(&mut self) -> Result<(), LedgerError> {
        let mut next = self.entry.clone();
        next.owner = None;
        self.write(next).await
    }

    /// Writes `next` on the version this ticket holds; a lost race is read again and
    /// reconciled, never overwritten.
    async fn write(&mut self, mut next: Entry) -> Result<(), LedgerError> {
        let store = &self.ledger.store;
        next.updated_at_ms = self.ledger.now_ms();
        if let Write::Written(version) = store.replace(&self.key, &next, &self.version).await? {
            self.entry = next;
            self.version = version;
            return Ok(());
        }
        let conflict = |current: Option<&Entry>| LedgerError::Conflict {
            label: next.label.clone(),
            stage: current.map_or(Stage::Claimed, |c| c.stage),
            owner: current
                .and_then(|c| c.owner.as_ref())
                .map_or_else(|| "none".to_owned(), |o| o.id.clone()),
        };
        let Some((current, version)) = store.load(&self.key).await? else {
            return Err(conflict(None));
        };
        match reconcile(&current, &next) {
            Reconciled::AlreadyThere => {
                self.entry = current;
                self.version = version;
                Ok(())
            }
            Reconciled::Write(merged) => match store.replace(&self.key, &merged, &version).await? {
                Write::Written(version) => {
                    tracing::info!(input = %merged.label, stage = %merged.stage, "ledger entry reconciled with another owner's");
                    self.entry = *merged;
                    self.version = version;
                    Ok(())
                }
                Write::Conflict => Err(conflict(Some(&current))),
            },
            Reconciled::Conflict => {
                tracing::warn!(input = %current.label, found = %current.stage, owner = ?current.owner, ours = %next.stage, "ledger entry taken by another owner");
                Err(conflict(Some(&current)))
            }
        }
    }

    fn out_of_order(&self, to: Stage) -> LedgerError {
        LedgerError::OutOfOrder {
            label: self.entry.label.clone(),
            from: self.entry.stage,
            to,
        }
    }

    /// The owner holding the ticket.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }
}

impl<T: LedgerStore> LedgerStore for &T {
    type Version = T::Version;

    async fn load(&self, key: &InputKey) -> Result<Option<(Entry, Self::Version)>, StoreError> {
        (**self).load(key).await
    }

    async fn insert(
        &self,
        key: &InputKey,
        entry: &Entry,
    ) -> Result<Write<Self::Version>, StoreError> {
        (**self).insert(key, entry).await
    }

    async fn replace(
        &self,
        key: &InputKey,
        entry: &Entry,
        expected: &Self::Version,
    ) -> Result<Write<Self::Version>, StoreError> {
        (**self).replace(key, entry, expected).await
    }
}

impl<T: LedgerStore> LedgerStore for Arc<T> {
    type Version = T::Version;

    async fn load(&self, key: &InputKey) -> Result<Option<(Entry, Self::Version)>, StoreError> {
        (**self).load(key).await
    }

    async fn insert(
        &self,
        key: &InputKey,
        entry: &Entry,
    ) -> Result<Write<Self::Version>, StoreError> {
        (**self).insert(key, entry).await
    }

    async fn replace(
        &self,
        key: &InputKey,
        entry: &Entry,
        expected: &Self::Version,
    ) -> Result<Write<Self::Version>, StoreError> {
        (**self).replace(key, entry, expected).await
    }
}
