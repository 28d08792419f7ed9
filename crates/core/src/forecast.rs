//! When will a task be done? The forecasts the scheduler plans polls with.
//!
//! Two sources, best first:
//! - `progress`: when it grows with time, two observations give the rate and so the end; one
//!   observation gives a rough end (progress counted from the task's creation);
//! - the processing times this client has seen: a log-normal distribution of the time from
//!   creation to completion, seeded with a prior (median 10 s, p95 30 s) and updated online.
//!
//! A forecast is a distribution of the completion instant; the scheduler asks it for the
//! probability that the task finished between its last poll and now.

use std::time::Duration;

use tokio::time::Instant;

use crate::state::TaskState;

/// z of the 95th percentile of the standard normal distribution.
const Z95: f64 = 1.644_853_6;

/// A task still running at a poll when its forecast gave it this probability of being done by
/// then is overdue: the forecast is set aside for it ([`TaskForecast::poll_value`]).
pub const OVERDUE_AT: f64 = 0.99;
/// An overdue task's remaining time is taken as exponential with this share of its age as mean.
pub const OVERDUE_MEAN_SHARE: f64 = 0.1;

/// Weight of the prior, in observed tasks.
const PRIOR_WEIGHT: f64 = 4.0;

/// The distribution of processing times (creation to completion), log-normal.
#[derive(Debug, Clone, PartialEq)]
pub struct DurationModel {
    /// Sum of weights (prior included).
    weight: f64,
    /// Weighted mean of ln(seconds).
    mean: f64,
    /// Weighted sum of squared deviations of ln(seconds).
    m2: f64,
    /// Seconds from creation until progress starts growing (queue and preparation), as seen.
    start_offset: f64,
}

impl DurationModel {
    /// A model whose prior has this median and 95th percentile.
    pub fn with_prior(median: Duration, p95: Duration) -> Self {
        let mu = median.as_secs_f64().max(1e-3).ln();
        let sigma = ((p95.as_secs_f64().max(1e-3).ln() - mu) / Z95).max(0.05);
        DurationModel {
            weight: PRIOR_WEIGHT,
            mean: mu,
            m2: sigma * sigma * PRIOR_WEIGHT,
            start_offset: 0.0,
        }
    }

    /// Adds one observed processing time.
    pub fn observe(&mut self, duration: Duration) {
        let x = duration.as_secs_f64().max(1e-3).ln();
        self.weight += 1.0;
        let delta = x - self.mean;
        self.mean += delta / self.weight;
        self.m2 += delta * (x - self.mean);
    }

    /// Adds one observed delay between a task's creation and its progress starting to grow.
    pub fn observe_start_offset(&mut self, offset: Duration) {
        let x = offset.as_secs_f64();
        self.start_offset = if self.start_offset == 0.0 {
            x
        } else {
            0.8 * self.start_offset + 0.2 * x
        };
    }

    /// Median processing time.
    pub fn median(&self) -> Duration {
        Duration::from_secs_f64(self.mean.exp())
    }

    /// 95th percentile of the processing time.
    pub fn p95(&self) -> Duration {
        Duration::from_secs_f64((self.mean + Z95 * self.sigma()).exp().min(1e6))
    }

    /// Time from a task's creation until its progress starts growing, as seen (zero before).
    pub fn start_offset(&self) -> Duration {
        Duration::from_secs_f64(self.start_offset.clamp(0.0, 1e6))
    }

    fn sigma(&self) -> f64 {
        (self.m2 / self.weight).sqrt().max(0.05)
    }

    /// P(processing time ≤ `elapsed`).
    pub fn cdf(&self, elapsed: f64) -> f64 {
        if elapsed <= 0.0 {
            return 0.0;
        }
        normal_cdf((elapsed.ln() - self.mean) / self.sigma())
    }
}

/// What is known of one running task.
#[derive(Debug, Clone)]
pub struct TaskForecast {
    /// When the task was created (as well as the client can tell).
    pub created: Instant,
    /// When it was last polled.
    pub last_poll: Option<Instant>,
    /// The last two observations with a progress strictly between 0 and 100: (when, progress).
    progress: Vec<(Instant, f64)>,
    /// The last state seen.
    pub state: Option<TaskState>,
}

impl TaskForecast {
    /// A task created at `created`, not yet polled.
    pub fn new(created: Instant) -> Self {
        TaskForecast {
            created,
            last_poll: None,
            progress: Vec::new(),
            state: None,
        }
    }

    /// Records a poll's answer.
    pub fn observe(&mut self, at: Instant, state: TaskState, progress: Option<f64>) {
        self.last_poll = Some(at);
        self.state = Some(state);
        if let Some(p) = progress.filter(|p| *p > 0.0 && *p < 100.0) {
            if self.progress.last().is_some_and(|(_, last)| *last >= p) {
                return;
            }
            self.progress.push((at, p));
            if self.progress.len() > 2 {
                self.progress.remove(0);
            }
        }
    }

    /// True when progress observations drive the forecast (rather than the duration model).
    pub fn from_progress(&self) -> bool {
        !self.progress.is_empty()
    }

    /// True when two progress readings give the rate, and so the end, closely.
    pub fn from_progress_rate(&self) -> bool {
        self.progress.len() == 2
    }

    /// P(the task is done by `at`).
    pub fn done_by(&self, at: Instant, model: &DurationModel) -> f64 {
        match self.predicted_end(model) {
            Some((end, sd)) => normal_cdf(signed_secs(at, end) / sd),
            None => model.cdf(signed_secs(at, self.created)),
        }
    }

    /// The probability that the task finished since its last poll (or since creation), given
    /// that it had not then: what a poll now is worth.
    ///
    /// When the last poll found the task running although the forecast was all but sure it
    /// would be done by then ([`OVERDUE_AT`]) — progress stuck at 99 % while the service
    /// publishes, a task far in the duration model's tail — the forecast is wrong, and its own
    /// tail says nothing useful (a normal one would poll at once, again and again; numerically it
    /// says 0 and the task would wait until the wait's limit). The rest of such a task's time is
    /// then taken as exponential with a mean of [`OVERDUE_MEAN_SHARE`] of its age at that poll:
    /// polls back off in proportion to how long the task has run.
    pub fn poll_value(&self, now: Instant, model: &DurationModel) -> f64 {
        let Some(last_poll) = self.last_poll else {
            return self.done_by(now, model).clamp(0.0, 1.0);
        };
        let before = self.done_by(last_poll, model);
        if before >= OVERDUE_AT {
            let age = signed_secs(last_poll, self.created).max(1e-3);
            let mean = (OVERDUE_MEAN_SHARE * age).max(1e-3);
            let since = signed_secs(now, last_poll).max(0.0);
            return 1.0 - (-since / mean).exp();
        }
        let by_now = self.done_by(now, model);
        ((by_now - before) / (1.0 - before)).clamp(0.0, 1.0)
    }

    /// With two progress readings: how long after creation progress started (rate
    /// extrapolated back to 0 %).
    pub fn implied_start_offset(&self) -> Option<Duration> {
        let [(t1, p1), (t2, p2)] = self.progress.as_slice() else {
            return None;
        };
        let rate = (p2 - p1) / signed_secs(*t2, *t1).max(1e-3);
        let start = signed_secs(*t1, self.created) - p1 / rate.max(1e-6);
        Duration::try_from_secs_f64(start.max(0.0)).ok()
    }

    /// End and uncertainty (seconds) from the progress observations, if any.
    fn predicted_end(&self, model: &DurationModel) -> Option<(Instant, f64)> {
        match self.progress.as_slice() {
            // The uncertainty is relative to the task's own time scale (so the forecast means the
            // same at any speed): a share of what is left plus a little of the whole.
            [(t1, p1), (t2, p2)] => {
                let rate = (p2 - p1) / signed_secs(*t2, *t1).max(1e-3);
                let left = (100.0 - p2) / rate.max(1e-6);
                let age = signed_secs(*t2, self.created).max(1e-3);
                Some((offset(*t2, left), (0.08 * left + 0.02 * age).max(1e-3)))
            }
            [(t, p)] => {
                // Progress counted from when it usually starts after creation.
                let so_far = (signed_secs(*t, self.created) - model.start_offset).max(1e-3);
                let left = so_far * (100.0 - p) / p;
                Some((offset(*t, left), (0.15 * left + 0.04 * so_far).max(1e-3)))
            }
            _ => None,
        }
    }
}

fn signed_secs(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64()
    } else {
        -(b - a).as_secs_f64()
    }
}

fn offset(at: Instant, secs: f64) -> Instant {
    at + Duration::from_secs_f64(secs.clamp(0.0, 3600.0))
}

/// The standard normal CDF (Abramowitz–Stegun 7.1.26 through erf; error below 1.5e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    let erf = if x >= 0.0 { erf } else { -erf };
    0.5 * (1.0 + erf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prior_has_its_median_and_p95() {
        let model = DurationModel::with_prior(Duration::from_secs(10), Duration::from_secs(30));
        assert!((model.cdf(10.0) - 0.5).abs() < 1e-6);
        assert!((model.cdf(30.0) - 0.95).abs() < 1e-3);
        assert_eq!(model.cdf(0.0), 0.0);
    }

    #[test]
    fn observations_move_the_model() {
        let mut model = DurationModel::with_prior(Duration::from_secs(10), Duration::from_secs(30));
        for _ in 0..50 {
            model.observe(Duration::from_secs(2));
        }
        let median = model.median().as_secs_f64();
        assert!(median > 1.8 && median < 2.6, "{median}");
    }

    #[test]
    fn two_progress_points_predict_the_end() {
        let start = Instant::now();
        let model = DurationModel::with_prior(Duration::from_secs(10), Duration::from_secs(30));
        let mut task = TaskForecast::new(start);
        // 10 %/s from t=2 s: 30 % at 5 s, 50 % at 7 s, done at 12 s.
        task.observe(
            start + Duration::from_secs(5),
            TaskState::Processing,
            Some(30.0),
        );
        task.observe(
            start + Duration::from_secs(7),
            TaskState::Processing,
            Some(50.0),
        );
        assert!(task.done_by(start + Duration::from_secs(10), &model) < 0.05);
        assert!(task.done_by(start + Duration::from_millis(13_500), &model) > 0.9);
        let value_now = task.poll_value(start + Duration::from_secs(8), &model);
        let value_later = task.poll_value(start + Duration::from_secs(14), &model);
        assert!(
            value_now < 0.01 && value_later > 0.9,
            "{value_now} {value_later}"
        );
    }

    #[test]
    fn a_task_stuck_past_its_forecast_is_still_polled() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let model = DurationModel::with_prior(Duration::from_secs(10), Duration::from_secs(30));
        let mut task = TaskForecast::new(start);
        // 50 % at 5 s, 99 % at 10 s: done at about 10.1 s, it says; then the service publishes
        // for a while and the task shows 99 % at every poll.
        task.observe(at(5_000), TaskState::Processing, Some(50.0));
        task.observe(at(10_000), TaskState::Processing, Some(99.0));
        task.observe(at(12_000), TaskState::Processing, Some(99.0));
        assert!(task.done_by(at(12_000), &model) > OVERDUE_AT);
        // Worth a poll again, soon (not never): 1.2 s is the mean of what is left at 12 s.
        let soon = task.poll_value(at(12_500), &model);
        let later = task.poll_value(at(15_000), &model);
        let much_later = task.poll_value(at(20_000), &model);
        assert!(soon > 0.2 && soon < 0.5, "{soon}");
        assert!(later > 0.9 && much_later > later, "{later} {much_later}");
        // The longer it has run, the longer the next wait: at 60 s, half a second is worth less.
        task.observe(at(60_000), TaskState::Processing, Some(99.0));
        assert!(task.poll_value(at(60_500), &model) < soon / 4.0);
        // A task in the duration model's far tail (no progress shown) is overdue the same way.
        let mut blind = TaskForecast::new(start);
        blind.observe(at(200_000), TaskState::Processing, None);
        let value = blind.poll_value(at(230_000), &model);
        assert!(value > 0.7 && value < 0.9, "{value}");
    }

    #[test]
    fn normal_cdf_is_accurate() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.644_853_6) - 0.95).abs() < 1e-6);
        assert!((normal_cdf(-3.0) - 0.001_35).abs() < 1e-5);
    }
}
