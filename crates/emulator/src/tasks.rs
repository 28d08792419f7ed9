//! The tasks: what each one is, when it moves from state to state, and how it ended.
//!
//! A task's state before it ends is computed from the clock: 0 (queued) until the queue time is
//! over, 2 (preparing) until the preparing time is over, 4 (processing) until the processing time
//! is over, then 5 (publishing) while its render job has not finished. The render job records the
//! final state (1 or a failure) together with the instant it became final.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backdrop_core::TaskState;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::task::AbortHandle;

use crate::config::ProgressMode;

/// When a task leaves each pending state, as offsets from its creation (already time-scaled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeline {
    /// End of state 0.
    pub(crate) queued: Duration,
    /// End of state 2; processing starts here.
    pub(crate) prepared: Duration,
    /// End of state 4; rendering starts here.
    pub(crate) processed: Duration,
}

/// How a task ended.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// 1, or a negative state.
    pub(crate) state: TaskState,
    /// The `state_detail` shown.
    pub(crate) detail: String,
    /// The result JPEGs (empty unless the task succeeded).
    pub(crate) images: Vec<Bytes>,
    /// Whether processing had started (`processed_at` is shown).
    pub(crate) processing_started: bool,
    /// When the task became final.
    pub(crate) at: Instant,
    /// The same moment on the wall clock.
    pub(crate) wall: SystemTime,
}

/// One task.
#[derive(Debug)]
pub(crate) struct Task {
    pub(crate) id: String,
    pub(crate) created: Instant,
    pub(crate) created_wall: SystemTime,
    pub(crate) timeline: Timeline,
    pub(crate) batch_size: u8,
    /// `"file"` or `"url"`.
    pub(crate) source: &'static str,
    /// The prompt it was created with (`None` for a scene_type).
    pub(crate) prompt: Option<String>,
    /// Its create answer was lost (fault injection).
    pub(crate) answer_lost: bool,
    /// Stays in state 4 forever (fault injection).
    pub(crate) never_finish: bool,
    pub(crate) outcome: Option<Outcome>,
    /// Query requests for this task.
    pub(crate) polls: u64,
    /// When a query first saw the task final.
    pub(crate) final_seen_wall: Option<SystemTime>,
    /// The result bytes were dropped after the URLs expired.
    pub(crate) results_purged: bool,
    pub(crate) job: Option<AbortHandle>,
}

/// What a query sees of a task at one instant.
#[derive(Debug, Clone)]
pub(crate) struct TaskView {
    pub(crate) task_id: String,
    pub(crate) state: TaskState,
    pub(crate) progress: u8,
    pub(crate) detail: String,
    pub(crate) created_wall: SystemTime,
    pub(crate) processed_wall: Option<SystemTime>,
    pub(crate) completed_wall: Option<SystemTime>,
    pub(crate) elapsed: Option<Duration>,
    pub(crate) images: Vec<Bytes>,
}

/// One task as listed by `GET /__emulator/tasks` and [`Emulator::tasks`](crate::Emulator::tasks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// The task id.
    pub task_id: String,
    /// Its state now (`data.state`).
    pub state: i32,
    /// Images requested (1 or 2).
    pub batch_size: u8,
    /// `"file"` (image_file) or `"url"` (image_url).
    pub source: String,
    /// The prompt it was created with; `None` for a scene_type task. Tells tests which input a
    /// task belongs to, also when the client never learnt its id.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Its create request was accepted but the answer was lost
    /// ([`Faults::lost_answer_rate`](crate::Faults::lost_answer_rate)).
    #[serde(default)]
    pub answer_lost: bool,
    /// Creation time, unix seconds with sub-second precision.
    pub created_at: f64,
    /// When processing (state 4) started or will start, unix seconds.
    pub processing_starts_at: f64,
    /// When the task became final (succeeded or failed), unix seconds with sub-second precision;
    /// `None` while it is pending.
    pub became_final_at: Option<f64>,
    /// When a query first returned the final state, unix seconds; `None` if none has yet.
    /// `final_seen_at - became_final_at` is the client's detection delay.
    pub final_seen_at: Option<f64>,
    /// Query requests for this task (answered 200).
    pub polls: u64,
}

impl Task {
    /// The task as seen at `now`.
    pub(crate) fn view(&self, now: Instant, progress_mode: ProgressMode) -> TaskView {
        let (state, progress) = self.state_at(now, progress_mode);
        let outcome = self.outcome.as_ref();
        let processing_started = match outcome {
            Some(outcome) => outcome.processing_started,
            None => now.saturating_duration_since(self.created) >= self.timeline.prepared,
        };
        TaskView {
            task_id: self.id.clone(),
            state,
            progress,
            detail: outcome.map_or_else(|| state.meaning().to_owned(), |o| o.detail.clone()),
            created_wall: self.created_wall,
            processed_wall: processing_started.then(|| self.created_wall + self.timeline.prepared),
            completed_wall: outcome.map(|o| o.wall),
            elapsed: outcome.map(|o| o.at.saturating_duration_since(self.created)),
            images: outcome.map(|o| o.images.clone()).unwrap_or_default(),
        }
    }

    /// The state and progress at `now`.
    pub(crate) fn state_at(&self, now: Instant, progress_mode: ProgressMode) -> (TaskState, u8) {
        if let Some(outcome) = &self.outcome {
            let progress = if outcome.state == TaskState::Completed {
                100
            } else {
                0
            };
            return (outcome.state, progress);
        }
        let age = now.saturating_duration_since(self.created);
        let t = self.timeline;
        let (state, progress) = if age < t.queued {
            (TaskState::Queued, 0)
        } else if age < t.prepared {
            (TaskState::Preparing, 0)
        } else if self.never_finish || age < t.processed {
            let span = t.processed.saturating_sub(t.prepared).as_secs_f64();
            let done = (age - t.prepared).as_secs_f64();
            let share = if span > 0.0 { done / span } else { 1.0 };
            (
                TaskState::Processing,
                (share * 99.0).floor().clamp(0.0, 99.0) as u8,
            )
        } else {
            (TaskState::Publishing, 99)
        };
        match progress_mode {
            ProgressMode::GrowsWithTime => (state, progress),
            ProgressMode::Withheld => (state, 0),
        }
    }

    fn info(&self, now: Instant, progress_mode: ProgressMode) -> TaskInfo {
        TaskInfo {
            task_id: self.id.clone(),
            state: self.state_at(now, progress_mode).0.code(),
            batch_size: self.batch_size,
            source: self.source.to_owned(),
            prompt: self.prompt.clone(),
            answer_lost: self.answer_lost,
            created_at: unix_secs(self.created_wall),
            processing_starts_at: unix_secs(self.created_wall + self.timeline.prepared),
            became_final_at: self.outcome.as_ref().map(|o| unix_secs(o.wall)),
            final_seen_at: self.final_seen_wall.map(unix_secs),
            polls: self.polls,
        }
    }
}

/// Unix time in seconds with sub-second precision.
pub(crate) fn unix_secs(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Every task of the emulator.
#[derive(Debug, Default)]
pub(crate) struct TaskStore {
    tasks: Mutex<HashMap<String, Task>>,
}

impl TaskStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Task>> {
        self.tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a task.
    pub(crate) fn insert(&self, task: Task) {
        self.lock().insert(task.id.clone(), task);
    }

    /// Runs `f` on the task `id`, if it exists.
    pub(crate) fn with<R>(&self, id: &str, f: impl FnOnce(&mut Task) -> R) -> Option<R> {
        self.lock().get_mut(id).map(f)
    }

    /// Records how the task ended, unless it already has; returns whether it was recorded.
    pub(crate) fn finish(&self, id: &str, outcome: Outcome) -> bool {
        self.with(id, |task| {
            if task.outcome.is_some() {
                return false;
            }
            task.outcome = Some(outcome);
            task.job = None;
            true
        })
        .unwrap_or(false)
    }

    /// Every task, oldest first.
    pub(crate) fn list(&self, now: Instant, progress_mode: ProgressMode) -> Vec<TaskInfo> {
        let tasks = self.lock();
        let mut list: Vec<(Instant, TaskInfo)> = tasks
            .values()
            .map(|task| (task.created, task.info(now, progress_mode)))
            .collect();
        list.sort_by_key(|(created, _)| *created);
        list.into_iter().map(|(_, info)| info).collect()
    }

    /// Drops the result bytes of tasks whose result URLs expired (`ttl` after they ended).
    pub(crate) fn purge_results(&self, now: Instant, ttl: Duration) {
        for task in self.lock().values_mut() {
            if let Some(outcome) = &mut task.outcome
                && !outcome.images.is_empty()
                && now.saturating_duration_since(outcome.at) >= ttl
            {
                outcome.images = Vec::new();
                task.results_purged = true;
            }
        }
    }

    /// Stops every running task job.
    pub(crate) fn abort_all(&self) {
        for task in self.lock().values_mut() {
            if let Some(job) = task.job.take() {
                job.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(never_finish: bool) -> Task {
        Task {
            id: "t".to_owned(),
            created: Instant::now(),
            created_wall: SystemTime::now(),
            timeline: Timeline {
                queued: Duration::from_millis(100),
                prepared: Duration::from_millis(200),
                processed: Duration::from_millis(1200),
            },
            batch_size: 2,
            source: "file",
            prompt: None,
            answer_lost: false,
            never_finish,
            outcome: None,
            polls: 0,
            final_seen_wall: None,
            results_purged: false,
            job: None,
        }
    }

    #[test]
    fn states_follow_the_clock() {
        let task = task(false);
        let at = |ms| task.created + Duration::from_millis(ms);
        let mode = ProgressMode::GrowsWithTime;
        assert_eq!(task.state_at(at(0), mode), (TaskState::Queued, 0));
        assert_eq!(task.state_at(at(150), mode), (TaskState::Preparing, 0));
        assert_eq!(task.state_at(at(200), mode), (TaskState::Processing, 0));
        assert_eq!(task.state_at(at(700), mode), (TaskState::Processing, 49));
        assert_eq!(task.state_at(at(1199), mode), (TaskState::Processing, 98));
        assert_eq!(task.state_at(at(1300), mode), (TaskState::Publishing, 99));
        assert_eq!(
            task.state_at(at(700), ProgressMode::Withheld),
            (TaskState::Processing, 0)
        );
        let view = task.view(at(150), mode);
        assert!(view.processed_wall.is_none());
        let view = task.view(at(250), mode);
        assert!(view.processed_wall.is_some());
        assert!(view.completed_wall.is_none());
    }

    #[test]
    fn never_finishing_tasks_stay_processing() {
        let task = task(true);
        let later = task.created + Duration::from_secs(3600);
        assert_eq!(
            task.state_at(later, ProgressMode::GrowsWithTime),
            (TaskState::Processing, 99)
        );
    }

    #[test]
    fn outcome_is_final_and_recorded_once() {
        let store = TaskStore::default();
        let created = task(false);
        let start = created.created;
        store.insert(created);
        let outcome = |state| Outcome {
            state,
            detail: "d".to_owned(),
            images: vec![Bytes::from_static(b"x")],
            processing_started: true,
            at: start + Duration::from_millis(1300),
            wall: SystemTime::now(),
        };
        assert!(store.finish("t", outcome(TaskState::Completed)));
        assert!(!store.finish("t", outcome(TaskState::Failed)));
        assert!(!store.finish("missing", outcome(TaskState::Failed)));
        let view = store
            .with("t", |t| t.view(Instant::now(), ProgressMode::GrowsWithTime))
            .unwrap();
        assert_eq!((view.state, view.progress), (TaskState::Completed, 100));
        assert_eq!(view.elapsed, Some(Duration::from_millis(1300)));
        let list = store.list(Instant::now(), ProgressMode::GrowsWithTime);
        assert_eq!(list.len(), 1);
        assert!(list[0].became_final_at.is_some());
        store.purge_results(start + Duration::from_secs(10), Duration::from_secs(1));
        assert!(store.with("t", |t| t.results_purged).unwrap());
    }
}
