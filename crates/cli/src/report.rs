//! The contact sheet of an output folder: `index.html`, one row per input, rebuilt from the
//! journal.
//!
//! **The journal is the record.** Every row of a journal entry — its stage, task, outputs,
//! credits, failure and seconds (from the create being sent to the entry's last change) — comes
//! from [`crate::journal`], so the page a run writes, the page of a run stopped and resumed, and
//! the page `backdrop report DIR` rebuilds show the same rows. What the journal does not keep
//! lives in a CLI-only sidecar, `.backdrop-report/inputs.json`, that nothing but the page reads
//! (the ledger's rules never see it):
//!
//! - each input key's source file (its absolute path, for the source thumbnail and link) and the
//!   background it asked for (prompt or scene, negative prompt);
//! - the inputs that never reach the journal — refused locally (a bad PNG: nothing sent) or not
//!   started (the run was stopped) — kept until a run records the same input (label and
//!   background) in the journal;
//! - the wall time of the runs.
//!
//! Without the sidecar a rebuilt page still shows every journal entry, without backgrounds or
//! sources. Thumbnails go to `.backdrop-report/thumbs/` (generated images) and
//! `.backdrop-report/sources/` (sources, over a checkerboard), made once and remade only when the
//! original is newer, one at a time ([`backdrop_report::thumbnail`]: bounded memory).
//!
//! While `generate` runs, the page is rewritten at most every [`UPDATE_INTERVAL`] after a result
//! lands (the rows of a 200-input folder render in milliseconds, but each write is a whole file
//! and an fsync), each time spending at most [`LIVE_THUMBNAIL_BUDGET`] on thumbnails (images
//! without one yet are links until a later write), and once more at the end, with every
//! thumbnail; the page reloads itself while the run goes on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufReader;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backdrop_core::Recovery;
use backdrop_core::ledger::{Entry, InputKey, Stage};
use backdrop_report::{Page, Picture, Row, RowFailure, Status, thumbnail, time};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};

use crate::advice::ACTIONS;
use crate::args::GenerateArgs;
use crate::error::CliError;
use crate::inputs::{Input, InputSource};
use crate::journal::{self, JOURNAL_FILE, Journal, LOCK_FILE};
use crate::summary::{InputOutcome, OutcomeStatus, Summary};
use backdrop_core::remedy::{Fix, remedy, sentence};

/// The page's file name in the output folder.
pub const PAGE_FILE: &str = "index.html";
/// The folder of the page's thumbnails and sidecar, in the output folder.
pub const REPORT_DIR: &str = ".backdrop-report";
/// The sidecar's file name in [`REPORT_DIR`].
const SIDECAR_FILE: &str = "inputs.json";
/// The sidecar's format.
const SIDECAR_VERSION: u32 = 1;
/// Shortest time between two writes of the page while a run goes on.
pub const UPDATE_INTERVAL: Duration = Duration::from_secs(2);

/// How often the live page may be rewritten after one write took `spent`: every
/// [`UPDATE_INTERVAL`], or less often once a page (it grows with the catalog) takes long to
/// write, so that writing pages (thumbnails aside, which are bounded per write) never takes more
/// than about a tenth of the run.
fn update_interval(spent: Duration) -> Duration {
    UPDATE_INTERVAL.max(
        spent
            .saturating_sub(LIVE_THUMBNAIL_BUDGET)
            .saturating_mul(10),
    )
}
/// The most time a write of the page spends on thumbnails while a run goes on (the final write
/// makes all that are missing): results land faster than thumbnails are made.
const LIVE_THUMBNAIL_BUDGET: Duration = Duration::from_secs(1);
/// How often an open page reloads itself while a run goes on.
const REFRESH_SECONDS: u32 = 5;
/// Files larger than this get no thumbnail (the service takes at most 20 MiB).
const MAX_THUMBNAIL_SOURCE: u64 = 64 * 1024 * 1024;

/// What the page needs that the journal does not keep.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Sidecar {
    version: u32,
    /// By input key (as in the journal).
    #[serde(default)]
    inputs: BTreeMap<String, InputInfo>,
    /// Inputs of runs that never reached the journal.
    #[serde(default)]
    unrecorded: Vec<Unrecorded>,
    /// The runs' wall time.
    #[serde(default)]
    runs: Runs,
}

/// An input's source and background.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct InputInfo {
    /// The source file (absolute), for files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<PathBuf>,
    /// `prompt: …` or `scene N`.
    background: String,
    /// The negative prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    negative: Option<String>,
}

/// An input that is not in the journal: refused locally, or not started.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Unrecorded {
    label: String,
    #[serde(flatten)]
    info: InputInfo,
    status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl Unrecorded {
    fn same_input(&self, label: &str, info: &InputInfo) -> bool {
        self.label == label
            && self.info.background == info.background
            && self.info.negative == info.negative
    }
}

/// Wall time of the runs into the folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Runs {
    count: u32,
    total_seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_seconds: Option<f64>,
}

/// The page of one `generate` run: fed as inputs are keyed and end, written by
/// [`keep_updated`](Self::keep_updated) and [`finish`](Self::finish). A no-op when disabled
/// (`--no-report`).
#[derive(Debug, Clone)]
pub struct LiveReport(Option<Arc<Inner>>);

#[derive(Debug)]
struct Inner {
    out: PathBuf,
    out_abs: PathBuf,
    background: String,
    negative: Option<String>,
    owner: String,
    started: Instant,
    sidecar: Mutex<Sidecar>,
    /// The key of each input of this run, by output stem (unique in a run).
    keys: Mutex<HashMap<PathBuf, InputKey>>,
    changed: Notify,
    failed_thumbnails: Mutex<HashSet<PathBuf>>,
    /// The last error writing the page, reported at the end.
    error: Mutex<Option<String>>,
}

impl LiveReport {
    /// The page of a run with `args` into their output folder (which exists), owned by `owner`
    /// in the journal; disabled with `--no-report`.
    pub fn start(args: &GenerateArgs, owner: &str) -> LiveReport {
        if args.no_report {
            return LiveReport(None);
        }
        let out_abs = std::fs::canonicalize(&args.out).unwrap_or_else(|_| args.out.clone());
        let background = match (&args.prompt, args.scene) {
            (Some(prompt), _) => format!("prompt: {prompt}"),
            (None, Some(scene)) => format!("scene {scene}"),
            (None, None) => String::new(),
        };
        LiveReport(Some(Arc::new(Inner {
            sidecar: Mutex::new(load_sidecar(&out_abs)),
            out: args.out.clone(),
            out_abs,
            background,
            negative: args.negative.clone().filter(|n| !n.trim().is_empty()),
            owner: owner.to_owned(),
            started: Instant::now(),
            keys: Mutex::new(HashMap::new()),
            changed: Notify::new(),
            failed_thumbnails: Mutex::new(HashSet::new()),
            error: Mutex::new(None),
        })))
    }

    /// Notes the journal key of `input` (its source and background go to the sidecar).
    pub fn input_keyed(&self, key: &InputKey, input: &Input) {
        let Some(inner) = &self.0 else { return };
        let info = inner.info_of(input);
        lock(&inner.sidecar).inputs.insert(key.to_string(), info);
        lock(&inner.keys).insert(input.output_stem.clone(), key.clone());
    }

    /// Notes how `input` ended: one not in the journal (refused locally, not started) is kept in
    /// the sidecar for the page; one in the journal replaces any such note. Wakes the updater.
    pub fn input_ended(&self, journal: &Journal, input: &Input, outcome: &InputOutcome) {
        let Some(inner) = &self.0 else { return };
        let key = lock(&inner.keys).get(&input.output_stem).cloned();
        let recorded = key.is_some_and(|key| journal.entry(&key).is_some());
        let info = inner.info_of(input);
        let label = input.label();
        {
            let mut sidecar = lock(&inner.sidecar);
            sidecar.unrecorded.retain(|u| !u.same_input(&label, &info));
            if !recorded
                && matches!(
                    outcome.status,
                    OutcomeStatus::Failed | OutcomeStatus::Skipped
                )
            {
                sidecar.unrecorded.push(Unrecorded {
                    label,
                    info,
                    status: if outcome.status == OutcomeStatus::Skipped {
                        Status::Skipped
                    } else {
                        Status::Failed
                    },
                    reason: outcome.error.as_ref().map(|e| e.message.clone()),
                });
            }
        }
        inner.changed.notify_one();
    }

    /// Runs `work` (the run's inputs), writing the page at once and again as inputs end, at
    /// most every [`UPDATE_INTERVAL`], until `work` is done; returns its output.
    pub async fn alongside<T>(&self, journal: &Journal, work: impl Future<Output = T>) -> T {
        let (finished, done) = watch::channel(false);
        let work = async {
            let output = work.await;
            let _ = finished.send(true);
            output
        };
        let (output, ()) = tokio::join!(work, self.keep_updated(journal, done));
        output
    }

    /// Writes the page at once, then again after inputs end — at most every
    /// [`UPDATE_INTERVAL`] — until `done` turns true.
    async fn keep_updated(&self, journal: &Journal, mut done: watch::Receiver<bool>) {
        let Some(inner) = &self.0 else { return };
        let started = Instant::now();
        self.write(journal, None).await;
        let mut last = Instant::now();
        let mut interval = update_interval(last - started);
        loop {
            tokio::select! {
                () = inner.changed.notified() => {}
                _ = done.wait_for(|done| *done) => return,
            }
            let wait = interval.saturating_sub(last.elapsed());
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = done.wait_for(|done| *done) => return,
            }
            let started = Instant::now();
            self.write(journal, None).await;
            last = Instant::now();
            interval = update_interval(last - started);
        }
    }

    /// Writes the final page of the run; returns its path, or `None` when disabled or the page
    /// could not be written (said on stderr).
    pub async fn finish(&self, journal: &Journal, summary: &Summary) -> Option<PathBuf> {
        let inner = self.0.as_ref()?;
        {
            let mut sidecar = lock(&inner.sidecar);
            sidecar.runs.count += 1;
            sidecar.runs.total_seconds += summary.seconds;
            sidecar.runs.last_seconds = Some(summary.seconds);
        }
        self.write(journal, Some(summary)).await;
        if let Some(error) = lock(&inner.error).take() {
            eprintln!("backdrop: {error}");
            return None;
        }
        Some(inner.out.join(PAGE_FILE))
    }

    /// Renders and writes the page (thumbnails, sidecar, page) off the async threads.
    async fn write(&self, journal: &Journal, summary: Option<&Summary>) {
        let Some(inner) = &self.0 else { return };
        let entries = journal.entries();
        let sidecar = lock(&inner.sidecar).clone();
        let live = summary.is_none();
        let wall = match summary {
            Some(summary) => wall_text(&sidecar.runs, Some(summary.seconds)),
            None => Some(format!(
                "{:.1} s so far",
                inner.started.elapsed().as_secs_f64()
            )),
        };
        let task = inner.clone();
        let written = tokio::task::spawn_blocking(move || {
            let running = if live {
                Running::Owner(task.owner.clone())
            } else {
                Running::Nobody
            };
            let folder = Folder {
                out: &task.out,
                out_abs: &task.out_abs,
                failed_thumbnails: &task.failed_thumbnails,
                thumbnail_budget: live.then_some(LIVE_THUMBNAIL_BUDGET),
            };
            save_sidecar(&task.out_abs, &sidecar)?;
            folder.write_page(&entries, &sidecar, &running, wall, live)
        })
        .await;
        let error = match written {
            Ok(Ok(stats)) => {
                tracing::info!(
                    rows = stats.rows,
                    bytes = stats.bytes,
                    thumbnails_made = stats.thumbnails_made,
                    thumbnail_ms = (stats.thumbnail_seconds * 1000.0).round(),
                    render_ms = (stats.render_seconds * 1000.0).round(),
                    "contact sheet written"
                );
                None
            }
            Ok(Err(error)) => Some(error),
            Err(error) => Some(format!("the page writer stopped: {error}")),
        };
        if let Some(error) = &error {
            tracing::warn!(error = %error, "contact sheet not written");
        }
        *lock(&inner.error) = error;
    }
}

impl Inner {
    fn info_of(&self, input: &Input) -> InputInfo {
        InputInfo {
            source: match &input.source {
                InputSource::File(path) => Some(std::fs::canonicalize(path).unwrap_or_else(|_| {
                    std::env::current_dir()
                        .map(|dir| dir.join(path))
                        .unwrap_or_else(|_| path.clone())
                })),
                InputSource::Url(_) => None,
            },
            background: self.background.clone(),
            negative: self.negative.clone(),
        }
    }
}

/// Which entries with an owner are running now.
enum Running {
    /// Those of this owner (the run writing the page).
    Owner(String),
    /// Any (another run holds the folder while `backdrop report` rebuilds the page).
    Anyone,
    /// None: no run is going on.
    Nobody,
}

impl Running {
    fn runs(&self, entry: &Entry) -> bool {
        match self {
            Running::Owner(owner) => entry.owner.as_ref().is_some_and(|o| &o.id == owner),
            Running::Anyone => entry.owner.is_some(),
            Running::Nobody => false,
        }
    }
}

/// `backdrop report DIR`: rebuilds `DIR/index.html` (and missing thumbnails) from the folder's
/// journal and sidecar; never writes either. Works while a run uses the folder (its tasks show
/// as running). Returns the page's path and a line about it.
pub fn rebuild(dir: &Path) -> Result<(PathBuf, String), CliError> {
    let started = Instant::now();
    let Some(entries) = journal::read_entries(dir)? else {
        return Err(CliError::Input {
            input: dir.display().to_string(),
            reason: format!(
                "no journal ({JOURNAL_FILE}) in this folder: give the --out folder of a \
                 `backdrop generate` run"
            ),
        });
    };
    let out_abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let sidecar = load_sidecar(&out_abs);
    let busy = folder_in_use(dir);
    let running = if busy {
        Running::Anyone
    } else {
        Running::Nobody
    };
    let failed = Mutex::new(HashSet::new());
    let folder = Folder {
        out: dir,
        out_abs: &out_abs,
        failed_thumbnails: &failed,
        thumbnail_budget: None,
    };
    let wall = wall_text(&sidecar.runs, None);
    let stats = folder
        .write_page(&entries, &sidecar, &running, wall, busy)
        .map_err(|reason| CliError::Write {
            path: dir.join(PAGE_FILE),
            source: std::io::Error::other(reason),
        })?;
    let page = dir.join(PAGE_FILE);
    let line = format!(
        "{}: {} rows, {} KB; {} thumbnails made in {:.1} s; page rendered in {:.0} ms; {:.1} s in all{}",
        page.display(),
        stats.rows,
        stats.bytes.div_ceil(1024),
        stats.thumbnails_made,
        stats.thumbnail_seconds,
        stats.render_seconds * 1000.0,
        started.elapsed().as_secs_f64(),
        if busy {
            " (a run is using the folder: it rewrites the page as it goes)"
        } else {
            ""
        }
    );
    Ok((page, line))
}

/// True when a `generate` run holds the folder's lock now.
fn folder_in_use(dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(dir.join(LOCK_FILE)) else {
        return false;
    };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// The wall time as shown: the last run, and all of them when there were several.
fn wall_text(runs: &Runs, this_run: Option<f64>) -> Option<String> {
    let last = this_run.or(runs.last_seconds)?;
    let mut text = format!("{} (last run)", seconds_text(last));
    if runs.count > 1 {
        text.push_str(&format!(
            ", {} over {} runs",
            seconds_text(runs.total_seconds),
            runs.count
        ));
    }
    Some(text)
}

fn seconds_text(seconds: f64) -> String {
    if seconds < 600.0 {
        format!("{seconds:.1} s")
    } else {
        format!(
            "{:.0} min {:.0} s",
            (seconds / 60.0).floor(),
            seconds % 60.0
        )
    }
}

/// What writing a page did.
#[derive(Debug)]
struct Stats {
    started: Instant,
    rows: usize,
    bytes: usize,
    thumbnails_made: usize,
    thumbnail_seconds: f64,
    render_seconds: f64,
}

/// An output folder being drawn.
struct Folder<'a> {
    out: &'a Path,
    out_abs: &'a Path,
    failed_thumbnails: &'a Mutex<HashSet<PathBuf>>,
    /// The most time one write spends making thumbnails (`None`: as long as it takes); the
    /// images left without one show as links until a later write makes it.
    thumbnail_budget: Option<Duration>,
}

impl Folder<'_> {
    /// Makes missing thumbnails, renders the rows and writes the page atomically.
    fn write_page(
        &self,
        entries: &[(String, Entry)],
        sidecar: &Sidecar,
        running: &Running,
        wall: Option<String>,
        in_progress: bool,
    ) -> Result<Stats, String> {
        let mut stats = Stats {
            started: Instant::now(),
            rows: 0,
            bytes: 0,
            thumbnails_made: 0,
            thumbnail_seconds: 0.0,
            render_seconds: 0.0,
        };
        let thumbs_started = Instant::now();
        let (mut rows, unrecorded) = self.rows(entries, sidecar, running, &mut stats);
        stats.thumbnail_seconds = thumbs_started.elapsed().as_secs_f64();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let rows: Vec<Row> = rows.into_iter().map(|(_, row)| row).collect();
        let mut notes = Vec::new();
        let stand_ins = entries
            .iter()
            .filter(|(_, entry)| entry.stand_in && entry.stage == Stage::Done)
            .count();
        if stand_ins > 0 {
            notes.push(format!(
                "STAND-IN IMAGES: {stand_ins} of these inputs were run against the built-in \
                 emulator (no API key was set), not PicWish: their images are placeholders, not \
                 generated backgrounds. A run with PICWISH_API_KEY set generates them for real."
            ));
        }
        if unrecorded > 0 {
            notes.push(format!(
                "Inputs never sent (refused locally or not started) are not in the journal: they \
                 are listed from {REPORT_DIR}/{SIDECAR_FILE} until a run records them."
            ));
        }
        let name = self
            .out_abs
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.out.display().to_string());
        let page = Page {
            title: format!("backdrop: {name}"),
            context: format!(
                "Output folder {} — rows from its journal ({JOURNAL_FILE}); rebuild with \
                 `backdrop report {}`",
                self.out_abs.display(),
                self.out.display()
            ),
            updated: time::utc_text(time::now_ms()),
            wall_time: wall,
            in_progress,
            refresh_seconds: REFRESH_SECONDS,
            notes,
            rows,
            data: None,
            revision: None,
        };
        let render_started = Instant::now();
        let html = backdrop_report::render(&page);
        stats.render_seconds = render_started.elapsed().as_secs_f64();
        stats.rows = page.rows.len();
        stats.bytes = html.len();
        backdrop_core::__private::write_atomically(&self.out.join(PAGE_FILE), html.as_bytes())
            .map_err(|e| {
                format!(
                    "cannot write the contact sheet {}: {e}",
                    self.out.join(PAGE_FILE).display()
                )
            })?;
        Ok(stats)
    }

    /// The rows, each with its sort key: journal entries, then unrecorded inputs that no entry
    /// has recorded since (and how many of those there are).
    fn rows(
        &self,
        entries: &[(String, Entry)],
        sidecar: &Sidecar,
        running: &Running,
        stats: &mut Stats,
    ) -> (Vec<(String, Row)>, usize) {
        let mut rows = Vec::new();
        let mut recorded: Vec<(&str, &InputInfo)> = Vec::new();
        for (key, entry) in entries {
            let info = sidecar.inputs.get(key);
            if let Some(info) = info {
                recorded.push((entry.label.as_str(), info));
            }
            let row = self.entry_row(key, entry, info, running, stats);
            rows.push((sort_key(&entry.label, info, key), row));
        }
        let mut shown = 0;
        for unrecorded in &sidecar.unrecorded {
            if recorded
                .iter()
                .any(|(label, info)| unrecorded.same_input(label, info))
            {
                continue;
            }
            let id = hex(&Sha256::digest(
                format!("{}\n{}", unrecorded.label, unrecorded.info.background).as_bytes(),
            ));
            let row = self.unrecorded_row(&id, unrecorded, stats);
            rows.push((
                sort_key(&unrecorded.label, Some(&unrecorded.info), &id),
                row,
            ));
            shown += 1;
        }
        (rows, shown)
    }

    fn entry_row(
        &self,
        key: &str,
        entry: &Entry,
        info: Option<&InputInfo>,
        running: &Running,
        stats: &mut Stats,
    ) -> Row {
        let runs_now = running.runs(entry);
        let (status, state) = match entry.stage {
            Stage::Done if entry.stand_in => (
                Status::Succeeded,
                "done by the built-in emulator: stand-in images".to_owned(),
            ),
            Stage::Done => (Status::Succeeded, "done".to_owned()),
            Stage::Failed => {
                let detail = entry.failure.as_ref().and_then(|f| {
                    f.task_state
                        .map(|s| format!(" (task state {s})"))
                        .or_else(|| f.http_status.map(|h| format!(" (HTTP {h})")))
                });
                (
                    Status::Failed,
                    format!("failed{}", detail.unwrap_or_default()),
                )
            }
            Stage::Unconfirmed => (
                Status::Failed,
                "unconfirmed: the create may have been accepted".to_owned(),
            ),
            Stage::Expired => (Status::Failed, "results lost".to_owned()),
            Stage::Created if runs_now => (Status::Running, "task running".to_owned()),
            Stage::Sending if runs_now => (Status::Running, "sending the create".to_owned()),
            Stage::Claimed if runs_now => (Status::Running, "starting".to_owned()),
            Stage::Created => (
                Status::Unfinished,
                "task left running: run the same command again to resume it".to_owned(),
            ),
            Stage::Sending => (
                Status::Unfinished,
                "create sent, answer never seen: the next run reports it as unconfirmed".to_owned(),
            ),
            Stage::Claimed => (
                Status::Unfinished,
                "not started: run the same command again".to_owned(),
            ),
        };
        let images = if entry.stage == Stage::Done {
            entry
                .outputs
                .iter()
                .enumerate()
                .map(|(i, output)| Picture {
                    full: Some(output.clone()),
                    thumb: self.output_thumbnail(output, stats),
                    caption: format!("image {}", i + 1),
                })
                .collect()
        } else {
            Vec::new()
        };
        let terminal = matches!(
            entry.stage,
            Stage::Done | Stage::Failed | Stage::Expired | Stage::Unconfirmed
        );
        let seconds = entry
            .sent_at_ms
            .filter(|_| terminal)
            .map(|sent| entry.updated_at_ms.saturating_sub(sent) as f64 / 1000.0);
        let failure = match entry.stage {
            Stage::Failed | Stage::Unconfirmed | Stage::Expired => {
                let recorded = entry.failure.as_ref();
                Some(RowFailure {
                    reason: recorded
                        .map(|f| f.message.clone())
                        .unwrap_or_else(|| "no reason was recorded".into()),
                    advice: advice(entry, recorded),
                })
            }
            _ => None,
        };
        let source = self.source_picture(
            info.and_then(|i| i.source.clone())
                .or_else(|| label_as_file(&entry.label)),
            &entry.label,
            key.get(..16).unwrap_or(key),
            stats,
        );
        Row {
            label: entry.label.clone(),
            status,
            state,
            source: Some(source),
            images,
            background: info.map(|i| i.background.clone()),
            negative: info.and_then(|i| i.negative.clone()),
            task_id: entry
                .task_id
                .clone()
                .or_else(|| entry.failure.as_ref().and_then(|f| f.task_id.clone())),
            seconds,
            credits: entry.credits,
            failure,
        }
    }

    fn unrecorded_row(&self, id: &str, unrecorded: &Unrecorded, stats: &mut Stats) -> Row {
        let (state, failure) = match unrecorded.status {
            Status::Skipped => (
                "not started (the run was stopped): run the same command again".to_owned(),
                None,
            ),
            _ => (
                "refused locally: nothing was sent".to_owned(),
                Some(RowFailure {
                    reason: unrecorded
                        .reason
                        .clone()
                        .unwrap_or_else(|| "no reason was recorded".into()),
                    advice: sentence(&remedy(
                        Recovery::Permanent,
                        Fix::ImageRule,
                        false,
                        None,
                        &ACTIONS,
                    )),
                }),
            ),
        };
        let source = self.source_picture(
            unrecorded.info.source.clone(),
            &unrecorded.label,
            &format!("u{}", id.get(..15).unwrap_or(id)),
            stats,
        );
        Row {
            label: unrecorded.label.clone(),
            status: unrecorded.status,
            state,
            source: Some(source),
            images: Vec::new(),
            background: Some(unrecorded.info.background.clone()),
            negative: unrecorded.info.negative.clone(),
            task_id: None,
            seconds: None,
            credits: 0,
            failure,
        }
    }

    /// The source as a picture: its thumbnail and a relative link, a box for URLs and files
    /// that are gone.
    fn source_picture(
        &self,
        source: Option<PathBuf>,
        label: &str,
        id: &str,
        stats: &mut Stats,
    ) -> Picture {
        let Some(path) = source.filter(|p| p.is_file()) else {
            let caption = if is_url(label) {
                "image URL"
            } else {
                "source not found"
            };
            return Picture {
                full: None,
                thumb: None,
                caption: caption.into(),
            };
        };
        let thumb = format!("{REPORT_DIR}/sources/{id}.jpg");
        Picture {
            full: relative_link(self.out_abs, &path),
            thumb: self.thumbnail(&path, &thumb, true, stats),
            caption: "source".into(),
        }
    }

    /// The thumbnail of an output (relative to the folder).
    fn output_thumbnail(&self, output: &str, stats: &mut Stats) -> Option<String> {
        let stem = Path::new(output).with_extension("");
        let thumb = format!("{REPORT_DIR}/thumbs/{}.jpg", stem.to_string_lossy());
        self.thumbnail(&self.out.join(output), &thumb, false, stats)
    }

    /// `thumb` (relative to the folder) for `original`, made unless it exists and is newer;
    /// `None` when it cannot be made (remembered, not tried again by this process).
    fn thumbnail(
        &self,
        original: &Path,
        thumb: &str,
        source: bool,
        stats: &mut Stats,
    ) -> Option<String> {
        let target = self.out.join(thumb);
        let original_meta = std::fs::metadata(original).ok()?;
        let fresh = std::fs::metadata(&target)
            .and_then(|m| Ok(m.modified()? >= original_meta.modified()?))
            .unwrap_or(false);
        if fresh {
            return Some(thumb.to_owned());
        }
        let over_budget = self
            .thumbnail_budget
            .is_some_and(|budget| stats.started.elapsed() >= budget);
        if over_budget
            || original_meta.len() > MAX_THUMBNAIL_SOURCE
            || lock(self.failed_thumbnails).contains(original)
        {
            return None;
        }
        let made = std::fs::File::open(original)
            .map_err(|e| e.to_string())
            .and_then(|file| {
                let reader = BufReader::new(file);
                if source {
                    thumbnail::png_on_checkerboard(reader)
                } else {
                    thumbnail::generated_image(reader)
                }
                .map_err(|e| e.to_string())
            })
            .and_then(|jpeg| {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                backdrop_core::__private::write_atomically(&target, &jpeg)
                    .map_err(|e| e.to_string())
            });
        match made {
            Ok(()) => {
                stats.thumbnails_made += 1;
                Some(thumb.to_owned())
            }
            Err(error) => {
                tracing::debug!(file = %original.display(), error = %error, "no thumbnail");
                lock(self.failed_thumbnails).insert(original.to_owned());
                None
            }
        }
    }
}

/// What to do about a failed entry, in the CLI's words (the meaning is core's [`Recovery`]).
fn advice(entry: &Entry, failure: Option<&backdrop_core::ledger::Failure>) -> String {
    let recovery = match entry.stage {
        Stage::Unconfirmed => Recovery::Unconfirmed,
        Stage::Expired => Recovery::ResultsLost,
        _ => failure.map(|f| f.recovery).unwrap_or(Recovery::Retry),
    };
    let fix = Fix::of(
        failure
            .and_then(|f| f.task_state)
            .map(backdrop_core::TaskState::from_code),
        failure.and_then(|f| f.http_status),
    );
    let task = entry
        .task_id
        .as_deref()
        .or_else(|| failure.and_then(|f| f.task_id.as_deref()));
    let charged = failure.is_some_and(|f| f.credits_spent);
    sentence(&remedy(recovery, fix, charged, task, &ACTIONS))
}

/// Rows sort by input, then background, then key: the same order however they were written.
fn sort_key(label: &str, info: Option<&InputInfo>, key: &str) -> String {
    format!(
        "{label}\u{0}{}\u{0}{key}",
        info.map(|i| i.background.as_str()).unwrap_or("")
    )
}

fn is_url(label: &str) -> bool {
    let lower = label.get(..8).unwrap_or(label).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// A journal label that names an existing file (journals without a sidecar).
fn label_as_file(label: &str) -> Option<PathBuf> {
    if is_url(label) {
        return None;
    }
    std::fs::canonicalize(label).ok().filter(|p| p.is_file())
}

/// `target` relative to the folder `base` (both absolute), `/`-separated; `None` when a part is
/// not UTF-8.
fn relative_link(base: &Path, target: &Path) -> Option<String> {
    let base: Vec<Component> = base.components().collect();
    let target: Vec<Component> = target.components().collect();
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); base.len() - common];
    for component in &target[common..] {
        parts.push(component.as_os_str().to_str()?.to_owned());
    }
    Some(parts.join("/"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn load_sidecar(out_abs: &Path) -> Sidecar {
    let path = out_abs.join(REPORT_DIR).join(SIDECAR_FILE);
    std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Sidecar>(&bytes).ok())
        .filter(|sidecar| sidecar.version == SIDECAR_VERSION)
        .unwrap_or(Sidecar {
            version: SIDECAR_VERSION,
            ..Sidecar::default()
        })
}

fn save_sidecar(out_abs: &Path, sidecar: &Sidecar) -> Result<(), String> {
    let folder = out_abs.join(REPORT_DIR);
    std::fs::create_dir_all(&folder)
        .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
    let bytes = serde_json::to_vec_pretty(sidecar).map_err(|e| e.to_string())?;
    let path = folder.join(SIDECAR_FILE);
    backdrop_core::__private::write_atomically(&path, &bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative_to_the_folder() {
        let link = |base: &str, target: &str| relative_link(Path::new(base), Path::new(target));
        assert_eq!(
            link("/w/out", "/w/in/a.png").as_deref(),
            Some("../in/a.png")
        );
        assert_eq!(
            link("/w/out", "/w/out/sub/a.png").as_deref(),
            Some("sub/a.png")
        );
        assert_eq!(link("/a/b/c", "/x.png").as_deref(), Some("../../../x.png"));
    }

    #[test]
    fn wall_time_names_the_runs() {
        let runs = Runs {
            count: 2,
            total_seconds: 30.0,
            last_seconds: Some(10.0),
        };
        assert_eq!(
            wall_text(&runs, None).as_deref(),
            Some("10.0 s (last run), 30.0 s over 2 runs")
        );
        assert_eq!(wall_text(&Runs::default(), None), None);
    }
}
