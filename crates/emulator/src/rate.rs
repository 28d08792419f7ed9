//! The per-key QPS limit: a sliding window over the requests accepted in the last window.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Sliding windows of every key: the accepted requests (for the limit) and all arriving requests
/// (for [`Counters::max_requests_in_window`](crate::Counters::max_requests_in_window)).
#[derive(Debug)]
pub(crate) struct RateWindows {
    window: Duration,
    qps: u32,
    keys: HashMap<String, KeyWindows>,
}

#[derive(Debug, Default)]
struct KeyWindows {
    accepted: VecDeque<Instant>,
    seen: VecDeque<Instant>,
    /// The last `Retry-After` the key was given: when, and how long.
    retry_after: Option<(Instant, Duration)>,
}

impl RateWindows {
    /// Windows of length `window` allowing `qps` accepted requests each (0 = unlimited).
    pub(crate) fn new(window: Duration, qps: u32) -> Self {
        RateWindows {
            window,
            qps,
            keys: HashMap::new(),
        }
    }

    /// Records that a request from `key` arrived at `now`; returns how many requests from that key
    /// arrived within the window ending now, this one included.
    pub(crate) fn arrive(&mut self, key: &str, now: Instant) -> u64 {
        let window = self.window;
        let entry = self.keys.entry(key.to_owned()).or_default();
        prune(&mut entry.seen, now, window);
        entry.seen.push_back(now);
        entry.seen.len() as u64
    }

    /// Admits a request from `key` at `now` if fewer than `qps` requests were accepted within the
    /// window; otherwise returns how long until the oldest of them leaves the window.
    pub(crate) fn admit(&mut self, key: &str, now: Instant) -> Result<(), Duration> {
        let window = self.window;
        let qps = self.qps as usize;
        let entry = self.keys.entry(key.to_owned()).or_default();
        if qps == 0 {
            return Ok(());
        }
        prune(&mut entry.accepted, now, window);
        if entry.accepted.len() >= qps {
            let oldest = entry.accepted.front().copied().unwrap_or(now);
            return Err((oldest + window).saturating_duration_since(now));
        }
        entry.accepted.push_back(now);
        Ok(())
    }
}

impl RateWindows {
    /// Records that `key` was answered 429 at `now` with a `Retry-After` of `wait`.
    pub(crate) fn told_to_wait(&mut self, key: &str, now: Instant, wait: Duration) {
        self.keys.entry(key.to_owned()).or_default().retry_after = Some((now, wait));
    }

    /// True when a request from `key` arriving at `now` falls in the second half of the last
    /// `Retry-After` period the key was given: too late to have been on its way when the 429 was
    /// sent, too early for a client honouring the header.
    pub(crate) fn ignores_retry_after(&self, key: &str, now: Instant) -> bool {
        self.keys
            .get(key)
            .and_then(|windows| windows.retry_after)
            .is_some_and(|(at, wait)| {
                let since = now.saturating_duration_since(at);
                since >= wait / 2 && since < wait
            })
    }
}

/// Drops the instants that are no longer within `window` before `now`.
fn prune(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while let Some(first) = times.front() {
        if now.saturating_duration_since(*first) >= window {
            times.pop_front();
        } else {
            break;
        }
    }
}

/// The `Retry-After` value for a wait: whole seconds, rounded up, at least 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_qps_then_refuses_until_the_window_slides() {
        let start = Instant::now();
        let mut windows = RateWindows::new(Duration::from_secs(1), 2);
        assert!(windows.admit("k", start).is_ok());
        assert!(
            windows
                .admit("k", start + Duration::from_millis(100))
                .is_ok()
        );
        let wait = windows
            .admit("k", start + Duration::from_millis(200))
            .unwrap_err();
        assert_eq!(wait, Duration::from_millis(800));
        // Another key has its own window.
        assert!(windows.admit("other", start).is_ok());
        // Refused requests do not count: the first slot frees at 1 s.
        assert!(
            windows
                .admit("k", start + Duration::from_millis(1000))
                .is_ok()
        );
        assert!(
            windows
                .admit("k", start + Duration::from_millis(1050))
                .is_err()
        );
        assert!(
            windows
                .admit("k", start + Duration::from_millis(1100))
                .is_ok()
        );
    }

    #[test]
    fn arrivals_count_everything_in_the_window() {
        let start = Instant::now();
        let mut windows = RateWindows::new(Duration::from_secs(1), 2);
        assert_eq!(windows.arrive("k", start), 1);
        assert_eq!(windows.arrive("k", start + Duration::from_millis(500)), 2);
        assert_eq!(windows.arrive("k", start + Duration::from_millis(900)), 3);
        assert_eq!(windows.arrive("k", start + Duration::from_millis(1600)), 2);
    }

    #[test]
    fn requests_late_in_a_retry_after_period_ignore_it() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut windows = RateWindows::new(Duration::from_secs(1), 2);
        assert!(!windows.ignores_retry_after("k", start));
        windows.told_to_wait("k", start, Duration::from_secs(1));
        // In flight when the 429 left: not counted.
        assert!(!windows.ignores_retry_after("k", start + ms(30)));
        assert!(windows.ignores_retry_after("k", start + ms(500)));
        assert!(windows.ignores_retry_after("k", start + ms(999)));
        // After the period: honoured.
        assert!(!windows.ignores_retry_after("k", start + ms(1000)));
        assert!(!windows.ignores_retry_after("other", start + ms(700)));
    }

    #[test]
    fn unlimited_when_qps_is_zero() {
        let now = Instant::now();
        let mut windows = RateWindows::new(Duration::from_secs(1), 0);
        for _ in 0..100 {
            assert!(windows.admit("k", now).is_ok());
        }
    }

    #[test]
    fn retry_after_is_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }
}
