//! Opening connections, creating the schema and loading the persisted counters.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::sql;
use crate::{Result, Revision};

/// How long a connection waits on a lock held by another connection (the writer's WAL
/// checkpoint, or a second process) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema this code writes; recorded so a later version can migrate.
const SCHEMA_VERSION: i64 = 1;

const CREATE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
    revision        INTEGER PRIMARY KEY,
    name            BLOB    NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision   INTEGER NOT NULL,
    deleted         INTEGER NOT NULL,
    value           BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS log_name_revision ON log (name, revision);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
";

/// The `meta` row holding the compacted revision.
pub(super) const META_COMPACTED: &str = "compacted_revision";
const META_SCHEMA_VERSION: &str = "schema_version";

/// Counters recovered from the file when it is opened.
#[derive(Debug, Clone, Copy)]
pub(super) struct State {
    pub(super) revision: Revision,
    pub(super) compacted: Revision,
}

/// Opens the single write connection: WAL, and `synchronous=FULL` so that each commit
/// fsyncs the WAL before returning (that is what makes an acknowledged write durable).
pub(super) fn open_writer(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(sql("open the database file"))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql("set the busy timeout"))?;
    let mode: String =
        conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(sql("switch to WAL mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(
            super::SqliteError::Sql { action: "switch to WAL mode", source: rusqlite::Error::InvalidQuery }.into()
        );
    }
    conn.pragma_update(None, "synchronous", "FULL").map_err(sql("set synchronous=FULL"))?;
    conn.execute_batch(CREATE_SCHEMA).map_err(sql("create the schema"))?;
    conn.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        (META_SCHEMA_VERSION, SCHEMA_VERSION),
    )
    .map_err(sql("record the schema version"))?;
    Ok(conn)
}

/// Opens a read connection. It refuses writes so a bug cannot bypass the writer thread.
pub(super) fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sql("open a read connection"))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql("set the busy timeout"))?;
    conn.pragma_update(None, "query_only", true).map_err(sql("make a connection read-only"))?;
    Ok(conn)
}

/// Reads the compacted revision as committed in the current transaction's snapshot.
pub(super) fn compacted(conn: &Connection) -> Result<Revision> {
    let value = conn
        .prepare_cached("SELECT value FROM meta WHERE name = ?1")
        .and_then(|mut stmt| stmt.query_row([META_COMPACTED], |row| row.get(0)).optional())
        .map_err(sql("read the compacted revision"))?;
    Ok(value.unwrap_or(0))
}

/// Recovers the newest revision and the compacted revision.
///
/// The newest revision is not stored separately: it is the highest row in the log, or the
/// compacted revision when compaction removed that row (a delete tombstone). Compaction
/// never goes beyond the newest revision, so this never hands out a revision twice.
pub(super) fn load_state(conn: &Connection) -> Result<State> {
    let compacted = compacted(conn)?;
    let newest: Option<Revision> = conn
        .query_row("SELECT MAX(revision) FROM log", [], |row| row.get(0))
        .map_err(sql("read the newest revision"))?;
    Ok(State { revision: newest.unwrap_or(0).max(compacted), compacted })
}
