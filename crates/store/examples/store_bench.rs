//! Throughput of `SqliteStore` against raw rusqlite baselines on the same disk.
//!
//! Run with `cargo run -p rkube-store --release --example store_bench`. Every figure is
//! the median of a few repetitions, each on a fresh database in a temporary directory.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rkube_store::Store;
use rkube_store::sqlite::SqliteStore;

const REPETITIONS: usize = 3;
const WRITERS: usize = 16;
const CREATES_PER_WRITER: usize = 500;
/// Roughly the size of a small pod serialized as JSON.
const VALUE_SIZE: usize = 1024;
const RAW_SINGLE_INSERTS: usize = 500;
const RANGE_KEYS: usize = 10_000;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

async fn store_creates(dir: &Path) -> BenchResult<f64> {
    let store = Arc::new(SqliteStore::open(&dir.join("store.db"))?);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in 0..CREATES_PER_WRITER {
                let key = format!("/registry/pods/ns{writer}/pod-{i}");
                store.create(&key, vec![b'x'; VALUE_SIZE]).await?;
            }
            Ok::<_, rkube_store::StoreError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(per_second(WRITERS * CREATES_PER_WRITER, started.elapsed()))
}

/// The same table shape the store uses, without the store around it.
fn raw_connection(path: &Path) -> BenchResult<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get::<_, String>(0))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE log (revision INTEGER PRIMARY KEY, name BLOB NOT NULL,
             create_revision INTEGER NOT NULL, prev_revision INTEGER NOT NULL,
             deleted INTEGER NOT NULL, value BLOB NOT NULL);
         CREATE INDEX log_name_revision ON log (name, revision);",
    )?;
    Ok(conn)
}

fn raw_insert(conn: &rusqlite::Connection, revision: i64) -> BenchResult<()> {
    let key = format!("/registry/pods/ns/pod-{revision}");
    conn.prepare_cached(
        "INSERT INTO log (revision, name, create_revision, prev_revision, deleted, value)
         VALUES (?1, ?2, ?1, 0, 0, ?3)",
    )?
    .execute((revision, key.as_bytes(), vec![b'x'; VALUE_SIZE]))?;
    Ok(())
}

/// Raw inserts, `per_transaction` per fsync'd commit.
fn raw_inserts(dir: &Path, total: usize, per_transaction: usize) -> BenchResult<f64> {
    let conn = raw_connection(&dir.join("raw.db"))?;
    let started = Instant::now();
    let mut revision = 0;
    for _ in 0..total.div_ceil(per_transaction) {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        for _ in 0..per_transaction {
            revision += 1;
            raw_insert(&conn, revision)?;
        }
        conn.execute_batch("COMMIT")?;
    }
    Ok(per_second(revision as usize, started.elapsed()))
}

/// Milliseconds to read all `RANGE_KEYS` keys at once and in pages of 500.
async fn range_times(dir: &Path) -> BenchResult<(f64, f64)> {
    let store = Arc::new(SqliteStore::open(&dir.join("range.db"))?);
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in (writer..RANGE_KEYS).step_by(WRITERS) {
                let key = format!("/registry/pods/default/pod-{i:05}");
                store.create(&key, vec![b'x'; VALUE_SIZE]).await?;
            }
            Ok::<_, rkube_store::StoreError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let started = Instant::now();
    let all = store.range("/registry/pods/", None, 0, None).await?;
    let whole = started.elapsed();
    assert_eq!(all.kvs.len(), RANGE_KEYS);

    let started = Instant::now();
    let mut page = store.range("/registry/pods/", None, 500, None).await?;
    let mut read = page.kvs.len();
    while page.more {
        let last = page.kvs.last().map(|kv| kv.key.clone());
        page = store.range("/registry/pods/", last.as_deref(), 500, Some(page.revision)).await?;
        read += page.kvs.len();
    }
    let paged = started.elapsed();
    assert_eq!(read, RANGE_KEYS);
    Ok((whole.as_secs_f64() * 1e3, paged.as_secs_f64() * 1e3))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> BenchResult<()> {
    let creates = WRITERS * CREATES_PER_WRITER;
    let (mut store, mut single, mut batch16, mut batch256, mut whole, mut paged) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..REPETITIONS {
        store.push(store_creates(tempfile::tempdir()?.path()).await?);
        single.push(raw_inserts(tempfile::tempdir()?.path(), RAW_SINGLE_INSERTS, 1)?);
        batch16.push(raw_inserts(tempfile::tempdir()?.path(), creates, WRITERS)?);
        batch256.push(raw_inserts(tempfile::tempdir()?.path(), creates, 256)?);
        let (all, pages) = range_times(tempfile::tempdir()?.path()).await?;
        whole.push(all);
        paged.push(pages);
    }
    println!("medians of {REPETITIONS} runs, values of {VALUE_SIZE} bytes");
    println!("SqliteStore, {WRITERS} concurrent writers x {CREATES_PER_WRITER}: {:>9.0} creates/s", median(store));
    println!("raw rusqlite, 1 insert per fsync'd transaction:      {:>9.0} inserts/s", median(single));
    println!("raw rusqlite, {WRITERS} inserts per transaction:           {:>9.0} inserts/s", median(batch16));
    println!("raw rusqlite, 256 inserts per transaction:          {:>9.0} inserts/s", median(batch256));
    println!("range of {RANGE_KEYS} keys, one read:        {:>7.1} ms", median(whole));
    println!("range of {RANGE_KEYS} keys, pages of 500:    {:>7.1} ms", median(paged));
    Ok(())
}
