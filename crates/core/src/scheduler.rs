//! The request scheduler: every API request of a client — creates, polls, one-off queries and
//! retries, from every task and thread — waits here for a share of the key's budget.
//!
//! Waiters do not sleep on timers of their own. Whenever the rate limiter has room, one waiter
//! (the *arbiter*, whichever holds the turnstile) looks at everyone waiting and grants the
//! request worth most now:
//! - one-off queries and retries first;
//! - creates while fewer tasks are running than the key can keep busy (Little's law, from the
//!   key's rate and the processing times seen: [`Scheduler::in_flight_limit`]), within the
//!   caller's cap;
//! - polls by [`PollPolicy`]: the spec's fixed interval, or (adaptive) by the probability that
//!   the task finished since its last poll ([`TaskForecast::poll_value`]), so polls land soon
//!   after tasks are likely done and few are spent on tasks that surely still run. Budget nobody
//!   else wants is spent on polls that are worth little (and no task then goes longer than the
//!   documented interval unpolled), which lowers detection delay when the client is not busy.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::budget::SharedBudget;
use crate::config::ExpectedProcessing;
use crate::forecast::{DurationModel, TaskForecast};
use crate::rate_limit::{RateLimit, RateLimiter};
use crate::spec;

/// How the polls of a waiting task are planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PollPolicy {
    /// From what is known: processing times seen so far, the task's state and progress.
    #[default]
    Adaptive,
    /// The spec's flow: poll each task every `poll_interval` (1 s).
    Documented,
}

/// What a waiter wants to send.
#[derive(Debug, Clone)]
pub(crate) enum Want {
    /// A one-off query or a retry: first in line.
    Query,
    /// A create (bounded by the in-flight limit).
    Create,
    /// A poll of a task being waited on.
    Poll {
        forecast: TaskForecast,
        policy: PollPolicy,
        interval: Duration,
    },
}

/// How much longer than the 95th percentile of its processing a task is counted in flight
/// (Little's law's W): the wait until a poll sees it done — long at saturation, where polls wait
/// until they are nearly sure — and the tail beyond the 95th percentile. Chosen with the
/// simulation's sweep (`in_flight_sweep`).
const IN_FLIGHT_HEADROOM: f64 = 2.0;
/// Tasks in flight the limit never goes below: a slow key still keeps a few running.
const MIN_IN_FLIGHT: usize = 8;

/// How many tasks keep the key `limit` busy when they take `expected` to process: the number a
/// client's scheduler starts from before it has seen any task (it then follows the processing
/// times it sees), within [`MAX_IN_FLIGHT`](crate::MAX_IN_FLIGHT). For sizing what holds the
/// tasks — the Lambda's instances and batches, a caller's worker pool.
///
/// ```
/// use backdrop_core::{ExpectedProcessing, RateLimit, tasks_in_flight};
///
/// let typical = ExpectedProcessing::TYPICAL;
/// assert_eq!(tasks_in_flight(RateLimit::per_second(2), typical), 60);
/// assert_eq!(tasks_in_flight(RateLimit::per_second(50), typical), 1_500);
/// ```
pub fn tasks_in_flight(limit: RateLimit, expected: ExpectedProcessing) -> usize {
    little_in_flight(token_interval(limit), expected.p95).min(crate::MAX_IN_FLIGHT)
}

/// The interval between two of the key's requests at its full rate (the margin aside).
fn token_interval(limit: RateLimit) -> Duration {
    limit.window / limit.max_requests.max(1)
}

/// Little's law (L = λ·W) for a key granting a request every `token_interval`: λ is its task
/// rate — every task takes at least a create and a poll, so half its requests per second — and
/// W `in_flight` (the time until processing starts plus its 95th percentile) times
/// [`IN_FLIGHT_HEADROOM`]; at least [`MIN_IN_FLIGHT`].
fn little_in_flight(token_interval: Duration, in_flight: Duration) -> usize {
    let tasks_per_second = 0.5 / token_interval.as_secs_f64().max(1e-9);
    let little = tasks_per_second * in_flight.as_secs_f64() * IN_FLIGHT_HEADROOM;
    // Rounded up, but not for the nanoseconds a third of a second loses as a Duration.
    let little = (little * (1.0 - 1e-9)).ceil();
    // `as` saturates: a model gone wild still gives a number, bounded by the caller.
    (little as usize).max(MIN_IN_FLIGHT)
}

/// At saturation — creates waiting for the budget — a poll's real cost is the create it
/// displaces, so polls are sent later and surer: a poll forecast from progress must be this
/// likely to find the task done (progress predicts the end closely, so it lands just after it)…
const BUSY_POLL_THRESHOLD: f64 = 0.9;
/// …the first poll of a task forecast from the duration model alone this likely (polled around
/// the model's 85th percentile it is found done at once most of the time, one request in all;
/// otherwise its progress places the next poll)…
const BUSY_BLIND_POLL_THRESHOLD: f64 = 0.85;
/// …and a later poll of a task that shows no progress (a service that withholds it) this likely.
const BUSY_BLIND_REPOLL_THRESHOLD: f64 = 0.9;
/// With nothing else wanting the budget, spare budget buys latency: a poll of a task whose end
/// progress predicts must be this likely to find it done (not polls that surely find it
/// running)…
const IDLE_PROGRESS_POLL_THRESHOLD: f64 = 0.2;
/// …and any other poll this likely (and then at least every `poll_interval`).
const IDLE_POLL_THRESHOLD: f64 = 0.01;
/// Creates waiting for the budget at which polls pay the full price: in between, the thresholds
/// move from the idle ones to the busy ones with the backlog, so a lone create barely delays a
/// poll while a batch's queue of creates makes every poll count.
const BACKLOG_FOR_FULL_PRICE: f64 = 8.0;
/// What a create is worth next to a poll.
const CREATE_VALUE: f64 = 0.3;
/// How often an idle arbiter looks again (forecasts change with time), in budget slots…
const TICKS_PER_SLOT: u32 = 4;
/// …and at most.
const MAX_TICK: Duration = Duration::from_millis(20);

#[derive(Debug)]
struct Waiter {
    id: u64,
    want: Want,
    since: Instant,
    grant: Option<oneshot::Sender<()>>,
}

#[derive(Debug)]
struct Queue {
    next_id: u64,
    waiters: Vec<Waiter>,
    /// Creates granted and not yet answered.
    creating: usize,
    /// Tasks this client created, with when, until their wait ends.
    created: HashMap<String, Instant>,
    model: DurationModel,
}

/// How long a client runs on its static share after a shared budget failed, before it asks the
/// store again.
const SHARED_RETRY_AFTER: Duration = Duration::from_secs(30);

/// A budget shared with other processes, and what to do when it fails.
#[derive(Debug)]
struct Shared {
    budget: Arc<dyn SharedBudget>,
    /// This process's static share of the key, used while the shared budget fails.
    fallback: RateLimiter,
    /// Until when the fallback is in force.
    failing_until: Mutex<Option<Instant>>,
    /// Slots reserved and not used yet: when each may be used, and how late it still may.
    slots: Mutex<VecDeque<(Instant, Duration)>>,
    /// The most slots one reservation takes ([`crate::budget::max_batch`] of the key).
    max_batch: u32,
}

impl Shared {
    /// The next reserved slot not yet missed, dropping those missed.
    fn next_slot(&self, now: Instant) -> Option<Instant> {
        let mut slots = self.lock_slots();
        while let Some(&(at, late)) = slots.front() {
            if at + late >= now {
                return Some(at);
            }
            slots.pop_front();
        }
        None
    }

    /// The slot at the front was used (or passed unused).
    fn slot_spent(&self) {
        self.lock_slots().pop_front();
    }

    /// Keeps the slots of a reservation answered at `answered`.
    fn hold(&self, answered: Instant, slots: crate::budget::Slots) {
        self.lock_slots()
            .extend(slots.slots(answered).map(|at| (at, slots.late)));
    }

    /// Drops the slots held (a pause began, or the budget failed).
    fn drop_slots(&self) {
        self.lock_slots().clear();
    }

    fn lock_slots(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, Duration)>> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn failing(&self, now: Instant) -> bool {
        self.failing_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some_and(|until| now < until)
    }

    fn fail(&self, now: Instant, error: &crate::budget::BudgetError) {
        let mut until = self
            .failing_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if until.is_none_or(|at| now >= at) {
            tracing::warn!(
                error = %error,
                retry_in_s = SHARED_RETRY_AFTER.as_secs(),
                "the shared request budget failed: this process uses its static share of the key meanwhile"
            );
        }
        *until = Some(now + SHARED_RETRY_AFTER);
        drop(until);
        self.drop_slots();
    }
}

/// The scheduler of one client.
#[derive(Debug)]
pub(crate) struct Scheduler {
    limiter: RateLimiter,
    shared: Option<Shared>,
    turnstile: tokio::sync::Mutex<()>,
    queue: Mutex<Queue>,
    changed: Notify,
    /// The caller's cap on tasks in flight ([`crate::MAX_IN_FLIGHT`] unless set lower).
    in_flight_cap: usize,
    /// The interval between two requests at the full rate.
    token_interval: Duration,
    /// How long an arbiter with nothing worth a request waits before looking again.
    tick: Duration,
}

impl Scheduler {
    #[cfg(test)]
    pub(crate) fn new(limit: RateLimit, in_flight_cap: usize, prior: ExpectedProcessing) -> Self {
        Self::with_shared(limit, in_flight_cap, prior, None)
    }

    /// A scheduler whose grants also come from a budget shared with other processes, with the
    /// static share to fall back on when it fails.
    pub(crate) fn with_shared(
        limit: RateLimit,
        in_flight_cap: usize,
        prior: ExpectedProcessing,
        shared: Option<(Arc<dyn SharedBudget>, RateLimit)>,
    ) -> Self {
        let token_interval = token_interval(limit);
        Scheduler {
            shared: shared.map(|(budget, fallback)| Shared {
                budget,
                fallback: RateLimiter::new(fallback),
                failing_until: Mutex::new(None),
                slots: Mutex::new(VecDeque::new()),
                max_batch: crate::budget::max_batch(limit),
            }),
            token_interval,
            tick: (token_interval / TICKS_PER_SLOT).clamp(Duration::from_millis(1), MAX_TICK),
            limiter: RateLimiter::new(limit),
            turnstile: tokio::sync::Mutex::new(()),
            queue: Mutex::new(Queue {
                next_id: 0,
                waiters: Vec::new(),
                creating: 0,
                created: HashMap::new(),
                model: DurationModel::with_prior(prior.median, prior.p95),
            }),
            changed: Notify::new(),
            in_flight_cap: in_flight_cap.max(1),
        }
    }

    pub(crate) fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// Waits until this request is granted a share of the budget (and records it as sent).
    pub(crate) async fn turn(&self, want: Want) {
        let (grant, mut granted) = oneshot::channel();
        let id = {
            let mut queue = self.lock();
            let id = queue.next_id;
            queue.next_id += 1;
            queue.waiters.push(Waiter {
                id,
                want,
                since: Instant::now(),
                grant: Some(grant),
            });
            id
        };
        // Removes the waiter if this future is dropped before its grant.
        let _registration = Registration {
            scheduler: self,
            id,
        };
        self.changed.notify_one();
        tokio::select! {
            biased;
            _ = &mut granted => {}
            _turn = self.turnstile.lock() => {
                if granted.try_recv().is_err() {
                    self.arbitrate(id).await;
                }
            }
        }
    }

    /// Grants requests, one per budget slot, until this arbiter's own request is granted. With a
    /// shared budget each grant also takes a slot of it (reserved only when a request is worth
    /// sending); while it fails, the static share applies instead.
    async fn arbitrate(&self, own: u64) {
        loop {
            let now = Instant::now();
            let failing = self.shared.as_ref().is_some_and(|s| s.failing(now));
            let mut ready = self.limiter.next_ready(now);
            if let (Some(shared), true) = (&self.shared, failing) {
                ready = ready.max(shared.fallback.next_ready(now));
            }
            if ready > now {
                tokio::time::sleep_until(ready).await;
                continue;
            }
            if let (Some(shared), false) = (&self.shared, failing) {
                let worth = self.worth_now(now);
                if worth == 0 {
                    self.idle().await;
                    continue;
                }
                let Some(slot) = shared.next_slot(now) else {
                    // As many slots as requests are worth one now, within the batch.
                    let count = u32::try_from(worth)
                        .unwrap_or(u32::MAX)
                        .min(shared.max_batch);
                    match shared.budget.reserve(count).await {
                        Ok(slots) => shared.hold(Instant::now(), slots),
                        Err(error) => shared.fail(Instant::now(), &error),
                    }
                    continue;
                };
                tokio::time::sleep_until(slot).await;
                shared.slot_spent();
            }
            let now = Instant::now();
            let chosen = self.pick(now);
            match chosen {
                Some(mut waiter) => {
                    // The limiter said there is room: this cannot fail, and if it did the
                    // request would merely wait for the next slot.
                    if self.limiter.try_take(now).is_err() {
                        self.lock().waiters.push(waiter);
                        continue;
                    }
                    if let (Some(shared), true) = (&self.shared, failing) {
                        let _ = shared.fallback.try_take(now);
                    }
                    if matches!(waiter.want, Want::Create) {
                        self.lock().creating += 1;
                    }
                    if waiter.id == own {
                        return;
                    }
                    if let Some(grant) = waiter.grant.take() {
                        let _ = grant.send(());
                    }
                }
                None => self.idle().await,
            }
        }
    }

    /// Waits for a change in the queue, or a tick (forecasts change with time).
    async fn idle(&self) {
        tokio::select! {
            _ = self.changed.notified() => {}
            _ = tokio::time::sleep(self.tick) => {}
        }
    }

    /// The service answered 429: every request of this client waits `pause`, and with a shared
    /// budget every holder's does.
    pub(crate) async fn rate_limited(&self, pause: Duration) {
        self.limiter.rate_limited(pause);
        if let Some(shared) = &self.shared {
            shared.drop_slots();
            if let Err(error) = shared.budget.pause_for(pause).await {
                shared.fail(Instant::now(), &error);
            }
        }
    }

    /// How many waiters are worth a request now.
    fn worth_now(&self, now: Instant) -> usize {
        let queue = self.lock();
        self.valued(&queue, now).1
    }

    /// Removes and returns the request worth most now, if any is worth a request.
    fn pick(&self, now: Instant) -> Option<Waiter> {
        let mut queue = self.lock();
        let cutoff = now.checked_sub(spec::MAX_POLL_DURATION);
        if let Some(cutoff) = cutoff {
            queue.created.retain(|_, at| *at > cutoff);
        }
        let index = self.best(&queue, now)?;
        Some(queue.waiters.swap_remove(index))
    }

    /// The index of the waiter worth most now, if any is worth a request.
    fn best(&self, queue: &Queue, now: Instant) -> Option<usize> {
        self.valued(queue, now).0
    }

    /// The index of the waiter worth most now, if any, and how many are worth a request.
    fn valued(&self, queue: &Queue, now: Instant) -> (Option<usize>, usize) {
        let in_flight = queue.created.len() + queue.creating;
        let limit = self.in_flight_limit(&queue.model);
        // Creates held back by the in-flight limit do not compete for the budget: until a task
        // ends, spare budget is best spent finding out which one did.
        let backlog = if in_flight < limit {
            queue
                .waiters
                .iter()
                .filter(|w| matches!(w.want, Want::Create))
                .count()
        } else {
            0
        };
        let pressure = (backlog as f64 / BACKLOG_FOR_FULL_PRICE).min(1.0);
        let price = |idle: f64, busy: f64| idle + (busy - idle) * pressure;
        let mut best: Option<(usize, f64)> = None;
        let mut worth = 0;
        for (index, waiter) in queue.waiters.iter().enumerate() {
            let waited = (now - waiter.since).as_secs_f64();
            let value = match &waiter.want {
                Want::Query => Some(10.0 + waited),
                Want::Create if in_flight >= limit => None,
                Want::Create => Some(CREATE_VALUE + waited * 1e-3),
                Want::Poll {
                    forecast,
                    policy: PollPolicy::Documented,
                    interval,
                } => {
                    // The first poll is due an interval after creation: counted from then, it
                    // competes fairly with polls that are already late.
                    let due = forecast.last_poll.unwrap_or(forecast.created) + *interval;
                    (due <= now).then(|| 1.0 + (now - due).as_secs_f64())
                }
                Want::Poll {
                    forecast,
                    policy: PollPolicy::Adaptive,
                    interval,
                } => {
                    let gap_ok = forecast
                        .last_poll
                        .is_none_or(|at| now >= at + self.token_interval);
                    let value = forecast.poll_value(now, &queue.model);
                    let threshold = match (forecast.from_progress(), forecast.last_poll) {
                        (true, _) => price(IDLE_PROGRESS_POLL_THRESHOLD, BUSY_POLL_THRESHOLD),
                        (false, Some(_)) => price(IDLE_POLL_THRESHOLD, BUSY_BLIND_REPOLL_THRESHOLD),
                        (false, None) => price(IDLE_POLL_THRESHOLD, BUSY_BLIND_POLL_THRESHOLD),
                    };
                    // With nothing else wanting the budget, no task whose end is not known
                    // closely waits longer than the documented interval between polls.
                    let idle_due = backlog == 0
                        && !forecast.from_progress_rate()
                        && forecast.last_poll.is_none_or(|at| now >= at + *interval);
                    let worth = value >= threshold || idle_due;
                    (gap_ok && worth).then_some(value.max(IDLE_POLL_THRESHOLD))
                }
            };
            if let Some(value) = value {
                worth += 1;
                if best.is_none_or(|(_, v)| value > v) {
                    best = Some((index, value));
                }
            }
        }
        (best.map(|(index, _)| index), worth)
    }

    /// How many tasks may be in flight: as many as keep the key's budget busy
    /// ([`little_in_flight`], W from the processing times seen, the prior until some are),
    /// within the caller's cap. At QPS 2 and the spec's typical tasks (median 10 s, p95 30 s)
    /// that is 60; at QPS 50, 1,500.
    pub(crate) fn in_flight_limit(&self, model: &DurationModel) -> usize {
        little_in_flight(self.token_interval, model.start_offset() + model.p95())
            .min(self.in_flight_cap)
    }

    /// [`in_flight_limit`](Self::in_flight_limit) with the processing times seen so far.
    pub(crate) fn in_flight_limit_now(&self) -> usize {
        self.in_flight_limit(&self.lock().model)
    }

    /// A create's answer came: the task now counts as in flight (or, on failure, nothing does).
    pub(crate) fn create_answered(&self, task_id: Option<&str>) {
        let mut queue = self.lock();
        queue.creating = queue.creating.saturating_sub(1);
        if let Some(task_id) = task_id {
            queue.created.insert(task_id.to_owned(), Instant::now());
        }
        drop(queue);
        self.changed.notify_one();
    }

    /// When a task this client created was created (to forecast from).
    pub(crate) fn created_at(&self, task_id: &str) -> Option<Instant> {
        self.lock().created.get(task_id).copied()
    }

    /// The wait of a task ended; `duration` is its processing time when it succeeded.
    pub(crate) fn task_ended(&self, task_id: &str, duration: Option<Duration>) {
        let mut queue = self.lock();
        queue.created.remove(task_id);
        if let Some(duration) = duration {
            queue.model.observe(duration);
        }
        drop(queue);
        self.changed.notify_one();
    }

    /// Progress was seen to start `offset` after a task's creation.
    pub(crate) fn start_offset_seen(&self, offset: Duration) {
        self.lock().model.observe_start_offset(offset);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Registration<'a> {
    scheduler: &'a Scheduler,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.scheduler.lock().waiters.retain(|w| w.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::budget::BudgetError;
    use crate::forecast::DurationModel;
    use crate::state::TaskState;

    fn scheduler(qps: u32, max_in_flight: usize) -> Arc<Scheduler> {
        Arc::new(Scheduler::new(
            RateLimit::per_second(qps),
            max_in_flight,
            ExpectedProcessing::TYPICAL,
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn every_grant_respects_the_window() {
        let scheduler = scheduler(2, 100);
        let starts = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for i in 0..30 {
            let (scheduler, starts) = (scheduler.clone(), starts.clone());
            handles.push(tokio::spawn(async move {
                let want = if i % 2 == 0 {
                    Want::Create
                } else {
                    Want::Query
                };
                scheduler.turn(want).await;
                starts.lock().unwrap().push(Instant::now());
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
        let mut starts = starts.lock().unwrap().clone();
        starts.sort();
        assert_eq!(starts.len(), 30);
        for pair in starts.windows(3) {
            assert!(pair[2] - pair[0] >= Duration::from_millis(1050), "{pair:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn creates_stop_at_the_in_flight_limit_and_polls_are_not_starved() {
        let scheduler = scheduler(10, 2);
        // Two creates fill the limit.
        scheduler.turn(Want::Create).await;
        scheduler.create_answered(Some("a"));
        scheduler.turn(Want::Create).await;
        scheduler.create_answered(Some("b"));
        let third = {
            let scheduler = scheduler.clone();
            tokio::spawn(async move { scheduler.turn(Want::Create).await })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!third.is_finished(), "a third create must wait for a slot");
        // A poll of a task due long ago still gets through while the create waits.
        let mut forecast = TaskForecast::new(Instant::now() - Duration::from_secs(60));
        forecast.observe(
            Instant::now() - Duration::from_secs(30),
            TaskState::Processing,
            Some(90.0),
        );
        scheduler
            .turn(Want::Poll {
                forecast,
                policy: PollPolicy::Adaptive,
                interval: Duration::from_secs(1),
            })
            .await;
        scheduler.task_ended("a", Some(Duration::from_secs(12)));
        tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .expect("the create goes once a task ended")
            .unwrap();
    }

    #[test]
    fn the_in_flight_limit_follows_the_key_and_the_tasks() {
        let typical = DurationModel::with_prior(Duration::from_secs(10), Duration::from_secs(30));
        let slow = DurationModel::with_prior(Duration::from_secs(20), Duration::from_secs(60));
        let limit = |qps, cap, model: &DurationModel| {
            Scheduler::new(RateLimit::per_second(qps), cap, ExpectedProcessing::TYPICAL)
                .in_flight_limit(model)
        };
        let cap = crate::config::MAX_IN_FLIGHT;
        // One task a second (QPS 2) for 30 s, doubled.
        assert_eq!(limit(2, cap, &typical), 60);
        assert_eq!(limit(10, cap, &typical), 300);
        assert_eq!(limit(50, cap, &typical), 1500);
        assert_eq!(
            limit(2, cap, &slow),
            120,
            "learned slower tasks keep more in flight"
        );
        assert_eq!(limit(50, 100, &typical), 100, "the caller's cap holds");
        assert_eq!(limit(200, cap, &slow), cap, "and the ceiling");
        let quick = DurationModel::with_prior(Duration::from_millis(50), Duration::from_millis(90));
        assert_eq!(
            limit(2, cap, &quick),
            MIN_IN_FLIGHT,
            "a floor for very quick tasks"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn documented_polls_wait_for_their_interval() {
        let scheduler = scheduler(10, 10);
        let mut forecast = TaskForecast::new(Instant::now());
        forecast.observe(Instant::now(), TaskState::Queued, None);
        let start = Instant::now();
        scheduler
            .turn(Want::Poll {
                forecast,
                policy: PollPolicy::Documented,
                interval: Duration::from_secs(1),
            })
            .await;
        let waited = Instant::now() - start;
        assert!(
            waited >= Duration::from_secs(1) && waited < Duration::from_millis(1100),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_waiter_leaves_no_trace() {
        let scheduler = scheduler(1, 1);
        scheduler.turn(Want::Query).await;
        let pending =
            tokio::time::timeout(Duration::from_millis(10), scheduler.turn(Want::Query)).await;
        assert!(pending.is_err());
        assert!(scheduler.lock().waiters.is_empty());
        // The next request still gets the next slot.
        tokio::time::timeout(Duration::from_secs(2), scheduler.turn(Want::Query))
            .await
            .expect("granted");
    }

    /// A shared budget whose store is unreachable until `up_at`, recording when it was asked.
    #[derive(Debug)]
    struct FlakyBudget {
        up_at: Instant,
        asked: Mutex<Vec<Instant>>,
    }

    impl SharedBudget for FlakyBudget {
        fn reserve(
            &self,
            _: u32,
        ) -> crate::budget::BoxFuture<'_, Result<crate::budget::Slots, BudgetError>> {
            let now = Instant::now();
            self.asked.lock().unwrap().push(now);
            let up = now >= self.up_at;
            Box::pin(async move {
                if up {
                    Ok(crate::budget::Slots {
                        first: Duration::ZERO,
                        spacing: Duration::from_millis(525),
                        count: 1,
                        late: Duration::from_millis(25),
                    })
                } else {
                    Err(BudgetError::new("the table is unreachable"))
                }
            })
        }

        fn pause_for(&self, _: Duration) -> crate::budget::BoxFuture<'_, Result<(), BudgetError>> {
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_shared_budget_falls_back_to_the_static_share_then_is_asked_again() {
        let key = RateLimit::per_second(2);
        // A quarter of the key: one request per two windows.
        let fallback = key.share_of(4);
        let start = Instant::now();
        let budget = Arc::new(FlakyBudget {
            up_at: start + Duration::from_secs(20),
            asked: Mutex::new(Vec::new()),
        });
        let shared: Arc<dyn SharedBudget> = budget.clone();
        let scheduler = Scheduler::with_shared(
            key,
            100,
            ExpectedProcessing::TYPICAL,
            Some((shared, fallback)),
        );
        let mut grants = Vec::new();
        while Instant::now() - start < Duration::from_secs(60) {
            scheduler.turn(Want::Query).await;
            grants.push(Instant::now() - start);
        }
        let within = |from: u64, to: u64| {
            grants
                .iter()
                .filter(|at| **at >= Duration::from_secs(from) && **at < Duration::from_secs(to))
                .count()
        };
        // Down: the store is asked once, then left alone for SHARED_RETRY_AFTER while the
        // static share paces the requests (one per 2.05 s).
        let asked = budget.asked.lock().unwrap().clone();
        assert_eq!(asked[0], start);
        assert!(
            asked
                .iter()
                .all(|at| *at == start || *at - start >= SHARED_RETRY_AFTER),
            "{asked:?}"
        );
        let down = within(0, 30);
        assert!((14..=15).contains(&down), "{down} grants in the first 30 s");
        // Asked again after 30 s, the store answers: the whole key again (2 per 1.05 s).
        let up = within(31, 60);
        eprintln!("grants: {down} in 0–30 s (static share), {up} in 31–60 s (the whole key)");
        assert!(up >= 54, "{up} grants from 31 s to 60 s");
    }
}
