//! The key's request budget, shared by every call of one client.
//!
//! A sliding-window limiter: a request may start only when the request `max_requests` places
//! before it started at least `window + margin` ago, so no window of the server's — wherever it
//! starts — sees more than `max_requests`. It only counts: the scheduler
//! ([`crate::scheduler`]) asks it when the next request may start ([`RateLimiter::next_ready`])
//! and takes each slot ([`RateLimiter::try_take`]) for the waiting request worth most. A 429
//! from the server pauses everyone (for its `Retry-After`, when given) and halves the
//! allowance until quiet answers win it back.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::spec;
use crate::time_scale::TimeScale;

/// The request budget of one key: at most `max_requests` in any window of `window`.
///
/// The limiter keeps `margin` on top of the window so that network jitter cannot make the server
/// see more requests inside one of its windows than it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub max_requests: u32,
    /// The window.
    pub window: Duration,
    /// Safety margin added to the window between the first and the last request of a burst.
    pub margin: Duration,
}

impl RateLimit {
    /// `qps` requests per second (the service's unit), with the default margin.
    pub fn per_second(qps: u32) -> Self {
        RateLimit {
            max_requests: qps.max(1),
            window: spec::QPS_WINDOW,
            margin: Duration::from_millis(50),
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
    /// real time governs.
    pub fn scaled(self, scale: TimeScale) -> Self {
        RateLimit {
            window: scale.to_real(self.window),
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
            ready = ready.max(*first + self.limit.window + self.limit.margin);
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
        assert_eq!(Instant::now() - start, Duration::from_millis(2 * 1050));
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
}
