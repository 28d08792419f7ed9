//! Where ledger entries live, behind a small trait of conditional writes: the CLI's journal file,
//! the Lambda's S3 objects, and [`MemoryStore`] for tests.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Mutex;

use crate::ledger::entry::Entry;
use crate::ledger::key::InputKey;

/// The outcome of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write<V> {
    /// Written; the entry's new version.
    Written(V),
    /// The condition did not hold: another owner wrote first. Nothing was written.
    Conflict,
}

/// A store that could not be read or written (a disk, a network, a permission).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// An error with a message that says what failed and what to do.
    pub fn new(message: impl Into<String>) -> Self {
        StoreError {
            message: message.into(),
            source: None,
        }
    }

    /// An error with its cause.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Storage of ledger entries with conditional writes: the whole of what the ledger needs.
///
/// Implementations must make [`insert`](Self::insert) and [`replace`](Self::replace) atomic:
/// of two concurrent writes on the same key with the same condition, at most one succeeds.
/// The conformance suite (`ledger::conformance`, feature `test-support`) checks a store.
pub trait LedgerStore: Send + Sync + fmt::Debug {
    /// What identifies one written state of an entry (an ETag, a counter).
    type Version: Clone + fmt::Debug + Send + Sync;

    /// The entry of `key` and its version, or `None`.
    fn load(
        &self,
        key: &InputKey,
    ) -> impl Future<Output = Result<Option<(Entry, Self::Version)>, StoreError>> + Send;

    /// Writes `entry` only if `key` has no entry.
    fn insert(
        &self,
        key: &InputKey,
        entry: &Entry,
    ) -> impl Future<Output = Result<Write<Self::Version>, StoreError>> + Send;

    /// Writes `entry` only if `key`'s entry is still at `expected`.
    fn replace(
        &self,
        key: &InputKey,
        entry: &Entry,
        expected: &Self::Version,
    ) -> impl Future<Output = Result<Write<Self::Version>, StoreError>> + Send;
}

/// A [`LedgerStore`] in memory: for tests and for runs that need no record (every write is
/// atomic under one lock; versions are counters).
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<InputKey, (Entry, u64)>>,
    writes: Mutex<u64>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every entry, for inspection.
    pub fn entries(&self) -> Vec<(InputKey, Entry)> {
        let entries = self.lock();
        let mut all: Vec<_> = entries
            .iter()
            .map(|(key, (entry, _))| (key.clone(), entry.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InputKey, (Entry, u64)>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn next_version(&self) -> u64 {
        let mut writes = self
            .writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *writes += 1;
        *writes
    }
}

impl LedgerStore for MemoryStore {
    type Version = u64;

    async fn load(&self, key: &InputKey) -> Result<Option<(Entry, u64)>, StoreError> {
        Ok(self.lock().get(key).cloned())
    }

    async fn insert(&self, key: &InputKey, entry: &Entry) -> Result<Write<u64>, StoreError> {
        let mut entries = self.lock();
        if entries.contains_key(key) {
            return Ok(Write::Conflict);
        }
        let version = self.next_version();
        entries.insert(key.clone(), (entry.clone(), version));
        Ok(Write::Written(version))
    }

    async fn replace(
        &self,
        key: &InputKey,
        entry: &Entry,
        expected: &u64,
    ) -> Result<Write<u64>, StoreError> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some((_, version)) if version == expected => {
                let version = self.next_version();
                entries.insert(key.clone(), (entry.clone(), version));
                Ok(Write::Written(version))
            }
            _ => Ok(Write::Conflict),
        }
    }
}
