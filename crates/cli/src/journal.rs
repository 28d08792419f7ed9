//! The journal: the task ledger of one output folder, kept in one file, so that a run stopped at
//! any moment (Ctrl-C, a crash, SIGKILL, a reboot) can be run again without creating anything
//! twice.
//!
//! The journal is a [`LedgerStore`]: the rules of what may be created, resumed or refused are
//! core's ([`backdrop_core::ledger`]); this file only keeps the entries. It is one file in the
//! output folder, [`JOURNAL_FILE`]: JSON lines, a header and then one record per change — an
//! input's ledger [`Entry`] under its [`InputKey`] (the last record of a key is its entry), or
//! the output stem an input reserved. A change costs one appended line and one `fsync`, however
//! large the catalog: several concurrent changes share one write. A run acts on a change only
//! once it is on disk; a crash can leave only a last line cut short, which was never acted on
//! and is dropped when the journal is opened. Opening compacts a file holding more than twice
//! the lines it needs (a temporary file, `fsync`, a rename, `fsync` of the folder). Journals of
//! formats 1 and 2 (`.backdrop-journal.json`, rewritten whole on every change) are read and
//! carried over once.
//!
//! Nothing secret goes in: no API key, and the base URL without user, password or query.
//! A lock on [`LOCK_FILE`] keeps two runs from using one folder at once (the operating system
//! releases it when the process ends, however it ends): the journal is an exclusive store, so
//! any owner found in it belongs to a run that ended.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use backdrop_core::Recovery;
use backdrop_core::ledger::{
    Entry, Failure, InputKey, LedgerStore, Owner, Stage, StoreError, Write,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::CliError;
use crate::inputs::{Input, InputSource};

/// The journal's file name in the output folder.
pub const JOURNAL_FILE: &str = ".backdrop-journal.jsonl";
/// The file of journals of formats 1 and 2, carried over to [`JOURNAL_FILE`] when opened.
pub const OLD_JOURNAL_FILE: &str = ".backdrop-journal.json";
/// The lock's file name in the output folder.
pub const LOCK_FILE: &str = ".backdrop-journal.lock";
/// The format written: 3, JSON lines of ledger entries under core's input keys.
const VERSION: u32 = 3;
/// Format 2: one JSON document of ledger entries, rewritten whole on every change.
const VERSION_WHOLE_FILE: u32 = 2;
/// The format of backdrop 0.1 before the ledger, still read.
const VERSION_BEFORE_LEDGER: u32 = 1;
/// A file with more lines than this plus twice its live records is compacted when opened.
const COMPACTION_SLACK: usize = 1024;

/// The first line of a journal file.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    journal: String,
    version: u32,
}

/// One line of a journal file after its header: the last record of a key wins.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Record {
    /// An input's ledger entry.
    Entry { key: String, entry: Entry },
    /// The output stem (path without `-N.ext`, relative to the folder) an input writes to:
    /// reserved before its task is created or resumed, so that two inputs never share one
    /// (see [`Journal::destination`]).
    Destination { key: String, stem: String },
    /// An entry of a format-1 journal, under its old key, whose input has not come by since.
    BeforeLedger { key: String, entry: Entry },
    /// That entry was moved to its input's ledger key.
    Adopted { key: String },
}

/// A journal of format 2, read to carry it over.
#[derive(Debug, Default, Deserialize)]
struct WholeFile {
    #[serde(default)]
    entries: BTreeMap<String, Entry>,
    #[serde(default)]
    before_ledger: BTreeMap<String, Entry>,
    #[serde(default)]
    destinations: BTreeMap<String, String>,
}

/// The entries in memory, each with its version, the lines not written yet, and the indexes
/// that keep a stem's reservation check independent of the catalog's size.
#[derive(Debug, Default)]
struct Pending {
    entries: BTreeMap<InputKey, (Entry, u64)>,
    /// Entries of a version-1 journal, by their old keys, until their input comes by.
    before_ledger: BTreeMap<String, Entry>,
    /// Each input's output stem, by key.
    destinations: BTreeMap<InputKey, String>,
    /// The inputs that reserved each stem.
    reserved_by: HashMap<String, BTreeSet<InputKey>>,
    /// Who wrote outputs of each stem: input keys, and `1:` + the old key for entries of a
    /// version-1 journal.
    written_by: HashMap<String, BTreeSet<String>>,
    /// Bumped by every change; also the entries' versions.
    generation: u64,
    /// Records changed in memory and not yet appended to the file, as lines.
    unwritten: Vec<u8>,
}

impl Pending {
    fn set_entry(&mut self, key: InputKey, entry: Entry) -> u64 {
        self.generation += 1;
        let holder = key.to_string();
        if let Some((old, _)) = self.entries.get(&key) {
            let old_stems: Vec<String> = stems_of(old).map(str::to_owned).collect();
            self.unindex_outputs(&holder, old_stems);
        }
        self.index_outputs(&holder, &entry);
        self.entries.insert(key, (entry, self.generation));
        self.generation
    }

    fn set_destination(&mut self, key: InputKey, stem: String) {
        self.generation += 1;
        if let Some(old) = self.destinations.get(&key)
            && let Some(keys) = self.reserved_by.get_mut(old)
        {
            keys.remove(&key);
            if keys.is_empty() {
                let old = old.clone();
                self.reserved_by.remove(&old);
            }
        }
        self.reserved_by
            .entry(stem.clone())
            .or_default()
            .insert(key.clone());
        self.destinations.insert(key, stem);
    }

    fn set_before_ledger(&mut self, key: String, entry: Entry) {
        self.index_outputs(&format!("1:{key}"), &entry);
        self.before_ledger.insert(key, entry);
    }

    fn take_before_ledger(&mut self, key: &str) -> Option<Entry> {
        let entry = self.before_ledger.remove(key)?;
        let stems: Vec<String> = stems_of(&entry).map(str::to_owned).collect();
        self.unindex_outputs(&format!("1:{key}"), stems);
        Some(entry)
    }

    fn index_outputs(&mut self, holder: &str, entry: &Entry) {
        for stem in stems_of(entry) {
            self.written_by
                .entry(stem.to_owned())
                .or_default()
                .insert(holder.to_owned());
        }
    }

    fn unindex_outputs(&mut self, holder: &str, stems: Vec<String>) {
        for stem in stems {
            if let Some(holders) = self.written_by.get_mut(&stem) {
                holders.remove(holder);
                if holders.is_empty() {
                    self.written_by.remove(&stem);
                }
            }
        }
    }

    /// Applies one record read from a file.
    fn apply(&mut self, record: Record) -> Result<(), String> {
        let parse =
            |key: &str| InputKey::parse(key).ok_or_else(|| format!("{key:?} is not an input key"));
        match record {
            Record::Entry { key, entry } => {
                self.set_entry(parse(&key)?, entry);
            }
            Record::Destination { key, stem } => self.set_destination(parse(&key)?, stem),
            Record::BeforeLedger { key, entry } => self.set_before_ledger(key, entry),
            Record::Adopted { key } => {
                self.take_before_ledger(&key);
            }
        }
        Ok(())
    }

    /// Queues `record` to be appended.
    fn queue(&mut self, record: &Record) -> Result<(), StoreError> {
        serde_json::to_writer(&mut self.unwritten, record)
            .map_err(|e| StoreError::with_source("cannot encode a journal record as JSON", e))?;
        self.unwritten.push(b'\n');
        Ok(())
    }

    /// Records of everything live, for a compacted file.
    fn live_records(&self) -> impl Iterator<Item = Record> + '_ {
        let before = self
            .before_ledger
            .iter()
            .map(|(key, entry)| Record::BeforeLedger {
                key: key.clone(),
                entry: entry.clone(),
            });
        let destinations = self
            .destinations
            .iter()
            .map(|(key, stem)| Record::Destination {
                key: key.to_string(),
                stem: stem.clone(),
            });
        let entries = self.entries.iter().map(|(key, (entry, _))| Record::Entry {
            key: key.to_string(),
            entry: entry.clone(),
        });
        before.chain(destinations).chain(entries)
    }

    fn live_count(&self) -> usize {
        self.before_ledger.len() + self.destinations.len() + self.entries.len()
    }
}

/// The stems of an entry's outputs.
fn stems_of(entry: &Entry) -> impl Iterator<Item = &str> {
    entry.outputs.iter().filter_map(|o| output_stem(o))
}

/// The open file and how far it was written.
#[derive(Debug)]
struct Appender {
    file: Arc<File>,
    /// The file's length after the last whole write.
    len: u64,
    /// The generation on disk.
    written: u64,
    /// Set when a failed write could not be cut back: nothing more may be appended.
    broken: bool,
}

/// An open journal; holds the folder's lock until dropped.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    pending: Mutex<Pending>,
    /// Held while writing, so writes never overtake each other.
    appender: tokio::sync::Mutex<Appender>,
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
        let write_error = |path: &Path, source| CliError::Write {
            path: path.to_owned(),
            source,
        };
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| write_error(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(CliError::Journal(format!(
                    "another backdrop run is using the output folder {} (its journal is locked); \
                     wait for it to end or choose another --out",
                    out.display()
                )));
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(write_error(&lock_path, source));
            }
        }
        let unreadable = |path: &Path, reason: String| {
            CliError::Journal(format!(
                "the journal {} cannot be read ({reason}); move it away to start over (inputs \
                 it lists as running or unconfirmed may then be created again)",
                path.display()
            ))
        };
        let old_path = out.join(OLD_JOURNAL_FILE);
        // What the file holds, and its record lines and whole length (`None`: no such file).
        let (pending, on_disk) = match read_lines(&path) {
            Ok(Some((pending, lines, len))) => (pending, Some((lines, len))),
            Ok(None) => match read_whole_file(&old_path) {
                Ok(Some(pending)) => (pending, None),
                Ok(None) => (Pending::default(), None),
                Err(reason) => return Err(unreadable(&old_path, reason)),
            },
            Err(reason) => return Err(unreadable(&path, reason)),
        };
        // A new journal, one carried over from an older format, or one with too many lines
        // that no longer count: written whole, compacted.
        let len = match on_disk {
            Some((lines, len))
                if lines <= pending.live_count().saturating_mul(2) + COMPACTION_SLACK =>
            {
                len
            }
            _ => write_compacted(&path, &pending).map_err(|e| write_error(&path, e))?,
        };
        if old_path.exists() {
            // Carried over (now, or by a run that stopped before removing it).
            std::fs::remove_file(&old_path).map_err(|e| write_error(&old_path, e))?;
            backdrop_core::__private::sync_folder(out).map_err(|e| write_error(out, e))?;
        }
        let file = File::options()
            .append(true)
            .open(&path)
            .map_err(|e| write_error(&path, e))?;
        // A last line cut short by a crash was never acted on: it goes.
        if file.metadata().map(|m| m.len()).ok() != Some(len) {
            file.set_len(len)
                .and_then(|()| file.sync_all())
                .map_err(|e| write_error(&path, e))?;
        }
        Ok(Journal {
            path,
            appender: tokio::sync::Mutex::new(Appender {
                file: Arc::new(file),
                len,
                written: pending.generation,
                broken: false,
            }),
            pending: Mutex::new(pending),
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
            if pending.entries.contains_key(key) {
                return Ok(());
            }
            let Some(entry) = pending.take_before_ledger(&old_key) else {
                return Ok(());
            };
            let queued = pending
                .queue(&Record::Adopted {
                    key: old_key.clone(),
                })
                .and_then(|()| {
                    pending.queue(&Record::Entry {
                        key: key.to_string(),
                        entry: entry.clone(),
                    })
                });
            queued.map_err(|e| CliError::Journal(e.to_string()))?;
            pending.set_entry(key.clone(), entry)
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
        let (stem, generation) = {
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
            pending
                .queue(&Record::Destination {
                    key: key.to_string(),
                    stem: stem.clone(),
                })
                .map_err(|e| CliError::Journal(e.to_string()))?;
            pending.set_destination(key.clone(), stem.clone());
            (stem, pending.generation)
        };
        self.flush(generation)
            .await
            .map_err(|e| CliError::Journal(e.to_string()))?;
        Ok(PathBuf::from(stem))
    }

    /// Appends what is queued unless a write already covered `generation`.
    async fn flush(&self, generation: u64) -> Result<(), StoreError> {
        let mut appender = self.appender.lock().await;
        if appender.broken {
            return Err(StoreError::new(format!(
                "the journal {} could not be repaired after a failed write; run again to \
                 reopen it",
                self.path.display()
            )));
        }
        if appender.written >= generation {
            return Ok(());
        }
        let (bytes, covers) = {
            let mut pending = self.lock();
            (std::mem::take(&mut pending.unwritten), pending.generation)
        };
        let (file, len) = (appender.file.clone(), appender.len);
        let written = tokio::task::spawn_blocking(move || {
            let appended = (&*file).write_all(&bytes).and_then(|()| file.sync_data());
            match appended {
                Ok(()) => Ok(len + bytes.len() as u64),
                Err(error) => {
                    // Cut back to the last whole write, so that later lines follow it; the
                    // lines go back to the queue, to be tried again with the next write.
                    if file.set_len(len).is_err() {
                        return Err((error, None));
                    }
                    Err((error, Some(bytes)))
                }
            }
        })
        .await
        .map_err(|e| StoreError::new(format!("the journal writer stopped: {e}")))?;
        match written {
            Ok(new_len) => {
                appender.len = new_len;
                appender.written = covers;
                Ok(())
            }
            Err((source, requeue)) => {
                match requeue {
                    Some(mut bytes) => {
                        let mut pending = self.lock();
                        bytes.append(&mut pending.unwritten);
                        pending.unwritten = bytes;
                    }
                    // The file could not even be cut back: nothing more may be appended.
                    None => appender.broken = true,
                }
                Err(StoreError::with_source(
                    format!(
                        "cannot write the journal {}; check that this user may write to the \
                         output folder and that the disk is not full",
                        self.path.display()
                    ),
                    source,
                ))
            }
        }
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
            pending.queue(&Record::Entry {
                key: key.to_string(),
                entry: entry.clone(),
            })?;
            pending.set_entry(key.clone(), entry.clone())
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

/// Reads a journal file of format 3: what it holds, its number of record lines and the length
/// of its whole lines (a last line cut short by a crash is left out). `Ok(None)` when there is
/// no such file.
fn read_lines(path: &Path) -> Result<Option<(Pending, usize, u64)>, String> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut line = Vec::new();
    let mut pending = Pending::default();
    let (mut lines, mut len) = (0usize, 0u64);
    let mut header_seen = false;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if read == 0 || line.last() != Some(&b'\n') {
            // The end, or a last line cut short: never acted on.
            break;
        }
        if !header_seen {
            let header: Header = serde_json::from_slice(&line)
                .map_err(|e| format!("its first line is no journal header: {e}"))?;
            if header.version > VERSION {
                return Err(format!(
                    "format {}, written by a newer backdrop; use that version",
                    header.version
                ));
            }
            header_seen = true;
        } else {
            let record: Record =
                serde_json::from_slice(&line).map_err(|e| format!("line {}: {e}", lines + 2))?;
            pending.apply(record)?;
            lines += 1;
        }
        len += read as u64;
    }
    if !header_seen {
        return Err("it has no journal header".to_owned());
    }
    Ok(Some((pending, lines, len)))
}

/// Reads a journal of format 1 or 2 (one JSON document). `Ok(None)` when there is none.
fn read_whole_file(path: &Path) -> Result<Option<Pending>, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    let version: Version = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    let mut pending = Pending::default();
    match version.version {
        VERSION_WHOLE_FILE => {
            let contents: WholeFile = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            for (key, entry) in contents.before_ledger {
                pending.set_before_ledger(key, entry);
            }
            for (key, stem) in contents.destinations {
                if let Some(key) = InputKey::parse(&key) {
                    pending.set_destination(key, stem);
                }
            }
            for (key, entry) in contents.entries {
                let key =
                    InputKey::parse(&key).ok_or_else(|| format!("{key:?} is not an input key"))?;
                pending.set_entry(key, entry);
            }
        }
        VERSION_BEFORE_LEDGER => {
            let old: before_ledger::Contents =
                serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            for (key, entry) in old.entries {
                pending.set_before_ledger(key, entry.into_ledger());
            }
        }
        newer => {
            return Err(format!(
                "format {newer}, written by a newer backdrop; use that version"
            ));
        }
    }
    Ok(Some(pending))
}

/// Replaces the journal file with the live records of `pending`; returns its length.
fn write_compacted(path: &Path, pending: &Pending) -> std::io::Result<u64> {
    let mut len = 0u64;
    backdrop_core::__private::write_atomically_with(path, |out| {
        let mut line = serde_json::to_vec(&Header {
            journal: "backdrop".to_owned(),
            version: VERSION,
        })
        .map_err(std::io::Error::other)?;
        line.push(b'\n');
        out.write_all(&line)?;
        len += line.len() as u64;
        for record in pending.live_records() {
            line.clear();
            serde_json::to_writer(&mut line, &record).map_err(std::io::Error::other)?;
            line.push(b'\n');
            out.write_all(&line)?;
            len += line.len() as u64;
        }
        Ok(())
    })?;
    Ok(len)
}

/// The extensions a result may have.
const RESULT_EXTENSIONS: [&str; 3] = ["jpg", "png", "webp"];

/// True when `stem` is held by an input other than `key`: reserved by one whose entry is not a
/// failure that wrote nothing, used by a finished entry's outputs, or named by result files in
/// `out` that no entry of the journal wrote. Looks up indexes: its cost does not grow with the
/// catalog.
fn held_by_another(pending: &Pending, key: &InputKey, stem: &str, out: &Path) -> bool {
    let wrote = |entry: &Entry| stems_of(entry).any(|s| s == stem);
    let reserved = pending.reserved_by.get(stem).is_some_and(|keys| {
        keys.iter().any(|other| {
            other != key
                && pending
                    .entries
                    .get(other)
                    .is_none_or(|(entry, _)| entry.stage != Stage::Failed || wrote(entry))
        })
    });
    if reserved {
        return true;
    }
    let own = key.to_string();
    if pending
        .written_by
        .get(stem)
        .is_some_and(|holders| holders.iter().any(|holder| *holder != own))
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
/// folder's lock (a run may be appending to it: a last line cut short is left out), as
/// [`Journal::entries`] gives them. `Ok(None)` when the folder has no journal.
pub fn read_entries(out: &Path) -> Result<Option<Vec<(String, Entry)>>, CliError> {
    let unreadable = |path: &Path, reason: String| {
        CliError::Journal(format!(
            "the journal {} cannot be read ({reason})",
            path.display()
        ))
    };
    let path = out.join(JOURNAL_FILE);
    let pending = match read_lines(&path) {
        Ok(Some((pending, ..))) => pending,
        Ok(None) => {
            let old = out.join(OLD_JOURNAL_FILE);
            match read_whole_file(&old) {
                Ok(Some(pending)) => pending,
                Ok(None) => return Ok(None),
                Err(reason) => return Err(unreadable(&old, reason)),
            }
        }
        Err(reason) => return Err(unreadable(&path, reason)),
    };
    Ok(Some(all_entries(
        pending
            .entries
            .into_iter()
            .map(|(key, (entry, _))| (key.to_string(), entry)),
        &pending.before_ledger,
    )))
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
        // What the suite wrote is on disk and reads back.
        for dir in dirs.borrow().iter() {
            let text = std::fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap();
            let header: Header = serde_json::from_str(text.lines().next().unwrap()).unwrap();
            assert_eq!(header.version, VERSION);
            assert!(read_entries(dir).unwrap().is_some());
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
                assert!(matches!(
                    journal.insert(&key(n), &created(n)).await.unwrap(),
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
        // `file` holding `bytes` makes opening fail with an error that says `says`.
        let refused = |file: &str, bytes: &[u8], says: &str| {
            std::fs::write(dir.join(file), bytes).unwrap();
            let error = Journal::open(&dir).unwrap_err();
            assert!(error.to_string().contains(says), "{error}");
        };
        refused(JOURNAL_FILE, b"{not json\n", "move it away");
        refused(
            JOURNAL_FILE,
            b"{\"journal\":\"backdrop\",\"version\":9}\n",
            "newer backdrop",
        );
        // A whole line that is not a record, before the last one: not a crash's doing.
        refused(
            JOURNAL_FILE,
            b"{\"journal\":\"backdrop\",\"version\":3}\n{\"entry\":1}\n{}\n",
            "line 2",
        );
        std::fs::remove_file(dir.join(JOURNAL_FILE)).unwrap();
        refused(
            OLD_JOURNAL_FILE,
            br#"{"version": 9, "entries": {}}"#,
            "newer backdrop",
        );
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
        std::fs::write(dir.join(OLD_JOURNAL_FILE), old.to_string()).unwrap();
        let journal = Journal::open(&dir).unwrap();
        assert!(!dir.join(OLD_JOURNAL_FILE).exists(), "carried over");
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
        assert!(
            text.starts_with("{\"journal\":\"backdrop\",\"version\":3}\n"),
            "{text}"
        );
        assert!(text.contains("\"adopted\""), "{text}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn created(n: usize) -> Entry {
        Entry {
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
        }
    }

    fn file_len(dir: &Path) -> u64 {
        std::fs::metadata(dir.join(JOURNAL_FILE)).unwrap().len()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_change_costs_one_line_however_large_the_journal() {
        let dir = temp_dir("append");
        let journal = Journal::open(&dir).unwrap();
        let mut growth = Vec::new();
        for n in 0..3000 {
            let before = file_len(&dir);
            journal.insert(&key(n), &created(n)).await.unwrap();
            growth.push(file_len(&dir) - before);
        }
        // The same entry's line, give or take the digits of its number.
        let (first, last) = (growth[10], growth[2999]);
        assert!(
            last <= first + 8,
            "{first} bytes at 10 entries, {last} at 3000"
        );
        assert!(last < 600, "{last}");
        drop(journal);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_line_cut_short_by_a_crash_is_dropped_and_later_lines_follow_whole_ones() {
        let dir = temp_dir("torn");
        let journal = Journal::open(&dir).unwrap();
        journal.insert(&key(1), &created(1)).await.unwrap();
        drop(journal);
        let whole = file_len(&dir);
        // A crash in the middle of appending the next record.
        let mut file = File::options()
            .append(true)
            .open(dir.join(JOURNAL_FILE))
            .unwrap();
        file.write_all(b"{\"entry\":{\"key\":\"ab").unwrap();
        drop(file);
        assert!(
            read_entries(&dir).unwrap().unwrap().len() == 1,
            "a reader skips it too"
        );
        let journal = Journal::open(&dir).unwrap();
        assert_eq!(file_len(&dir), whole, "cut back to its last whole line");
        journal.insert(&key(2), &created(2)).await.unwrap();
        drop(journal);
        let journal = Journal::open(&dir).unwrap();
        assert_eq!(journal.entries().len(), 2);
        drop(journal);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn opening_compacts_a_file_of_mostly_replaced_lines() {
        let dir = temp_dir("compact");
        let journal = Journal::open(&dir).unwrap();
        journal.insert(&key(1), &created(1)).await.unwrap();
        let mut version = journal.load(&key(1)).await.unwrap().unwrap().1;
        for round in 0..(COMPACTION_SLACK + 10) {
            let mut entry = created(1);
            entry.updated_at_ms = round as u64;
            match journal.replace(&key(1), &entry, &version).await.unwrap() {
                Write::Written(v) => version = v,
                Write::Conflict => panic!("the version is current"),
            }
        }
        drop(journal);
        let long = file_len(&dir);
        let journal = Journal::open(&dir).unwrap();
        let short = file_len(&dir);
        assert!(short * 100 < long, "{long} bytes, then {short}");
        let (entry, _) = journal.load(&key(1)).await.unwrap().unwrap();
        assert_eq!(entry.updated_at_ms, (COMPACTION_SLACK + 9) as u64);
        drop(journal);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_journal_of_format_2_is_carried_over_whole() {
        let dir = temp_dir("format-2");
        let old = serde_json::json!({
            "version": 2,
            "entries": { key(1).to_string(): created(1) },
            "destinations": { key(1).to_string(): "mug" },
        });
        std::fs::write(dir.join(OLD_JOURNAL_FILE), old.to_string()).unwrap();
        let journal = Journal::open(&dir).unwrap();
        assert!(!dir.join(OLD_JOURNAL_FILE).exists());
        let (entry, _) = journal.load(&key(1)).await.unwrap().unwrap();
        assert_eq!(entry.task_id.as_deref(), Some("task-1"));
        let stem = journal
            .destination(&key(1), Path::new("other"), &dir)
            .await
            .unwrap();
        assert_eq!(stem, PathBuf::from("mug"), "its reservation came along");
        drop(journal);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
