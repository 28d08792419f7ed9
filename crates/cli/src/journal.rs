//! The journal: what became of each input sent from one output folder, so that a run stopped at
//! any moment (Ctrl-C, a crash, SIGKILL, a reboot) can be run again without creating anything
//! twice.
//!
//! It is one JSON file in the output folder, [`JOURNAL_FILE`], mapping an input's key (a SHA-256
//! over the input's bytes or URL, the options that change its result and its output name) to an
//! [`Entry`]: the task id, the state, the files written, the failure. Every change is written
//! before the run acts on it — "submitting" before a create is sent, the task id as soon as the
//! create is answered — through a temporary file, `fsync` and a rename, so the file on disk is
//! always a whole journal. Concurrent jobs share one writer: an update returns once a write that
//! includes it is on disk (several updates may share one write).
//!
//! Nothing secret goes in: no API key, and the base URL without user, password or query.
//! A lock on [`LOCK_FILE`] keeps two runs from using one folder at once; the operating system
//! releases it when the process ends, however it ends.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::CliError;
use crate::inputs::{Input, InputSource};
use crate::summary::FailureRecord;

/// The journal's file name in the output folder.
pub const JOURNAL_FILE: &str = ".backdrop-journal.json";
/// The lock's file name in the output folder.
pub const LOCK_FILE: &str = ".backdrop-journal.lock";
/// The format version written.
const VERSION: u32 = 1;

/// Where an input stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// A create is about to be sent or on its way; its answer has not been seen. Found in a
    /// journal at start, it means the run died then: the task may exist (and be charged).
    Submitting,
    /// The create was sent and no answer came back (timeout, cut connection): the task may exist
    /// and be charged. Not created again without `--retry-unconfirmed`.
    Unconfirmed,
    /// The service accepted the create: `task_id` is set. Resumed by id.
    Created,
    /// The outputs are written.
    Done,
    /// The input failed without a charge (refused, failed task, create surely not accepted):
    /// the next run tries it again.
    Failed,
    /// The task succeeded (and was charged) but its results expired or vanished before they
    /// were downloaded. Not generated again without `--regenerate-expired`.
    Expired,
}

/// One input's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The input as given (file path or URL without its query).
    pub input: String,
    /// The service the task lives at (see [`Service::identity`](crate::service::Service)).
    pub service: String,
    /// Where the input stands.
    pub state: EntryState,
    /// The task id, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Files written, relative to the output folder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<PathBuf>,
    /// Credits the task cost, by the spec's price list.
    #[serde(default)]
    pub credits: u32,
    /// The last failure, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureRecord>,
    /// When the entry last changed, in unix seconds.
    pub updated_at: u64,
}

impl Entry {
    /// A fresh entry for `input` at `service`, in `state`.
    pub fn new(input: &Input, service: &str, state: EntryState) -> Self {
        Entry {
            input: input.label(),
            service: service.to_owned(),
            state,
            task_id: None,
            outputs: Vec::new(),
            credits: 0,
            failure: None,
            updated_at: 0,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Contents {
    version: u32,
    #[serde(default)]
    entries: BTreeMap<String, Entry>,
}

/// The entries in memory, and how far they were written.
#[derive(Debug)]
struct Pending {
    contents: Contents,
    /// Bumped by every change.
    generation: u64,
}

/// An open journal; holds the folder's lock until dropped.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
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
        let contents = match std::fs::read(&path) {
            Ok(bytes) => {
                let contents: Contents = serde_json::from_slice(&bytes).map_err(|e| {
                    CliError::Journal(format!(
                        "the journal {} cannot be read ({e}); move it away to start over \
                         (inputs it lists as running or unconfirmed may then be created again)",
                        path.display()
                    ))
                })?;
                if contents.version > VERSION {
                    return Err(CliError::Journal(format!(
                        "the journal {} was written by a newer backdrop (format {}); use that \
                         version, or move the journal away to start over",
                        path.display(),
                        contents.version
                    )));
                }
                contents
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Contents {
                version: VERSION,
                entries: BTreeMap::new(),
            },
            Err(source) => {
                return Err(CliError::Journal(format!(
                    "the journal {} cannot be read ({source})",
                    path.display()
                )));
            }
        };
        Ok(Journal {
            dir: out.to_owned(),
            path,
            pending: Mutex::new(Pending {
                contents,
                generation: 0,
            }),
            written: tokio::sync::Mutex::new(0),
            _lock: lock,
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry for `key`, if any.
    pub fn get(&self, key: &str) -> Option<Entry> {
        self.lock().contents.entries.get(key).cloned()
    }

    /// Sets the entry for `key` and returns once it is on disk.
    pub async fn record(&self, key: &str, mut entry: Entry) -> Result<(), CliError> {
        entry.updated_at = now_unix();
        let generation = {
            let mut pending = self.lock();
            pending.contents.entries.insert(key.to_owned(), entry);
            pending.generation += 1;
            pending.generation
        };
        self.flush(generation).await
    }

    /// Writes the journal unless a write already covered `generation`.
    async fn flush(&self, generation: u64) -> Result<(), CliError> {
        let mut written = self.written.lock().await;
        if *written >= generation {
            return Ok(());
        }
        let (bytes, covers) = {
            let pending = self.lock();
            let bytes = serde_json::to_vec_pretty(&pending.contents).map_err(|e| {
                CliError::Journal(format!("cannot encode the journal as JSON: {e}"))
            })?;
            (bytes, pending.generation)
        };
        let (dir, path) = (self.dir.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || write_durably(&dir, &path, &bytes))
            .await
            .map_err(|e| CliError::Journal(format!("the journal writer stopped: {e}")))?
            .map_err(|source| CliError::Write {
                path: self.path.clone(),
                source,
            })?;
        *written = covers;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Replaces `path` by `bytes`: a temporary file in `dir`, `fsync`, rename, `fsync` of the folder.
fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".tmp-{}", std::process::id()));
    let temporary = dir.join(name);
    let result = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result?;
    // The rename is durable once the folder is; not every platform can sync a folder.
    if let Ok(folder) = File::open(dir) {
        let _ = folder.sync_all();
    }
    Ok(())
}

/// The key of an input: SHA-256 over the format, the options that change the result
/// (`options`, canonical text), the output name and the image itself (file bytes, or the URL).
///
/// A changed prompt, batch size, file or output name makes a new input; an unchanged one is
/// recognised whatever its path on the command line. Reads the whole file (in pieces).
pub fn input_key(input: &Input, options: &str) -> std::io::Result<String> {
    let mut hash = Sha256::new();
    let mut field = |name: &str, value: &[u8]| {
        hash.update(name.as_bytes());
        hash.update((value.len() as u64).to_le_bytes());
        hash.update(value);
    };
    field("backdrop-journal", &VERSION.to_le_bytes());
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

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("backdrop-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn file_input(dir: &Path, name: &str, bytes: &[u8]) -> Input {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        Input {
            source: InputSource::File(path),
            output_stem: PathBuf::from(name.trim_end_matches(".png")),
        }
    }

    #[test]
    fn keys_follow_content_options_and_output_name() {
        let dir = temp_dir("keys");
        let a = file_input(&dir, "a.png", b"same bytes");
        let b = file_input(&dir, "b.png", b"same bytes");
        let key = input_key(&a, "prompt=x").unwrap();
        assert_eq!(key.len(), 64);
        assert_eq!(key, input_key(&a, "prompt=x").unwrap());
        assert_ne!(key, input_key(&a, "prompt=y").unwrap());
        assert_ne!(key, input_key(&b, "prompt=x").unwrap());
        let changed = file_input(&dir, "a.png", b"other bytes");
        assert_ne!(key, input_key(&changed, "prompt=x").unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn concurrent_updates_all_land_and_the_folder_is_locked() {
        let dir = temp_dir("writes");
        let input = file_input(&dir, "a.png", b"x");
        let journal = std::sync::Arc::new(Journal::open(&dir).unwrap());
        assert!(matches!(Journal::open(&dir), Err(CliError::Journal(_))));
        let mut jobs = Vec::new();
        for n in 0..40 {
            let journal = journal.clone();
            let input = input.clone();
            jobs.push(tokio::spawn(async move {
                let mut entry = Entry::new(&input, "svc", EntryState::Created);
                entry.task_id = Some(format!("task-{n}"));
                journal.record(&format!("key-{n}"), entry).await.unwrap();
            }));
        }
        for job in jobs {
            job.await.unwrap();
        }
        drop(journal);
        let journal = Journal::open(&dir).unwrap();
        for n in 0..40 {
            let entry = journal.get(&format!("key-{n}")).unwrap();
            assert_eq!(entry.task_id.as_deref(), Some(format!("task-{n}").as_str()));
            assert_eq!(entry.state, EntryState::Created);
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
        std::fs::remove_dir_all(dir).unwrap();
    }
}
