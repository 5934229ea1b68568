//! The scheduling queue, with upstream's three places a pending pod can be:
//!
//! - *active*: ready to try, highest priority first, then first come first served;
//! - *backoff*: failed recently, waits `1 s × 2^(attempts−1)` (capped at 10 s,
//!   upstream's `podInitialBackoff`/`podMaxBackoff`) before it is active again;
//! - *unschedulable*: fit nowhere; stays put until the cluster changes in a way that
//!   could help ([`Queue::move_unschedulable`], on node add/update, pod delete, …), and
//!   then waits out its backoff; after 5 minutes without such a change it is retried
//!   anyway (`podMaxInUnschedulablePodsDuration`).
//!
//! Time is passed in, so the queue is a plain data structure tested without a clock.
//! Heaps are invalidated lazily: each entry carries a generation, and heap items whose
//! generation is stale are dropped when they surface.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::pod_info::PodInfo;

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(5 * 60);

/// The backoff after `attempts` tries.
pub fn backoff(attempts: u32) -> Duration {
    let mut d = INITIAL_BACKOFF;
    for _ in 1..attempts {
        d *= 2;
        if d >= MAX_BACKOFF {
            return MAX_BACKOFF;
        }
    }
    d
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Active,
    Backoff,
    Unschedulable,
    /// Popped and being scheduled or bound.
    InFlight,
}

struct Entry {
    pod: Arc<PodInfo>,
    place: Place,
    generation: u64,
    /// Arrival order, for first come first served among equal priorities.
    order: u64,
    attempts: u32,
    backoff_until: Option<Instant>,
    /// The move cycle when the pod was popped: a move since then means the cluster
    /// changed while the pod was being tried, so its failure may be stale.
    popped_in_cycle: u64,
}

#[derive(PartialEq, Eq)]
struct ActiveItem {
    priority: i32,
    order: u64,
    generation: u64,
    key: String,
}

impl Ord for ActiveItem {
    fn cmp(&self, o: &Self) -> Ordering {
        self.priority.cmp(&o.priority).then_with(|| o.order.cmp(&self.order))
    }
}

impl PartialOrd for ActiveItem {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

#[derive(Default)]
pub struct Queue {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<ActiveItem>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    /// Unschedulable pods, and when each is due for the periodic retry.
    unschedulable: HashSet<String>,
    timeouts: BinaryHeap<Reverse<(Instant, u64, String)>>,
    next_generation: u64,
    next_order: u64,
    move_cycle: u64,
}

impl Queue {
    pub fn new() -> Queue {
        Queue::default()
    }

    fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    fn push_active(&mut self, key: &str) {
        let generation = self.generation();
        let Some(e) = self.entries.get_mut(key) else { return };
        e.place = Place::Active;
        e.generation = generation;
        self.active.push(ActiveItem { priority: e.pod.priority, order: e.order, generation, key: key.to_string() });
    }

    fn push_backoff(&mut self, key: &str, until: Instant) {
        let generation = self.generation();
        let Some(e) = self.entries.get_mut(key) else { return };
        e.place = Place::Backoff;
        e.generation = generation;
        self.backoff.push(Reverse((until, generation, key.to_string())));
    }

    /// A pending pod appeared or changed.
    pub fn add(&mut self, pod: Arc<PodInfo>, now: Instant) {
        let key = pod.key();
        if let Some(e) = self.entries.get_mut(&key) {
            let changed = !e.pod.same_spec(&pod);
            let priority_changed = e.pod.priority != pod.priority;
            e.pod = pod;
            match e.place {
                Place::Unschedulable if changed => self.move_one(&key, now),
                Place::Active if priority_changed => self.push_active(&key),
                _ => {}
            }
            return;
        }
        self.next_order += 1;
        self.entries.insert(
            key.clone(),
            Entry {
                pod,
                place: Place::Active,
                generation: 0,
                order: self.next_order,
                attempts: 0,
                backoff_until: None,
                popped_in_cycle: 0,
            },
        );
        self.push_active(&key);
    }

    /// The pod is gone, bound elsewhere, or no longer ours.
    pub fn remove(&mut self, key: &str) {
        if self.entries.remove(key).is_some() {
            self.unschedulable.remove(key);
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    pub fn place(&self, key: &str) -> Option<Place> {
        self.entries.get(key).map(|e| e.place)
    }

    /// The next pod to try; it stays in the queue, in flight, until [`Queue::done`] or a
    /// requeue.
    pub fn pop(&mut self) -> Option<Arc<PodInfo>> {
        while let Some(item) = self.active.pop() {
            let Some(e) = self.entries.get_mut(&item.key) else { continue };
            if e.generation != item.generation || e.place != Place::Active {
                continue;
            }
            e.place = Place::InFlight;
            e.attempts += 1;
            e.popped_in_cycle = self.move_cycle;
            return Some(e.pod.clone());
        }
        None
    }

    /// Bound: forget the pod.
    pub fn done(&mut self, key: &str) {
        self.remove(key);
    }

    /// The pod fit nowhere: park it until the cluster changes, or back it off at once if
    /// it already changed while the pod was tried.
    pub fn unschedulable(&mut self, key: &str, now: Instant) {
        let cycle = self.move_cycle;
        let Some(e) = self.entries.get_mut(key) else { return };
        if e.place != Place::InFlight {
            return;
        }
        let until = now + backoff(e.attempts);
        e.backoff_until = Some(until);
        if e.popped_in_cycle < cycle {
            self.push_backoff(key, until);
            return;
        }
        e.place = Place::Unschedulable;
        let generation = self.generation();
        if let Some(e) = self.entries.get_mut(key) {
            e.generation = generation;
        }
        self.unschedulable.insert(key.to_string());
        self.timeouts.push(Reverse((now + MAX_UNSCHEDULABLE, generation, key.to_string())));
    }

    /// Something failed that was not the pod's fault (API error): retry after backoff.
    pub fn error(&mut self, key: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(key) else { return };
        if e.place != Place::InFlight {
            return;
        }
        let until = now + backoff(e.attempts);
        e.backoff_until = Some(until);
        self.push_backoff(key, until);
    }

    fn move_one(&mut self, key: &str, now: Instant) {
        self.unschedulable.remove(key);
        let Some(e) = self.entries.get(key) else { return };
        match e.backoff_until {
            Some(until) if until > now => self.push_backoff(key, until),
            _ => self.push_active(key),
        }
    }

    /// The cluster changed in a way that may help the pods `may_help` accepts: they
    /// leave the unschedulable pool (into backoff, or active if that has expired).
    /// Returns how many moved.
    pub fn move_unschedulable(&mut self, now: Instant, may_help: impl Fn(&PodInfo) -> bool) -> usize {
        self.move_cycle += 1;
        let keys: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|k| self.entries.get(*k).is_some_and(|e| may_help(&e.pod)))
            .cloned()
            .collect();
        for k in &keys {
            self.move_one(k, now);
        }
        keys.len()
    }

    /// Moves pods whose backoff is over to active, and retries pods unschedulable for
    /// too long.
    pub fn flush(&mut self, now: Instant) {
        while let Some(Reverse((until, generation, key))) = self.backoff.peek().cloned() {
            if until > now {
                break;
            }
            self.backoff.pop();
            if self.entries.get(&key).is_some_and(|e| e.generation == generation && e.place == Place::Backoff) {
                self.push_active(&key);
            }
        }
        while let Some(Reverse((due, generation, key))) = self.timeouts.peek().cloned() {
            if due > now {
                break;
            }
            self.timeouts.pop();
            if self.entries.get(&key).is_some_and(|e| e.generation == generation && e.place == Place::Unschedulable) {
                self.move_one(&key, now);
            }
        }
    }

    /// When [`Queue::flush`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let b = self.backoff.peek().map(|Reverse((t, _, _))| *t);
        let u = self.timeouts.peek().map(|Reverse((t, _, _))| *t);
        match (b, u) {
            (Some(b), Some(u)) => Some(b.min(u)),
            (b, u) => b.or(u),
        }
    }

    pub fn has_active(&self) -> bool {
        !self.active.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn unschedulable_len(&self) -> usize {
        self.unschedulable.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::P;

    fn pod(name: &str) -> Arc<PodInfo> {
        Arc::new(P::new(name).build())
    }

    fn names(q: &mut Queue) -> Vec<String> {
        std::iter::from_fn(|| q.pop()).map(|p| p.name.clone()).collect()
    }

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        let got: Vec<u64> = (1..=6).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff(0), INITIAL_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn priority_then_arrival_order() {
        let now = Instant::now();
        let mut q = Queue::new();
        q.add(pod("a"), now);
        q.add(Arc::new(P::new("b").priority(10).build()), now);
        q.add(pod("c"), now);
        q.add(Arc::new(P::new("d").priority(10).build()), now);
        assert_eq!(names(&mut q), ["b", "d", "a", "c"]);
        assert_eq!(q.len(), 4, "popped pods stay in flight");
        assert!(q.pop().is_none());
    }

    #[test]
    fn unschedulable_waits_for_a_change_then_its_backoff() {
        let t0 = Instant::now();
        let mut q = Queue::new();
        q.add(pod("a"), t0);
        q.pop().unwrap();
        q.unschedulable("default/a", t0);
        assert_eq!(q.place("default/a"), Some(Place::Unschedulable));
        q.flush(t0 + Duration::from_secs(30));
        assert!(q.pop().is_none(), "no change: stays unschedulable past its backoff");

        // A change within the backoff: wait it out.
        let t1 = t0 + Duration::from_secs(40);
        let mut q = Queue::new();
        q.add(pod("a"), t1);
        q.pop().unwrap();
        q.unschedulable("default/a", t1);
        assert_eq!(q.move_unschedulable(t1 + Duration::from_millis(100), |_| true), 1);
        assert_eq!(q.place("default/a"), Some(Place::Backoff));
        assert_eq!(q.next_deadline(), Some(t1 + Duration::from_secs(1)));
        q.flush(t1 + Duration::from_millis(900));
        assert!(q.pop().is_none());
        q.flush(t1 + Duration::from_secs(1));
        assert_eq!(q.pop().map(|p| p.name.clone()), Some("a".into()));

        // Second failure: 2 s; a change after the backoff makes it active at once.
        q.unschedulable("default/a", t1 + Duration::from_secs(1));
        q.move_unschedulable(t1 + Duration::from_secs(5), |_| true);
        assert_eq!(q.place("default/a"), Some(Place::Active));
    }

    #[test]
    fn a_change_during_the_attempt_backs_off_instead_of_parking() {
        let t0 = Instant::now();
        let mut q = Queue::new();
        q.add(pod("a"), t0);
        q.pop().unwrap();
        q.move_unschedulable(t0, |_| true);
        q.unschedulable("default/a", t0);
        assert_eq!(q.place("default/a"), Some(Place::Backoff));
    }

    #[test]
    fn moves_only_pods_the_change_may_help() {
        let t0 = Instant::now();
        let mut q = Queue::new();
        for n in ["a", "b"] {
            q.add(pod(n), t0);
        }
        names(&mut q);
        q.unschedulable("default/a", t0);
        q.unschedulable("default/b", t0);
        assert_eq!(q.move_unschedulable(t0 + Duration::from_secs(2), |p| p.name == "b"), 1);
        assert_eq!(names(&mut q), ["b"]);
        assert_eq!(q.unschedulable_len(), 1);
    }

    #[test]
    fn updates_that_change_the_spec_retry() {
        let t0 = Instant::now();
        let mut q = Queue::new();
        q.add(pod("a"), t0);
        q.pop().unwrap();
        q.unschedulable("default/a", t0);
        // Status-only update (a condition): stays.
        let mut same = P::new("a").build();
        same.condition = Some(Default::default());
        q.add(Arc::new(same), t0 + Duration::from_secs(3));
        assert_eq!(q.place("default/a"), Some(Place::Unschedulable));
        // New toleration: retried.
        let changed = P::new("a").spec(serde_json::json!({"tolerations": [{"operator": "Exists"}]})).build();
        q.add(Arc::new(changed), t0 + Duration::from_secs(3));
        assert_eq!(q.place("default/a"), Some(Place::Active));
    }

    #[test]
    fn errors_back_off_and_long_unschedulable_pods_retry() {
        let t0 = Instant::now();
        let mut q = Queue::new();
        q.add(pod("a"), t0);
        q.add(pod("b"), t0);
        q.pop().unwrap();
        q.pop().unwrap();
        q.error("default/a", t0);
        q.unschedulable("default/b", t0);
        q.flush(t0 + Duration::from_secs(1));
        assert_eq!(names(&mut q), ["a"]);
        assert_eq!(q.next_deadline(), Some(t0 + MAX_UNSCHEDULABLE));
        q.flush(t0 + MAX_UNSCHEDULABLE);
        assert_eq!(names(&mut q), ["b"]);
    }

    #[test]
    fn removed_pods_leave_no_trace() {
        let t0 = Instant::now();
        let mut q = Queue::new();
        q.add(pod("a"), t0);
        q.remove("default/a");
        assert!(q.pop().is_none());
        q.add(pod("a"), t0);
        q.pop().unwrap();
        q.done("default/a");
        assert!(q.is_empty());
        q.unschedulable("default/a", t0);
        assert!(q.is_empty(), "a late result for a removed pod is ignored");
    }
}
