//! The task ledger in S3: one claim object per input, `STATE_PREFIX/<input key>.json`, holding
//! its ledger entry. Written with `If-None-Match: *` (claim) and `If-Match: <ETag>` (every later
//! step), so that of two invocations only one moves an entry; the rules are core's
//! ([`backdrop_core::ledger`]).

use std::fmt;

use backdrop_core::ledger::{Entry, InputKey, LedgerStore, StoreError, Write};
use bytes::Bytes;

use crate::store::{ObjectStore, WriteCondition, WriteOutcome};

/// The claim objects of one bucket and prefix, as a [`LedgerStore`] (versions are ETags).
pub struct ClaimStore<'a, S> {
    store: &'a S,
    bucket: String,
    prefix: String,
}

impl<'a, S: ObjectStore> ClaimStore<'a, S> {
    /// Claims in `bucket` under `prefix` (e.g. `state/`).
    pub fn new(store: &'a S, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        ClaimStore {
            store,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    /// The claim object's key of an input.
    pub fn object_key(&self, key: &InputKey) -> String {
        format!("{}{key}.json", self.prefix)
    }

    async fn put(
        &self,
        key: &InputKey,
        entry: &Entry,
        condition: WriteCondition,
    ) -> Result<Write<String>, StoreError> {
        let object = self.object_key(key);
        let body = serde_json::to_vec_pretty(entry)
            .map_err(|e| StoreError::with_source("cannot encode a claim as JSON", e))?;
        let written = self
            .store
            .put(
                &self.bucket,
                &object,
                Bytes::from(body),
                "application/json",
                condition,
            )
            .await
            .map_err(|e| {
                StoreError::with_source(
                    format!("cannot write the claim s3://{}/{object}", self.bucket),
                    e,
                )
            })?;
        Ok(match written {
            WriteOutcome::Written(etag) => Write::Written(etag),
            WriteOutcome::ConditionFailed => Write::Conflict,
        })
    }
}

impl<S> fmt::Debug for ClaimStore<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimStore")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl<S: ObjectStore> LedgerStore for ClaimStore<'_, S> {
    type Version = String;

    async fn load(&self, key: &InputKey) -> Result<Option<(Entry, String)>, StoreError> {
        let object = self.object_key(key);
        let found = self.store.get(&self.bucket, &object).await.map_err(|e| {
            StoreError::with_source(
                format!("cannot read the claim s3://{}/{object}", self.bucket),
                e,
            )
        })?;
        let Some((body, etag)) = found else {
            return Ok(None);
        };
        let entry: Entry = serde_json::from_slice(&body).map_err(|e| {
            StoreError::with_source(
                format!(
                    "the claim s3://{}/{object} is not a ledger entry; if nothing runs for this \
                     object, remove it to start over (a task it names may then be created again)",
                    self.bucket
                ),
                e,
            )
        })?;
        Ok(Some((entry, etag)))
    }

    async fn insert(&self, key: &InputKey, entry: &Entry) -> Result<Write<String>, StoreError> {
        self.put(key, entry, WriteCondition::IfAbsent).await
    }

    async fn replace(
        &self,
        key: &InputKey,
        entry: &Entry,
        expected: &String,
    ) -> Result<Write<String>, StoreError> {
        self.put(key, entry, WriteCondition::IfMatch(expected.clone()))
            .await
    }
}
