//! One key, one budget, however many processes use it: a request budget shared through a store
//! (a DynamoDB item for Lambda instances and a CLI run beside them), so that together they never
//! exceed the key's rate limit.
//!
//! The algorithm is written once, here ([`SharedRateBudget`]): a cell rate algorithm (GCRA)
//! over one record holding the next free send time. A holder reserves the next slots with one
//! atomic step of the store — `next_at += count × interval` while `next_at` is not in the past —
//! so at saturation a reservation costs one store call; after an idle spell a second call
//! restarts the clock, ahead of now by as much as the store's round trip exceeds how late a slot
//! may be used (so that the slot has not passed by the time the answer arrives). Slots are
//! spaced by `(window + margin) / max_requests`: no window of the key's length ever holds more
//! than `max_requests` requests, whoever sends them. A 429
//! seen by anyone moves `next_at` (and `paused_until`) past the pause: every holder's next
//! reservation comes after it.
//!
//! **Batches.** A holder with several requests worth sending reserves up to
//! [`max_batch`] slots at once: as many as fit in [`BATCH_SPAN`] of the key's time (one up to
//! QPS 20, two at 30, four at 50). At QPS 50 and 20 instances that makes one item written ~15
//! times a second instead of 50. A slot reserved and then not used is lost to every holder (never
//! given twice), so a batch spans no more than a holder surely uses.
//!
//! **A failed store call** (a throttled or lost write) is tried again, up to four calls per
//! reservation; a write that happened but whose answer was lost only wastes its slots. Only when
//! every try fails does the client fall back to its static share. That fallback is safe when the
//! store fails for every holder; a holder falling back alone adds its share to a budget the
//! others still use whole, which is why one failed call must not trigger it (on a paused clock,
//! 20 holders at QPS 50 over a store failing 1 % of calls drew 9,673 refusals when they fell
//! back on the first failure, none since), and why a 429 still pauses everyone.
//!
//! A [`BudgetStore`] only provides the three atomic steps ([`MemoryBudgetStore`] in memory; the
//! `backdrop-budget-dynamodb` crate over DynamoDB). A [`Client`](crate::Client) configured with a
//! shared budget ([`ClientConfigBuilder::shared_budget`](crate::ClientConfigBuilder::shared_budget))
//! asks it for every request its scheduler grants; when the store fails, the client falls back
//! to a static share of the key and says so in its log, then tries the store again a little
//! later.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::rate_limit::RateLimit;

/// A boxed future, as the object-safe traits of this module return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A budget store could not be reached or refused a call.
#[derive(Debug, thiserror::Error)]
#[error("the shared request budget cannot be used: {message}")]
pub struct BudgetError {
    message: String,
}

impl BudgetError {
    /// An error saying what failed and what to do.
    pub fn new(message: impl Into<String>) -> Self {
        BudgetError {
            message: message.into(),
        }
    }
}

/// The shared record, as a store step leaves it (unix milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BudgetState {
    /// The send time the next reservation starts from.
    pub next_at_ms: u64,
    /// No request may be sent before this (a 429 seen by a holder); 0 when none.
    pub paused_until_ms: u64,
}

/// The three atomic steps a shared budget needs from its store: one record per key.
pub trait BudgetStore: Send + Sync + fmt::Debug {
    /// If the record exists and its `next_at` is at or after `not_before_ms`, adds
    /// `interval_ms` to it atomically and returns the record after; else (`next_at` in the past,
    /// or no record) changes nothing and returns `None`.
    fn advance(
        &self,
        interval_ms: u64,
        not_before_ms: u64,
    ) -> BoxFuture<'_, Result<Option<BudgetState>, BudgetError>>;

    /// If the record is missing or its `next_at` is before `now_ms`, sets `next_at` to
    /// `now_ms + interval_ms` atomically and returns the record after; else (someone moved it
    /// meanwhile) changes nothing and returns `None`.
    fn restart(
        &self,
        now_ms: u64,
        interval_ms: u64,
    ) -> BoxFuture<'_, Result<Option<BudgetState>, BudgetError>>;

    /// Raises `paused_until` and `next_at` to `until_ms` where they are lower (atomically).
    fn pause(&self, until_ms: u64) -> BoxFuture<'_, Result<(), BudgetError>>;
}

impl<T: BudgetStore + ?Sized> BudgetStore for std::sync::Arc<T> {
    fn advance(
        &self,
        interval_ms: u64,
        not_before_ms: u64,
    ) -> BoxFuture<'_, Result<Option<BudgetState>, BudgetError>> {
        (**self).advance(interval_ms, not_before_ms)
    }

    fn restart(
        &self,
        now_ms: u64,
        interval_ms: u64,
    ) -> BoxFuture<'_, Result<Option<BudgetState>, BudgetError>> {
        (**self).restart(now_ms, interval_ms)
    }

    fn pause(&self, until_ms: u64) -> BoxFuture<'_, Result<(), BudgetError>> {
        (**self).pause(until_ms)
    }
}

/// Slots reserved in one call: `count` send times, the first `first` from the answer, the
/// others each `spacing` after the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    /// How long from the answer until the first slot (zero: now).
    pub first: Duration,
    /// The time between two slots.
    pub spacing: Duration,
    /// How many slots (at least one).
    pub count: u32,
    /// How late a slot may still be used; a slot missed by more is left unused.
    pub late: Duration,
}

impl Slots {
    /// The send times of the slots, counted from `answered` (when the reservation came back).
    pub fn slots(
        &self,
        answered: tokio::time::Instant,
    ) -> impl Iterator<Item = tokio::time::Instant> {
        let (first, spacing) = (answered + self.first, self.spacing);
        (0..self.count).map(move |n| first + spacing * n)
    }
}

/// What a client asks of a shared budget.
pub trait SharedBudget: Send + Sync + fmt::Debug {
    /// Reserves the slots of up to `count` requests (at least one; fewer when some passed while
    /// the store answered).
    fn reserve(&self, count: u32) -> BoxFuture<'_, Result<Slots, BudgetError>>;

    /// Tells every holder that the service answered 429: nobody sends for `pause` from now.
    fn pause_for(&self, pause: Duration) -> BoxFuture<'_, Result<(), BudgetError>>;
}

/// The time, in unix milliseconds, as a shared budget reads it.
pub trait BudgetClock: Send + Sync + fmt::Debug {
    /// Now, in unix milliseconds.
    fn now_ms(&self) -> u64;
}

/// The system's clock (processes sharing a budget keep theirs in step with NTP).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemBudgetClock;

impl BudgetClock for SystemBudgetClock {
    fn now_ms(&self) -> u64 {
        unix_ms_now()
    }
}

#[cfg(any(test, feature = "test-support"))]
/// A clock that follows tokio's (paused in tests): `start_ms` when made, then tokio's time.
#[derive(Debug, Clone, Copy)]
pub struct TokioBudgetClock {
    start_ms: u64,
    start: tokio::time::Instant,
}

#[cfg(any(test, feature = "test-support"))]
impl TokioBudgetClock {
    /// A clock that reads `start_ms` now.
    pub fn starting_at(start_ms: u64) -> Self {
        TokioBudgetClock {
            start_ms,
            start: tokio::time::Instant::now(),
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
impl BudgetClock for TokioBudgetClock {
    fn now_ms(&self) -> u64 {
        self.start_ms
            .saturating_add(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
}

/// The key's budget shared through a [`BudgetStore`]: see the module's documentation.
#[derive(Debug)]
pub struct SharedRateBudget<S, C = SystemBudgetClock> {
    store: S,
    clock: C,
    interval_ms: u64,
    /// How late a slot may still be used: the margin's share of one slot. A slot found further
    /// in the past once the store answered (a slow call) is left unused, since a request sent
    /// that late could land within a window of the next holder's.
    late_ms: u64,
    /// The store's round trip, smoothed (milliseconds): how far ahead of now a restart puts its
    /// first slot.
    round_trip_ms: AtomicU64,
}

/// Store calls a reservation may make before giving up: races with other holders on a restart
/// and failed calls (a throttled write) both take one.
const MAX_RESERVE_ATTEMPTS: u32 = 4;

/// The most of the key's time one reservation covers: a holder reserves at most as many slots
/// as fit in it (and at least one). 100 ms is about five DynamoDB round trips: long enough to
/// spare the store at a high QPS, short enough that a holder surely uses what it holds.
pub const BATCH_SPAN: Duration = Duration::from_millis(100);

/// The most slots one reservation takes for the key `limit`: as many as fit in
/// [`BATCH_SPAN`], at least one (1 up to QPS 20, 2 at QPS 30, 4 at QPS 50).
pub fn max_batch(limit: RateLimit) -> u32 {
    let span = u64::try_from(BATCH_SPAN.as_millis()).unwrap_or(u64::MAX);
    u32::try_from(span / slot_interval_ms(limit))
        .unwrap_or(u32::MAX)
        .max(1)
}

/// The longest lead a restart takes, whatever the store's round trips were.
const MAX_RESTART_LEAD_MS: u64 = 1_000;

impl<S: BudgetStore> SharedRateBudget<S> {
    /// The budget of `limit` (the key's, not a share of it) over `store`.
    pub fn new(store: S, limit: RateLimit) -> Self {
        SharedRateBudget::with_clock(store, limit, SystemBudgetClock)
    }
}

impl<S: BudgetStore, C: BudgetClock> SharedRateBudget<S, C> {
    /// The same, reading time from `clock`.
    pub fn with_clock(store: S, limit: RateLimit, clock: C) -> Self {
        let late = limit.margin.as_millis() / u128::from(limit.max_requests.max(1));
        SharedRateBudget {
            store,
            clock,
            interval_ms: slot_interval_ms(limit),
            late_ms: u64::try_from(late).unwrap_or(u64::MAX).max(1),
            round_trip_ms: AtomicU64::new(0),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Folds one store call's round trip into the estimate (a quarter of the new one).
    fn round_trip(&self, started_ms: u64) {
        let took = self.clock.now_ms().saturating_sub(started_ms);
        let old = self.round_trip_ms.load(Ordering::Relaxed);
        let new = if old == 0 { took } else { (3 * old + took) / 4 };
        self.round_trip_ms.store(new, Ordering::Relaxed);
    }

    /// One reservation attempt: advance past `count` slots, or restart the clock a round trip
    /// ahead; the first slot's time and how many slots, or `None` when it raced.
    async fn attempt(&self, count: u32) -> Result<Option<(u64, u32)>, BudgetError> {
        let span = self.interval_ms.saturating_mul(u64::from(count));
        let now = self.clock.now_ms();
        let advanced = self.store.advance(span, now).await;
        self.round_trip(now);
        let state = match advanced? {
            Some(state) => state,
            None => {
                // Far enough ahead that the answer, twice the round trip away, finds the first
                // slot still usable (a slot may be used up to `late_ms` after its time).
                let lead = self
                    .round_trip_ms
                    .load(Ordering::Relaxed)
                    .saturating_mul(2)
                    .saturating_sub(self.late_ms)
                    .min(MAX_RESTART_LEAD_MS);
                let now = self.clock.now_ms();
                let restarted = self.store.restart(now.saturating_add(lead), span).await;
                self.round_trip(now);
                match restarted? {
                    Some(state) => state,
                    None => return Ok(None),
                }
            }
        };
        let first = state.next_at_ms.saturating_sub(span);
        Ok(Some(self.unpaused(first, state, count)))
    }

    /// The slots from `first` on that fall after a pause in `state`.
    fn unpaused(&self, first: u64, state: BudgetState, count: u32) -> (u64, u32) {
        if state.paused_until_ms <= first {
            return (first, count);
        }
        let skipped = state
            .paused_until_ms
            .saturating_sub(first)
            .div_ceil(self.interval_ms);
        let skipped = u32::try_from(skipped).unwrap_or(u32::MAX);
        let first = first.saturating_add(u64::from(skipped).saturating_mul(self.interval_ms));
        (first, count.saturating_sub(skipped))
    }

    async fn reserve_slots(&self, count: u32) -> Result<Slots, BudgetError> {
        let count = count.max(1);
        let mut last_error = None;
        for _ in 0..MAX_RESERVE_ATTEMPTS {
            let (first, count) = match self.attempt(count).await {
                Ok(Some(slots)) => slots,
                Ok(None) => continue,
                // A throttled or lost write: its slots (if it happened) are merely wasted.
                Err(error) => {
                    last_error = Some(error);
                    continue;
                }
            };
            // The slots still usable, counted from now as this clock reads it after the answer.
            let after = self.clock.now_ms();
            let late = after.saturating_sub(self.late_ms);
            let passed = late.saturating_sub(first).div_ceil(self.interval_ms);
            let passed = u32::try_from(passed).unwrap_or(u32::MAX);
            if passed < count {
                let first = first.saturating_add(u64::from(passed) * self.interval_ms);
                return Ok(Slots {
                    first: Duration::from_millis(first.saturating_sub(after)),
                    spacing: Duration::from_millis(self.interval_ms),
                    count: count - passed,
                    late: Duration::from_millis(self.late_ms),
                });
            }
        }
        Err(last_error.unwrap_or_else(|| {
            BudgetError::new(format!(
                "{MAX_RESERVE_ATTEMPTS} reservations in a row raced with other holders"
            ))
        }))
    }
}

impl<S: BudgetStore, C: BudgetClock> SharedBudget for SharedRateBudget<S, C> {
    fn reserve(&self, count: u32) -> BoxFuture<'_, Result<Slots, BudgetError>> {
        Box::pin(self.reserve_slots(count))
    }

    fn pause_for(&self, pause: Duration) -> BoxFuture<'_, Result<(), BudgetError>> {
        let until = self
            .clock
            .now_ms()
            .saturating_add(u64::try_from(pause.as_millis()).unwrap_or(u64::MAX));
        self.store.pause(until)
    }
}

/// The spacing of shared slots: `(window + margin) / max_requests`, in milliseconds (rounded
/// up): `max_requests + 1` slots span more than the window.
pub fn slot_interval_ms(limit: RateLimit) -> u64 {
    let span = limit.window + limit.margin;
    let ms = span
        .as_millis()
        .div_ceil(u128::from(limit.max_requests.max(1)));
    u64::try_from(ms).unwrap_or(u64::MAX).max(1)
}

/// A [`BudgetStore`] in memory, every step atomic under one lock: for one process's tests and
/// for the race tests of the algorithm.
#[derive(Debug, Default)]
pub struct MemoryBudgetStore {
    record: Mutex<Option<BudgetState>>,
}

impl MemoryBudgetStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<BudgetState>> {
        self.record
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl BudgetStore for MemoryBudgetStore {
    fn advance(
        &self,
        interval_ms: u64,
        not_before_ms: u64,
    ) -> BoxFuture<'_, Result<Option<BudgetState>, BudgetError>> {
        let mut record = self.lock();
        let result = match record.as_mut() {
            Some(state) if state.next_at_ms >= not_before_ms => {
                state.next_at_ms += interval_ms;
                Some(*state)
            }
            _ => None,
        };
        Box::pin(std::future::ready(Ok(result)))
    }

    fn restart(
        &self,
        now_ms: u64,
        interval_ms: u64,
    ) -> BoxFuture<'_, Result<Option<BudgetState>, BudgetError>> {
        let mut record = self.lock();
        let result = match record.as_mut() {
            Some(state) if state.next_at_ms >= now_ms => None,
            Some(state) => {
                state.next_at_ms = now_ms + interval_ms;
                Some(*state)
            }
            None => {
                let state = BudgetState {
                    next_at_ms: now_ms + interval_ms,
                    paused_until_ms: 0,
                };
                *record = Some(state);
                Some(state)
            }
        };
        Box::pin(std::future::ready(Ok(result)))
    }

    fn pause(&self, until_ms: u64) -> BoxFuture<'_, Result<(), BudgetError>> {
        let mut record = self.lock();
        let state = record.get_or_insert_with(BudgetState::default);
        state.paused_until_ms = state.paused_until_ms.max(until_ms);
        state.next_at_ms = state.next_at_ms.max(until_ms);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Now, in unix milliseconds.
fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const T0: u64 = 1_800_000_000_000;

    fn budget() -> Arc<SharedRateBudget<Arc<MemoryBudgetStore>, TokioBudgetClock>> {
        Arc::new(SharedRateBudget::with_clock(
            Arc::new(MemoryBudgetStore::new()),
            RateLimit::per_second(2),
            TokioBudgetClock::starting_at(T0),
        ))
    }

    /// `holders` tasks each sending `each` requests through one shared budget (each holder a
    /// process of its own: its own clock reading, the same store); returns the send times.
    async fn run(
        holders: usize,
        each: usize,
        budget: &Arc<SharedRateBudget<Arc<MemoryBudgetStore>, TokioBudgetClock>>,
    ) -> Vec<u64> {
        let sends = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..holders)
            .map(|h| {
                let (budget, sends) = (budget.clone(), sends.clone());
                tokio::spawn(async move {
                    for i in 0..each {
                        // Holders come and go at their own pace.
                        tokio::time::sleep(Duration::from_millis(((h * 37 + i * 11) % 90) as u64))
                            .await;
                        let wait = budget.reserve(1).await.unwrap();
                        assert_eq!(wait.count, 1);
                        tokio::time::sleep(wait.first).await;
                        sends.lock().unwrap().push(budget.clock.now_ms());
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
        let mut sends = sends.lock().unwrap().clone();
        sends.sort_unstable();
        sends
    }

    #[tokio::test(start_paused = true)]
    async fn holders_together_never_exceed_the_key_in_any_window() {
        for holders in [2, 3, 7] {
            let budget = budget();
            let sends = run(holders, 20, &budget).await;
            assert_eq!(sends.len(), holders * 20);
            for pair in sends.windows(3) {
                assert!(pair[2] - pair[0] > 1_000, "{holders} holders: {pair:?}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_holder_gets_the_whole_key() {
        let budget = budget();
        let sends = run(1, 60, &budget).await;
        let seconds = (sends[59] - sends[0]) as f64 / 1000.0;
        let rate = 59.0 / seconds;
        assert!(rate >= 1.8, "{rate:.2} requests/s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_every_holder() {
        let budget = budget();
        run(3, 3, &budget).await;
        let until = budget.clock.now_ms() + 5_000;
        budget.pause_for(Duration::from_secs(5)).await.unwrap();
        let sends = run(3, 2, &budget).await;
        assert!(
            sends.iter().all(|at| *at >= until),
            "{sends:?} before {until}"
        );
    }

    #[test]
    fn slots_are_spaced_by_the_window_and_margin() {
        assert_eq!(slot_interval_ms(RateLimit::per_second(2)), 525);
        assert_eq!(slot_interval_ms(RateLimit::per_second(3)), 350);
    }
}
