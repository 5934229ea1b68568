//! A work queue with client-go's workqueue semantics, for controllers whose items are
//! not the objects of one kind (the garbage collector's graph nodes): a key queued
//! several times is processed once; a key is never processed by two workers at once
//! (queued again while in flight, it runs again after [`WorkQueue::done`]); failures are
//! retried with a per-key exponential backoff.
//!
//! [`Backoffs`] is the per-key backoff alone, for kube-runtime controllers whose
//! `error_policy` has no attempt count of its own.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// Per-key exponential backoff: `base`, `2·base`, `4·base`, … up to `max`.
#[derive(Debug)]
pub struct Backoffs<K> {
    failures: Mutex<HashMap<K, u32>>,
    base: Duration,
    max: Duration,
}

impl<K: Eq + Hash + Clone> Backoffs<K> {
    pub fn new(base: Duration, max: Duration) -> Backoffs<K> {
        Backoffs { failures: Mutex::new(HashMap::new()), base, max }
    }

    /// Counts one more failure of `key` and returns how long to wait before retrying.
    pub fn next(&self, key: &K) -> Duration {
        let mut f = lock(&self.failures);
        let n = f.entry(key.clone()).or_insert(0);
        let delay = delay(self.base, self.max, *n);
        *n = n.saturating_add(1);
        delay
    }

    /// Forgets the failures of `key` (it succeeded).
    pub fn reset(&self, key: &K) {
        lock(&self.failures).remove(key);
    }
}

/// `base · 2^attempt`, capped at `max`.
pub fn delay(base: Duration, max: Duration, attempt: u32) -> Duration {
    base.checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX)).unwrap_or(max).min(max)
}

struct State<K> {
    queue: VecDeque<K>,
    /// Keys waiting to be processed (in `queue`, or to be queued once their run ends).
    dirty: HashSet<K>,
    processing: HashSet<K>,
}

/// A deduplicating, in-flight-aware queue of keys.
pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    ready: Notify,
    backoffs: Backoffs<K>,
}

impl<K: Eq + Hash + Clone + Send + 'static> WorkQueue<K> {
    pub fn new(base: Duration, max: Duration) -> Arc<WorkQueue<K>> {
        Arc::new(WorkQueue {
            state: Mutex::new(State { queue: VecDeque::new(), dirty: HashSet::new(), processing: HashSet::new() }),
            ready: Notify::new(),
            backoffs: Backoffs::new(base, max),
        })
    }

    pub fn add(&self, key: K) {
        let mut s = lock(&self.state);
        if !s.dirty.insert(key.clone()) {
            return;
        }
        if !s.processing.contains(&key) {
            s.queue.push_back(key);
            drop(s);
            self.ready.notify_one();
        }
    }

    /// Queues `key` after `delay` (tokio time).
    pub fn add_after(self: &Arc<Self>, key: K, delay: Duration) {
        let q = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(q) = q.upgrade() {
                q.add(key);
            }
        });
    }

    /// Queues `key` again after its next backoff delay.
    pub fn retry(self: &Arc<Self>, key: K) {
        let d = self.backoffs.next(&key);
        self.add_after(key, d);
    }

    /// Resets the backoff of `key`.
    pub fn forget(&self, key: &K) {
        self.backoffs.reset(key);
    }

    /// Waits for the next key; the caller must call [`WorkQueue::done`] with it.
    pub async fn get(&self) -> K {
        loop {
            let notified = self.ready.notified();
            {
                let mut s = lock(&self.state);
                if let Some(k) = s.queue.pop_front() {
                    s.dirty.remove(&k);
                    s.processing.insert(k.clone());
                    // More keys may be waiting for other workers.
                    if !s.queue.is_empty() {
                        self.ready.notify_one();
                    }
                    return k;
                }
            }
            notified.await;
        }
    }

    /// Ends the run of `key`; it is queued again if it was added meanwhile.
    pub fn done(&self, key: &K) {
        let mut s = lock(&self.state);
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.queue.push_back(key.clone());
            drop(s);
            self.ready.notify_one();
        }
    }

    pub fn len(&self) -> usize {
        lock(&self.state).queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Locks a mutex, recovering it if a holder panicked (the data is a queue: still usable).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (b, m) = (Duration::from_millis(100), Duration::from_secs(1));
        let got: Vec<u128> = (0..6).map(|a| delay(b, m, a).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(delay(b, m, 200), m);
        let bo = Backoffs::new(b, m);
        assert_eq!(bo.next(&"a"), b);
        assert_eq!(bo.next(&"a"), b * 2);
        assert_eq!(bo.next(&"b"), b);
        bo.reset(&"a");
        assert_eq!(bo.next(&"a"), b);
    }

    #[tokio::test]
    async fn keys_are_deduplicated_and_never_run_twice_at_once() {
        let q = WorkQueue::new(Duration::from_millis(1), Duration::from_millis(10));
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        let first = q.get().await;
        assert_eq!(first, "a");
        // Added while in flight: not handed out again until done.
        q.add("a");
        assert_eq!(q.get().await, "b");
        assert!(q.is_empty());
        q.done(&"b");
        q.done(&"a");
        assert_eq!(q.get().await, "a");
        q.done(&"a");
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn retries_wait_for_the_backoff() {
        let q = WorkQueue::new(Duration::from_millis(100), Duration::from_secs(1));
        let start = tokio::time::Instant::now();
        q.retry("a");
        assert!(q.is_empty());
        assert_eq!(q.get().await, "a");
        assert!(start.elapsed() >= Duration::from_millis(100));
    }
}
