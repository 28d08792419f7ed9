//! What the emulator has seen and done, for tests and reports.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A snapshot of the emulator's counters (`GET /__emulator/counters`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Requests that arrived at `POST /api/tasks/visual/background`, whatever their answer.
    pub create_requests: u64,
    /// Requests that arrived at `GET /api/tasks/visual/background/{task_id}`, whatever their answer.
    pub query_requests: u64,
    /// Result images served successfully (`GET /results/...` answered 200).
    pub result_downloads: u64,
    /// Answers of the two API endpoints by HTTP status (dropped connections and lost create
    /// answers are not answers).
    pub responses_by_status: BTreeMap<u16, u64>,
    /// API requests answered 429 because the key exceeded its QPS.
    pub responses_429: u64,
    /// API requests answered 500 by fault injection.
    pub responses_500_injected: u64,
    /// API requests whose connection was closed without an answer by fault injection, before
    /// anything was done with them ([`Faults::drop_rate`](crate::Faults::drop_rate)): a dropped
    /// create created no task.
    pub dropped_connections: u64,
    /// API requests with a valid key that arrived in the second half of a `Retry-After` period
    /// the key was last given with a 429 (from half of it to its end). Requests already on their
    /// way when the 429 was sent arrive at its very start; only a client that does not honour
    /// `Retry-After` sends these.
    pub retry_after_ignored: u64,
    /// Tasks created: create requests accepted, whether answered 200 or with their answer lost
    /// (`create_answers_lost` of them).
    pub tasks_created: u64,
    /// Accepted creates whose connection was then closed without an answer
    /// ([`Faults::lost_answer_rate`](crate::Faults::lost_answer_rate)): the task exists and runs,
    /// but the client never got its id. Included in `tasks_created`.
    pub create_answers_lost: u64,
    /// Tasks that ended in state 1.
    pub tasks_succeeded: u64,
    /// Tasks that ended in a negative state.
    pub tasks_failed: u64,
    /// Credits a real account would have been charged (by
    /// [`credits_for_images`](backdrop_core::spec::credits_for_images), on success only).
    pub credits_charged: u64,
    /// The most API requests that arrived from one key within any one QPS window (1 s / time
    /// scale), counting every request carrying a valid key — also those answered 429 or hit by a
    /// fault. A client that respects a limit of `qps` never pushes this above `qps`.
    pub max_requests_in_window: u64,
}

/// The live counters, shared by the handlers.
#[derive(Debug, Default)]
pub(crate) struct CounterSet {
    inner: Mutex<Counters>,
}

impl CounterSet {
    /// Changes the counters under the lock.
    pub(crate) fn update(&self, change: impl FnOnce(&mut Counters)) {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut guard);
    }

    /// A copy of the counters.
    pub(crate) fn snapshot(&self) -> Counters {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Sets every counter back to zero and returns their values before.
    pub(crate) fn reset(&self) -> Counters {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::take(&mut *guard)
    }

    /// Counts an answer of an API endpoint.
    pub(crate) fn response(&self, status: u16) {
        self.update(|c| *c.responses_by_status.entry(status).or_insert(0) += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_resets() {
        let set = CounterSet::default();
        set.response(200);
        set.response(200);
        set.response(429);
        set.update(|c| c.create_requests += 1);
        let snap = set.snapshot();
        assert_eq!(snap.responses_by_status.get(&200), Some(&2));
        assert_eq!(snap.create_requests, 1);
        let json = serde_json::to_string(&snap).unwrap();
        let back: Counters = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snap);
        assert_eq!(set.reset(), snap);
        assert_eq!(set.snapshot(), Counters::default());
    }
}
