//! The key's request budget, shared by every call of one client.
//!
//! A sliding-window limiter: a request may start only when the request `max_requests` places
//! before it started at least `window + margin` ago, so no window of the server's — wherever it
//! starts — sees more than `max_requests`. It only counts: the scheduler
//! ([`crate::scheduler`]) asks it when the next request may start ([`RateLimiter::next_ready`])
//! and takes each slot ([`RateLimiter::try_take`]) for the waiting request worth most. A 429
//! from the server pauses everyone (for its `Retry-After`, when given) and halves the
//! allowance until quiet answers win it back.
//!
//! The margin adapts to the 429s seen: [`RateLimit`] says how.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::spec;
use crate::time_scale::TimeScale;

/// The request budget of one key: at most `max_requests` in any window of `window`.
///
/// The limiter keeps `margin` on top of the window so that network jitter cannot make the server
/// see more requests inside one of its windows than it allows. The margin adapts: while the
/// service answers without a 429 it shrinks by a tenth every ten windows' worth of answers,
/// down to `min_margin`; a 429 puts it back to at least `margin`, twice what it was (at most
/// 4 × `margin`). [`RateLimit::per_second`] starts at 50 ms (4.8 % of a QPS-2 key) with a
/// floor of 10 ms (1 %). On a sped-up clock ([`RateLimit::scaled`]: the emulator, tests) the
/// margin covers this machine's scheduling, which no run of quiet answers predicts, so it stays
/// fixed there, as with [`RateLimit::fixed_margin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub max_requests: u32,
    /// The window.
    pub window: Duration,
    /// Safety margin added to the window between the first and the last request of a burst
    /// (the margin the limiter starts from and comes back to after a 429).
    pub margin: Duration,
    /// The least the margin shrinks to while no 429 is seen; at or above `margin`, the margin
    /// stays fixed.
    pub min_margin: Duration,
}

/// The margin [`RateLimit::per_second`] starts from.
pub const DEFAULT_MARGIN: Duration = Duration::from_millis(50);

/// The least [`RateLimit::per_second`]'s margin shrinks to.
pub const DEFAULT_MIN_MARGIN: Duration = Duration::from_millis(10);

/// The margin shrinks by a tenth after this many windows' worth of answers without a 429 (at
/// QPS 2: every 20 answers, from 50 ms to the 10 ms floor in about 320).
pub const MARGIN_SHRINK_WINDOWS: u64 = 10;

/// After 429s the margin grows to at most this many times its configured value.
pub const MAX_MARGIN_FACTOR: u32 = 4;

impl RateLimit {
    /// `qps` requests per second (the service's unit), with the default margin.
    pub fn per_second(qps: u32) -> Self {
        RateLimit {
            max_requests: qps.max(1),
            window: spec::QPS_WINDOW,
            margin: DEFAULT_MARGIN,
            min_margin: DEFAULT_MIN_MARGIN,
        }
    }

    /// One holder's static share when `holders` processes use the key at once and cannot see
    /// each other (no shared budget, or while it fails), so that together they stay within it:
    /// `max_requests / holders` per window, or, when that is below one, one request per
    /// `ceil(holders / max_requests)` windows. `holders` below one counts as one.
    pub fn share_of(self, holders: u32) -> Self {
        let holders = holders.max(1);
        let per_window = self.max_requests / holders;
        if per_window >= 1 {
            return RateLimit {
                max_requests: per_window,
                ..self
            };
        }
        RateLimit {
            max_requests: 1,
            window: self.window * holders.div_ceil(self.max_requests.max(1)),
            ..self
        }
    }

    /// The same budget on a clock `scale` times faster (emulated, sped-up time): the window
    /// divided by it. The margin stays as it is: it covers network and scheduling jitter, which
    /// real time governs; on a sped-up clock it stays fixed (see [`RateLimit`]).
    pub fn scaled(self, scale: TimeScale) -> Self {
        let fixed = scale != TimeScale::REAL;
        RateLimit {
            window: scale.to_real(self.window),
            min_margin: if fixed { self.margin } else { self.min_margin },
            ..self
        }
    }

    /// The same budget with a margin that never adapts: `margin` throughout.
    pub fn fixed_margin(self) -> Self {
        RateLimit {
            min_margin: self.margin,
            ..self
        }
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit::per_second(spec::DEFAULT_QPS)
    }
}

/// A sliding-window rate limiter (one per client, i.e. per key).
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    state: Mutex<WindowState>,
}

#[derive(Debug, Default)]
struct WindowState {
    /// Start times of the last `max_requests` requests, oldest first.
    recent: VecDeque<Instant>,
    /// No request starts before this instant (set after a 429).
    paused_until: Option<Instant>,
    /// Requests granted so far.
    granted: u64,
    /// 429 answers received so far.
    rate_limited: u64,
    /// Requests allowed per window now: the configured number, less after 429s.
    allowed: Option<usize>,
    /// Answers without a 429 since `allowed` last changed.
    answered_since_change: u64,
    /// The margin now: the configured one unless quiet answers shrank it or 429s grew it.
    margin: Option<Duration>,
    /// Answers without a 429 since the margin last changed.
    quiet_since_margin_change: u64,
}

/// After a 429, this many windows' worth of answers without one raise the allowance by one.
const RECOVERY_WINDOWS: u64 = 10;

impl RateLimiter {
    /// A limiter for `limit`.
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter {
            limit,
            state: Mutex::new(WindowState::default()),
        }
    }

    /// Records a request sent at `now` if the budget allows it; otherwise returns the earliest
    /// instant it will.
    pub fn try_take(&self, now: Instant) -> Result<(), Instant> {
        let mut state = self.lock_state();
        let ready_at = self.ready_at(&state, now);
        if ready_at > now {
            return Err(ready_at);
        }
        state.recent.push_back(now);
        while state.recent.len() > self.configured() {
            state.recent.pop_front();
        }
        state.granted += 1;
        Ok(())
    }

    /// The earliest instant a request may start, from `now`.
    pub fn next_ready(&self, now: Instant) -> Instant {
        let state = self.lock_state();
        self.ready_at(&state, now)
    }

    /// The server answered 429: hold every request back for `pause` and halve the requests
    /// allowed per window (never below one) — once per pause: the other answers of the same
    /// burst say the same thing.
    pub fn rate_limited(&self, pause: Duration) {
        let now = Instant::now();
        let configured = self.configured();
        let mut state = self.lock_state();
        state.rate_limited += 1;
        let already_paused = state.paused_until.is_some_and(|until| until > now);
        Self::pause(&mut state, now + pause);
        if !already_paused {
            let allowed = Self::allowed_now(&state, configured);
            state.allowed = Some((allowed / 2).max(1));
            state.answered_since_change = 0;
            let margin = self.margin_of(&state);
            state.margin = Some(
                (margin * 2)
                    .max(self.limit.margin)
                    .min(self.limit.margin * MAX_MARGIN_FACTOR),
            );
            state.quiet_since_margin_change = 0;
        }
    }

    fn pause(state: &mut WindowState, until: Instant) {
        if state.paused_until.is_none_or(|current| current < until) {
            state.paused_until = Some(until);
        }
    }

    /// The server answered without a 429: after enough of those, allow one request more per
    /// window again (up to the configured limit).
    pub fn answered(&self) {
        let configured = self.configured();
        let mut state = self.lock_state();
        let allowed = Self::allowed_now(&state, configured);
        if allowed >= configured {
            // The whole allowance and still no 429: the margin may shrink.
            state.quiet_since_margin_change += 1;
            let margin = self.margin_of(&state);
            if state.quiet_since_margin_change >= MARGIN_SHRINK_WINDOWS * configured as u64
                && margin > self.limit.min_margin
            {
                state.margin = Some((margin - margin / 10).max(self.limit.min_margin));
                state.quiet_since_margin_change = 0;
            }
            return;
        }
        state.answered_since_change += 1;
        if state.answered_since_change >= RECOVERY_WINDOWS * allowed as u64 {
            state.allowed = Some(allowed + 1);
            state.answered_since_change = 0;
        }
    }

    /// Requests allowed per window now (the configured number unless 429s lowered it).
    #[cfg(test)]
    pub fn allowed_per_window(&self) -> usize {
        Self::allowed_now(&self.lock_state(), self.configured())
    }

    /// The margin in force now (see [`RateLimit`]).
    pub fn margin_now(&self) -> Duration {
        self.margin_of(&self.lock_state())
    }

    fn margin_of(&self, state: &WindowState) -> Duration {
        state.margin.unwrap_or(self.limit.margin)
    }

    /// 429 answers received since the limiter was made.
    pub fn rate_limited_answers(&self) -> u64 {
        self.lock_state().rate_limited
    }

    /// Requests granted since the limiter was made.
    pub fn granted(&self) -> u64 {
        self.lock_state().granted
    }

    fn configured(&self) -> usize {
        usize::try_from(self.limit.max_requests)
            .unwrap_or(usize::MAX)
            .max(1)
    }

    fn allowed_now(state: &WindowState, configured: usize) -> usize {
        state.allowed.unwrap_or(configured).clamp(1, configured)
    }

    fn ready_at(&self, state: &WindowState, now: Instant) -> Instant {
        let mut ready = now;
        if let Some(paused) = state.paused_until {
            ready = ready.max(paused);
        }
        let allowed = Self::allowed_now(state, self.configured());
        if state.recent.len() >= allowed
            && let Some(first) = state.recent.get(state.recent.len() - allowed)
        {
            ready = ready.max(*first + self.limit.window + self.margin_of(state));
        }
        ready
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, WindowState> {
        // The state stays consistent even if a holder panicked: every update is one push/pop.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Waits until the budget has room and takes one slot of it.
    async fn take(limiter: &RateLimiter) {
        loop {
            match limiter.try_take(Instant::now()) {
                Ok(()) => return,
                Err(ready_at) => tokio::time::sleep_until(ready_at).await,
            }
        }
    }

    /// The most starts inside any half-open window of length `window`.
    fn max_in_window(starts: &[Instant], window: Duration) -> usize {
        let mut sorted = starts.to_vec();
        sorted.sort();
        (0..sorted.len())
            .map(|i| {
                sorted[i..]
                    .iter()
                    .take_while(|t| **t - sorted[i] < window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn no_window_holds_more_than_the_limit() {
        let limiter = Arc::new(RateLimiter::new(RateLimit::per_second(2)));
        let starts = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let (limiter, starts) = (limiter.clone(), starts.clone());
            tasks.push(tokio::spawn(async move {
                take(&limiter).await;
                starts.lock().unwrap().push(Instant::now());
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let starts = starts.lock().unwrap().clone();
        assert_eq!(starts.len(), 40);
        // Any 1.05 s window (the window plus the margin) holds at most 2.
        assert_eq!(max_in_window(&starts, Duration::from_millis(1050)), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_within_budget_is_not_delayed() {
        let limiter = RateLimiter::new(RateLimit::per_second(2));
        let start = Instant::now();
        take(&limiter).await;
        take(&limiter).await;
        assert_eq!(Instant::now(), start);
        take(&limiter).await;
        assert_eq!(Instant::now() - start, Duration::from_millis(1050));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_everyone() {
        let limiter = RateLimiter::new(RateLimit::per_second(5));
        let start = Instant::now();
        limiter.rate_limited(Duration::from_secs(3));
        take(&limiter).await;
        assert!(Instant::now() - start >= Duration::from_secs(3));
        assert_eq!(limiter.granted(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_halves_the_allowance_and_quiet_answers_win_it_back() {
        let limiter = RateLimiter::new(RateLimit::per_second(8));
        assert_eq!(limiter.allowed_per_window(), 8);
        limiter.rate_limited(Duration::from_secs(1));
        assert_eq!(limiter.allowed_per_window(), 4);
        // The rest of the same burst changes nothing more.
        limiter.rate_limited(Duration::from_secs(1));
        assert_eq!(limiter.allowed_per_window(), 4);
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            limiter.rate_limited(Duration::from_millis(1));
        }
        assert_eq!(limiter.allowed_per_window(), 1, "never below one");
        // At one per window, every window holds one request.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let start = Instant::now();
        for _ in 0..3 {
            take(&limiter).await;
        }
        // (The 429s also grew the margin, to its most: 4 × 50 ms.)
        assert_eq!(limiter.margin_now(), Duration::from_millis(200));
        assert_eq!(Instant::now() - start, Duration::from_millis(2 * 1200));
        // Ten windows' worth of answers without a 429 allow one more.
        for _ in 0..10 {
            limiter.answered();
        }
        assert_eq!(limiter.allowed_per_window(), 2);
        for _ in 0..1000 {
            limiter.answered();
        }
        assert_eq!(
            limiter.allowed_per_window(),
            8,
            "never above the configured limit"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_margin_shrinks_while_quiet_and_grows_back_on_a_429() {
        let limiter = RateLimiter::new(RateLimit::per_second(2));
        assert_eq!(limiter.margin_now(), DEFAULT_MARGIN);
        // Ten windows' worth of quiet answers: a tenth off.
        for _ in 0..MARGIN_SHRINK_WINDOWS * 2 {
            limiter.answered();
        }
        assert_eq!(limiter.margin_now(), Duration::from_millis(45));
        for _ in 0..1_000 {
            limiter.answered();
        }
        assert_eq!(limiter.margin_now(), DEFAULT_MIN_MARGIN);
        // The next request waits window + the margin now, not the configured one.
        let start = Instant::now();
        limiter.try_take(start).unwrap();
        limiter.try_take(start).unwrap();
        assert_eq!(
            limiter.next_ready(start),
            start + Duration::from_secs(1) + DEFAULT_MIN_MARGIN
        );
        // A 429: back to at least the configured margin; more 429s double it, up to 4×.
        limiter.rate_limited(Duration::from_millis(10));
        assert_eq!(limiter.margin_now(), DEFAULT_MARGIN);
        for _ in 0..5 {
            tokio::time::advance(Duration::from_millis(20)).await;
            limiter.rate_limited(Duration::from_millis(10));
        }
        assert_eq!(limiter.margin_now(), DEFAULT_MARGIN * MAX_MARGIN_FACTOR);
    }

    #[test]
    fn a_fixed_margin_and_a_sped_up_clock_keep_the_margin() {
        let fixed = RateLimiter::new(RateLimit::per_second(2).fixed_margin());
        let scaled =
            RateLimiter::new(RateLimit::per_second(2).scaled(TimeScale::new(10.0).unwrap()));
        for _ in 0..1_000 {
            fixed.answered();
            scaled.answered();
        }
        assert_eq!(fixed.margin_now(), DEFAULT_MARGIN);
        assert_eq!(scaled.margin_now(), DEFAULT_MARGIN);
        let real = RateLimit::per_second(2).scaled(TimeScale::REAL);
        assert_eq!(real.min_margin, DEFAULT_MIN_MARGIN);
    }
}
