//! Behaviour of `SqliteStore` through the `Store` trait, as the apiserver uses it.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rkube_store::sqlite::{SqliteOptions, SqliteStore};
use rkube_store::{Event, EventType, KeyValue, Revision, Store, StoreError, WatchStream};

/// Waits this long at most for a watch event; a hang is a failure, not a stuck test.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

fn temp_store() -> (tempfile::TempDir, PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).expect("open store");
    (dir, path, store)
}

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

async fn next_event(stream: &mut WatchStream) -> Event {
    tokio::time::timeout(EVENT_TIMEOUT, stream.next())
        .await
        .expect("watch event within timeout")
        .expect("stream still open")
        .expect("event, not error")
}

#[tokio::test]
async fn create_then_get_and_already_exists() {
    let (_dir, _path, store) = temp_store();
    assert_eq!(store.current_revision().await.unwrap(), 0);
    assert_eq!(store.get("/registry/pods/default/web").await.unwrap(), None);

    let kv = store.create("/registry/pods/default/web", b"v1".to_vec()).await.unwrap();
    assert_eq!(kv.create_revision, 1);
    assert_eq!(kv.mod_revision, 1);
    assert_eq!(store.get("/registry/pods/default/web").await.unwrap(), Some(kv.clone()));

    let err = store.create("/registry/pods/default/web", b"v2".to_vec()).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { ref key } if key == "/registry/pods/default/web"));
    // The failed create consumed no revision.
    assert_eq!(store.current_revision().await.unwrap(), 1);
    let other = store.create("/registry/pods/default/db", b"x".to_vec()).await.unwrap();
    assert_eq!(other.mod_revision, 2);
}

#[tokio::test]
async fn update_is_compare_and_swap() {
    let (_dir, _path, store) = temp_store();
    let created = store.create("/k", b"v1".to_vec()).await.unwrap();
    let updated = store.update("/k", b"v2".to_vec(), created.mod_revision).await.unwrap();
    assert_eq!(updated.value, b"v2");
    assert_eq!(updated.create_revision, created.create_revision);
    assert_eq!(updated.mod_revision, created.mod_revision + 1);

    // A stale expected revision fails and hands back the current state.
    let err = store.update("/k", b"v3".to_vec(), created.mod_revision).await.unwrap_err();
    match err {
        StoreError::Conflict { key, expected, current } => {
            assert_eq!(key, "/k");
            assert_eq!(expected, created.mod_revision);
            assert_eq!(current, Some(updated.clone()));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(store.get("/k").await.unwrap(), Some(updated));

    let err = store.update("/missing", b"v".to_vec(), 1).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { current: None, .. }), "{err:?}");
}

#[tokio::test]
async fn delete_is_compare_and_swap_and_allows_recreate() {
    let (_dir, _path, store) = temp_store();
    let created = store.create("/k", b"v1".to_vec()).await.unwrap();
    let updated = store.update("/k", b"v2".to_vec(), created.mod_revision).await.unwrap();

    let err = store.delete("/k", created.mod_revision).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { current: Some(ref kv), .. } if *kv == updated));
    assert!(store.get("/k").await.unwrap().is_some());

    let deleted = store.delete("/k", updated.mod_revision).await.unwrap();
    assert_eq!(deleted.value, b"v2", "delete returns the last value");
    assert_eq!(deleted.create_revision, created.create_revision);
    assert_eq!(deleted.mod_revision, updated.mod_revision + 1);
    assert_eq!(store.get("/k").await.unwrap(), None);

    let err = store.delete("/k", deleted.mod_revision).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { current: None, .. }), "{err:?}");

    let again = store.create("/k", b"v3".to_vec()).await.unwrap();
    assert_eq!(again.create_revision, deleted.mod_revision + 1, "a re-create starts a new life");
}

#[tokio::test]
async fn range_matches_exact_prefixes() {
    let (_dir, _path, store) = temp_store();
    for key in [
        "/registry/pods/default/a",
        "/registry/pods/default/b",
        "/registry/pods/default2/a",
        "/registry/pods/default",
        "/registry/pods/kube-system/a",
        "/registry/podsx/default/a",
        "/registry/a%_/x",
        "/registry/ab_/x",
        "/registry/pods/défault/a",
    ] {
        store.create(key, key.as_bytes().to_vec()).await.unwrap();
    }
    let cases: &[(&str, &[&str])] = &[
        ("/registry/pods/default/", &["/registry/pods/default/a", "/registry/pods/default/b"]),
        ("/registry/pods/default2/", &["/registry/pods/default2/a"]),
        ("/registry/a%_/", &["/registry/a%_/x"]),
        ("/registry/pods/défault/", &["/registry/pods/défault/a"]),
        ("/registry/nothing/", &[]),
        (
            "/registry/pods/",
            &[
                "/registry/pods/default",
                "/registry/pods/default/a",
                "/registry/pods/default/b",
                "/registry/pods/default2/a",
                "/registry/pods/défault/a",
                "/registry/pods/kube-system/a",
            ],
        ),
    ];
    for (prefix, want) in cases {
        let got = store.range(prefix, None, 0, None).await.unwrap();
        assert_eq!(keys(&got.kvs), *want, "prefix {prefix}");
        assert!(!got.more);
        assert_eq!(got.revision, 9);
    }
    let all = store.range("", None, 0, None).await.unwrap();
    assert_eq!(all.kvs.len(), 9);
}

#[tokio::test]
async fn range_pages_with_limit_and_continue_at_a_fixed_revision() {
    let (_dir, _path, store) = temp_store();
    for i in 0..25 {
        store.create(&format!("/p/{i:02}"), vec![i]).await.unwrap();
    }
    let first = store.range("/p/", None, 10, None).await.unwrap();
    assert_eq!(first.kvs.len(), 10);
    assert!(first.more);
    let at = first.revision;

    // Writes between pages must not show up in later pages read at the same revision.
    store.create("/p/05a", vec![0]).await.unwrap();
    let doomed = store.get("/p/20").await.unwrap().unwrap();
    store.delete("/p/20", doomed.mod_revision).await.unwrap();

    let mut seen = keys(&first.kvs).into_iter().map(str::to_owned).collect::<Vec<_>>();
    let mut last = first.kvs.last().unwrap().key.clone();
    let mut pages = 1;
    loop {
        let page = store.range("/p/", Some(&last), 10, Some(at)).await.unwrap();
        assert_eq!(page.revision, at);
        pages += 1;
        seen.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        if !page.more {
            break;
        }
        last = page.kvs.last().unwrap().key.clone();
    }
    let want: Vec<String> = (0..25).map(|i| format!("/p/{i:02}")).collect();
    assert_eq!(seen, want);
    assert_eq!(pages, 3);

    // Exactly `limit` keys left: no `more`.
    let tail = store.range("/p/", Some("/p/19"), 5, Some(at)).await.unwrap();
    assert_eq!(keys(&tail.kvs), ["/p/20", "/p/21", "/p/22", "/p/23", "/p/24"]);
    assert!(!tail.more);
    // A continue key before the prefix is the same as none.
    let from_start = store.range("/p/", Some("/a"), 2, Some(at)).await.unwrap();
    assert_eq!(keys(&from_start.kvs), ["/p/00", "/p/01"]);
}

#[tokio::test]
async fn range_at_an_older_revision_sees_old_values_and_deleted_keys() {
    let (_dir, _path, store) = temp_store();
    let a = store.create("/r/a", b"a1".to_vec()).await.unwrap();
    let b = store.create("/r/b", b"b1".to_vec()).await.unwrap();
    let before = store.current_revision().await.unwrap();
    store.update("/r/a", b"a2".to_vec(), a.mod_revision).await.unwrap();
    store.delete("/r/b", b.mod_revision).await.unwrap();
    store.create("/r/c", b"c1".to_vec()).await.unwrap();

    let old = store.range("/r/", None, 0, Some(before)).await.unwrap();
    let values: Vec<(&str, &[u8])> = old.kvs.iter().map(|kv| (kv.key.as_str(), kv.value.as_slice())).collect();
    assert_eq!(values, [("/r/a", &b"a1"[..]), ("/r/b", &b"b1"[..])]);
    assert_eq!(old.revision, before);

    let now = store.range("/r/", None, 0, None).await.unwrap();
    let values: Vec<(&str, &[u8])> = now.kvs.iter().map(|kv| (kv.key.as_str(), kv.value.as_slice())).collect();
    assert_eq!(values, [("/r/a", &b"a2"[..]), ("/r/c", &b"c1"[..])]);

    let current = store.current_revision().await.unwrap();
    let err = store.range("/r/", None, 0, Some(current + 1)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::FutureRevision { requested, current: c } if requested == current + 1 && c == current)
    );
}

#[tokio::test]
async fn watch_reports_puts_and_deletes_with_prev_values() {
    let (_dir, _path, store) = temp_store();
    let mut stream = store.watch("/w/", 0).await.unwrap();
    let created = store.create("/w/a", b"1".to_vec()).await.unwrap();
    store.create("/other/a", b"x".to_vec()).await.unwrap();
    let updated = store.update("/w/a", b"2".to_vec(), created.mod_revision).await.unwrap();
    let deleted = store.delete("/w/a", updated.mod_revision).await.unwrap();
    let recreated = store.create("/w/a", b"3".to_vec()).await.unwrap();

    let live = [
        next_event(&mut stream).await,
        next_event(&mut stream).await,
        next_event(&mut stream).await,
        next_event(&mut stream).await,
    ];
    let want = [
        Event { event_type: EventType::Put, kv: created.clone(), prev: None },
        Event { event_type: EventType::Put, kv: updated.clone(), prev: Some(created.clone()) },
        Event { event_type: EventType::Delete, kv: deleted.clone(), prev: Some(updated.clone()) },
        Event { event_type: EventType::Put, kv: recreated.clone(), prev: None },
    ];
    assert_eq!(live, want);

    // Replaying the same changes from the table gives the same events.
    let mut replay = store.watch("/w/", 0).await.unwrap();
    for event in &want {
        assert_eq!(&next_event(&mut replay).await, event);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_replays_history_then_live_events_without_gaps() {
    let (_dir, _path, store) = temp_store();
    let store = Arc::new(store);
    // Enough history for several replay pages.
    for i in 0..1200 {
        store.create(&format!("/h/{i}"), vec![1]).await.unwrap();
    }
    let after = 300;
    let mut stream = store.watch("/h/", after).await.unwrap();

    // Writers race the replay: creates, updates and deletes from 8 tasks.
    let mut writers = Vec::new();
    for t in 0..8 {
        let store = Arc::clone(&store);
        writers.push(tokio::spawn(async move {
            for i in 0..50 {
                let key = format!("/h/t{t}/{i}");
                let kv = store.create(&key, vec![2]).await.unwrap();
                let kv = store.update(&key, vec![3], kv.mod_revision).await.unwrap();
                if i % 5 == 0 {
                    store.delete(&key, kv.mod_revision).await.unwrap();
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let last = store.current_revision().await.unwrap();
    // Every write is under the prefix, so the stream must be exactly every revision.
    let mut expected = after + 1;
    while expected <= last {
        let event = next_event(&mut stream).await;
        assert_eq!(event.kv.mod_revision, expected, "gap or duplicate in the watch");
        expected += 1;
    }
    assert_eq!(last, 1200 + 8 * (50 * 2 + 10));
}

#[tokio::test]
async fn a_watcher_that_falls_behind_gets_an_error_and_does_not_block_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(&dir.path().join("db"), SqliteOptions { watch_buffer: 4 }).unwrap();
    let mut stream = store.watch("/", 0).await.unwrap();
    // Each awaited write is its own batch; the watcher reads none of them meanwhile.
    for i in 0..20 {
        store.create(&format!("/slow/{i}"), vec![]).await.unwrap();
    }
    let mut saw_error = false;
    while let Some(item) = tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await.expect("stream answers") {
        if item.is_err() {
            saw_error = true;
        }
    }
    assert!(saw_error, "a lagging watcher must be told it missed events");
}

#[tokio::test]
async fn compaction_forgets_history_but_keeps_current_values() {
    let (_dir, path, store) = temp_store();
    let a = store.create("/c/a", b"a1".to_vec()).await.unwrap(); // 1
    let b = store.create("/c/b", b"b1".to_vec()).await.unwrap(); // 2
    let a2 = store.update("/c/a", b"a2".to_vec(), a.mod_revision).await.unwrap(); // 3
    store.delete("/c/b", b.mod_revision).await.unwrap(); // 4
    let c = store.create("/c/c", b"c1".to_vec()).await.unwrap(); // 5
    let a3 = store.update("/c/a", b"a3".to_vec(), a2.mod_revision).await.unwrap(); // 6

    let err = store.compact(7).await.unwrap_err();
    assert!(matches!(err, StoreError::FutureRevision { requested: 7, current: 6 }), "{err:?}");

    store.compact(5).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), 5);
    // Compacting again at or below is harmless.
    store.compact(3).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), 5);

    let err = store.range("/c/", None, 0, Some(4)).await.unwrap_err();
    assert!(matches!(err, StoreError::Compacted { requested: 4, compacted: 5 }), "{err:?}");
    let err = store.watch("/c/", 4).await.err().expect("watch below compaction fails");
    assert!(matches!(err, StoreError::Compacted { requested: 4, compacted: 5 }), "{err:?}");

    // The compacted revision itself is still readable, and so is everything after.
    let at5 = store.range("/c/", None, 0, Some(5)).await.unwrap();
    assert_eq!(at5.kvs, [a2.clone(), c.clone()]);
    let now = store.range("/c/", None, 0, None).await.unwrap();
    assert_eq!(now.kvs, [a3.clone(), c.clone()]);
    let mut stream = store.watch("/c/", 5).await.unwrap();
    assert_eq!(next_event(&mut stream).await.kv, a3);

    // The compacted revision survives a restart.
    drop(stream);
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), 5);
    assert!(matches!(store.range("/c/", None, 0, Some(4)).await, Err(StoreError::Compacted { .. })));
}

#[tokio::test]
async fn reopening_keeps_data_and_never_reuses_a_revision() {
    let (_dir, path, store) = temp_store();
    let a = store.create("/o/a", b"a".to_vec()).await.unwrap();
    let b = store.create("/o/b", b"b".to_vec()).await.unwrap();
    let b_deleted = store.delete("/o/b", b.mod_revision).await.unwrap();
    // Compacting at the delete removes its tombstone, the newest row in the log.
    store.compact(b_deleted.mod_revision).await.unwrap();
    let current = store.current_revision().await.unwrap();
    drop(store);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), current);
    assert_eq!(store.get("/o/a").await.unwrap(), Some(a));
    assert_eq!(store.get("/o/b").await.unwrap(), None);
    let next = store.create("/o/c", b"c".to_vec()).await.unwrap();
    assert_eq!(next.mod_revision, current + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_writers_all_succeed_with_unique_revisions() {
    let (_dir, _path, store) = temp_store();
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut revisions = Vec::new();
            for i in 0..200 {
                let kv = store.create(&format!("/m/{t}/{i}"), vec![7; 256]).await.unwrap();
                revisions.push(kv.mod_revision);
            }
            revisions
        }));
    }
    let mut all = HashSet::new();
    for task in tasks {
        let revisions = task.await.unwrap();
        assert!(revisions.windows(2).all(|w| w[0] < w[1]), "one caller's revisions increase");
        all.extend(revisions);
    }
    assert_eq!(all.len(), 3200);
    assert_eq!(all.iter().copied().min(), Some(1));
    assert_eq!(all.iter().copied().max(), Some(3200));
    assert_eq!(store.current_revision().await.unwrap(), 3200);
    assert_eq!(store.range("/m/", None, 0, None).await.unwrap().kvs.len(), 3200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_compare_and_swaps_have_exactly_one_winner() {
    let (_dir, _path, store) = temp_store();
    let store = Arc::new(store);
    let base = store.create("/cas", b"0".to_vec()).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..16u8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            // Unrelated creates ride in the same batches as the losing updates.
            let side = store.create(&format!("/side/{t}"), vec![t]).await;
            let cas = store.update("/cas", vec![t], base.mod_revision).await;
            (side, cas)
        }));
    }
    let mut winners = 0;
    for task in tasks {
        let (side, cas) = task.await.unwrap();
        side.expect("a failed compare-and-swap does not fail other writes");
        match cas {
            Ok(_) => winners += 1,
            Err(StoreError::Conflict { current: Some(current), .. }) => {
                assert_ne!(current.mod_revision, base.mod_revision)
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(winners, 1);
}

/// Environment variable that turns `durability_child` into the writer process.
const CHILD_DB: &str = "RKUBE_STORE_DURABILITY_CHILD_DB";

/// Not a test on its own: when `durability_acknowledged_writes_survive_sigkill` re-runs
/// this binary with `CHILD_DB` set, it writes until killed, printing each acknowledged key.
#[test]
fn durability_child() {
    let Ok(path) = std::env::var(CHILD_DB) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let store = Arc::new(SqliteStore::open(Path::new(&path)).unwrap());
        let mut writers = Vec::new();
        for t in 0..8 {
            let store = Arc::clone(&store);
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("/d/{t}/{i}");
                    let kv = store.create(&key, vec![b'v'; 512]).await.unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "acked {key} {}", kv.mod_revision).unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for writer in writers {
            writer.await.unwrap();
        }
    });
}

#[tokio::test]
async fn durability_acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["durability_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DB, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = BTreeMap::new();
    while acked.len() < 400 {
        let line = lines.next().expect("child still writing").unwrap();
        if let Some(rest) = line.strip_prefix("acked ") {
            let (key, revision) = rest.split_once(' ').unwrap();
            acked.insert(key.to_owned(), revision.parse::<Revision>().unwrap());
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructors, no final commit.
    child.wait().unwrap();
    // Acknowledgements already in the pipe count too.
    for line in lines {
        if let Some(rest) = line.unwrap().strip_prefix("acked ") {
            let (key, revision) = rest.split_once(' ').unwrap();
            acked.insert(key.to_owned(), revision.parse::<Revision>().unwrap());
        }
    }

    let store = SqliteStore::open(&path).unwrap();
    let newest = store.current_revision().await.unwrap();
    for (key, revision) in &acked {
        let kv = store.get(key).await.unwrap();
        assert_eq!(kv.map(|kv| kv.mod_revision), Some(*revision), "acknowledged {key} lost");
        assert!(*revision <= newest);
    }
    // Writing continues after the last revision the killed process committed.
    let next = store.create("/d/after", vec![]).await.unwrap();
    assert_eq!(next.mod_revision, newest + 1);
}
