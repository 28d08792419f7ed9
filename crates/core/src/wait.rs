//! Waiting for a task: poll until it succeeds, fails or runs out of time, reporting each state.
//!
//! The default policy is the spec's flow: poll every 1 s, give up after 300 s.

use std::time::Duration;

use tokio::time::Instant;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::response::TaskInfo;
use crate::spec;
use crate::state::StateClass;

/// How to wait for a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitOptions {
    /// Time between the starts of two polls (the spec: 1 s).
    pub poll_interval: Duration,
    /// Give up after this long (the spec: at most 300 s; longer values are capped to it).
    pub max_wait: Duration,
}

impl Default for WaitOptions {
    /// The spec's flow: every 1 s, at most 300 s.
    fn default() -> Self {
        WaitOptions {
            poll_interval: spec::POLL_INTERVAL,
            max_wait: spec::MAX_POLL_DURATION,
        }
    }
}

/// What an observer of a wait wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitControl {
    /// Keep waiting.
    Continue,
    /// Stop waiting now; the wait returns [`Error::Cancelled`] (the task itself goes on).
    Cancel,
}

impl Client {
    /// Waits for a task with the spec's policy and returns it once it succeeded.
    pub async fn wait_for_task(&self, task_id: &str) -> Result<TaskInfo> {
        self.wait_for_task_with(task_id, WaitOptions::default(), |_| WaitControl::Continue)
            .await
    }

    /// Waits for a task, calling `observe` with every answer (state and progress, for UIs).
    ///
    /// Returns the task once it succeeded; [`Error::TaskFailed`] when it failed,
    /// [`Error::Timeout`] (with the id, to resume) when `max_wait` ran out, and
    /// [`Error::Cancelled`] when `observe` asked to stop.
    pub async fn wait_for_task_with(
        &self,
        task_id: &str,
        options: WaitOptions,
        mut observe: impl FnMut(&TaskInfo) -> WaitControl + Send,
    ) -> Result<TaskInfo> {
        let started = Instant::now();
        let max_wait = options.max_wait.min(spec::MAX_POLL_DURATION);
        let interval = options.poll_interval.max(Duration::from_millis(1));
        let mut next_poll = started;
        loop {
            tokio::time::sleep_until(next_poll).await;
            next_poll = Instant::now() + interval;
            let info = self.get_task(task_id).await?;
            if observe(&info) == WaitControl::Cancel {
                return Err(Error::Cancelled {
                    task_id: task_id.to_owned(),
                });
            }
            match info.class() {
                StateClass::Succeeded => return Ok(info),
                StateClass::Failed => {
                    return Err(Error::TaskFailed {
                        task_id: task_id.to_owned(),
                        state: info.state,
                        message: info.state_detail.clone(),
                    });
                }
                StateClass::Pending => {
                    if next_poll.duration_since(started) > max_wait {
                        return Err(Error::Timeout {
                            task_id: task_id.to_owned(),
                            waited: started.elapsed(),
                            last_state: info.state,
                        });
                    }
                }
            }
        }
    }
}
