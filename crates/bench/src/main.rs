//! `backdrop-bench`: how close the poll policies get to the key's physical limit, at saturation
//! and under light load.
//!
//! Runs against the emulator with log-normal processing times (median 10 s, p95 30 s) and the
//! key's QPS, both sped up by one time factor, and prints in unscaled service time:
//! - batches of N tasks submitted at once (adaptive with progress growing and withheld, the
//!   documented policy, and the adaptive policy on two other distributions — uniform 4–16 s and
//!   a log-normal twice as slow — to show the forecast learns rather than being tuned to one);
//! - light load: tasks arriving one by one, Poisson at 20 a minute;
//! - one task at a time.
//!
//! For each: tasks per minute over the whole run and in its steady part (between the 10th and
//! the 90th percentile completion) with its share of the limit the safety margin leaves
//! (QPS × 30 × 1 s / (1 s + margin): 57.1 at QPS 2 and 50 ms) and of the bare QPS × 30, requests
//! per task, 429s received, detection delay p50/p95 (from the moment the emulator marks a task
//! done to the poll that sees it), makespan; and the peak RSS.
//!
//! ```sh
//! cargo run --release -p backdrop-bench              # 200 tasks, scale 5: about 11 minutes
//! cargo run --release -p backdrop-bench -- --tasks 50 --skip-documented
//! ```

use std::sync::Arc;
use std::time::Duration;

use backdrop_core::{
    BatchSize, Client, ClientConfig, GenerateRequest, PollPolicy, RateLimit, WaitControl,
    WaitOptions,
};
use backdrop_emulator::{Emulator, EmulatorConfig, ProcessingTime, ProgressMode};
use clap::Parser;
use tokio::time::Instant;

/// The bundled sample product.
const SAMPLE_PNG: &[u8] = include_bytes!("../../../tests/fixtures/bottle.png");

/// Benchmark the poll policies against the emulator.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Tasks per throughput run.
    #[arg(long, default_value_t = 200)]
    tasks: usize,
    /// Time factor: every duration of the service and of the key's QPS window is divided by it.
    /// The safety margin is divided too (so that it costs the same share of the budget), but
    /// the machine's jitter is not: at 10 the margin is 5 ms, within a busy 2-core machine's
    /// scheduling delays, and draws 429s a real 50 ms margin would not; 5 (10 ms) draws none.
    #[arg(long, default_value_t = 5.0)]
    scale: f64,
    /// The key's requests per second.
    #[arg(long, default_value_t = 2)]
    qps: u32,
    /// Median processing time, unscaled seconds.
    #[arg(long, default_value_t = 10.0)]
    median: f64,
    /// 95th percentile of the processing time, unscaled seconds.
    #[arg(long, default_value_t = 30.0)]
    p95: f64,
    /// The client's safety margin on the QPS window, unscaled milliseconds (its default is 50: a
    /// request is sent only when the last QPS requests are more than 1 s + margin ago).
    #[arg(long, default_value_t = 50.0)]
    margin_ms: f64,
    /// Cap on tasks in flight (default: as many as the key keeps busy, the client's own).
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Tasks run one at a time for the "alone" detection delay.
    #[arg(long, default_value_t = 10)]
    alone: usize,
    /// Skip the documented policy's throughput run (the slow one).
    #[arg(long)]
    skip_documented: bool,
    /// Skip the throughput run with progress withheld.
    #[arg(long)]
    skip_withheld: bool,
    /// Skip the throughput runs on other distributions (uniform 4–16 s, log-normal ×2).
    #[arg(long)]
    skip_other_distributions: bool,
    /// Skip the throughput run on the log-normal twice as slow (keep uniform 4–16 s).
    #[arg(long)]
    skip_twice_slow: bool,
    /// Tasks of the light-load run (0 skips it).
    #[arg(long, default_value_t = 100)]
    light_tasks: usize,
    /// Arrivals per minute (Poisson) of the light-load run, unscaled.
    #[arg(long, default_value_t = 20.0)]
    light_per_minute: f64,
    /// Also print, per run, how many tasks needed how many polls.
    #[arg(long)]
    verbose: bool,
    /// Seed of the emulator's processing times.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// What one run measured, in unscaled service time.
struct Run {
    label: String,
    tasks: usize,
    failed: usize,
    makespan_s: f64,
    requests: u64,
    responses_429: u64,
    delays: Vec<f64>,
    /// When the client saw each task done (unix seconds, real time), sorted.
    seen_done: Vec<f64>,
    /// The client's safety margin at the end (it adapts on the real clock), unscaled.
    margin_ms: f64,
}

impl Run {
    /// Completions per minute between the 10th and the 90th percentile completion: the rate
    /// once the run is under way, without the start (nothing is done yet) and the end (the last
    /// tasks run while the budget idles). `None` for runs too small to tell.
    fn steady_tasks_per_minute(&self, scale: f64) -> Option<f64> {
        let n = self.seen_done.len();
        if n < 20 {
            return None;
        }
        let (first, last) = (n / 10, n - 1 - n / 10);
        let span = (self.seen_done[last] - self.seen_done[first]) * scale;
        (span > 0.0).then(|| (last - first) as f64 / (span / 60.0))
    }

    fn tasks_per_minute(&self) -> f64 {
        (self.tasks - self.failed) as f64 / (self.makespan_s / 60.0)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let bare_limit = f64::from(args.qps) * 30.0;
    let limit = bare_limit / (1.0 + args.margin_ms.max(0.0) / 1000.0);
    println!(
        "backdrop-bench: {} tasks, QPS {} (margin {} ms), processing log-normal median {} s / \
         p95 {} s, time x{} (limits: QPS x 30 = {bare_limit:.0} tasks/min; with the margin \
         {limit:.1})",
        args.tasks, args.qps, args.margin_ms, args.median, args.p95, args.scale
    );
    let lognormal = ProcessingTime::LogNormal {
        median: Duration::from_secs_f64(args.median),
        p95: Duration::from_secs_f64(args.p95),
    };
    let mut runs = Vec::new();
    let mut batches = vec![
        (
            "",
            PollPolicy::Adaptive,
            ProgressMode::GrowsWithTime,
            lognormal,
        ),
        ("", PollPolicy::Adaptive, ProgressMode::Withheld, lognormal),
        (
            "",
            PollPolicy::Documented,
            ProgressMode::GrowsWithTime,
            lognormal,
        ),
    ];
    if !args.skip_other_distributions {
        batches.push((
            ", uniform 4-16 s",
            PollPolicy::Adaptive,
            ProgressMode::GrowsWithTime,
            ProcessingTime::Uniform {
                min: Duration::from_secs(4),
                max: Duration::from_secs(16),
            },
        ));
    }
    if !args.skip_other_distributions && !args.skip_twice_slow {
        batches.push((
            ", log-normal x2",
            PollPolicy::Adaptive,
            ProgressMode::GrowsWithTime,
            ProcessingTime::LogNormal {
                median: Duration::from_secs_f64(args.median * 2.0),
                p95: Duration::from_secs_f64(args.p95 * 2.0),
            },
        ));
    }
    for (suffix, policy, progress, processing) in batches {
        if (policy == PollPolicy::Documented && args.skip_documented)
            || (progress == ProgressMode::Withheld && args.skip_withheld)
        {
            continue;
        }
        let mut run = throughput(&args, policy, progress, processing).await?;
        run.label.push_str(suffix);
        eprintln!("  done: {}", run.label);
        runs.push(run);
    }
    if args.light_tasks > 0 {
        let run = light(&args, lognormal).await?;
        eprintln!("  done: {}", run.label);
        runs.push(run);
    }
    for policy in [PollPolicy::Adaptive, PollPolicy::Documented] {
        if args.alone == 0 {
            break;
        }
        let run = alone(&args, policy).await?;
        eprintln!("  done: {}", run.label);
        runs.push(run);
    }
    println!();
    println!(
        "| run | tasks/min | steady tasks/min | of {limit:.1} | of {bare_limit:.0} | requests/task | \
         429s | delay p50 | delay p95 | makespan | failed | margin at the end |"
    );
    println!(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for run in &runs {
        let steady = run.steady_tasks_per_minute(args.scale);
        println!(
            "| {} | {:.1} | {} | {} | {} | {:.2} | {} | {:.2} s | {:.2} s | {:.0} s | {} | {:.1} ms |",
            run.label,
            run.tasks_per_minute(),
            steady.map_or("–".into(), |t| format!("{t:.1}")),
            steady.map_or("–".into(), |t| format!("{:.0}%", 100.0 * t / limit)),
            steady.map_or("–".into(), |t| format!("{:.0}%", 100.0 * t / bare_limit)),
            run.requests as f64 / run.tasks as f64,
            run.responses_429,
            percentile(&run.delays, 0.5),
            percentile(&run.delays, 0.95),
            run.makespan_s,
            run.failed,
            run.margin_ms
        );
    }
    println!();
    println!(
        "peak RSS of the process: {:.1} MiB",
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}

fn policy_name(policy: PollPolicy) -> &'static str {
    match policy {
        PollPolicy::Adaptive => "adaptive",
        PollPolicy::Documented => "documented (1 s)",
    }
}

async fn emulator(
    args: &Args,
    progress: ProgressMode,
    processing: ProcessingTime,
) -> std::io::Result<Emulator> {
    Emulator::start(EmulatorConfig {
        qps: args.qps,
        time_scale: args.scale,
        processing,
        progress,
        seed: Some(args.seed),
        ..EmulatorConfig::default()
    })
    .await
}

fn client(
    args: &Args,
    emulator: &Emulator,
    max_in_flight: Option<usize>,
) -> backdrop_core::Result<Client> {
    // The client scales the window, not the jitter margin (real time governs jitter); the
    // benchmark scales the margin too, so that it costs the same share of the budget as in
    // real time and the figures stand for the real service's.
    let limit = RateLimit {
        margin: Duration::from_secs_f64(args.margin_ms.max(0.0) / 1000.0 / args.scale),
        ..RateLimit::per_second(args.qps)
    };
    let mut builder = ClientConfig::builder(emulator.api_key())
        .time_scale(args.scale)
        .base_url(emulator.base_url())
        .rate_limit(limit);
    if let Some(cap) = max_in_flight {
        builder = builder.max_in_flight(cap);
    }
    Client::new(builder.build()?)
}

fn wait_options(policy: PollPolicy) -> WaitOptions {
    WaitOptions {
        policy,
        ..WaitOptions::default()
    }
}

fn request() -> backdrop_core::Result<GenerateRequest> {
    Ok(GenerateRequest::builder()
        .image_bytes(SAMPLE_PNG, "bottle.png")
        .prompt("a marble countertop in soft morning light")
        .batch_size(BatchSize::One)
        .build()?)
}

/// How many of the spawned generations failed (or panicked).
async fn failures(handles: Vec<tokio::task::JoinHandle<bool>>) -> usize {
    let mut failed = 0;
    for handle in handles {
        if !handle.await.unwrap_or(false) {
            failed += 1;
        }
    }
    failed
}

/// `args.tasks` tasks submitted at once; the scheduler keeps as many running as the key keeps
/// busy (or `--max-in-flight`).
async fn throughput(
    args: &Args,
    policy: PollPolicy,
    progress: ProgressMode,
    processing: ProcessingTime,
) -> Result<Run, Box<dyn std::error::Error>> {
    let tasks = args.tasks;
    let emulator = emulator(args, progress, processing).await?;
    let client = client(args, &emulator, args.max_in_flight)?;
    let request = Arc::new(request()?);
    let options = wait_options(policy);
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (client, request) = (client.clone(), request.clone());
            tokio::spawn(async move {
                client
                    .generate(&request, options, |_| WaitControl::Continue)
                    .await
                    .is_ok()
            })
        })
        .collect();
    let failed = failures(handles).await;
    let run = measure(
        args,
        &emulator,
        &client,
        format!(
            "{}, progress {}",
            policy_name(policy),
            match progress {
                ProgressMode::GrowsWithTime => "grows",
                ProgressMode::Withheld => "withheld",
            }
        ),
        tasks,
        failed,
        started,
    );
    emulator.shutdown().await;
    Ok(run)
}

/// Light load: tasks arriving one by one (Poisson, `light_per_minute`), each generated as it
/// comes: the detection delay when the budget is not the bottleneck.
async fn light(args: &Args, processing: ProcessingTime) -> Result<Run, Box<dyn std::error::Error>> {
    let emulator = emulator(args, ProgressMode::GrowsWithTime, processing).await?;
    let client = client(args, &emulator, args.max_in_flight)?;
    let request = Arc::new(request()?);
    let options = wait_options(PollPolicy::Adaptive);
    let started = Instant::now();
    // Exponential gaps from a fixed seed (splitmix64), in scaled time.
    let mut state = args.seed ^ 0x5EED;
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut handles = Vec::new();
    for _ in 0..args.light_tasks {
        let gap = -(1.0 - uniform()).ln() * 60.0 / args.light_per_minute / args.scale;
        tokio::time::sleep(Duration::from_secs_f64(gap)).await;
        let (client, request) = (client.clone(), request.clone());
        handles.push(tokio::spawn(async move {
            client
                .generate(&request, options, |_| WaitControl::Continue)
                .await
                .is_ok()
        }));
    }
    let failed = failures(handles).await;
    let run = measure(
        args,
        &emulator,
        &client,
        format!(
            "adaptive, light load (Poisson {}/min)",
            args.light_per_minute
        ),
        args.light_tasks,
        failed,
        started,
    );
    emulator.shutdown().await;
    Ok(run)
}

/// Tasks one after the other: detection delay with the whole budget for one task.
async fn alone(args: &Args, policy: PollPolicy) -> Result<Run, Box<dyn std::error::Error>> {
    let lognormal = ProcessingTime::LogNormal {
        median: Duration::from_secs_f64(args.median),
        p95: Duration::from_secs_f64(args.p95),
    };
    let emulator = emulator(args, ProgressMode::GrowsWithTime, lognormal).await?;
    let client = client(args, &emulator, args.max_in_flight)?;
    let request = request()?;
    let options = wait_options(policy);
    let started = Instant::now();
    let mut failed = 0;
    for _ in 0..args.alone {
        if client
            .generate(&request, options, |_| WaitControl::Continue)
            .await
            .is_err()
        {
            failed += 1;
        }
    }
    let run = measure(
        args,
        &emulator,
        &client,
        format!("{}, one task alone", policy_name(policy)),
        args.alone,
        failed,
        started,
    );
    emulator.shutdown().await;
    Ok(run)
}

fn measure(
    args: &Args,
    emulator: &Emulator,
    client: &Client,
    label: String,
    tasks: usize,
    failed: usize,
    started: Instant,
) -> Run {
    let counters = emulator.counters();
    if args.verbose {
        let mut histogram = std::collections::BTreeMap::new();
        for task in emulator.tasks() {
            *histogram.entry(task.polls).or_insert(0u32) += 1;
        }
        eprintln!("  {label}: tasks by polls {histogram:?}");
    }
    let seen = emulator.tasks();
    let delays = seen
        .iter()
        .filter_map(|t| Some((t.final_seen_at? - t.became_final_at?) * args.scale))
        .collect();
    let mut seen_done: Vec<f64> = seen.iter().filter_map(|t| t.final_seen_at).collect();
    seen_done.sort_by(f64::total_cmp);
    Run {
        label,
        tasks,
        failed,
        makespan_s: started.elapsed().as_secs_f64() * args.scale,
        requests: counters.create_requests + counters.query_requests,
        responses_429: counters.responses_429,
        delays,
        seen_done,
        margin_ms: client.rate_limit_margin().as_secs_f64() * 1000.0 * args.scale,
    }
}

fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Peak resident set size (VmHWM) of this process, in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
