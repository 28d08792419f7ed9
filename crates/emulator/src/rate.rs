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
