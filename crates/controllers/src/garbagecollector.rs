//! The garbage collector: deletes objects whose owners are gone, as upstream's
//! kube-controller-manager does, with the three propagation policies of a delete.
//!
//! - Background (the default): once an owner is gone, its dependents are deleted; a
//!   dependent with another live owner only loses the reference to the dead one.
//! - Foreground: the apiserver marks the owner (deletionTimestamp + `foregroundDeletion`
//!   finalizer); the collector deletes its dependents and removes the finalizer once no
//!   dependent with `blockOwnerDeletion` remains, which lets the apiserver finish.
//! - Orphan: the apiserver marks the owner with the `orphan` finalizer; the collector
//!   removes the references to it from its dependents, then the finalizer.
//!
//! Shape (upstream's): one metadata watch per listable, watchable, deletable resource
//! found by discovery feeds the dependency [`graph`]; graph changes queue uids for two
//! pools of workers (attempt-to-delete and attempt-to-orphan) that read the objects
//! live before acting, so a stale graph never deletes anything: a dependent is only
//! deleted after a live read shows each of its owners absent (or another uid at the
//! owner's coordinates), and deletes carry a uid precondition.

pub mod graph;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, pin_mut};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::slim::Slim;

use self::graph::{
    AbsentKey, Decision, FINALIZER_FOREGROUND, FINALIZER_ORPHAN, Graph, Identity, Observed, OwnerRef, Policy, RefState,
    Uid, Work,
};
use crate::Context;
use crate::apiresources::{ApiResources, Resource, split_api_version};
use crate::events::Recorder;
use crate::workqueue::WorkQueue;

/// Upstream's default ignored resources: events are never owners worth tracking and
/// are the most written kind.
const IGNORED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];
const DELETE_WORKERS: usize = 8;
const ORPHAN_WORKERS: usize = 2;
/// How long workers wait for every watch's first list before starting anyway.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Compare-and-swap attempts of one metadata write before giving the item back to the queue.
const MAX_CONFLICTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot discover the served resources: {0}")]
    Discovery(#[source] kube::Error),
    #[error("{api_version}, Kind={kind} is not served: cannot resolve the owner reference of {object}")]
    UnknownKind { api_version: String, kind: String, object: String },
    #[error("cannot read {object}: {source}")]
    Get {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot {action} {object}: {source}")]
    Write {
        action: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot {action} {object}: it kept changing ({MAX_CONFLICTS} conflicts)")]
    Conflicts { action: &'static str, object: String },
}

/// What a worker tells the queue about an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    /// Check again later (a virtual node whose object exists but no watch reported yet).
    Retry,
}

/// A change a watch reported.
enum Change {
    Observed(usize, Observed),
    Deleted(Uid),
    /// A (re)list of this monitor ended, listing these uids.
    Listed(usize, HashSet<Uid>),
}

struct Gc {
    client: Client,
    resources: ApiResources,
    graph: Mutex<Graph>,
    deletes: Arc<WorkQueue<Uid>>,
    orphans: Arc<WorkQueue<Uid>>,
    recorder: Recorder,
}

/// Starts the garbage collector.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let client = ctx.client.clone();
        let resources = discover(&client).await;
        let monitored: Vec<Resource> = resources
            .deletable()
            .filter(|r| !IGNORED.contains(&(r.ar.group.as_str(), r.ar.plural.as_str())))
            .cloned()
            .collect();
        tracing::info!(resources = monitored.len(), "garbage collector: watching every deletable resource");
        let gc = Arc::new(Gc {
            client: client.clone(),
            resources,
            graph: Mutex::new(Graph::default()),
            deletes: WorkQueue::new(Duration::from_millis(50), Duration::from_secs(300)),
            orphans: WorkQueue::new(Duration::from_millis(50), Duration::from_secs(300)),
            recorder: Recorder::new(client.clone(), "garbage-collector-controller"),
        });
        // Dropping the set (when leadership is lost) aborts every task.
        let mut tasks = tokio::task::JoinSet::new();
        let (tx, rx) = mpsc::channel(4096);
        for (i, r) in monitored.iter().enumerate() {
            tasks.spawn(monitor(client.clone(), i, r.clone(), tx.clone()));
        }
        drop(tx);
        let (synced_tx, mut synced) = watch::channel(false);
        tasks.spawn(process_graph_changes(gc.clone(), rx, monitored.len(), synced_tx));
        // Acting before every watch has listed could remove a foreground owner's
        // finalizer while its dependents are still unknown.
        if tokio::time::timeout(SYNC_TIMEOUT, synced.wait_for(|s| *s)).await.is_err() {
            tracing::warn!("garbage collector: not every resource listed in time; starting anyway");
        }
        tracing::info!("garbage collector: graph synced, starting workers");
        for _ in 0..DELETE_WORKERS {
            tasks.spawn(delete_worker(gc.clone()));
        }
        for _ in 0..ORPHAN_WORKERS {
            tasks.spawn(orphan_worker(gc.clone()));
        }
        while tasks.join_next().await.is_some() {}
    })
}

async fn discover(client: &Client) -> ApiResources {
    let mut delay = Duration::from_millis(200);
    loop {
        match ApiResources::discover(client.clone()).await {
            Ok(r) => return r,
            Err(e) => tracing::warn!(error = %Error::Discovery(e), "garbage collector: retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// Watches one resource's metadata and reports every change to the graph.
async fn monitor(client: Client, index: usize, r: Resource, tx: mpsc::Sender<Change>) {
    // Without managed fields: the graph reads owners, finalizers and deletion only, and
    // every pod and event write reaches this watch.
    let api: Api<Slim<PartialObjectMeta<DynamicObject>>> = Api::all_with(client, &r.ar);
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    pin_mut!(stream);
    let mut listing: HashSet<Uid> = HashSet::new();
    while let Some(ev) = stream.next().await {
        let change = match ev {
            Ok(Event::Init) => {
                listing.clear();
                continue;
            }
            Ok(Event::InitApply(Slim(o))) => {
                let Some(obs) = observed(&r, &o.metadata) else { continue };
                listing.insert(obs.identity.uid.clone());
                Change::Observed(index, obs)
            }
            Ok(Event::InitDone) => Change::Listed(index, std::mem::take(&mut listing)),
            Ok(Event::Apply(Slim(o))) => match observed(&r, &o.metadata) {
                Some(obs) => Change::Observed(index, obs),
                None => continue,
            },
            Ok(Event::Delete(Slim(o))) => match o.metadata.uid {
                Some(uid) => Change::Deleted(uid),
                None => continue,
            },
            Err(e) => {
                tracing::debug!(resource = %r.group_resource(), error = %e, "garbage collector watch failed; retrying");
                continue;
            }
        };
        if tx.send(change).await.is_err() {
            return;
        }
    }
}

fn observed(r: &Resource, m: &ObjectMeta) -> Option<Observed> {
    let uid = m.uid.clone().filter(|u| !u.is_empty())?;
    Some(Observed {
        identity: Identity {
            api_version: r.ar.api_version.clone(),
            kind: r.ar.kind.clone(),
            namespace: if r.namespaced { m.namespace.clone() } else { None },
            name: m.name.clone().unwrap_or_default(),
            uid,
        },
        owners: m.owner_references.iter().flatten().map(OwnerRef::from).collect(),
        being_deleted: m.deletion_timestamp.is_some(),
        finalizers: m.finalizers.clone().unwrap_or_default(),
    })
}

async fn process_graph_changes(
    gc: Arc<Gc>,
    mut rx: mpsc::Receiver<Change>,
    monitors: usize,
    synced: watch::Sender<bool>,
) {
    let mut listed: HashSet<usize> = HashSet::new();
    if monitors == 0 {
        synced.send_replace(true);
    }
    while let Some(change) = rx.recv().await {
        let work = {
            let mut g = lock(&gc.graph);
            match change {
                Change::Observed(m, o) => g.observe(m, o),
                Change::Deleted(uid) => g.observe_deleted(&uid),
                Change::Listed(m, uids) => {
                    listed.insert(m);
                    g.resync(m, &uids)
                }
            }
        };
        if listed.len() == monitors && !*synced.borrow() {
            synced.send_replace(true);
        }
        gc.enqueue(work);
    }
}

async fn delete_worker(gc: Arc<Gc>) {
    loop {
        let uid = gc.deletes.get().await;
        match gc.attempt_to_delete(&uid).await {
            Ok(Outcome::Done) => gc.deletes.forget(&uid),
            Ok(Outcome::Retry) => gc.deletes.retry(uid.clone()),
            Err(error) => {
                tracing::warn!(%uid, %error, "garbage collector: will retry");
                gc.deletes.retry(uid.clone());
            }
        }
        gc.deletes.done(&uid);
    }
}

async fn orphan_worker(gc: Arc<Gc>) {
    loop {
        let uid = gc.orphans.get().await;
        match gc.attempt_to_orphan(&uid).await {
            Ok(_) => gc.orphans.forget(&uid),
            Err(error) => {
                tracing::warn!(%uid, %error, "garbage collector: orphaning will be retried");
                gc.orphans.retry(uid.clone());
            }
        }
        gc.orphans.done(&uid);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The little of an object the workers read live.
struct Live {
    uid: String,
    resource_version: Option<String>,
    namespace: Option<String>,
    owners: Vec<OwnerReference>,
    finalizers: Vec<String>,
    being_deleted: bool,
}

impl Gc {
    fn enqueue(&self, work: impl IntoIterator<Item = Work>) {
        for w in work {
            match w {
                Work::AttemptToDelete(uid) => self.deletes.add(uid),
                Work::AttemptToOrphan(uid) => self.orphans.add(uid),
            }
        }
    }

    fn virtual_delete(&self, identity: &Identity) {
        let work = lock(&self.graph).virtual_delete(identity);
        self.enqueue(work);
    }

    fn resolve(&self, api_version: &str, kind: &str, object: &Identity) -> Result<Resource, Error> {
        self.resources.resolve(api_version, kind).ok_or_else(|| Error::UnknownKind {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            object: object.to_string(),
        })
    }

    fn api(&self, r: &Resource, namespace: Option<&str>) -> Api<DynamicObject> {
        match (r.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &r.ar),
            _ => Api::all_with(self.client.clone(), &r.ar),
        }
    }

    async fn get_live(&self, r: &Resource, namespace: Option<&str>, name: &str) -> Result<Option<Live>, Error> {
        let what = || format!("{} {}/{}", r.ar.kind, namespace.unwrap_or(""), name);
        if r.namespaced && namespace.is_none() {
            return Ok(None);
        }
        let got = self.api(r, namespace).get_metadata_opt(name).await;
        let m = got.map_err(|source| Error::Get { object: what(), source })?;
        Ok(m.map(|m| Live {
            uid: m.metadata.uid.clone().unwrap_or_default(),
            resource_version: m.metadata.resource_version.clone(),
            namespace: m.metadata.namespace.clone(),
            owners: m.metadata.owner_references.clone().unwrap_or_default(),
            finalizers: m.metadata.finalizers.clone().unwrap_or_default(),
            being_deleted: m.metadata.deletion_timestamp.is_some(),
        }))
    }

    /// Upstream's attemptToDeleteItem.
    #[tracing::instrument(skip(self), fields(namespace, name, kind))]
    async fn attempt_to_delete(&self, uid: &str) -> Result<Outcome, Error> {
        let Some(item) = lock(&self.graph).node(uid).cloned() else { return Ok(Outcome::Done) };
        let span = tracing::Span::current();
        span.record("namespace", item.identity.namespace.as_deref().unwrap_or(""));
        span.record("name", item.identity.name.as_str());
        span.record("kind", item.identity.kind.as_str());
        // Being deleted is a one-way trip: its dependents are handled once it is gone.
        if item.observed && item.being_deleted && !item.deleting_dependents {
            return Ok(Outcome::Done);
        }
        let res = self.resolve(&item.identity.api_version, &item.identity.kind, &item.identity)?;
        let ns = item.identity.namespace.as_deref().filter(|_| res.namespaced);
        let latest = match self.get_live(&res, ns, &item.identity.name).await? {
            Some(l) if l.uid == uid => l,
            _ => {
                // Gone (or replaced): a virtual node goes, its dependents get checked.
                let read_at = Identity { namespace: ns.map(str::to_string), ..item.identity.clone() };
                self.virtual_delete(&read_at);
                return Ok(Outcome::Done);
            }
        };
        let observed_or_retry = if item.observed { Outcome::Done } else { Outcome::Retry };
        if item.observed && item.deleting_dependents {
            return self.process_deleting_dependents(&item.identity, &res, &latest).await;
        }
        if latest.owners.is_empty() {
            return Ok(observed_or_retry);
        }
        let dependent_ns = if res.namespaced { latest.namespace.clone() } else { None };
        let mut classified = Vec::new();
        for r in &latest.owners {
            match self.classify(&item.identity, dependent_ns.as_deref(), r).await? {
                Some(state) => classified.push((OwnerRef::from(r), state)),
                // Cluster-scoped dependent of a namespaced owner: unresolvable, never
                // collected, and retrying will not change that.
                None => return Ok(Outcome::Done),
            }
        }
        let (has_dependents, a_dependent_waits) = {
            let g = lock(&self.graph);
            let deps = g.node(uid).map(|n| n.dependents.clone()).unwrap_or_default();
            let waits = deps.iter().any(|d| g.node(d).is_some_and(|n| n.deleting_dependents));
            (!deps.is_empty(), waits)
        };
        let decision = graph::decide(&classified, has_dependents, a_dependent_waits, &latest.finalizers);
        let who = item.identity.to_string();
        match decision {
            Decision::Keep => {}
            Decision::RemoveOwnerRefs(dead) => {
                tracing::debug!(owners = ?dead, "removing references to owners that are gone");
                self.edit_owner_refs(&res, ns, &item.identity.name, uid, "remove dead owner references from", |refs| {
                    refs.retain(|r| !dead.contains(&r.uid))
                })
                .await?;
            }
            Decision::DeleteForeground { unblock_own_refs } => {
                if unblock_own_refs {
                    self.edit_owner_refs(&res, ns, &item.identity.name, uid, "unblock the owners of", |refs| {
                        for r in refs.iter_mut().filter(|r| r.block_owner_deletion == Some(true)) {
                            r.block_owner_deletion = Some(false);
                        }
                    })
                    .await?;
                }
                tracing::debug!(object = %who, "deleting in the foreground: an owner waits for its dependents");
                self.delete(&res, ns, &item.identity.name, uid, Policy::Foreground).await?;
            }
            Decision::Delete(policy) => {
                tracing::debug!(object = %who, ?policy, "deleting: no live owner left");
                self.delete(&res, ns, &item.identity.name, uid, policy).await?;
            }
        }
        Ok(observed_or_retry)
    }

    /// How one owner reference stands; `None` when it can never resolve (a namespaced
    /// owner of a cluster-scoped object).
    async fn classify(
        &self,
        dependent: &Identity,
        dependent_ns: Option<&str>,
        r: &OwnerReference,
    ) -> Result<Option<RefState>, Error> {
        let owner_res = self.resolve(&r.api_version, &r.kind, dependent)?;
        if owner_res.namespaced && dependent_ns.is_none() {
            self.invalid_namespace_event(dependent, r).await;
            return Ok(None);
        }
        let lookup_ns = if owner_res.namespaced { dependent_ns } else { None };
        let key = AbsentKey {
            group: split_api_version(&r.api_version).0.to_string(),
            kind: r.kind.clone(),
            namespace: lookup_ns.map(str::to_string),
            name: r.name.clone(),
            uid: r.uid.clone(),
        };
        if lock(&self.graph).is_absent(&key) {
            return Ok(Some(RefState::Dangling));
        }
        match self.get_live(&owner_res, lookup_ns, &r.name).await? {
            Some(o) if o.uid == r.uid => {
                let waits = o.being_deleted && o.finalizers.iter().any(|f| f == FINALIZER_FOREGROUND);
                Ok(Some(if waits { RefState::WaitingForDependents } else { RefState::Solid }))
            }
            _ => {
                // The owner may exist in another namespace: upstream warns about that.
                let elsewhere = lock(&self.graph).node(&r.uid).is_some_and(|n| {
                    n.observed && owner_res.namespaced && n.identity.namespace.as_deref() != lookup_ns
                });
                if elsewhere {
                    self.invalid_namespace_event(dependent, r).await;
                }
                lock(&self.graph).mark_absent(key);
                Ok(Some(RefState::Dangling))
            }
        }
    }

    async fn invalid_namespace_event(&self, dependent: &Identity, r: &OwnerReference) {
        let ns = dependent.namespace.clone().unwrap_or_default();
        let invalid = Identity {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            namespace: dependent.namespace.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
        };
        let regarding = ObjectReference {
            api_version: Some(dependent.api_version.clone()),
            kind: Some(dependent.kind.clone()),
            name: Some(dependent.name.clone()),
            namespace: dependent.namespace.clone(),
            uid: Some(dependent.uid.clone()),
            ..Default::default()
        };
        self.recorder
            .warning(
                &regarding,
                "OwnerRefInvalidNamespace",
                "GarbageCollect",
                format!("ownerRef {invalid} does not exist in namespace {ns:?}"),
            )
            .await;
    }

    /// The owner is deleted in the foreground: check its blocking dependents, or, when
    /// none is left, remove the `foregroundDeletion` finalizer.
    async fn process_deleting_dependents(
        &self,
        owner: &Identity,
        res: &Resource,
        latest: &Live,
    ) -> Result<Outcome, Error> {
        let blocking: Vec<(Uid, bool)> = lock(&self.graph)
            .blocking_dependents(&owner.uid)
            .into_iter()
            .map(|d| (d.identity.uid.clone(), d.deleting_dependents))
            .collect();
        if blocking.is_empty() {
            if latest.finalizers.iter().any(|f| f == FINALIZER_FOREGROUND) {
                tracing::info!("no blocking dependent left: finishing the foreground deletion");
                self.remove_finalizer(res, owner, FINALIZER_FOREGROUND).await?;
            }
            return Ok(Outcome::Done);
        }
        // Dependents already deleting their own dependents will report when they are gone.
        self.enqueue(blocking.into_iter().filter(|(_, waits)| !waits).map(|(u, _)| Work::AttemptToDelete(u)));
        Ok(Outcome::Done)
    }

    /// Upstream's orphanDependents + removeFinalizer(orphan).
    #[tracing::instrument(skip(self), fields(namespace, name, kind))]
    async fn attempt_to_orphan(&self, uid: &str) -> Result<Outcome, Error> {
        let (owner, dependents) = {
            let g = lock(&self.graph);
            let Some(n) = g.node(uid) else { return Ok(Outcome::Done) };
            let deps: Vec<Identity> =
                n.dependents.iter().filter_map(|d| g.node(d)).map(|d| d.identity.clone()).collect();
            (n.identity.clone(), deps)
        };
        let span = tracing::Span::current();
        span.record("namespace", owner.namespace.as_deref().unwrap_or(""));
        span.record("name", owner.name.as_str());
        span.record("kind", owner.kind.as_str());
        let res = self.resolve(&owner.api_version, &owner.kind, &owner)?;
        let ns = owner.namespace.as_deref().filter(|_| res.namespaced);
        match self.get_live(&res, ns, &owner.name).await? {
            Some(l) if l.uid == uid && l.being_deleted && l.finalizers.iter().any(|f| f == FINALIZER_ORPHAN) => {}
            _ => return Ok(Outcome::Done),
        }
        let mut first_error = None;
        for d in &dependents {
            let dres = match self.resolve(&d.api_version, &d.kind, d) {
                Ok(r) => r,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            let dns = d.namespace.as_deref().filter(|_| dres.namespaced);
            let edit =
                self.edit_owner_refs(&dres, dns, &d.name, &d.uid, "orphan", |refs| refs.retain(|r| r.uid != uid));
            if let Err(e) = edit.await {
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        tracing::info!(dependents = dependents.len(), "dependents orphaned");
        self.remove_finalizer(&res, &owner, FINALIZER_ORPHAN).await?;
        Ok(Outcome::Done)
    }

    /// Deletes an object by uid (a newer object of the same name is left alone).
    async fn delete(&self, r: &Resource, ns: Option<&str>, name: &str, uid: &str, policy: Policy) -> Result<(), Error> {
        let dp = DeleteParams {
            propagation_policy: Some(match policy {
                Policy::Background => PropagationPolicy::Background,
                Policy::Foreground => PropagationPolicy::Foreground,
                Policy::Orphan => PropagationPolicy::Orphan,
            }),
            preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
            ..Default::default()
        };
        match self.api(r, ns).delete(name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(source) => Err(Error::Write {
                action: "delete",
                object: format!("{} {}/{}", r.ar.kind, ns.unwrap_or(""), name),
                source,
            }),
        }
    }

    /// Rewrites an object's owner references with a merge patch carrying the
    /// resourceVersion it was read at, retrying lost races.
    async fn edit_owner_refs(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        uid: &str,
        action: &'static str,
        edit: impl Fn(&mut Vec<OwnerReference>),
    ) -> Result<(), Error> {
        let object = || format!("{} {}/{}", r.ar.kind, ns.unwrap_or(""), name);
        for _ in 0..MAX_CONFLICTS {
            let Some(live) = self.get_live(r, ns, name).await? else { return Ok(()) };
            if live.uid != uid {
                return Ok(());
            }
            let mut refs = live.owners.clone();
            edit(&mut refs);
            if refs == live.owners {
                return Ok(());
            }
            let refs = if refs.is_empty() { Value::Null } else { json!(refs) };
            let patch = json!({"metadata": {"resourceVersion": live.resource_version, "ownerReferences": refs}});
            match self.api(r, ns).patch_metadata(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                Err(source) => return Err(Error::Write { action, object: object(), source }),
            }
        }
        Err(Error::Conflicts { action, object: object() })
    }

    /// Removes one finalizer (merge patch at the read resourceVersion, as upstream).
    async fn remove_finalizer(&self, r: &Resource, who: &Identity, finalizer: &str) -> Result<(), Error> {
        let ns = who.namespace.as_deref().filter(|_| r.namespaced);
        for _ in 0..MAX_CONFLICTS {
            let Some(live) = self.get_live(r, ns, &who.name).await? else { return Ok(()) };
            if live.uid != who.uid || !live.finalizers.iter().any(|f| f == finalizer) {
                return Ok(());
            }
            let rest: Vec<&String> = live.finalizers.iter().filter(|f| *f != finalizer).collect();
            let rest = if rest.is_empty() { Value::Null } else { json!(rest) };
            let patch = json!({"metadata": {"resourceVersion": live.resource_version, "finalizers": rest}});
            match self.api(r, ns).patch_metadata(&who.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                Err(source) => {
                    return Err(Error::Write { action: "remove a finalizer from", object: who.to_string(), source });
                }
            }
        }
        Err(Error::Conflicts { action: "remove a finalizer from", object: who.to_string() })
    }
}
