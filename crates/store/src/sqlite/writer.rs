//! The writer thread: group commit of every write operation.
//!
//! Each loop iteration takes everything queued (up to [`MAX_BATCH`]), applies it in
//! arrival order inside one `BEGIN IMMEDIATE` transaction, commits once, and only then
//! publishes events and answers callers. While one batch is being fsynced the next one
//! queues up, so the fsync cost is shared by all concurrent writers. A compare-and-swap
//! that fails just writes nothing; it does not abort the others in its batch.

use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{broadcast, oneshot};

use super::schema::{META_COMPACTED, State};
use super::{Shared, SqliteError, read, sql};
use crate::{Event, EventType, KeyValue, Result, Revision, StoreError};

/// Upper bound on operations per transaction, so one huge burst cannot starve the
/// callers at its front of their answer for too long.
const MAX_BATCH: usize = 1024;

/// Longest a batch waits for more callers after its first request; see [`Writer::run`].
const GATHER_WAIT: Duration = Duration::from_micros(500);

type Reply<T> = oneshot::Sender<Result<T>>;

/// One write operation and where to send its outcome.
pub(crate) enum Request {
    Create { key: String, value: Vec<u8>, reply: Reply<KeyValue> },
    Update { key: String, value: Vec<u8>, expected: Revision, reply: Reply<KeyValue> },
    Delete { key: String, expected: Revision, reply: Reply<KeyValue> },
    Compact { revision: Revision, reply: Reply<()> },
}

/// The outcome of one request, held until the batch commits.
enum Answer {
    Kv(Reply<KeyValue>, Result<KeyValue>),
    Unit(Reply<()>, Result<()>),
}

impl Answer {
    fn send(self) {
        // A caller that stopped waiting (its future was dropped) no longer needs the
        // answer; its write stands either way, as with any database.
        match self {
            Answer::Kv(reply, result) => {
                let _ = reply.send(result);
            }
            Answer::Unit(reply, result) => {
                let _ = reply.send(result);
            }
        }
    }

    /// Replaces the outcome with the batch error: the transaction that held it did not
    /// commit. Even a failed compare-and-swap may have been judged against writes that
    /// are now lost, so no outcome of the batch can stand.
    fn fail(self, reason: &str) -> Answer {
        match self {
            Answer::Kv(reply, _) => Answer::Kv(reply, Err(batch_error(reason))),
            Answer::Unit(reply, _) => Answer::Unit(reply, Err(batch_error(reason))),
        }
    }
}

fn batch_error(reason: &str) -> StoreError {
    SqliteError::BatchAborted { reason: reason.to_owned() }.into()
}

impl Request {
    /// The answer for a request that was never applied because its batch failed.
    fn abort(self, reason: &str) -> Answer {
        match self {
            Request::Create { reply, .. } | Request::Update { reply, .. } | Request::Delete { reply, .. } => {
                Answer::Kv(reply, Err(batch_error(reason)))
            }
            Request::Compact { reply, .. } => Answer::Unit(reply, Err(batch_error(reason))),
        }
    }
}

/// What the open transaction has done so far.
struct Pending {
    revision: Revision,
    compacted: Revision,
    events: Vec<Event>,
}

pub(super) struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    events: broadcast::Sender<Arc<[Event]>>,
    /// The newest committed revision (the writer's own copy of `shared.revision`).
    revision: Revision,
    compacted: Revision,
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        shared: Arc<Shared>,
        events: broadcast::Sender<Arc<[Event]>>,
        state: State,
    ) -> Writer {
        Writer { conn, shared, events, revision: state.revision, compacted: state.compacted }
    }

    /// Serves requests until every sender is gone.
    pub(super) fn run(mut self, inbox: mpsc::Receiver<Request>) {
        let mut previous_batch = 0;
        while let Ok(first) = inbox.recv() {
            let mut batch = vec![first];
            let deadline = Instant::now() + GATHER_WAIT;
            while batch.len() < MAX_BATCH {
                match inbox.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(mpsc::TryRecvError::Disconnected) => break,
                    Err(mpsc::TryRecvError::Empty) => {
                        // The callers answered by the last commit are usually about to
                        // send their next write; waiting a moment for them (well under
                        // one fsync) lets them share the next commit instead of paying
                        // for one of their own. A lone caller never waits.
                        let wait = deadline.saturating_duration_since(Instant::now());
                        if batch.len() >= previous_batch || wait.is_zero() {
                            break;
                        }
                        match inbox.recv_timeout(wait) {
                            Ok(request) => batch.push(request),
                            Err(_) => break,
                        }
                    }
                }
            }
            previous_batch = batch.len();
            self.commit_batch(batch);
        }
    }

    fn commit_batch(&mut self, batch: Vec<Request>) {
        if let Err(err) = self.run_cached("BEGIN IMMEDIATE") {
            let reason = format!("begin failed: {err}");
            batch.into_iter().for_each(|request| request.abort(&reason).send());
            return;
        }
        let mut pending = Pending { revision: self.revision, compacted: self.compacted, events: Vec::new() };
        let mut answers = Vec::with_capacity(batch.len());
        let mut rolled_back: Option<String> = None;
        for request in batch {
            if let Some(reason) = &rolled_back {
                answers.push(request.abort(reason));
                continue;
            }
            let answer = self.apply(&mut pending, request);
            // SQLite rolls the whole transaction back on some errors (disk full, I/O).
            // Carrying on would run later operations outside any transaction.
            if self.conn.is_autocommit() {
                let reason = match &answer {
                    Answer::Kv(_, Err(err)) => err.to_string(),
                    Answer::Unit(_, Err(err)) => err.to_string(),
                    _ => "sqlite ended the transaction".to_owned(),
                };
                rolled_back = Some(reason);
            }
            answers.push(answer);
        }

        let outcome = match rolled_back {
            Some(reason) => Err(reason),
            None => self.run_cached("COMMIT").map_err(|err| {
                let reason = format!("commit failed: {err}");
                if !self.conn.is_autocommit() {
                    // Nothing else can be done if this fails too; the next BEGIN reports it.
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                reason
            }),
        };
        match outcome {
            Ok(()) => {
                self.revision = pending.revision;
                self.compacted = pending.compacted;
                self.shared.compacted.store(self.compacted, Ordering::SeqCst);
                // Store the revision before publishing: see `SqliteStore::watch`.
                self.shared.revision.store(self.revision, Ordering::SeqCst);
                if !pending.events.is_empty() {
                    // An error only means nobody is watching.
                    let _ = self.events.send(Arc::from(pending.events));
                }
                answers.into_iter().for_each(Answer::send);
            }
            Err(reason) => {
                tracing::error!(%reason, "store write batch failed");
                answers.into_iter().for_each(|answer| answer.fail(&reason).send());
            }
        }
    }

    /// Runs a statement without parameters from the statement cache (one parse per
    /// connection, not one per batch).
    fn run_cached(&self, statement: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(statement)?.execute([]).map(|_| ())
    }

    fn apply(&self, pending: &mut Pending, request: Request) -> Answer {
        match request {
            Request::Create { key, value, reply } => Answer::Kv(reply, self.create(pending, key, value)),
            Request::Update { key, value, expected, reply } => {
                Answer::Kv(reply, self.update(pending, key, value, expected))
            }
            Request::Delete { key, expected, reply } => Answer::Kv(reply, self.delete(pending, key, expected)),
            Request::Compact { revision, reply } => Answer::Unit(reply, self.compact(pending, revision)),
        }
    }

    fn create(&self, pending: &mut Pending, key: String, value: Vec<u8>) -> Result<KeyValue> {
        let latest = read::latest(&self.conn, &key)?;
        if latest.as_ref().is_some_and(|row| !row.deleted) {
            return Err(StoreError::AlreadyExists { key });
        }
        let revision = pending.revision + 1;
        let prev_revision = latest.map_or(0, |row| row.revision);
        self.append(revision, &key, revision, prev_revision, false, &value)?;
        pending.revision = revision;
        let kv = KeyValue { key, value, create_revision: revision, mod_revision: revision };
        pending.events.push(Event { event_type: EventType::Put, kv: kv.clone(), prev: None });
        Ok(kv)
    }

    /// The key's current value if its `mod_revision` is `expected`, else the conflict.
    fn compare(&self, key: &str, expected: Revision) -> Result<KeyValue> {
        let current = read::latest(&self.conn, key)?.and_then(|row| row.into_live(key));
        match current {
            Some(kv) if kv.mod_revision == expected => Ok(kv),
            current => Err(StoreError::Conflict { key: key.to_owned(), expected, current }),
        }
    }

    fn update(&self, pending: &mut Pending, key: String, value: Vec<u8>, expected: Revision) -> Result<KeyValue> {
        let prev = self.compare(&key, expected)?;
        let revision = pending.revision + 1;
        self.append(revision, &key, prev.create_revision, prev.mod_revision, false, &value)?;
        pending.revision = revision;
        let kv = KeyValue { key, value, create_revision: prev.create_revision, mod_revision: revision };
        pending.events.push(Event { event_type: EventType::Put, kv: kv.clone(), prev: Some(prev) });
        Ok(kv)
    }

    fn delete(&self, pending: &mut Pending, key: String, expected: Revision) -> Result<KeyValue> {
        let prev = self.compare(&key, expected)?;
        let revision = pending.revision + 1;
        // The tombstone keeps the last value so history replays can report it.
        self.append(revision, &key, prev.create_revision, prev.mod_revision, true, &prev.value)?;
        pending.revision = revision;
        let kv =
            KeyValue { key, value: prev.value.clone(), create_revision: prev.create_revision, mod_revision: revision };
        pending.events.push(Event { event_type: EventType::Delete, kv: kv.clone(), prev: Some(prev) });
        Ok(kv)
    }

    fn append(
        &self,
        revision: Revision,
        key: &str,
        create_revision: Revision,
        prev_revision: Revision,
        deleted: bool,
        value: &[u8],
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO log (revision, name, create_revision, prev_revision, deleted, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut stmt| {
                stmt.execute((revision, key.as_bytes(), create_revision, prev_revision, deleted, value))
            })
            .map_err(sql("append to the log"))?;
        Ok(())
    }

    fn compact(&self, pending: &mut Pending, revision: Revision) -> Result<()> {
        if revision > pending.revision {
            return Err(StoreError::FutureRevision { requested: revision, current: pending.revision });
        }
        if revision <= pending.compacted {
            return Ok(());
        }
        // A savepoint makes the two statements one step: the batch's other writes survive
        // a failed compaction.
        self.conn.execute_batch("SAVEPOINT compact").map_err(sql("start a compaction"))?;
        let result = self
            .conn
            .execute(
                // Drop every row at or below `revision` that a newer row at or below
                // `revision` supersedes, and every tombstone at or below it. What is left
                // answers any read at `revision` or later exactly as before.
                "DELETE FROM log WHERE revision <= ?1 AND (
                    deleted = 1
                    OR revision < (SELECT MAX(n.revision) FROM log AS n
                                   WHERE n.name = log.name AND n.revision <= ?1))",
                [revision],
            )
            .and_then(|_| {
                self.conn.execute(
                    "INSERT INTO meta (name, value) VALUES (?1, ?2)
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (META_COMPACTED, revision),
                )
            });
        match result {
            Ok(_) => {
                self.conn.execute_batch("RELEASE compact").map_err(sql("finish a compaction"))?;
                pending.compacted = revision;
                Ok(())
            }
            Err(err) => {
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK TO compact; RELEASE compact");
                }
                Err(sql("compact the log")(err))
            }
        }
    }
}
