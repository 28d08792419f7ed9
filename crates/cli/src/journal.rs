//! The journal: the task ledger of one output folder, kept in one file, so that a run stopped at
//! any moment (Ctrl-C, a crash, SIGKILL, a reboot) can be run again without creating anything
//! twice.
//!
//! The journal is a [`LedgerStore`]: the rules of what may be created, resumed or refused are
//! core's ([`backdrop_core::ledger`]); this file only keeps the entries. It is one JSON file in
//! the output folder, [`JOURNAL_FILE`], mapping each input's [`InputKey`] to its ledger
//! [`Entry`]. Every write is on disk — a temporary file, `fsync`, a rename, `fsync` of the
//! folder — before the run acts on it. Concurrent jobs share one writer: a write returns once a
//! write that includes it is on disk (several may share one).
//!
//! Nothing secret goes in: no API key, and the base URL without user, password or query.
//! A lock on [`LOCK_FILE`] keeps two runs from using one folder at once (the operating system
//! releases it when the process ends, however it ends): the journal is an exclusive store, so
//! any owner found in it belongs to a run that ended.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use backdrop_core::Recovery;
use backdrop_core::ledger::{
    Entry, Failure, InputKey, LedgerStore, Owner, Stage, StoreError, Write,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::CliError;
use crate::inputs::{Input, InputSource};

/// The journal's file name in the output folder.
pub const JOURNAL_FILE: &str = ".backdrop-journal.json";
/// The lock's file name in the output folder.
pub const LOCK_FILE: &str = ".backdrop-journal.lock";
/// The format written: 2, ledger entries under core's input keys.
const VERSION: u32 = 2;
/// The format of backdrop 0.1 before the ledger, still read.
const VERSION_BEFORE_LEDGER: u32 = 1;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Contents {
    version: u32,
    #[serde(default)]
    entries: BTreeMap<String, Entry>,
    /// Entries of a format-1 journal whose input has not come by since (kept until it does).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    before_ledger: BTreeMap<String, Entry>,
    /// The output stem (path without `-N.ext`, relative to the folder) each input writes to,
    /// by key: reserved before its task is created or resumed, so that two inputs never share
    /// one (see [`Journal::destination`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    destinations: BTreeMap<String, String>,
}

/// The entries in memory, each with its version, and how far they were written.
#[derive(Debug, Default)]
struct Pending {
    entries: BTreeMap<InputKey, (Entry, u64)>,
    /// Entries of a version-1 journal, by their old keys, until their input comes by.
    before_ledger: BTreeMap<String, Entry>,
    /// Each input's output stem, by key.
    destinations: BTreeMap<InputKey, String>,
    /// Bumped by every change; also the entries' versions.
    generation: u64,
}

/// An open journal; holds the folder's lock until dropped.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    pending: Mutex<Pending>,
    /// The generation on disk; held while writing, so writes never overtake each other.
    written: tokio::sync::Mutex<u64>,
    _lock: File,
}

impl Journal {
    /// Opens (or starts) the journal of the output folder `out`, which must exist.
    ///
    /// Fails when another run holds the folder, or when an existing journal cannot be read: a
    /// journal that is ignored could make a create go out twice.
    pub fn open(out: &Path) -> Result<Journal, CliError> {
        let path = out.join(JOURNAL_FILE);
        let lock_path = out.join(LOCK_FILE);
        let write_error = |source| CliError::Write {
            path: lock_path.clone(),
            source,
        };
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(write_error)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(CliError::Journal(format!(
                    "another backdrop run is using the output folder {} (its journal is locked); \
                     wait for it to end or choose another --out",
                    out.display()
                )));
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(write_error(source)),
        }
        let unreadable = |reason: String| {
            CliError::Journal(format!(
                "the journal {} cannot be read ({reason}); move it away to start over (inputs \
                 it lists as running or unconfirmed may then be created again)",
                path.display()
            ))
        };
        let mut pending = Pending::default();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let version: Version =
                    serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
                match version.version {
                    VERSION => {
                        let contents: Contents = serde_json::from_slice(&bytes)
                            .map_err(|e| unreadable(e.to_string()))?;
                        pending.before_ledger = contents.before_ledger;
                        for (key, stem) in contents.destinations {
                            if let Some(key) = InputKey::parse(&key) {
                                pending.destinations.insert(key, stem);
                            }
                        }
                        for (key, entry) in contents.entries {
                            let key = InputKey::parse(&key).ok_or_else(|| {
                                unreadable(format!("{key:?} is not an input key"))
                            })?;
                            pending.generation += 1;
                            pending.entries.insert(key, (entry, pending.generation));
                        }
                    }
                    VERSION_BEFORE_LEDGER => {
                        let old: before_ledger::Contents = serde_json::from_slice(&bytes)
                            .map_err(|e| unreadable(e.to_string()))?;
                        pending.before_ledger = old
                            .entries
                            .into_iter()
                            .map(|(key, entry)| (key, entry.into_ledger()))
                            .collect();
                    }
                    newer => {
                        return Err(CliError::Journal(format!(
                            "the journal {} was written by a newer backdrop (format {newer}); use \
                             that version, or move the journal away to start over",
                            path.display()
                        )));
                    }
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(unreadable(source.to_string())),
        }
        Ok(Journal {
            path,
            pending: Mutex::new(pending),
            written: tokio::sync::Mutex::new(0),
            _lock: lock,
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry as it stands now (the written ones and those being written), by key, with
    /// the entries of a format-1 journal not adopted yet under their old keys. Read-only.
    pub fn entries(&self) -> Vec<(String, Entry)> {
        let pending = self.lock();
        all_entries(
            pending
                .entries
                .iter()
                .map(|(key, (entry, _))| (key.to_string(), entry.clone())),
            &pending.before_ledger,
        )
    }

    /// The entry of `key` as it stands now, if any. Read-only.
    pub fn entry(&self, key: &InputKey) -> Option<Entry> {
        self.lock().entries.get(key).map(|(entry, _)| entry.clone())
    }

    /// Moves the entry a journal of format 1 kept for `input` (under the key backdrop 0.1 gave
    /// it, from the same options text) to `key`, so that an upgrade mid-batch resumes, refuses
    /// or skips exactly what the old version would have. Reads the file again to find the old
    /// key; does nothing when the journal had no such entries.
    pub async fn adopt_entry_before_ledger(
        &self,
        key: &InputKey,
        input: &Input,
        old_options: &str,
    ) -> Result<(), CliError> {
        if self.lock().before_ledger.is_empty() {
            return Ok(());
        }
        let (owned, options) = (input.clone(), old_options.to_owned());
        let old_key =
            tokio::task::spawn_blocking(move || before_ledger::input_key(&owned, &options))
                .await
                .map_err(|e| CliError::Journal(format!("cannot read the input: {e}")))?
                .map_err(|source| CliError::Write {
                    path: PathBuf::from(input.label()),
                    source,
                })?;
        let generation = {
            let mut pending = self.lock();
            let Some(entry) = pending.before_ledger.remove(&old_key) else {
                return Ok(());
            };
            if pending.entries.contains_key(key) {
                return Ok(());
            }
            pending.generation += 1;
            let generation = pending.generation;
            pending.entries.insert(key.clone(), (entry, generation));
            generation
        };
        self.flush(generation)
            .await
            .map_err(|e| CliError::Journal(e.to_string()))
    }

    /// The output stem input `key` writes to, reserved on disk before it returns: `natural`
    /// (its file or folder-relative name) unless another input of the folder holds that stem —
    /// it reserved it and is not a failure that wrote nothing, or a finished entry's outputs
    /// use it, or files of that name lie in `out` that no input of the journal wrote — and
    /// then `natural~` plus the first 8 hex digits of its key. Once reserved, an input keeps
    /// its stem on every later run: a paid result is never overwritten by another input's, and
    /// names stay stable.
    pub async fn destination(
        &self,
        key: &InputKey,
        natural: &Path,
        out: &Path,
    ) -> Result<PathBuf, CliError> {
        let natural = natural.to_string_lossy().into_owned();
        let generation = {
            let mut pending = self.lock();
            if let Some(stem) = pending.destinations.get(key)
                && !held_by_another(&pending, key, stem, out)
            {
                return Ok(PathBuf::from(stem));
            }
            let mut stem = natural.clone();
            let mut digits = 8;
            while held_by_another(&pending, key, &stem, out) && digits <= 64 {
                stem = format!("{natural}~{}", &key.as_str()[..digits]);
                digits *= 2;
            }
            if pending.destinations.get(key) == Some(&stem) {
                return Ok(PathBuf::from(stem));
            }
            pending.destinations.insert(key.clone(), stem);
            pending.generation += 1;
            pending.generation
        };
        self.flush(generation)
            .await
            .map_err(|e| CliError::Journal(e.to_string()))?;
        Ok(self
            .lock()
            .destinations
            .get(key)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(natural)))
    }

    /// Writes the journal unless a write already covered `generation`.
    async fn flush(&self, generation: u64) -> Result<(), StoreError> {
        let mut written = self.written.lock().await;
        if *written >= generation {
            return Ok(());
        }
        let (bytes, covers) = {
            let pending = self.lock();
            let contents = Contents {
                version: VERSION,
                entries: pending
                    .entries
                    .iter()
                    .map(|(key, (entry, _))| (key.to_string(), entry.clone()))
                    .collect(),
                before_ledger: pending.before_ledger.clone(),
                destinations: pending
                    .destinations
                    .iter()
                    .map(|(key, stem)| (key.to_string(), stem.clone()))
                    .collect(),
            };
            let bytes = serde_json::to_vec_pretty(&contents)
                .map_err(|e| StoreError::with_source("cannot encode the journal as JSON", e))?;
            (bytes, pending.generation)
        };
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            backdrop_core::__private::write_atomically(&path, &bytes)
        })
        .await
        .map_err(|e| StoreError::new(format!("the journal writer stopped: {e}")))?
        .map_err(|source| {
            StoreError::with_source(
                format!(
                    "cannot write the journal {}; check that this user may write to the \
                         output folder and that the disk is not full",
                    self.path.display()
                ),
                source,
            )
        })?;
        *written = covers;
        Ok(())
    }

    /// Applies a conditional change under the lock, then writes it to disk.
    async fn change(
        &self,
        key: &InputKey,
        entry: &Entry,
        holds: impl FnOnce(Option<u64>) -> bool,
    ) -> Result<Write<u64>, StoreError> {
        let generation = {
            let mut pending = self.lock();
            if !holds(pending.entries.get(key).map(|(_, version)| *version)) {
                return Ok(Write::Conflict);
            }
            pending.generation += 1;
            let generation = pending.generation;
            pending
                .entries
                .insert(key.clone(), (entry.clone(), generation));
            generation
        };
        self.flush(generation).await?;
        Ok(Write::Written(generation))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Deserialize)]
struct Version {
    version: u32,
}

/// The extensions a result may have.
const RESULT_EXTENSIONS: [&str; 3] = ["jpg", "png", "webp"];

/// True when `stem` is held by an input other than `key`: reserved by one whose entry is not a
/// failure that wrote nothing, used by a finished entry's outputs, or named by result files in
/// `out` that no entry of the journal wrote.
fn held_by_another(pending: &Pending, key: &InputKey, stem: &str, out: &Path) -> bool {
    let wrote = |entry: &Entry| entry.outputs.iter().any(|o| output_stem(o) == Some(stem));
    let reserved = pending.destinations.iter().any(|(other, reserved)| {
        other != key
            && reserved == stem
            && pending
                .entries
                .get(other)
                .is_none_or(|(entry, _)| entry.stage != Stage::Failed || wrote(entry))
    });
    if reserved {
        return true;
    }
    let finished = |other: &InputKey, entry: &Entry| other != key && wrote(entry);
    if pending
        .entries
        .iter()
        .any(|(other, (entry, _))| finished(other, entry))
        || pending.before_ledger.values().any(&wrote)
    {
        return true;
    }
    // Files of a stem this input reserved are its own (it reserves before writing).
    let mine = pending.destinations.get(key).is_some_and(|own| own == stem)
        || pending
            .entries
            .get(key)
            .is_some_and(|(entry, _)| wrote(entry));
    !mine
        && (1..=2).any(|index| {
            RESULT_EXTENSIONS.iter().any(|extension| {
                crate::output::result_path(out, Path::new(stem), index, extension).exists()
            })
        })
}

/// The stem of an output path `stem-N.ext`.
fn output_stem(output: &str) -> Option<&str> {
    let (rest, _extension) = output.rsplit_once('.')?;
    let (stem, index) = rest.rsplit_once('-')?;
    index.parse::<u8>().ok().map(|_| stem)
}

fn all_entries(
    entries: impl Iterator<Item = (String, Entry)>,
    before_ledger: &BTreeMap<String, Entry>,
) -> Vec<(String, Entry)> {
    entries
        .chain(
            before_ledger
                .iter()
                .map(|(key, entry)| (key.clone(), entry.clone())),
        )
        .collect()
}

/// The entries of the journal in the output folder `out`, read from its file without taking the
/// folder's lock (a run may be writing it: every write replaces the file whole), as
/// [`Journal::entries`] gives them. `Ok(None)` when the folder has no journal.
pub fn read_entries(out: &Path) -> Result<Option<Vec<(String, Entry)>>, CliError> {
    let path = out.join(JOURNAL_FILE);
    let unreadable = |reason: String| {
        CliError::Journal(format!(
            "the journal {} cannot be read ({reason})",
            path.display()
        ))
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(unreadable(error.to_string())),
    };
    let version: Version = serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
    match version.version {
        VERSION => {
            let contents: Contents =
                serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
            Ok(Some(all_entries(
                contents.entries.into_iter(),
                &contents.before_ledger,
            )))
        }
        VERSION_BEFORE_LEDGER => {
            let old: before_ledger::Contents =
                serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
            Ok(Some(
                old.entries
                    .into_iter()
                    .map(|(key, entry)| (key, entry.into_ledger()))
                    .collect(),
            ))
        }
        newer => Err(unreadable(format!(
            "format {newer}, written by a newer backdrop"
        ))),
    }
}

impl LedgerStore for Journal {
    type Version = u64;

    async fn load(&self, key: &InputKey) -> Result<Option<(Entry, u64)>, StoreError> {
        Ok(self.lock().entries.get(key).cloned())
    }

    async fn insert(&self, key: &InputKey, entry: &Entry) -> Result<Write<u64>, StoreError> {
        self.change(key, entry, |found| found.is_none()).await
    }

    async fn replace(
        &self,
        key: &InputKey,
        entry: &Entry,
        expected: &u64,
    ) -> Result<Write<u64>, StoreError> {
        self.change(key, entry, |found| found == Some(*expected))
            .await
    }
}

/// Journals of format 1 (backdrop 0.1 before the ledger): read, converted, never written.
mod before_ledger {
    use super::*;

    #[derive(Deserialize)]
    pub(super) struct Contents {
        #[serde(default)]
        pub(super) entries: BTreeMap<String, OldEntry>,
    }

    #[derive(Deserialize)]
    pub(super) struct OldEntry {
        input: String,
        service: String,
        state: String,
        #[serde(default)]
        task_id: Option<String>,
        #[serde(default)]
        outputs: Vec<PathBuf>,
        #[serde(default)]
        credits: u32,
        #[serde(default)]
        failure: Option<OldFailure>,
        #[serde(default)]
        updated_at: u64,
    }

    #[derive(Deserialize)]
    struct OldFailure {
        message: String,
        #[serde(default)]
        http_status: Option<u16>,
        #[serde(default)]
        task_state: Option<i32>,
        #[serde(default)]
        transient: bool,
        #[serde(default)]
        maybe_accepted: bool,
    }

    impl OldEntry {
        /// The same facts as a ledger entry. A create that was "submitting" belonged to a run
        /// that ended: it is `sending` with a gone owner, which the rules make unconfirmed.
        pub(super) fn into_ledger(self) -> Entry {
            let stage = match self.state.as_str() {
                "submitting" => Stage::Sending,
                "unconfirmed" => Stage::Unconfirmed,
                "created" => Stage::Created,
                "done" => Stage::Done,
                "expired" => Stage::Expired,
                _ => Stage::Failed,
            };
            let recovery = match stage {
                Stage::Unconfirmed => Recovery::Unconfirmed,
                Stage::Expired => Recovery::ResultsLost,
                Stage::Created => Recovery::Resume,
                _ => Recovery::Retry,
            };
            Entry {
                stage,
                label: self.input,
                service: self.service,
                owner: (stage == Stage::Sending).then(|| Owner::exclusive("backdrop 0.1")),
                tasks_created: u32::from(self.task_id.is_some()),
                creates_sent: u32::from(self.task_id.is_some()),
                stand_in: false,
                task_id: self.task_id,
                sent_at_ms: None,
                updated_at_ms: self.updated_at.saturating_mul(1000),
                outputs: self
                    .outputs
                    .iter()
                    .map(|o| o.to_string_lossy().into_owned())
                    .collect(),
                credits: self.credits,
                credits_at_stake: 0,
                failure: self.failure.map(|f| Failure {
                    message: f.message,
                    recovery: if f.maybe_accepted {
                        Recovery::Unconfirmed
                    } else if f.transient {
                        recovery
                    } else {
                        Recovery::Permanent
                    },
                    http_status: f.http_status,
                    task_state: f.task_state,
                    task_id: None,
                    credits_spent: f.maybe_accepted || stage == Stage::Expired,
                }),
            }
        }
    }

    /// The key backdrop 0.1 gave an input: SHA-256 over length-prefixed fields (format 1, the
    /// options text, the output name) and the file's bytes or the URL.
    pub(super) fn input_key(input: &Input, options: &str) -> std::io::Result<String> {
        let mut hash = Sha256::new();
        let mut field = |name: &str, value: &[u8]| {
            hash.update(name.as_bytes());
            hash.update((value.len() as u64).to_le_bytes());
            hash.update(value);
        };
        field("backdrop-journal", &VERSION_BEFORE_LEDGER.to_le_bytes());
        field("options", options.as_bytes());
        field("output", input.output_stem.to_string_lossy().as_bytes());
        match &input.source {
            InputSource::Url(url) => field("url", url.as_bytes()),
            InputSource::File(path) => {
                hash.update(b"file");
                let mut file = File::open(path)?;
                let mut buffer = vec![0u8; 64 * 1024];
                loop {
                    let read = file.read(&mut buffer)?;
                    if read == 0 {
                        break;
                    }
                    hash.update(&buffer[..read]);
                }
            }
        }
        Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backdrop_core::GenerationOptions;
    use backdrop_core::ledger::{Begin, ImageIdentity, Ledger, Policy, Refusal};

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("backdrop-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn key(n: usize) -> InputKey {
        let options = GenerationOptions::prompt("x").unwrap();
        InputKey::derive(&ImageIdentity::of_bytes(&n.to_le_bytes()), &options, "out")
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_journal_conforms_to_the_ledger_suite() {
        let root = temp_dir("conformance");
        let mut n = 0;
        let dirs = std::cell::RefCell::new(Vec::new());
        backdrop_core::ledger::conformance::run(|| {
            n += 1;
            let dir = root.join(n.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            dirs.borrow_mut().push(dir.clone());
            Journal::open(&dir).unwrap()
        })
        .await;
        // What the suite wrote is on disk and reads back the same.
        for dir in dirs.borrow().iter() {
            let text = std::fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap();
            let contents: Contents = serde_json::from_str(&text).unwrap();
            assert_eq!(contents.version, VERSION);
        }
        std::fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn concurrent_writes_all_land_and_the_folder_is_locked() {
        let dir = temp_dir("writes");
        let journal = std::sync::Arc::new(Journal::open(&dir).unwrap());
        assert!(matches!(Journal::open(&dir), Err(CliError::Journal(_))));
        let mut jobs = Vec::new();
        for n in 0..40 {
            let journal = journal.clone();
            jobs.push(tokio::spawn(async move {
                let entry = Entry {
                    stage: Stage::Created,
                    label: format!("in-{n}.png"),
                    service: "svc".into(),
                    owner: None,
                    task_id: Some(format!("task-{n}")),
                    tasks_created: 1,
                    creates_sent: 1,
                    stand_in: false,
                    sent_at_ms: None,
                    updated_at_ms: 0,
                    outputs: Vec::new(),
                    credits: 0,
                    credits_at_stake: 0,
                    failure: None,
                };
                assert!(matches!(
                    journal.insert(&key(n), &entry).await.unwrap(),
                    Write::Written(_)
                ));
            }));
        }
        for job in jobs {
            job.await.unwrap();
        }
        drop(journal);
        let journal = Journal::open(&dir).unwrap();
        for n in 0..40 {
            let (entry, _) = journal.load(&key(n)).await.unwrap().unwrap();
            assert_eq!(entry.task_id, Some(format!("task-{n}")));
            assert_eq!(entry.stage, Stage::Created);
        }
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
        drop(journal);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unreadable_journal_stops_the_run() {
        let dir = temp_dir("broken");
        std::fs::write(dir.join(JOURNAL_FILE), b"{not json").unwrap();
        let error = Journal::open(&dir).unwrap_err();
        assert!(error.to_string().contains("move it away"), "{error}");
        std::fs::write(dir.join(JOURNAL_FILE), br#"{"version": 9, "entries": {}}"#).unwrap();
        let error = Journal::open(&dir).unwrap_err();
        assert!(error.to_string().contains("newer backdrop"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_journal_from_before_the_ledger_is_adopted_entry_by_entry() {
        let dir = temp_dir("before-ledger");
        let png = dir.join("mug.png");
        std::fs::write(&png, b"the bytes").unwrap();
        let input = Input {
            source: InputSource::File(png),
            output_stem: PathBuf::from("mug"),
        };
        let old_options = "batch=2\nprompt=Some(\"x\")\nscene=None\nnegative=None";
        let old_key = before_ledger::input_key(&input, old_options).unwrap();
        let old = serde_json::json!({
            "version": 1,
            "entries": { old_key: {
                "input": "mug.png", "service": "http://127.0.0.1:9/", "state": "submitting",
                "updated_at": 1_800_000_000u64
            }}
        });
        std::fs::write(dir.join(JOURNAL_FILE), old.to_string()).unwrap();
        let journal = Journal::open(&dir).unwrap();
        let key = key(1);
        journal
            .adopt_entry_before_ledger(&key, &input, old_options)
            .await
            .unwrap();
        let ledger = Ledger::new(&journal, "http://127.0.0.1:9/", Policy::exclusive());
        let begin = ledger
            .begin(&key, "mug.png", &Owner::exclusive("now"), |_| true)
            .await
            .unwrap();
        assert!(
            matches!(
                begin,
                Begin::Refused {
                    refusal: Refusal::Unconfirmed,
                    ..
                }
            ),
            "a create cut by a crash of the old version is not sent again: {begin:?}"
        );
        drop(ledger);
        drop(journal);
        let text = std::fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap();
        assert!(text.contains("\"version\": 2"), "{text}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
