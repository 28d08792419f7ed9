//! A simulated service for the scheduler's tests: the real scheduler and the real wait loop
//! ([`wait_with`]) against task timelines like the emulator's (queue and preparation, log-normal
//! processing with a progress that grows with it or is withheld, publishing), on tokio's paused
//! clock, so a run of 200 tasks over several simulated minutes takes a moment and gives the same
//! figures every time.
//!
//! The invariant tests below run it; `cargo test -p backdrop-core --lib simulation -- --ignored
//! --nocapture` prints the figures of a few configurations (a tuning aid; the benchmark against
//! the emulator, `backdrop-bench`, is the measurement).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::budget::{
    BoxFuture, BudgetError, BudgetState, BudgetStore, MemoryBudgetStore, SharedBudget,
    SharedRateBudget, TokioBudgetClock,
};
use crate::config::ExpectedProcessing;
use crate::error::Result;
use crate::rate_limit::RateLimit;
use crate::response::TaskInfo;
use crate::scheduler::{PollPolicy, Scheduler, Want};
use crate::state::TaskState;
use crate::wait::{WaitControl, WaitOptions, wait_with};

/// How processing times are drawn.
#[derive(Debug, Clone, Copy)]
enum Durations {
    /// Log-normal with this median and 95th percentile (seconds).
    LogNormal { median: f64, p95: f64 },
    /// Uniform between the two (seconds).
    Uniform { low: f64, high: f64 },
}

/// When tasks are submitted.
#[derive(Debug, Clone, Copy)]
enum Arrivals {
    /// All at once (a batch).
    AtOnce,
    /// One by one, Poisson at this rate per minute (uploads trickling in).
    Poisson { per_minute: f64 },
}

/// One simulated run.
#[derive(Debug, Clone)]
struct SimConfig {
    tasks: usize,
    qps: u32,
    margin: Duration,
    /// The caller's cap on tasks in flight (`None`: as many as the key keeps busy).
    max_in_flight: Option<usize>,
    durations: Durations,
    arrivals: Arrivals,
    progress: bool,
    policy: PollPolicy,
    /// Time from send to arrival, and from arrival to the answer.
    half_trip: Duration,
    seed: u64,
    /// Processes sharing the key (tasks go to them in turn), each with its own scheduler.
    holders: usize,
    /// How they share it: one shared budget, or a static split of the key.
    sharing: Sharing,
    /// How the shared budget's store answers.
    store: StoreBehaviour,
}

/// How the shared budget's store answers: each call takes a time drawn uniformly between the
/// two latencies (its write lands halfway), and a share of calls fail — half of them before
/// their write, half after it (the answer lost).
#[derive(Debug, Clone, Copy)]
struct StoreBehaviour {
    latency: (Duration, Duration),
    failures: f64,
}

impl StoreBehaviour {
    const INSTANT: StoreBehaviour = StoreBehaviour {
        latency: (Duration::ZERO, Duration::ZERO),
        failures: 0.0,
    };

    /// A DynamoDB item under load: 5–20 ms a call, 1 % of calls failing.
    const SLOW_FAILING: StoreBehaviour = StoreBehaviour {
        latency: (Duration::from_millis(5), Duration::from_millis(20)),
        failures: 0.01,
    };
}

/// A [`MemoryBudgetStore`] behind a [`StoreBehaviour`], counting its calls.
#[derive(Debug)]
struct SimStore {
    inner: MemoryBudgetStore,
    behaviour: StoreBehaviour,
    rng: Mutex<Rng>,
    calls: std::sync::atomic::AtomicUsize,
    failed: std::sync::atomic::AtomicUsize,
}

impl SimStore {
    fn new(behaviour: StoreBehaviour, seed: u64) -> Self {
        SimStore {
            inner: MemoryBudgetStore::new(),
            behaviour,
            rng: Mutex::new(Rng(seed ^ 0x5707E)),
            calls: Default::default(),
            failed: Default::default(),
        }
    }

    /// Runs one store step the way the behaviour says: half the latency, the step (unless the
    /// call fails before it), the other half.
    fn call<'a, T: Send + 'a>(
        &'a self,
        step: impl FnOnce(&'a MemoryBudgetStore) -> BoxFuture<'a, Result<T, BudgetError>> + Send + 'a,
    ) -> BoxFuture<'a, Result<T, BudgetError>> {
        use std::sync::atomic::Ordering::Relaxed;
        self.calls.fetch_add(1, Relaxed);
        let (latency, fate) = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            let (low, high) = self.behaviour.latency;
            (low + (high - low).mul_f64(rng.next_f64()), rng.next_f64())
        };
        let failures = self.behaviour.failures;
        Box::pin(async move {
            tokio::time::sleep(latency / 2).await;
            let fail = || {
                self.failed.fetch_add(1, Relaxed);
                Err(BudgetError::new("simulated store failure"))
            };
            if fate < failures / 2.0 {
                return fail();
            }
            let result = step(&self.inner).await;
            tokio::time::sleep(latency / 2).await;
            if fate < failures { fail() } else { result }
        })
    }
}

impl BudgetStore for SimStore {
    fn advance(
        &self,
        interval_ms: u64,
        not_before_ms: u64,
    ) -> BoxFuture<'_, Result<Option<BudgetState>, BudgetError>> {
        self.call(move |store| store.advance(interval_ms, not_before_ms))
    }

    fn restart(
        &self,
        now_ms: u64,
        interval_ms: u64,
    ) -> BoxFuture<'_, Result<Option<BudgetState>, BudgetError>> {
        self.call(move |store| store.restart(now_ms, interval_ms))
    }

    fn pause(&self, until_ms: u64) -> BoxFuture<'_, Result<(), BudgetError>> {
        self.call(move |store| store.pause(until_ms))
    }
}

/// How several holders share one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sharing {
    /// A [`SharedRateBudget`] over one store (the DynamoDB item of the Lambda).
    Budget,
    /// Each holder gets `qps / holders`.
    Static,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            tasks: 200,
            qps: 2,
            margin: Duration::from_millis(50),
            max_in_flight: None,
            durations: Durations::LogNormal {
                median: 10.0,
                p95: 30.0,
            },
            arrivals: Arrivals::AtOnce,
            progress: true,
            policy: PollPolicy::Adaptive,
            half_trip: Duration::from_millis(15),
            seed: 42,
            holders: 1,
            sharing: Sharing::Static,
            store: StoreBehaviour::INSTANT,
        }
    }
}

/// A task's timeline at the simulated service.
#[derive(Debug, Clone)]
struct SimTask {
    created: Instant,
    prepared: Instant,
    processed: Instant,
    done: Instant,
    polls: u32,
    seen_done: Option<Instant>,
}

/// The simulated service: task timelines and every request's arrival.
#[derive(Debug)]
struct Service {
    config: SimConfig,
    rng: Rng,
    tasks: BTreeMap<String, SimTask>,
    arrivals: Vec<Instant>,
}

impl Service {
    fn create(&mut self, id: &str, at: Instant) {
        self.arrivals.push(at);
        let processing = match self.config.durations {
            Durations::LogNormal { median, p95 } => {
                let sigma = (p95.ln() - median.ln()) / 1.644_853_6;
                (median.ln() + sigma * self.rng.normal()).exp()
            }
            Durations::Uniform { low, high } => low + (high - low) * self.rng.next_f64(),
        }
        .clamp(1.0, 180.0);
        let prepared = at + Duration::from_millis(800);
        let processed = prepared + Duration::from_secs_f64(processing);
        self.tasks.insert(
            id.to_owned(),
            SimTask {
                created: at,
                prepared,
                processed,
                done: processed + Duration::from_millis(300),
                polls: 0,
                seen_done: None,
            },
        );
    }

    fn query(&mut self, id: &str, at: Instant) -> TaskInfo {
        self.arrivals.push(at);
        let progress_shown = self.config.progress;
        let task = self.tasks.get_mut(id);
        let Some(task) = task else {
            return info(id, TaskState::Failed, 0.0, None);
        };
        task.polls += 1;
        let (state, progress) = if at >= task.done {
            task.seen_done.get_or_insert(at);
            (TaskState::Completed, 100.0)
        } else if at >= task.processed {
            (TaskState::Publishing, 99.0)
        } else if at >= task.prepared {
            let share =
                (at - task.prepared).as_secs_f64() / (task.processed - task.prepared).as_secs_f64();
            (TaskState::Processing, (share * 99.0).floor())
        } else {
            (TaskState::Queued, 0.0)
        };
        let progress = if progress_shown || state == TaskState::Completed {
            progress
        } else {
            0.0
        };
        let elapsed = (state == TaskState::Completed).then(|| task.done - task.created);
        info(id, state, progress, elapsed)
    }
}

fn info(id: &str, state: TaskState, progress: f64, elapsed: Option<Duration>) -> TaskInfo {
    let mut body = serde_json::json!({"task_id": id, "state": state.code(), "progress": progress});
    if let Some(elapsed) = elapsed {
        body["time_elapsed"] = (elapsed.as_secs_f64() * 1000.0).round().into();
    }
    match serde_json::from_value(body) {
        Ok(info) => info,
        Err(error) => panic!("a simulated answer must parse: {error}"),
    }
}

/// What a run measured.
#[derive(Debug)]
struct SimReport {
    makespan: Duration,
    /// When each task was seen done, from the start, sorted.
    completions: Vec<Duration>,
    requests: usize,
    succeeded: usize,
    delays: Vec<f64>,
    polls: BTreeMap<u32, usize>,
    /// The most requests that arrived in any window of the key's length.
    max_in_window: usize,
    /// Requests a service counting strictly would have refused (429).
    refused: usize,
    /// Calls to the shared budget's store, and how many failed.
    store_calls: usize,
    store_failures: usize,
    longest_wait: Duration,
}

impl SimReport {
    fn tasks_per_minute(&self) -> f64 {
        self.succeeded as f64 / self.makespan.as_secs_f64() * 60.0
    }

    /// Completions per minute between the 10th and the 90th percentile of completion times:
    /// the rate once the batch runs, without its start and its tail.
    fn steady_per_minute(&self) -> f64 {
        let n = self.completions.len();
        if n < 10 {
            return f64::NAN;
        }
        let (first, last) = (n / 10, n - 1 - n / 10);
        let span = (self.completions[last] - self.completions[first]).as_secs_f64();
        (last - first) as f64 / span.max(1e-9) * 60.0
    }

    /// The rates of a run of `tasks` tasks at `qps`, as the sweeps print them: whole run and
    /// steady (each with its share of the bare limit, QPS × 30 a minute), requests per task.
    fn rates(&self, tasks: usize, qps: u32) -> String {
        let bare = f64::from(qps) * 30.0;
        format!(
            "{tasks:>5} tasks {:>6.1}/min ({:>3.0} %) steady {:>6.1}/min ({:>3.0} %) {:.2} req/task",
            self.tasks_per_minute(),
            self.tasks_per_minute() / bare * 100.0,
            self.steady_per_minute(),
            self.steady_per_minute() / bare * 100.0,
            self.requests as f64 / tasks as f64,
        )
    }

    fn delay(&self, q: f64) -> f64 {
        let mut sorted = self.delays.clone();
        sorted.sort_by(f64::total_cmp);
        let index = ((sorted.len().max(1) - 1) as f64 * q).round() as usize;
        sorted.get(index).copied().unwrap_or(f64::NAN)
    }
}

/// Runs `config.tasks` tasks submitted at once; must be called on a paused clock.
async fn simulate(config: SimConfig) -> SimReport {
    let limit = RateLimit {
        margin: config.margin,
        ..RateLimit::per_second(config.qps)
    };
    let holders = config.holders.max(1);
    let store = Arc::new(SimStore::new(config.store, config.seed));
    let budget: Arc<dyn SharedBudget> = Arc::new(SharedRateBudget::with_clock(
        store.clone(),
        limit,
        TokioBudgetClock::starting_at(1_800_000_000_000),
    ));
    let share = static_share(limit, holders);
    let cap = config.max_in_flight.unwrap_or(crate::config::MAX_IN_FLIGHT);
    let schedulers: Vec<Arc<Scheduler>> = (0..holders)
        .map(|_| {
            Arc::new(match (config.sharing, holders) {
                (_, 1) => Scheduler::new(limit, cap, ExpectedProcessing::TYPICAL),
                (Sharing::Budget, _) => Scheduler::with_shared(
                    limit,
                    cap,
                    ExpectedProcessing::TYPICAL,
                    Some((budget.clone(), share)),
                ),
                (Sharing::Static, _) => Scheduler::new(share, cap, ExpectedProcessing::TYPICAL),
            })
        })
        .collect();
    let service = Arc::new(Mutex::new(Service {
        rng: Rng(config.seed),
        config: config.clone(),
        tasks: BTreeMap::new(),
        arrivals: Vec::new(),
    }));
    let options = WaitOptions {
        policy: config.policy,
        ..WaitOptions::default()
    };
    let start = Instant::now();
    let mut arrival_rng = Rng(config.seed ^ 0xA5A5);
    let mut next_arrival = Duration::ZERO;
    let handles: Vec<_> = (0..config.tasks)
        .map(|i| {
            let (scheduler, service) = (schedulers[i % holders].clone(), service.clone());
            let half_trip = config.half_trip;
            let arrival = next_arrival;
            if let Arrivals::Poisson { per_minute } = config.arrivals {
                let gap = -(1.0 - arrival_rng.next_f64()).ln() * 60.0 / per_minute;
                next_arrival += Duration::from_secs_f64(gap);
            }
            tokio::spawn(async move {
                tokio::time::sleep(arrival).await;
                let id = format!("task-{i}");
                scheduler.turn(Want::Create).await;
                tokio::time::sleep(half_trip).await;
                lock(&service).create(&id, Instant::now());
                tokio::time::sleep(half_trip).await;
                scheduler.create_answered(Some(&id));
                let waited = Instant::now();
                let query = |want| {
                    let (scheduler, service, id) = (scheduler.clone(), service.clone(), id.clone());
                    async move {
                        scheduler.turn(want).await;
                        tokio::time::sleep(half_trip).await;
                        let info = lock(&service).query(&id, Instant::now());
                        tokio::time::sleep(half_trip).await;
                        Result::Ok(info)
                    }
                };
                let outcome =
                    wait_with(&scheduler, &id, options, query, |_| WaitControl::Continue).await;
                (outcome.is_ok(), waited.elapsed())
            })
        })
        .collect();
    let mut succeeded = 0;
    let mut longest_wait = Duration::ZERO;
    for handle in handles {
        if let Ok((ok, waited)) = handle.await {
            succeeded += usize::from(ok);
            longest_wait = longest_wait.max(waited);
        }
    }
    let makespan = start.elapsed();
    let service = lock(&service);
    let mut arrivals = service.arrivals.clone();
    arrivals.sort();
    let in_window: Vec<usize> = (0..arrivals.len())
        .map(|i| {
            arrivals[i..]
                .iter()
                .take_while(|at| **at - arrivals[i] < limit.window)
                .count()
        })
        .collect();
    let max_in_window = in_window.iter().copied().max().unwrap_or(0);
    // A request is refused when the window ending with it already holds the key's limit.
    let refused = (0..arrivals.len())
        .filter(|&j| {
            let from = arrivals[j].checked_sub(limit.window);
            arrivals[..j]
                .iter()
                .rev()
                .take_while(|at| from.is_none_or(|from| **at > from))
                .count()
                >= limit.max_requests as usize
        })
        .count();
    use std::sync::atomic::Ordering::Relaxed;
    let mut polls = BTreeMap::new();
    for task in service.tasks.values() {
        *polls.entry(task.polls).or_insert(0) += 1;
    }
    let mut completions: Vec<Duration> = service
        .tasks
        .values()
        .filter_map(|t| Some(t.seen_done? - start))
        .collect();
    completions.sort();
    SimReport {
        makespan,
        completions,
        requests: arrivals.len(),
        succeeded,
        delays: service
            .tasks
            .values()
            .filter_map(|t| Some((t.seen_done? - t.done).as_secs_f64()))
            .collect(),
        polls,
        max_in_window,
        refused,
        store_calls: store.calls.load(Relaxed),
        store_failures: store.failed.load(Relaxed),
        longest_wait,
    }
}

/// One holder's static share of `limit`: `max_requests / holders` per window, or one request
/// per `holders / max_requests` windows.
fn static_share(limit: RateLimit, holders: usize) -> RateLimit {
    let holders = u32::try_from(holders).unwrap_or(u32::MAX).max(1);
    if limit.max_requests >= holders {
        RateLimit {
            max_requests: limit.max_requests / holders,
            ..limit
        }
    } else {
        RateLimit {
            max_requests: 1,
            window: limit.window * holders.div_ceil(limit.max_requests),
            ..limit
        }
    }
}

fn lock(service: &Mutex<Service>) -> std::sync::MutexGuard<'_, Service> {
    service
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// splitmix64, and normal draws by Box–Muller: reproducible without a dependency.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next_f64(), self.next_f64());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

#[tokio::test(start_paused = true)]
async fn at_saturation_every_task_ends_inside_the_window_and_the_cap() {
    for progress in [true, false] {
        let report = simulate(SimConfig {
            progress,
            ..SimConfig::default()
        })
        .await;
        assert_eq!(report.succeeded, 200, "{report:?}");
        assert!(report.max_in_window <= 2, "{report:?}");
        assert!(
            report.longest_wait <= crate::spec::MAX_POLL_DURATION,
            "{report:?}"
        );
        // Every task was seen done; none waited unpolled for long after it ended.
        assert_eq!(report.delays.len(), 200);
    }
}

#[tokio::test(start_paused = true)]
async fn holders_sharing_a_budget_never_exceed_the_key_and_a_lone_one_gets_it_all() {
    for holders in [2, 3] {
        let report = simulate(SimConfig {
            tasks: 60,
            holders,
            sharing: Sharing::Budget,
            ..SimConfig::default()
        })
        .await;
        assert_eq!(report.succeeded, 60, "{report:?}");
        assert!(report.max_in_window <= 2, "{holders} holders: {report:?}");
    }
    // One holder busy, the others idle: it uses the whole key, not a third of it.
    let report = simulate(SimConfig {
        tasks: 60,
        holders: 1,
        sharing: Sharing::Budget,
        ..SimConfig::default()
    })
    .await;
    let static_third = simulate(SimConfig {
        tasks: 60,
        holders: 3,
        sharing: Sharing::Static,
        ..SimConfig::default()
    })
    .await;
    assert!(
        report.makespan < static_third.makespan,
        "{:?} vs {:?}",
        report.makespan,
        static_third.makespan
    );
}

#[tokio::test(start_paused = true)]
async fn the_documented_policy_starves_no_task_at_saturation() {
    let report = simulate(SimConfig {
        policy: PollPolicy::Documented,
        ..SimConfig::default()
    })
    .await;
    assert_eq!(report.succeeded, 200, "{report:?}");
    assert!(report.max_in_window <= 2, "{report:?}");
    assert!(!report.polls.contains_key(&0), "{report:?}");
}

#[tokio::test(start_paused = true)]
#[ignore = "prints figures: a tuning aid, not a check"]
async fn figures() {
    let runs = [
        ("adaptive, progress grows", SimConfig::default()),
        (
            "adaptive, progress withheld",
            SimConfig {
                progress: false,
                ..SimConfig::default()
            },
        ),
        (
            "adaptive, uniform 4-16 s",
            SimConfig {
                durations: Durations::Uniform {
                    low: 4.0,
                    high: 16.0,
                },
                ..SimConfig::default()
            },
        ),
        (
            "adaptive, log-normal twice as slow",
            SimConfig {
                durations: Durations::LogNormal {
                    median: 20.0,
                    p95: 60.0,
                },
                ..SimConfig::default()
            },
        ),
        (
            "adaptive, Poisson 20/min, 100 tasks",
            SimConfig {
                tasks: 100,
                arrivals: Arrivals::Poisson { per_minute: 20.0 },
                ..SimConfig::default()
            },
        ),
        (
            "documented, progress grows",
            SimConfig {
                policy: PollPolicy::Documented,
                ..SimConfig::default()
            },
        ),
        (
            "3 holders, one shared budget",
            SimConfig {
                holders: 3,
                sharing: Sharing::Budget,
                ..SimConfig::default()
            },
        ),
        (
            "3 holders, static split",
            SimConfig {
                holders: 3,
                sharing: Sharing::Static,
                ..SimConfig::default()
            },
        ),
        (
            "adaptive, one task alone",
            SimConfig {
                tasks: 1,
                ..SimConfig::default()
            },
        ),
    ];
    for (label, config) in runs {
        let mut figures = Vec::new();
        for seed in [1, 2, 3] {
            let report = simulate(SimConfig {
                seed,
                ..config.clone()
            })
            .await;
            figures.push(format!(
                "{:.1}/min steady {:.1}/min makespan {:.0} s {:.2} req/task p50 {:.2} s p95 {:.2} s polls {:?}",
                report.tasks_per_minute(),
                report.steady_per_minute(),
                report.makespan.as_secs_f64(),
                report.requests as f64 / config.tasks as f64,
                report.delay(0.5),
                report.delay(0.95),
                report.polls
            ));
        }
        println!("{label}:\n  {}", figures.join("\n  "));
    }
}

#[tokio::test(start_paused = true)]
#[ignore = "prints figures: a tuning aid, not a check"]
async fn in_flight_sweep() {
    // "auto" (the key's own limit) and fixed caps.
    let caps: Vec<Option<usize>> = std::env::var("SWEEP_CAPS")
        .ok()
        .map(|v| v.split(',').map(|c| c.parse().ok()).collect())
        .unwrap_or_else(|| vec![None, Some(48)]);
    let qps_list: Vec<u32> = std::env::var("SWEEP_QPS")
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.parse().ok()).collect())
        .unwrap_or_else(|| vec![2, 10, 20, 50]);
    for qps in qps_list {
        for (label, durations) in [
            (
                "uniform 4-16 s",
                Durations::Uniform {
                    low: 4.0,
                    high: 16.0,
                },
            ),
            (
                "log-normal 10/30 s",
                Durations::LogNormal {
                    median: 10.0,
                    p95: 30.0,
                },
            ),
        ] {
            for &cap in &caps {
                let tasks = four_minutes_of_work(qps);
                let config = SimConfig {
                    tasks,
                    qps,
                    durations,
                    max_in_flight: cap,
                    seed: 1,
                    ..SimConfig::default()
                };
                let report = simulate(config).await;
                let cap = cap.map_or("auto".to_owned(), |c| c.to_string());
                println!(
                    "qps {qps:>2} {label:<18} cap {cap:>4}: {} p50 {:.2} s p95 {:.2} s",
                    report.rates(tasks, qps),
                    report.delay(0.5),
                    report.delay(0.95),
                );
            }
        }
    }
}

/// Four minutes of work at `qps`'s bare limit (QPS × 30 tasks a minute), at least 300 tasks.
fn four_minutes_of_work(qps: u32) -> usize {
    (qps as usize * 30 * 4).max(300)
}

/// The Lambda's fleet at a raised key: `holders` instances sharing one budget over a store that
/// answers in 5–20 ms and fails 1 % of its calls.
fn fleet_at(qps: u32, holders: usize, tasks: usize, seed: u64) -> SimConfig {
    SimConfig {
        tasks,
        qps,
        holders,
        sharing: Sharing::Budget,
        store: StoreBehaviour::SLOW_FAILING,
        durations: Durations::Uniform {
            low: 4.0,
            high: 16.0,
        },
        seed,
        ..SimConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn twenty_instances_at_qps_50_keep_to_the_key_over_a_slow_failing_store() {
    let report = simulate(fleet_at(50, 20, 1_000, 3)).await;
    assert_eq!(report.succeeded, 1_000, "{report:?}");
    assert!(report.max_in_window <= 50, "{report:?}");
    assert_eq!(report.refused, 0, "{report:?}");
    assert!(report.store_failures > 0, "{report:?}");
    // Batches: fewer store calls than requests.
    assert!(report.store_calls < report.requests, "{report:?}");
    // The budget stays in use through the failures: most of the key's steady rate.
    let bare = 50.0 * 30.0;
    assert!(
        report.steady_per_minute() >= 0.8 * bare,
        "{:.0}/min of {bare}",
        report.steady_per_minute()
    );
}

#[tokio::test(start_paused = true)]
#[ignore = "prints figures: a tuning aid, not a check"]
async fn shared_budget_sweep() {
    for (qps, holders) in [(2, 2), (10, 5), (20, 10), (50, 20)] {
        let tasks = four_minutes_of_work(qps);
        for (label, store) in [
            ("instant store", StoreBehaviour::INSTANT),
            ("5-20 ms, 1 % failing", StoreBehaviour::SLOW_FAILING),
        ] {
            let report = simulate(SimConfig {
                store,
                ..fleet_at(qps, holders, tasks, 1)
            })
            .await;
            println!(
                "qps {qps:>2} x{holders:>2} {label:<20}: {}, {} refused, most in a window {}, {:.2} store calls/task ({} failed) p50 {:.2} s p95 {:.2} s",
                report.rates(tasks, qps),
                report.refused,
                report.max_in_window,
                report.store_calls as f64 / tasks as f64,
                report.store_failures,
                report.delay(0.5),
                report.delay(0.95),
            );
        }
    }
}
