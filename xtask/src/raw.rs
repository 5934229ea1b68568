//! The baseline: raw rusqlite on the store's table shape, without the server around it.
//!
//! Same schema as `rkube-store` (the `log` table and its `(name, revision)` index), WAL,
//! `synchronous=FULL` (every commit fsyncs the WAL), values of the size the server
//! actually stored for the benchmark's ConfigMaps, keys of the same shape.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};

/// Keys look like the server's: `/registry/configmaps/default/<name>`.
pub const PREFIX: &str = "/registry/configmaps/default/";

/// Opens a fresh database at `path` with the store's pragmas and schema.
pub fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    anyhow::ensure!(mode.eq_ignore_ascii_case("wal"), "journal_mode is {mode}, not wal");
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS log (revision INTEGER PRIMARY KEY, name BLOB NOT NULL,
             create_revision INTEGER NOT NULL, prev_revision INTEGER NOT NULL,
             deleted INTEGER NOT NULL, value BLOB NOT NULL);
         CREATE INDEX IF NOT EXISTS log_name_revision ON log (name, revision);",
    )?;
    Ok(conn)
}

fn key(revision: i64) -> String {
    format!("{PREFIX}bench-{revision:06}")
}

fn insert(conn: &Connection, revision: i64, value: &[u8]) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO log (revision, name, create_revision, prev_revision, deleted, value)
         VALUES (?1, ?2, ?1, 0, 0, ?3)",
    )?
    .execute((revision, key(revision).as_bytes(), value))?;
    Ok(())
}

/// Count and mean value length of the live rows whose key starts with `prefix` in the
/// server's database, read through a read-only connection (WAL lets it run beside the
/// server's own).
pub fn stored_value_size(db: &Path, prefix: &str) -> Result<(u64, f64)> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", db.display()))?;
    let (count, avg): (i64, Option<f64>) = conn.query_row(
        "SELECT COUNT(*), AVG(LENGTH(value)) FROM log WHERE deleted = 0 AND substr(name, 1, ?2) = ?1",
        (prefix.as_bytes(), prefix.len() as i64),
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok((count as u64, avg.unwrap_or(0.0)))
}

/// One insert per `BEGIN IMMEDIATE … COMMIT` (one fsync each): commits per second and
/// each commit's latency.
pub fn single_inserts(path: &Path, count: usize, value: &[u8]) -> Result<(f64, Vec<Duration>)> {
    let conn = open(path)?;
    let mut latencies = Vec::with_capacity(count);
    let started = Instant::now();
    for i in 0..count {
        let t = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE")?;
        insert(&conn, i as i64 + 1, value)?;
        conn.execute_batch("COMMIT")?;
        latencies.push(t.elapsed());
    }
    Ok((count as f64 / started.elapsed().as_secs_f64(), latencies))
}

/// `total` inserts in transactions of `batch` rows each, as the store's group commit
/// does when `batch` writers are waiting: rows per second. Leaves the database at `path`
/// for the read baselines.
pub fn batched_inserts(path: &Path, total: usize, batch: usize, value: &[u8]) -> Result<f64> {
    let conn = open(path)?;
    let started = Instant::now();
    let mut revision = 0i64;
    while (revision as usize) < total {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        for _ in 0..batch.min(total - revision as usize) {
            revision += 1;
            insert(&conn, revision, value)?;
        }
        conn.execute_batch("COMMIT")?;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// Latencies of `count` point reads of the newest row of one key, as the store's `get`.
pub fn point_reads(path: &Path, count: usize) -> Result<Vec<Duration>> {
    let conn = open(path)?;
    let k = key(1);
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        let value: Vec<u8> = conn
            .prepare_cached("SELECT value FROM log WHERE name = ?1 ORDER BY revision DESC LIMIT 1")?
            .query_row([k.as_bytes()], |row| row.get(0))?;
        std::hint::black_box(value);
        latencies.push(t.elapsed());
    }
    Ok(latencies)
}

/// Time to read every row under [`PREFIX`] (keys and values into memory) in key order,
/// and how many rows that was.
pub fn range_read(path: &Path) -> Result<(Duration, usize)> {
    let conn = open(path)?;
    let lower = PREFIX.as_bytes().to_vec();
    let mut upper = lower.clone();
    if let Some(last) = upper.last_mut() {
        *last += 1;
    }
    let t = Instant::now();
    let mut stmt = conn.prepare_cached("SELECT name, value FROM log WHERE name >= ?1 AND name < ?2 ORDER BY name")?;
    let rows: Vec<(Vec<u8>, Vec<u8>)> =
        stmt.query_map((&lower, &upper), |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<_, _>>()?;
    let elapsed = t.elapsed();
    Ok((elapsed, rows.len()))
}
