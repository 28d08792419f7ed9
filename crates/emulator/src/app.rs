//! The state shared by every handler and task job of one emulator.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use backdrop_core::{BatchSize, TaskState, spec};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use tokio::sync::Semaphore;

use crate::config::{EmulatorConfig, Faults, ProcessingTime};
use crate::counters::CounterSet;
use crate::job::{self, JobPlan, Source};
use crate::rate::RateWindows;
use crate::render::Backdrop;
use crate::signing::Signer;
use crate::tasks::{Task, TaskStore, Timeline};

/// A prompt containing this followed by a negative state code (e.g. `emulator:fail=-17`) makes
/// its task end in that state after its processing time.
pub const FAIL_TRIGGER: &str = "emulator:fail=";

/// How often expired result bytes are dropped, at most.
const PURGE_INTERVAL: Duration = Duration::from_secs(10);

/// Everything one emulator shares between requests and task jobs.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) config: EmulatorConfig,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) counters: CounterSet,
    pub(crate) rate: Mutex<RateWindows>,
    pub(crate) tasks: TaskStore,
    pub(crate) rng: Mutex<StdRng>,
    pub(crate) signer: Signer,
    /// Fetches `image_url`s.
    pub(crate) http: reqwest::Client,
    /// `http://ADDR` of the bound socket.
    pub(crate) base_url: String,
    /// Limits concurrent decoding and rendering to the number of CPUs.
    pub(crate) cpu: Semaphore,
    last_purge: Mutex<Instant>,
}

/// A validated create request.
#[derive(Debug)]
pub(crate) struct NewTask {
    pub(crate) source: Source,
    pub(crate) backdrop: Backdrop,
    pub(crate) batch_size: BatchSize,
}

/// Locks a mutex, ignoring poisoning (every critical section leaves its data consistent).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// True with probability `rate` (0 or NaN never, 1 always).
pub(crate) fn chance(rng: &mut StdRng, rate: f64) -> bool {
    if rate.is_nan() || rate <= 0.0 {
        false
    } else if rate >= 1.0 {
        true
    } else {
        rng.random::<f64>() < rate
    }
}

impl App {
    /// The shared state of an emulator bound to `base_url`.
    pub(crate) fn new(config: EmulatorConfig, base_url: String) -> Result<App, String> {
        config.validate()?;
        let mut config = config;
        if config.api_keys.is_empty() {
            config.api_keys = EmulatorConfig::default().api_keys;
        }
        let http = reqwest::Client::builder()
            .timeout(config.fetch_timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client for image_url downloads: {e}"))?;
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_rng(&mut rand::rng()),
        };
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(App {
            faults: Mutex::new(config.faults.clone()),
            counters: CounterSet::default(),
            rate: Mutex::new(RateWindows::new(
                config.scaled(spec::QPS_WINDOW),
                config.qps,
            )),
            tasks: TaskStore::default(),
            rng: Mutex::new(rng),
            signer: Signer::new(),
            http,
            base_url,
            cpu: Semaphore::new(cpus),
            last_purge: Mutex::new(Instant::now()),
            config,
        })
    }

    /// The faults in force.
    pub(crate) fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    /// How long result URLs stay valid after a task ends.
    pub(crate) fn result_ttl(&self) -> Duration {
        self.config.scaled(spec::RESULT_URL_TTL)
    }

    /// Creates a task and starts its job; returns its id.
    pub(crate) fn create_task(self: &Arc<Self>, new: NewTask) -> String {
        self.purge_now_and_then();
        let faults = self.faults();
        let prompt = match &new.backdrop {
            Backdrop::Prompt { prompt, .. } => Some(prompt.clone()),
            Backdrop::Scene(_) => None,
        };
        let trigger = prompt.as_deref().and_then(fail_trigger);
        let (id, processing, failure, never_finish) = {
            let mut rng = lock(&self.rng);
            let id = format!("{:032x}", rng.random::<u128>());
            let processing = sample_processing(&mut rng, self.config.processing);
            let failure = trigger.or_else(|| {
                faults
                    .failure_state()
                    .filter(|_| chance(&mut rng, faults.fail_rate))
            });
            let never_finish = failure.is_none() && chance(&mut rng, faults.never_finish_rate);
            (id, processing, failure, never_finish)
        };
        let queued = self.config.scaled(self.config.queue_time);
        let prepared = queued + self.config.scaled(self.config.prepare_time);
        let timeline = Timeline {
            queued,
            prepared,
            processed: prepared + self.config.scaled(processing),
        };
        let created = Instant::now();
        self.tasks.insert(Task {
            id: id.clone(),
            created,
            created_wall: SystemTime::now(),
            timeline,
            batch_size: new.batch_size.count(),
            source: match new.source {
                Source::File(_) => "file",
                Source::Url(_) => "url",
            },
            prompt,
            answer_lost: false,
            never_finish,
            outcome: None,
            polls: 0,
            final_seen_wall: None,
            results_purged: false,
            job: None,
        });
        self.counters.update(|c| c.tasks_created += 1);
        let plan = JobPlan {
            id: id.clone(),
            source: new.source,
            backdrop: new.backdrop,
            batch_size: new.batch_size,
            failure: failure.map(TaskState::from_code),
            never_finish,
            created,
            timeline,
        };
        let handle = tokio::spawn(job::run(Arc::clone(self), plan)).abort_handle();
        // The job may already have ended; only keep the handle of a running job.
        self.tasks.with(&id, |task| {
            if task.outcome.is_none() {
                task.job = Some(handle);
            }
        });
        id
    }

    /// Records that the create answer of task `id` was lost (the connection is being cut).
    pub(crate) fn answer_lost(&self, id: &str) {
        self.tasks.with(id, |task| task.answer_lost = true);
        self.counters.update(|c| c.create_answers_lost += 1);
    }

    fn purge_now_and_then(&self) {
        let now = Instant::now();
        {
            let mut last = lock(&self.last_purge);
            if now.saturating_duration_since(*last) < PURGE_INTERVAL {
                return;
            }
            *last = now;
        }
        self.tasks.purge_results(now, self.result_ttl());
    }
}

/// The state a prompt's fail trigger asks for (`emulator:fail=<negative code>`).
pub(crate) fn fail_trigger(prompt: &str) -> Option<i32> {
    let rest = &prompt[prompt.find(FAIL_TRIGGER)? + FAIL_TRIGGER.len()..];
    let end = rest
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && (*c == '-' || *c == '+'))))
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].parse::<i32>().ok().filter(|state| *state < 0)
}

/// Draws a processing time (capped at [`spec::MAX_PROCESSING_TIME`]).
pub(crate) fn sample_processing(rng: &mut StdRng, processing: ProcessingTime) -> Duration {
    let max = spec::MAX_PROCESSING_TIME;
    match processing {
        ProcessingTime::Fixed(duration) => duration.min(max),
        ProcessingTime::Uniform { min, max: upper } => {
            let (low, high) = (
                min.as_secs_f64(),
                upper.as_secs_f64().max(min.as_secs_f64()),
            );
            let secs = low + (high - low) * rng.random::<f64>();
            Duration::try_from_secs_f64(secs).unwrap_or(min).min(max)
        }
        ProcessingTime::LogNormal { median, p95 } => {
            // p95 = median * exp(1.645 sigma)
            const Z95: f64 = 1.644_853_6;
            let mu = median.as_secs_f64().ln();
            let sigma = (p95.as_secs_f64() / median.as_secs_f64()).ln().max(0.0) / Z95;
            let secs = LogNormal::new(mu, sigma)
                .map(|distribution| distribution.sample(rng))
                .unwrap_or(median.as_secs_f64());
            Duration::try_from_secs_f64(secs)
                .unwrap_or(median)
                .clamp(Duration::from_secs(1), max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_parsing() {
        assert_eq!(fail_trigger("a beach emulator:fail=-17 please"), Some(-17));
        assert_eq!(fail_trigger("emulator:fail=-3"), Some(-3));
        assert_eq!(fail_trigger("emulator:fail=4"), None);
        assert_eq!(fail_trigger("emulator:fail=x"), None);
        assert_eq!(fail_trigger("emulator:fail="), None);
        assert_eq!(fail_trigger("a beach"), None);
    }

    #[test]
    fn processing_times_follow_the_distribution() {
        let mut rng = StdRng::seed_from_u64(7);
        let fixed = ProcessingTime::Fixed(Duration::from_millis(150));
        assert_eq!(
            sample_processing(&mut rng, fixed),
            Duration::from_millis(150)
        );
        let huge = ProcessingTime::Fixed(Duration::from_secs(1000));
        assert_eq!(sample_processing(&mut rng, huge), spec::MAX_PROCESSING_TIME);
        let uniform = ProcessingTime::Uniform {
            min: Duration::from_secs(2),
            max: Duration::from_secs(3),
        };
        for _ in 0..100 {
            let d = sample_processing(&mut rng, uniform);
            assert!(d >= Duration::from_secs(2) && d <= Duration::from_secs(3));
        }
        let mut samples: Vec<Duration> = (0..2000)
            .map(|_| sample_processing(&mut rng, ProcessingTime::default()))
            .collect();
        samples.sort();
        let median = samples[1000].as_secs_f64();
        let p95 = samples[1900].as_secs_f64();
        assert!((8.5..11.5).contains(&median), "median {median}");
        assert!((24.0..37.0).contains(&p95), "p95 {p95}");
        assert!(samples[0] >= Duration::from_secs(1));
        assert!(*samples.last().unwrap() <= spec::MAX_PROCESSING_TIME);
    }

    #[test]
    fn chance_extremes() {
        let mut rng = StdRng::seed_from_u64(1);
        assert!(!chance(&mut rng, 0.0));
        assert!(!chance(&mut rng, f64::NAN));
        assert!(chance(&mut rng, 1.0));
        let hits = (0..10_000).filter(|_| chance(&mut rng, 0.3)).count();
        assert!((2700..3300).contains(&hits), "{hits}");
    }
}
