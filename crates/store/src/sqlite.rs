//! The embedded SQLite backend: one file, WAL, fsync before a write is acknowledged.
//!
//! Layout of the moving parts:
//! - [`writer`]: a dedicated thread owns the only write connection. Callers send their
//!   operation over a channel; the thread drains whatever is queued, applies it in order
//!   inside one transaction, commits (one fsync for the whole batch: group commit), then
//!   publishes the events and answers every caller.
//! - [`read`]: `get`, `range` and the watch history run on pooled read-only connections
//!   inside `spawn_blocking`, so they never wait for the writer (WAL readers see the last
//!   committed state).
//! - [`watch`]: replays history rows from the table and then follows the writer's
//!   in-process broadcast.
//!
//! The `log` table is the whole state, in the style of k3s's kine: every write appends a
//! row whose `revision` is the new global revision. A key's current value is its newest
//! row, unless that row is a delete tombstone. Keys are stored as BLOBs so that SQLite
//! compares them bytewise, which makes prefix ranges exact.

mod read;
mod schema;
mod watch;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{broadcast, oneshot};

use crate::{Event, KeyValue, RangeResult, Result, Revision, Store, StoreError, WatchStream};

/// Read connections kept open between reads; more are opened on demand under load.
const MAX_IDLE_READERS: usize = 8;

/// What can go wrong inside this backend. Callers see it as [`StoreError::Backend`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum SqliteError {
    #[error("sqlite failed to {action}: {source}")]
    Sql {
        action: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the key stored at revision {revision} is not valid utf-8")]
    InvalidKey { revision: Revision },
    #[error("blocking {task} task did not finish: {message}")]
    Task { task: &'static str, message: String },
    #[error("failed to start the writer thread for {path}: {source}")]
    SpawnWriter {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the transaction of this batch was rolled back: {reason}")]
    BatchAborted { reason: String },
    #[error("watcher fell {missed} batches behind the writer")]
    WatchLagged { missed: u64 },
}

impl From<SqliteError> for StoreError {
    fn from(err: SqliteError) -> Self {
        StoreError::Backend { message: err.to_string() }
    }
}

/// Builds a closure turning a rusqlite error into a [`StoreError`] that says what failed.
pub(crate) fn sql(action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| SqliteError::Sql { action, source }.into()
}

/// State shared by the store handle, the writer thread and watch streams.
struct Shared {
    path: PathBuf,
    /// The newest committed revision. The writer stores it after commit and before
    /// publishing events, which is what lets a watch find its switch-over point.
    revision: AtomicI64,
    /// The compacted revision, as last committed. Reads re-check it inside their
    /// transaction, since a compaction may commit between this load and the read.
    compacted: AtomicI64,
    readers: Mutex<Vec<Connection>>,
}

impl Shared {
    /// Runs `f` on a pooled read connection on the blocking thread pool.
    async fn read<T, F>(self: &Arc<Self>, task: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let shared = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = shared.take_reader()?;
            let out = f(&conn);
            shared.return_reader(conn);
            out
        })
        .await
        .map_err(|err| SqliteError::Task { task, message: err.to_string() })?
    }

    fn take_reader(&self) -> Result<Connection> {
        let pooled = self.readers.lock().ok().and_then(|mut pool| pool.pop());
        match pooled {
            Some(conn) => Ok(conn),
            None => schema::open_reader(&self.path),
        }
    }

    fn return_reader(&self, conn: Connection) {
        // A connection left inside a transaction would pin an old snapshot forever.
        if !conn.is_autocommit() {
            return;
        }
        if let Ok(mut pool) = self.readers.lock()
            && pool.len() < MAX_IDLE_READERS
        {
            pool.push(conn);
        }
    }
}

/// Tuning knobs of [`SqliteStore::open_with`]; [`SqliteOptions::default`] suits a server.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How many writer batches (each one transaction's events) a watcher may fall behind
    /// before its stream ends with an error. Watchers never slow the writer down.
    pub watch_buffer: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions { watch_buffer: 4096 }
    }
}

/// The SQLite-backed [`Store`]. Cheap to share behind an `Arc`; dropping it stops the
/// writer thread after the writes already queued are committed, and ends all watches.
pub struct SqliteStore {
    shared: Arc<Shared>,
    requests: Option<mpsc::Sender<writer::Request>>,
    writer_thread: Option<JoinHandle<()>>,
    events: broadcast::Sender<Arc<[Event]>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.shared.path)
            .field("revision", &self.shared.revision.load(Ordering::SeqCst))
            .field("compacted", &self.shared.compacted.load(Ordering::SeqCst))
            .finish()
    }
}

impl SqliteStore {
    /// Opens the database at `path`, creating the file and its schema when missing.
    /// Reopening an existing file continues from its last revision.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        SqliteStore::open_with(path, SqliteOptions::default())
    }

    /// [`SqliteStore::open`] with explicit options.
    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<SqliteStore> {
        let conn = schema::open_writer(path)?;
        let state = schema::load_state(&conn)?;
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            revision: AtomicI64::new(state.revision),
            compacted: AtomicI64::new(state.compacted),
            readers: Mutex::new(Vec::new()),
        });
        let (events, _) = broadcast::channel(options.watch_buffer.max(1));
        let (requests, inbox) = mpsc::channel();
        let writer = writer::Writer::new(conn, Arc::clone(&shared), events.clone(), state);
        let writer_thread = std::thread::Builder::new()
            .name("rkube-store-writer".to_owned())
            .spawn(move || writer.run(inbox))
            .map_err(|source| SqliteError::SpawnWriter { path: path.to_path_buf(), source })?;
        Ok(SqliteStore { shared, requests: Some(requests), writer_thread: Some(writer_thread), events })
    }

    /// The database file this store was opened on.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    async fn submit<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> writer::Request) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let requests = self.requests.as_ref().ok_or(StoreError::Closed)?;
        requests.send(make(reply)).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what is queued and exit; joining it
        // means a reopen right after drop finds every acknowledged write committed and no
        // second writer racing it.
        drop(self.requests.take());
        if let Some(thread) = self.writer_thread.take()
            && thread.join().is_err()
        {
            tracing::error!(path = %self.shared.path.display(), "store writer thread panicked");
        }
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        self.submit(|reply| writer::Request::Create { key: key.to_owned(), value, reply }).await
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue> {
        self.submit(|reply| writer::Request::Update { key: key.to_owned(), value, expected, reply }).await
    }

    async fn delete(&self, key: &str, expected: Revision) -> Result<KeyValue> {
        self.submit(|reply| writer::Request::Delete { key: key.to_owned(), expected, reply }).await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        self.shared.read("get", move |conn| read::get(conn, &key)).await
    }

    /// `revision` of `Some(0)` (or below) means the newest revision, as in etcd.
    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<RangeResult> {
        let current = self.shared.revision.load(Ordering::SeqCst);
        let at = match revision {
            Some(requested) if requested > 0 => requested,
            _ => current,
        };
        if at > current {
            return Err(StoreError::FutureRevision { requested: at, current });
        }
        let compacted = self.shared.compacted.load(Ordering::SeqCst);
        if at < compacted {
            return Err(StoreError::Compacted { requested: at, compacted });
        }
        let query = read::RangeQuery {
            bounds: read::KeyBounds::prefix(prefix),
            start_after: start_after.map(str::to_owned),
            limit,
            revision: at,
        };
        self.shared.read("range", move |conn| read::range(conn, &query)).await
    }

    /// Watching from a revision newer than the current one is allowed: the stream starts
    /// with the first change after `after`.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        // Subscribe before reading the current revision: every event with a revision
        // above the one loaded here is published after this subscription, so replaying
        // history up to it and then following the broadcast leaves no gap.
        let live = self.events.subscribe();
        let replay_until = self.shared.revision.load(Ordering::SeqCst);
        let compacted = self.shared.compacted.load(Ordering::SeqCst);
        if after < compacted {
            return Err(StoreError::Compacted { requested: after, compacted });
        }
        Ok(watch::stream(Arc::clone(&self.shared), prefix, after, replay_until, live))
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.revision.load(Ordering::SeqCst))
    }

    /// Compacting at or below the current compacted revision is a no-op.
    async fn compact(&self, revision: Revision) -> Result<()> {
        self.submit(|reply| writer::Request::Compact { revision, reply }).await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.shared.compacted.load(Ordering::SeqCst))
    }
}
