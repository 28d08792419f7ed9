//! Waiting for a task: poll until it succeeds, fails or runs out of time, reporting each state.
//!
//! Polls are planned by the client's scheduler — one per client, where every request waits for
//! the key's budget — with the task's [`PollPolicy`]: adaptive by default, or the spec's flow
//! (every 1 s). Either way a wait gives up after at most 300 s, the spec's limit.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::forecast::TaskForecast;
use crate::response::TaskInfo;
use crate::scheduler::{PollPolicy, Scheduler, Want};
use crate::spec;
use crate::state::{StateClass, TaskState};

/// How long before the end of a wait its last poll goes out (at most; a tenth of short waits)…
const LAST_LOOK_LEAD: Duration = Duration::from_secs(1);
/// …and the longest it may take.
const LAST_LOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// How to wait for a task.
///
/// ```
/// use std::time::Duration;
/// use backdrop_core::{PollPolicy, WaitOptions};
///
/// // The spec's flow, giving up after two minutes instead of five.
/// let options = WaitOptions {
///     max_wait: Duration::from_secs(120),
///     ..WaitOptions::documented()
/// };
/// assert_eq!(options.policy, PollPolicy::Documented);
/// assert_eq!(options.wait_limit(), Duration::from_secs(120));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitOptions {
    /// How polls are planned (default: adaptive).
    pub policy: PollPolicy,
    /// Time between two polls of the documented policy (the spec: 1 s), on the service's clock:
    /// a client with a [time scale](crate::ClientConfigBuilder::time_scale) divides it.
    pub poll_interval: Duration,
    /// Give up after this long (the spec: at most 300 s; longer values are capped to it).
    pub max_wait: Duration,
}

impl Default for WaitOptions {
    /// The adaptive policy, capped at the spec's 300 s.
    fn default() -> Self {
        WaitOptions {
            policy: PollPolicy::Adaptive,
            poll_interval: spec::POLL_INTERVAL,
            max_wait: spec::MAX_POLL_DURATION,
        }
    }
}

impl WaitOptions {
    /// How long a wait may last: `max_wait`, never more than the spec's 300 s.
    pub fn wait_limit(&self) -> Duration {
        self.max_wait.min(spec::MAX_POLL_DURATION)
    }

    /// The spec's flow: poll every 1 s, give up after 300 s.
    pub fn documented() -> Self {
        WaitOptions {
            policy: PollPolicy::Documented,
            ..WaitOptions::default()
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
    /// Waits for a task with the default [`WaitOptions`] (the adaptive policy, at most 300 s)
    /// and returns it once it succeeded. See [`wait_for_task_with`](Self::wait_for_task_with)
    /// for the errors.
    ///
    /// ```no_run
    /// # async fn run(client: backdrop_core::Client) -> backdrop_core::Result<()> {
    /// // A task created earlier, e.g. by a run that was interrupted.
    /// let task = client.wait_for_task("9c3f1a1e-5e0b-4c5a-9d1c-0b7e2f3a4d5e").await?;
    /// let images = client.download_results(&task).await?;
    /// # Ok(()) }
    /// ```
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
        observe: impl FnMut(&TaskInfo) -> WaitControl + Send,
    ) -> Result<TaskInfo> {
        let options = WaitOptions {
            poll_interval: self.config().time_scale().to_real(options.poll_interval),
            ..options
        };
        let query = |want| self.query(task_id, want);
        wait_with(&self.inner.scheduler, task_id, options, query, observe).await
    }
}

/// The wait itself, over whatever sends a poll (`query`, given what the poll wants from the
/// scheduler): the client's HTTP query, or a simulated service in the scheduler's tests.
pub(crate) async fn wait_with<F>(
    scheduler: &Scheduler,
    task_id: &str,
    options: WaitOptions,
    mut query: impl FnMut(Want) -> F + Send,
    mut observe: impl FnMut(&TaskInfo) -> WaitControl + Send,
) -> Result<TaskInfo>
where
    F: Future<Output = Result<TaskInfo>> + Send,
{
    let started = Instant::now();
    let limit = options.wait_limit();
    // The last poll goes out a little before the limit, so that it is answered within it.
    let last_look = started + limit - LAST_LOOK_LEAD.min(limit / 10);
    let known_creation = scheduler.created_at(task_id);
    let mut forecast = TaskForecast::new(known_creation.unwrap_or(started));
    let mut processing = None;
    let outcome = loop {
        let want = if known_creation.is_none() && forecast.last_poll.is_none() {
            // A task this client did not create (resumed by id): nothing to forecast from until
            // the service says how old it is, so its first poll goes first.
            Want::Query
        } else {
            Want::Poll {
                forecast: forecast.clone(),
                policy: options.policy,
                interval: options.poll_interval.max(Duration::from_millis(1)),
            }
        };
        let answer = tokio::select! {
            answer = query(want) => answer,
            _ = tokio::time::sleep_until(last_look) => {
                // Time is (nearly) up: one last look, first in line, before giving up — the task
                // may have ended since its last poll.
                match tokio::time::timeout(LAST_LOOK_TIMEOUT, query(Want::Query)).await {
                    Ok(answer) => answer,
                    Err(_) => break Err(timeout(task_id, started, forecast.state)),
                }
            }
        };
        let info = match answer {
            Ok(info) => info,
            Err(error) => break Err(error),
        };
        let now = Instant::now();
        if forecast.last_poll.is_none()
            && known_creation.is_none()
            && let Some(age) = age_from_timestamp(info.created_at.as_deref())
        {
            // A resumed task: the service's creation time anchors the forecast.
            forecast.created = now.checked_sub(age).unwrap_or(forecast.created);
        }
        let had_rate = forecast.implied_start_offset().is_some();
        let previous_poll = forecast.last_poll;
        forecast.observe(now, info.state, info.progress);
        if !had_rate && let Some(offset) = forecast.implied_start_offset() {
            scheduler.start_offset_seen(offset);
        }
        if observe(&info) == WaitControl::Cancel {
            break Err(Error::Cancelled {
                task_id: task_id.to_owned(),
            });
        }
        match info.class() {
            StateClass::Succeeded => {
                processing = Some(processing_time(&forecast, previous_poll, &info));
                break Ok(info);
            }
            StateClass::Failed => {
                break Err(Error::TaskFailed {
                    task_id: task_id.to_owned(),
                    state: info.state,
                    message: info.state_detail.clone(),
                });
            }
            StateClass::Pending if now >= last_look => {
                break Err(timeout(task_id, started, Some(info.state)));
            }
            StateClass::Pending => {}
        }
    };
    scheduler.task_ended(task_id, processing);
    outcome
}

/// How long a task that succeeded took from creation to completion, as well as the client can
/// tell: it ended between the poll before last and the last one; the service's `time_elapsed`
/// says where, when it fits in that interval.
fn processing_time(
    forecast: &TaskForecast,
    previous_poll: Option<Instant>,
    info: &TaskInfo,
) -> Duration {
    let latest = forecast.last_poll.map_or(Duration::ZERO, |at| {
        at.saturating_duration_since(forecast.created)
    });
    let earliest = previous_poll.map_or(Duration::ZERO, |at| {
        at.saturating_duration_since(forecast.created)
    });
    info.time_elapsed
        .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok())
        .map(|elapsed| elapsed.clamp(earliest, latest.max(earliest)))
        .unwrap_or(latest)
}

fn timeout(task_id: &str, started: Instant, last_state: Option<TaskState>) -> Error {
    Error::Timeout {
        task_id: task_id.to_owned(),
        waited: started.elapsed(),
        last_state: last_state.unwrap_or(TaskState::Queued),
    }
}

/// How long ago a `created_at` unix-seconds timestamp was.
fn age_from_timestamp(created_at: Option<&str>) -> Option<Duration> {
    let created: f64 = created_at?.trim().parse().ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    Duration::try_from_secs_f64((now - created).clamp(0.0, 3600.0)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_policy_waits_past_the_spec_limit() {
        for policy in [PollPolicy::Adaptive, PollPolicy::Documented] {
            let options = WaitOptions {
                policy,
                max_wait: Duration::from_secs(3600),
                ..WaitOptions::default()
            };
            assert_eq!(options.wait_limit(), Duration::from_secs(300));
        }
        assert_eq!(
            WaitOptions::documented().poll_interval,
            Duration::from_secs(1)
        );
        let short = WaitOptions {
            max_wait: Duration::from_secs(5),
            ..WaitOptions::default()
        };
        assert_eq!(short.wait_limit(), Duration::from_secs(5));
    }

    #[test]
    fn processing_times_stay_between_the_last_two_polls() {
        let created = Instant::now();
        let mut forecast = TaskForecast::new(created);
        let previous = created + Duration::from_secs(8);
        forecast.observe(previous, TaskState::Processing, Some(70.0));
        forecast.observe(
            created + Duration::from_secs(12),
            TaskState::Completed,
            Some(100.0),
        );
        let answer = |elapsed: Option<f64>| {
            let mut body = serde_json::json!({"task_id": "t", "state": 1, "progress": 100});
            if let Some(ms) = elapsed {
                body["time_elapsed"] = ms.into();
            }
            serde_json::from_value::<TaskInfo>(body).unwrap()
        };
        let time = |ms| processing_time(&forecast, Some(previous), &answer(ms));
        // The service's figure, when it fits between the polls.
        assert_eq!(time(Some(10_500.0)), Duration::from_millis(10_500));
        // Clamped into the interval the polls prove, whatever the service says.
        assert_eq!(time(Some(1_000.0)), Duration::from_secs(8));
        assert_eq!(time(Some(1e30)), Duration::from_secs(12));
        assert_eq!(time(Some(-5.0)), Duration::from_secs(12));
        // Without one, the poll that saw it done bounds it.
        assert_eq!(time(None), Duration::from_secs(12));
    }

    #[test]
    fn ages_come_from_unix_timestamps() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let age = age_from_timestamp(Some(&(now - 30).to_string())).unwrap();
        assert!(age >= Duration::from_secs(29) && age <= Duration::from_secs(31));
        assert_eq!(age_from_timestamp(Some("soon")), None);
        assert_eq!(age_from_timestamp(None), None);
    }
}
