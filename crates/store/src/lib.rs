//! The key-value store under the API server, with etcd's semantics.
//!
//! Everything the apiserver persists goes through [`Store`]: one global, strictly
//! increasing revision (it becomes every object's `resourceVersion`), create-if-absent,
//! compare-and-swap update and delete on an object's `mod_revision`, range reads by
//! prefix with limit/continue at a fixed revision, watches of a prefix from a revision,
//! and compaction (reading or watching below the compacted revision fails with
//! [`StoreError::Compacted`], which the apiserver turns into 410 Gone).
//!
//! [`sqlite::SqliteStore`] is the embedded backend (WAL, fsync before a write is
//! acknowledged, group commit). An etcd backend implements the same trait. Start reading
//! at [`Store`].

use futures::stream::BoxStream;

pub mod sqlite;

/// A store revision. Revisions start at 1 and only grow.
pub type Revision = i64;

/// One key and its value at some revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision that created this key (the last time it went from absent to present).
    pub create_revision: Revision,
    /// The revision of the last write to this key. For a delete event, the revision of
    /// the delete.
    pub mod_revision: Revision,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Put,
    Delete,
}

/// One change, as delivered to watchers in revision order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_type: EventType,
    /// For a put: the new value. For a delete: the key with its last value and
    /// `mod_revision` set to the revision of the delete.
    pub kv: KeyValue,
    /// The value before this change, when there was one.
    pub prev: Option<KeyValue>,
}

/// The answer to a range read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeResult {
    /// Keys in ascending order.
    pub kvs: Vec<KeyValue>,
    /// Whether keys beyond the last one returned remain (the limit cut the answer).
    pub more: bool,
    /// The revision the range was read at; pass it back to continue consistently.
    pub revision: Revision,
}

/// Errors of every store backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key {key} already exists")]
    AlreadyExists { key: String },
    #[error("key {key} not found")]
    NotFound { key: String },
    /// The compare-and-swap failed: the key's current state is in `current`
    /// (`None` when it no longer exists).
    #[error("key {key} was modified: expected revision {expected}")]
    Conflict { key: String, expected: Revision, current: Option<KeyValue> },
    #[error("revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted { requested: Revision, compacted: Revision },
    #[error("revision {requested} is in the future (current is {current})")]
    FutureRevision { requested: Revision, current: Revision },
    #[error("store backend failed: {message}")]
    Backend { message: String },
    #[error("store is closed")]
    Closed,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stream of events for a watch, in revision order. It ends when the store closes.
pub type WatchStream = BoxStream<'static, Result<Event>>;

/// A key-value store with etcd's revision semantics. All methods are safe to call
/// concurrently; a method returns only once its write is durable.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates `key` if it does not exist.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue>;

    /// Replaces the value of `key` if its `mod_revision` is `expected`.
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue>;

    /// Deletes `key` if its `mod_revision` is `expected`. Returns the deleted key with
    /// its last value and `mod_revision` set to the revision of the delete.
    async fn delete(&self, key: &str, expected: Revision) -> Result<KeyValue>;

    /// The current value of `key`.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys starting with `prefix`, in key order, strictly after `start_after` when given,
    /// at most `limit` of them (0 means no limit), as they were at `revision` (`None`
    /// means now).
    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<RangeResult>;

    /// Every change to keys starting with `prefix` with a revision strictly greater than
    /// `after`, first the stored history and then live changes, without gaps.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// The newest revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// Forgets history older than `revision`: the current value of every key is kept,
    /// but range reads and watches below `revision` fail with `Compacted`.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The oldest revision still readable.
    async fn compacted_revision(&self) -> Result<Revision>;
}
