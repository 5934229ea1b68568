//! The garbage collector's dependency graph, as upstream's GraphBuilder keeps it: one
//! node per object uid, with the owner references it holds and the uids of the objects
//! that reference it. Owners referenced before they are observed are *virtual* nodes,
//! whose existence a worker verifies with a live read.
//!
//! Every change returns the [`Work`] it calls for; the graph itself does no I/O, so its
//! rules are tested here by tables of events.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::apiresources::split_api_version;

pub type Uid = String;

pub const FINALIZER_ORPHAN: &str = "orphan";
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// Where an object is: the coordinates an owner reference names, plus its namespace
/// (`None` for cluster-scoped objects).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: Uid,
}

impl Identity {
    /// Same object coordinates, ignoring the version (uids and names do not depend on it).
    pub fn same_place(&self, other: &Identity) -> bool {
        split_api_version(&self.api_version).0 == split_api_version(&other.api_version).0
            && self.kind == other.kind
            && self.name == other.name
            && self.namespace == other.namespace
            && self.uid == other.uid
    }
}

impl fmt::Display for Identity {
    // Upstream's objectReference.String(), which its events and logs show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}/{}, namespace: {}, name: {}, uid: {}]",
            self.api_version,
            self.kind,
            self.namespace.as_deref().unwrap_or(""),
            self.name,
            self.uid
        )
    }
}

/// An owner reference, as the graph needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: Uid,
    pub block_owner_deletion: bool,
}

impl From<&OwnerReference> for OwnerRef {
    fn from(r: &OwnerReference) -> OwnerRef {
        OwnerRef {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
            block_owner_deletion: r.block_owner_deletion == Some(true),
        }
    }
}

impl OwnerRef {
    /// Whether this reference, held by an object in `dependent_ns`, names the observed
    /// object `owner`: a namespaced owner must be in the dependent's namespace (upstream:
    /// a reference across namespaces points at nothing).
    pub fn matches(&self, dependent_ns: Option<&str>, owner: &Identity) -> bool {
        split_api_version(&self.api_version).0 == split_api_version(&owner.api_version).0
            && self.kind == owner.kind
            && self.name == owner.name
            && self.uid == owner.uid
            && owner.namespace.as_deref().is_none_or(|ns| Some(ns) == dependent_ns)
    }
}

/// An object as a watch reported it.
#[derive(Debug, Clone)]
pub struct Observed {
    pub identity: Identity,
    pub owners: Vec<OwnerRef>,
    pub being_deleted: bool,
    pub finalizers: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub identity: Identity,
    pub owners: Vec<OwnerRef>,
    pub dependents: BTreeSet<Uid>,
    /// Has a deletionTimestamp.
    pub being_deleted: bool,
    /// Being deleted in the foreground: waits for its blocking dependents.
    pub deleting_dependents: bool,
    /// Seen by a watch; `false` for a virtual node (only referenced so far).
    pub observed: bool,
    /// The watch that reported it, to drop it when a relist no longer lists it.
    pub monitor: Option<usize>,
}

/// What a change of the graph asks the workers to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Work {
    /// Check whether the object must go (its owners are gone), or, for an owner deleted
    /// in the foreground, whether its blocking dependents are gone.
    AttemptToDelete(Uid),
    /// Remove the references to this owner (deleted with `orphan`) from its dependents.
    AttemptToOrphan(Uid),
}

/// Coordinates verified to name no object (a live read found nothing, or another uid).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AbsentKey {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: Uid,
}

/// A set that forgets its oldest entries beyond `cap`.
#[derive(Debug)]
struct Bounded<T> {
    set: HashSet<T>,
    order: VecDeque<T>,
    cap: usize,
}

impl<T: Eq + std::hash::Hash + Clone> Bounded<T> {
    fn new(cap: usize) -> Self {
        Bounded { set: HashSet::new(), order: VecDeque::new(), cap }
    }

    fn insert(&mut self, v: T) {
        if self.set.insert(v.clone()) {
            self.order.push_back(v);
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    fn contains(&self, v: &T) -> bool {
        self.set.contains(v)
    }
}

#[derive(Debug)]
pub struct Graph {
    nodes: HashMap<Uid, Node>,
    /// Uids whose deletion a watch reported: every reference to them dangles.
    deleted: Bounded<Uid>,
    /// Coordinates a live read found empty.
    absent: Bounded<AbsentKey>,
}

impl Default for Graph {
    fn default() -> Self {
        Graph { nodes: HashMap::new(), deleted: Bounded::new(4096), absent: Bounded::new(4096) }
    }
}

impl Graph {
    pub fn node(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Dependents of `uid` whose reference to it has `blockOwnerDeletion`.
    pub fn blocking_dependents(&self, uid: &str) -> Vec<&Node> {
        let Some(n) = self.nodes.get(uid) else { return Vec::new() };
        n.dependents
            .iter()
            .filter_map(|d| self.nodes.get(d))
            .filter(|d| d.owners.iter().any(|r| r.uid == uid && r.block_owner_deletion))
            .collect()
    }

    /// Whether the owner `key` names is known to be gone.
    pub fn is_absent(&self, key: &AbsentKey) -> bool {
        self.deleted.contains(&key.uid) || self.absent.contains(key)
    }

    pub fn mark_absent(&mut self, key: AbsentKey) {
        self.absent.insert(key);
    }

    /// A watch reported `obj` added or changed.
    pub fn observe(&mut self, monitor: usize, obj: Observed) -> BTreeSet<Work> {
        let mut work = BTreeSet::new();
        let uid = obj.identity.uid.clone();
        let dependent_ns = obj.identity.namespace.clone();
        let has = |f: &str| obj.finalizers.iter().any(|x| x == f);
        let foreground = has(FINALIZER_FOREGROUND);
        let orphan = has(FINALIZER_ORPHAN);
        let (added, removed, changed, was_deleting_dependents) = match self.nodes.get_mut(&uid) {
            None => {
                let node = Node {
                    identity: obj.identity.clone(),
                    owners: obj.owners.clone(),
                    dependents: BTreeSet::new(),
                    being_deleted: obj.being_deleted,
                    deleting_dependents: obj.being_deleted && foreground,
                    observed: true,
                    monitor: Some(monitor),
                };
                self.nodes.insert(uid.clone(), node);
                (obj.owners.clone(), Vec::new(), Vec::new(), false)
            }
            Some(node) => {
                let was_virtual = !node.observed;
                let was_deleting_dependents = node.deleting_dependents;
                node.identity = obj.identity.clone();
                node.observed = true;
                node.monitor = Some(monitor);
                node.being_deleted |= obj.being_deleted;
                node.deleting_dependents = node.being_deleted && foreground;
                let (added, removed, changed) = diff(&node.owners, &obj.owners);
                node.owners = obj.owners.clone();
                if was_virtual {
                    // Dependents that referenced it by other coordinates (another
                    // namespace, kind or name) point at nothing: have them checked.
                    let deps: Vec<Uid> = node.dependents.iter().cloned().collect();
                    for d in deps {
                        let mismatched = self.nodes.get(&d).is_some_and(|dn| {
                            dn.owners
                                .iter()
                                .filter(|r| r.uid == uid)
                                .any(|r| !r.matches(dn.identity.namespace.as_deref(), &obj.identity))
                        });
                        if mismatched {
                            work.insert(Work::AttemptToDelete(d));
                        }
                    }
                }
                (added, removed, changed, was_deleting_dependents)
            }
        };
        for r in &removed {
            let unblocked = r.block_owner_deletion;
            self.drop_dependent(&r.uid, &uid, unblocked, &mut work);
        }
        for (old, new) in &changed {
            if old.block_owner_deletion
                && !new.block_owner_deletion
                && self.nodes.get(&new.uid).is_some_and(|o| o.deleting_dependents)
            {
                work.insert(Work::AttemptToDelete(new.uid.clone()));
            }
        }
        for r in &added {
            self.add_dependent(&uid, dependent_ns.as_deref(), r, &mut work);
        }
        let Some(node) = self.nodes.get(&uid) else { return work };
        if node.deleting_dependents {
            if !was_deleting_dependents {
                work.extend(node.dependents.iter().cloned().map(Work::AttemptToDelete));
            }
            work.insert(Work::AttemptToDelete(uid.clone()));
        }
        if node.being_deleted && orphan {
            work.insert(Work::AttemptToOrphan(uid));
        }
        work
    }

    /// A watch reported the object with `uid` deleted.
    pub fn observe_deleted(&mut self, uid: &str) -> BTreeSet<Work> {
        self.remove(uid, true)
    }

    fn remove(&mut self, uid: &str, observed_deletion: bool) -> BTreeSet<Work> {
        let mut work = BTreeSet::new();
        let Some(node) = self.nodes.remove(uid) else { return work };
        // Only a watch proves the uid gone everywhere; a live read proves it absent
        // at the coordinates read (a wrong reference may name a uid that exists).
        if observed_deletion && !node.dependents.is_empty() {
            self.deleted.insert(uid.to_string());
        }
        for r in &node.owners {
            // Its deletion may be what a foreground owner waits for.
            self.drop_dependent(&r.uid, uid, true, &mut work);
        }
        work.extend(node.dependents.into_iter().filter(|d| d != uid).map(Work::AttemptToDelete));
        work
    }

    /// A worker found nothing (or another uid) at `identity`: a virtual node for it goes,
    /// and its dependents are checked.
    pub fn virtual_delete(&mut self, identity: &Identity) -> BTreeSet<Work> {
        let (group, _) = split_api_version(&identity.api_version);
        self.absent.insert(AbsentKey {
            group: group.to_string(),
            kind: identity.kind.clone(),
            namespace: identity.namespace.clone(),
            name: identity.name.clone(),
            uid: identity.uid.clone(),
        });
        let Some(node) = self.nodes.get(&identity.uid) else { return BTreeSet::new() };
        if !node.observed || node.identity.same_place(identity) {
            let observed = node.observed;
            return self.remove(&identity.uid, observed);
        }
        // The real object lives elsewhere: only references by the absent coordinates
        // dangle.
        let real = node.identity.clone();
        node.dependents
            .iter()
            .filter(|d| {
                self.nodes.get(*d).is_some_and(|dn| {
                    dn.owners
                        .iter()
                        .filter(|r| r.uid == real.uid)
                        .any(|r| !r.matches(dn.identity.namespace.as_deref(), &real))
                })
            })
            .cloned()
            .map(Work::AttemptToDelete)
            .collect()
    }

    /// A relist of `monitor` ended: its objects that were not listed are gone.
    pub fn resync(&mut self, monitor: usize, listed: &HashSet<Uid>) -> BTreeSet<Work> {
        let gone: Vec<Uid> = self
            .nodes
            .values()
            .filter(|n| n.observed && n.monitor == Some(monitor) && !listed.contains(&n.identity.uid))
            .map(|n| n.identity.uid.clone())
            .collect();
        let mut work = BTreeSet::new();
        for uid in gone {
            work.extend(self.observe_deleted(&uid));
        }
        work
    }

    fn add_dependent(&mut self, dependent: &str, dependent_ns: Option<&str>, r: &OwnerRef, work: &mut BTreeSet<Work>) {
        match self.nodes.get_mut(&r.uid) {
            Some(owner) => {
                owner.dependents.insert(dependent.to_string());
                if owner.observed && !r.matches(dependent_ns, &owner.identity) {
                    work.insert(Work::AttemptToDelete(dependent.to_string()));
                }
                if owner.deleting_dependents {
                    work.insert(Work::AttemptToDelete(dependent.to_string()));
                }
            }
            None => {
                let identity = Identity {
                    api_version: r.api_version.clone(),
                    kind: r.kind.clone(),
                    namespace: dependent_ns.map(str::to_string),
                    name: r.name.clone(),
                    uid: r.uid.clone(),
                };
                let node = Node {
                    identity,
                    owners: Vec::new(),
                    dependents: BTreeSet::from([dependent.to_string()]),
                    being_deleted: false,
                    deleting_dependents: false,
                    observed: false,
                    monitor: None,
                };
                self.nodes.insert(r.uid.clone(), node);
                work.insert(Work::AttemptToDelete(r.uid.clone()));
            }
        }
    }

    /// `dependent` no longer references `owner`.
    fn drop_dependent(&mut self, owner: &str, dependent: &str, unblocked: bool, work: &mut BTreeSet<Work>) {
        let Some(o) = self.nodes.get_mut(owner) else { return };
        o.dependents.remove(dependent);
        if unblocked && o.deleting_dependents {
            work.insert(Work::AttemptToDelete(owner.to_string()));
        }
        // A virtual node only exists for its dependents.
        if !o.observed && o.dependents.is_empty() {
            self.nodes.remove(owner);
        }
    }
}

/// (added, removed, changed) references, by uid.
type Diff = (Vec<OwnerRef>, Vec<OwnerRef>, Vec<(OwnerRef, OwnerRef)>);

fn diff(old: &[OwnerRef], new: &[OwnerRef]) -> Diff {
    let added = new.iter().filter(|n| !old.iter().any(|o| o.uid == n.uid)).cloned().collect();
    let removed = old.iter().filter(|o| !new.iter().any(|n| n.uid == o.uid)).cloned().collect();
    let changed = old
        .iter()
        .filter_map(|o| new.iter().find(|n| n.uid == o.uid && *n != o).map(|n| (o.clone(), n.clone())))
        .collect();
    (added, removed, changed)
}

/// How one owner reference of an object stands, after a live read of the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefState {
    /// The owner exists and is not waiting for its dependents.
    Solid,
    /// No such owner (or another uid at its coordinates).
    Dangling,
    /// The owner is being deleted in the foreground.
    WaitingForDependents,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Background,
    Foreground,
    Orphan,
}

/// What to do with an object, given its owner references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Keep,
    /// A live owner remains: only drop the references to the dead or foreground-deleted ones.
    RemoveOwnerRefs(Vec<Uid>),
    /// A foreground-deleted owner waits for it and it has dependents of its own: delete
    /// it in the foreground too, first clearing its own `blockOwnerDeletion` when one of
    /// its dependents waits the same way (a cycle would never end otherwise).
    DeleteForeground {
        unblock_own_refs: bool,
    },
    Delete(Policy),
}

/// Upstream's attemptToDeleteItem rule.
pub fn decide(
    refs: &[(OwnerRef, RefState)],
    has_dependents: bool,
    a_dependent_deletes_dependents: bool,
    finalizers: &[String],
) -> Decision {
    if refs.is_empty() {
        return Decision::Keep;
    }
    let solid = refs.iter().any(|(_, s)| *s == RefState::Solid);
    let waiting = refs.iter().any(|(_, s)| *s == RefState::WaitingForDependents);
    if solid {
        let dead: Vec<Uid> = refs.iter().filter(|(_, s)| *s != RefState::Solid).map(|(r, _)| r.uid.clone()).collect();
        return if dead.is_empty() { Decision::Keep } else { Decision::RemoveOwnerRefs(dead) };
    }
    if waiting && has_dependents {
        return Decision::DeleteForeground { unblock_own_refs: a_dependent_deletes_dependents };
    }
    let has = |f: &str| finalizers.iter().any(|x| x == f);
    // An earlier choice of propagation on the object itself stands.
    Decision::Delete(if has(FINALIZER_ORPHAN) {
        Policy::Orphan
    } else if has(FINALIZER_FOREGROUND) {
        Policy::Foreground
    } else {
        Policy::Background
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: &str, ns: Option<&str>, name: &str, uid: &str) -> Identity {
        let api_version = if kind == "ReplicaSet" { "apps/v1" } else { "v1" };
        Identity {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: ns.map(str::to_string),
            name: name.into(),
            uid: uid.into(),
        }
    }

    fn owner(o: &Identity, block: bool) -> OwnerRef {
        OwnerRef {
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            name: o.name.clone(),
            uid: o.uid.clone(),
            block_owner_deletion: block,
        }
    }

    fn obs(identity: Identity, owners: Vec<OwnerRef>) -> Observed {
        Observed { identity, owners, being_deleted: false, finalizers: vec![] }
    }

    fn deleting(mut o: Observed, finalizer: &str) -> Observed {
        o.being_deleted = true;
        o.finalizers = vec![finalizer.into()];
        o
    }

    fn del(uid: &str) -> Work {
        Work::AttemptToDelete(uid.into())
    }

    fn set(w: &[Work]) -> BTreeSet<Work> {
        w.iter().cloned().collect()
    }

    #[test]
    fn graph_events_call_for_the_upstream_work() {
        let cm = id("ConfigMap", Some("ns"), "owner", "o");
        let other_ns = id("ConfigMap", Some("other"), "owner", "o");
        let node = id("Node", None, "n1", "n");
        let a = id("Secret", Some("ns"), "a", "a");
        let b = id("Pod", Some("ns"), "b", "b");

        // (step, expected work)
        type Step = Box<dyn Fn(&mut Graph) -> BTreeSet<Work>>;
        type Case = (&'static str, Vec<(Step, Vec<Work>)>);
        let cases: Vec<Case> = vec![
            (
                "a dependent of an owner not yet seen makes a virtual owner to verify",
                vec![(
                    Box::new({
                        let (a, cm) = (a.clone(), cm.clone());
                        move |g| g.observe(0, obs(a.clone(), vec![owner(&cm, false)]))
                    }),
                    vec![del("o")],
                )],
            ),
            (
                "the owner's deletion sends its dependents to be checked",
                vec![
                    (
                        Box::new({
                            let cm = cm.clone();
                            move |g| g.observe(0, obs(cm.clone(), vec![]))
                        }),
                        vec![],
                    ),
                    (
                        Box::new({
                            let (a, cm) = (a.clone(), cm.clone());
                            move |g| g.observe(1, obs(a.clone(), vec![owner(&cm, false)]))
                        }),
                        vec![],
                    ),
                    (Box::new(|g| g.observe_deleted("o")), vec![del("a")]),
                ],
            ),
            (
                "a reference to an owner in another namespace is checked at once",
                vec![
                    (
                        Box::new({
                            let o = other_ns.clone();
                            move |g| g.observe(0, obs(o.clone(), vec![]))
                        }),
                        vec![],
                    ),
                    (
                        Box::new({
                            let (a, cm) = (a.clone(), cm.clone());
                            move |g| g.observe(1, obs(a.clone(), vec![owner(&cm, false)]))
                        }),
                        vec![del("a")],
                    ),
                ],
            ),
            (
                "a cluster-scoped owner of a namespaced dependent is fine",
                vec![
                    (
                        Box::new({
                            let n = node.clone();
                            move |g| g.observe(0, obs(n.clone(), vec![]))
                        }),
                        vec![],
                    ),
                    (
                        Box::new({
                            let (a, n) = (a.clone(), node.clone());
                            move |g| g.observe(1, obs(a.clone(), vec![owner(&n, false)]))
                        }),
                        vec![],
                    ),
                ],
            ),
            (
                "a virtual owner observed elsewhere has its mismatched dependents checked",
                vec![
                    (
                        Box::new({
                            let (a, cm) = (a.clone(), cm.clone());
                            move |g| g.observe(1, obs(a.clone(), vec![owner(&cm, false)]))
                        }),
                        vec![del("o")],
                    ),
                    (
                        Box::new({
                            let o = other_ns.clone();
                            move |g| g.observe(0, obs(o.clone(), vec![]))
                        }),
                        vec![del("a")],
                    ),
                ],
            ),
            (
                "foreground deletion checks every dependent and the owner",
                vec![
                    (
                        Box::new({
                            let cm = cm.clone();
                            move |g| g.observe(0, obs(cm.clone(), vec![]))
                        }),
                        vec![],
                    ),
                    (
                        Box::new({
                            let (a, cm) = (a.clone(), cm.clone());
                            move |g| g.observe(1, obs(a.clone(), vec![owner(&cm, true)]))
                        }),
                        vec![],
                    ),
                    (
                        Box::new({
                            let (b, cm) = (b.clone(), cm.clone());
                            move |g| g.observe(1, obs(b.clone(), vec![owner(&cm, false)]))
                        }),
                        vec![],
                    ),
                    (
                        Box::new({
                            let cm = cm.clone();
                            move |g| g.observe(0, deleting(obs(cm.clone(), vec![]), FINALIZER_FOREGROUND))
                        }),
                        vec![del("a"), del("b"), del("o")],
                    ),
                    // Another update of the owner does not check the dependents again.
                    (
                        Box::new({
                            let cm = cm.clone();
                            move |g| g.observe(0, deleting(obs(cm.clone(), vec![]), FINALIZER_FOREGROUND))
                        }),
                        vec![del("o")],
                    ),
                    // A blocking dependent dropping its reference unblocks the owner.
                    (
                        Box::new({
                            let a = a.clone();
                            move |g| g.observe(1, obs(a.clone(), vec![]))
                        }),
                        vec![del("o")],
                    ),
                    (Box::new(|g| g.observe_deleted("b")), vec![del("o")]),
                ],
            ),
            (
                "blockOwnerDeletion turned off unblocks a foreground owner",
                vec![
                    (
                        Box::new({
                            let cm = cm.clone();
                            move |g| g.observe(0, deleting(obs(cm.clone(), vec![]), FINALIZER_FOREGROUND))
                        }),
                        vec![del("o")],
                    ),
                    // A new dependent of an owner deleted in the foreground is deleted too.
                    (
                        Box::new({
                            let (a, cm) = (a.clone(), cm.clone());
                            move |g| g.observe(1, obs(a.clone(), vec![owner(&cm, true)]))
                        }),
                        vec![del("a")],
                    ),
                    (
                        Box::new({
                            let (a, cm) = (a.clone(), cm.clone());
                            move |g| g.observe(1, obs(a.clone(), vec![owner(&cm, false)]))
                        }),
                        vec![del("o")],
                    ),
                ],
            ),
            (
                "orphan deletion asks for the references to be removed",
                vec![(
                    Box::new({
                        let cm = cm.clone();
                        move |g| g.observe(0, deleting(obs(cm.clone(), vec![]), FINALIZER_ORPHAN))
                    }),
                    vec![Work::AttemptToOrphan("o".into())],
                )],
            ),
            (
                "a relist drops what it no longer lists",
                vec![
                    (
                        Box::new({
                            let cm = cm.clone();
                            move |g| g.observe(0, obs(cm.clone(), vec![]))
                        }),
                        vec![],
                    ),
                    (
                        Box::new({
                            let (a, cm) = (a.clone(), cm.clone());
                            move |g| g.observe(1, obs(a.clone(), vec![owner(&cm, false)]))
                        }),
                        vec![],
                    ),
                    (Box::new(|g| g.resync(1, &HashSet::from(["a".to_string()]))), vec![]),
                    (Box::new(|g| g.resync(0, &HashSet::new())), vec![del("a")]),
                ],
            ),
            (
                "a verified-absent virtual owner goes and its dependents are checked",
                vec![
                    (
                        Box::new({
                            let (a, cm) = (a.clone(), cm.clone());
                            move |g| g.observe(1, obs(a.clone(), vec![owner(&cm, false)]))
                        }),
                        vec![del("o")],
                    ),
                    (
                        Box::new({
                            let cm = cm.clone();
                            move |g| g.virtual_delete(&cm)
                        }),
                        vec![del("a")],
                    ),
                ],
            ),
        ];
        for (name, steps) in cases {
            let mut g = Graph::default();
            for (i, (step, want)) in steps.into_iter().enumerate() {
                assert_eq!(step(&mut g), set(&want), "{name}: step {i}");
            }
        }
    }

    #[test]
    fn graph_keeps_dependents_and_virtual_nodes_consistent() {
        let mut g = Graph::default();
        let cm = id("ConfigMap", Some("ns"), "owner", "o");
        let a = id("Secret", Some("ns"), "a", "a");
        g.observe(1, obs(a.clone(), vec![owner(&cm, true)]));
        assert!(!g.node("o").unwrap().observed);
        assert_eq!(g.blocking_dependents("o").len(), 1);
        // Dropping its only reference drops the virtual owner.
        g.observe(1, obs(a.clone(), vec![]));
        assert!(g.node("o").is_none());
        g.observe(0, obs(cm.clone(), vec![]));
        g.observe(1, obs(a.clone(), vec![owner(&cm, false)]));
        assert!(g.blocking_dependents("o").is_empty());
        assert_eq!(g.node("o").unwrap().dependents, BTreeSet::from(["a".to_string()]));
        g.observe_deleted("a");
        assert!(g.node("o").unwrap().dependents.is_empty());
        // Deleting an observed owner with dependents remembers it as absent.
        g.observe(1, obs(a.clone(), vec![owner(&cm, false)]));
        g.observe_deleted("o");
        let key = AbsentKey {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: Some("ns".into()),
            name: "owner".into(),
            uid: "o".into(),
        };
        assert!(g.is_absent(&key));
        assert_eq!(g.len(), 1);
        // A live read finding nothing at a reference's coordinates proves only those
        // coordinates empty, not the uid gone.
        let wrong = id("Secret", Some("ns"), "owner", "w");
        let b = id("Pod", Some("ns"), "b", "b");
        g.observe(1, obs(b.clone(), vec![owner(&wrong, false)]));
        assert_eq!(g.virtual_delete(&wrong), set(&[del("b")]));
        let mut elsewhere = key.clone();
        elsewhere.uid = "w".into();
        assert!(!g.is_absent(&elsewhere), "uid not proven gone");
        elsewhere.kind = "Secret".into();
        assert!(g.is_absent(&elsewhere), "these coordinates are");
        // Unknown uids and repeated deletions are no-ops, never panics.
        assert!(g.observe_deleted("nope").is_empty());
        assert!(g.virtual_delete(&id("Pod", None, "x", "zzz")).is_empty());
        // A self-reference does not loop.
        let s = id("ConfigMap", Some("ns"), "self", "s");
        g.observe(0, obs(s.clone(), vec![owner(&s, true)]));
        assert_eq!(g.observe_deleted("s"), set(&[]));
    }

    #[test]
    fn references_match_only_in_their_namespace() {
        let cm = id("ConfigMap", Some("ns"), "owner", "o");
        let node = id("Node", None, "n1", "n");
        let r = owner(&cm, false);
        assert!(r.matches(Some("ns"), &cm));
        assert!(!r.matches(Some("other"), &cm));
        assert!(!r.matches(None, &cm), "cluster-scoped dependent, namespaced owner");
        assert!(owner(&node, false).matches(Some("ns"), &node));
        assert!(owner(&node, false).matches(None, &node));
        let mut renamed = r.clone();
        renamed.name = "x".into();
        assert!(!renamed.matches(Some("ns"), &cm));
        // The version does not matter, the group does.
        let rs = id("ReplicaSet", Some("ns"), "rs", "r");
        let mut old = owner(&rs, false);
        old.api_version = "apps/v1beta2".into();
        assert!(old.matches(Some("ns"), &rs));
        old.api_version = "extensions/v1beta1".into();
        assert!(!old.matches(Some("ns"), &rs));
        assert_eq!(cm.to_string(), "[v1/ConfigMap, namespace: ns, name: owner, uid: o]");
    }

    #[test]
    fn decisions_follow_upstream_attempt_to_delete() {
        let r = |uid: &str, s: RefState| {
            (
                OwnerRef {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    name: uid.into(),
                    uid: uid.into(),
                    block_owner_deletion: true,
                },
                s,
            )
        };
        use RefState::*;
        let f = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let cases = [
            (vec![], false, false, f(&[]), Decision::Keep),
            (vec![r("a", Solid)], false, false, f(&[]), Decision::Keep),
            (vec![r("a", Dangling)], false, false, f(&[]), Decision::Delete(Policy::Background)),
            (vec![r("a", Dangling), r("b", Dangling)], true, false, f(&[]), Decision::Delete(Policy::Background)),
            (vec![r("a", Solid), r("b", Dangling)], false, false, f(&[]), Decision::RemoveOwnerRefs(vec!["b".into()])),
            (
                vec![r("a", Solid), r("b", WaitingForDependents), r("c", Dangling)],
                false,
                false,
                f(&[]),
                Decision::RemoveOwnerRefs(vec!["b".into(), "c".into()]),
            ),
            (vec![r("a", WaitingForDependents)], false, false, f(&[]), Decision::Delete(Policy::Background)),
            (
                vec![r("a", WaitingForDependents)],
                true,
                false,
                f(&[]),
                Decision::DeleteForeground { unblock_own_refs: false },
            ),
            (
                vec![r("a", WaitingForDependents), r("b", Dangling)],
                true,
                true,
                f(&[]),
                Decision::DeleteForeground { unblock_own_refs: true },
            ),
            (vec![r("a", Dangling)], false, false, f(&["orphan"]), Decision::Delete(Policy::Orphan)),
            (
                vec![r("a", Dangling)],
                false,
                false,
                f(&["x/y", "foregroundDeletion"]),
                Decision::Delete(Policy::Foreground),
            ),
        ];
        for (refs, has_deps, dep_waits, fin, want) in cases {
            assert_eq!(decide(&refs, has_deps, dep_waits, &fin), want, "{refs:?} {has_deps} {fin:?}");
        }
    }
}
