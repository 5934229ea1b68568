//! The Deployment controller (upstream's `pkg/controller/deployment`): rolls a
//! Deployment's pod template out through ReplicaSets named
//! `<deployment>-<pod-template-hash>`, with the RollingUpdate (maxSurge/maxUnavailable)
//! or Recreate strategy; numbers revisions (`deployment.kubernetes.io/revision`) so
//! `kubectl rollout history/undo` work; resizes proportionally when scaled mid-rollout
//! or paused; prunes old ReplicaSets beyond revisionHistoryLimit; and reports the
//! status `kubectl rollout status` waits on, with the Progressing and Available
//! conditions.
//!
//! Decisions are [`crate::rollout`]'s pure functions; this file reads the caches, calls
//! them and writes the results. ReplicaSets are written with their resourceVersion, so
//! a decision made on a stale cache fails with a conflict and is made again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::Instrument;

use crate::Context;
use crate::events::Recorder;
use crate::rollout::{
    self, DESIRED_REPLICAS, FAILED_RS_CREATE, FOUND_NEW_RS, HASH_LABEL, MAX_REPLICAS, NEW_RS_CREATED, PROGRESSING,
    Params, REPLICA_FAILURE, REVISION, RolloutError, RsState, Scale,
};
use crate::workload::{
    controller_of, controller_ref, event_action, selector_matches, selector_query, selects_everything,
};
use crate::workqueue::Backoffs;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("deployment {d}: {source}")]
    Spec { d: String, source: RolloutError },
    #[error("deployment {d}: cannot {action} replica set {rs}: {source}")]
    ReplicaSet { d: String, rs: String, action: &'static str, source: Box<kube::Error> },
    #[error("deployment {d}: cannot update its status: {source}")]
    Status { d: String, source: Box<kube::Error> },
    #[error("deployment {d}: cannot record its revision annotation: {source}")]
    Annotate { d: String, source: Box<kube::Error> },
    #[error("deployment {d}: cannot list its pods: {source}")]
    Pods { d: String, source: Box<kube::Error> },
    #[error("deployment {d}: cannot read it again before adopting replica sets: {source}")]
    Recheck { d: String, source: Box<kube::Error> },
    #[error("deployment {d} was replaced (uid {got}, wanted {want}): not adopting replica sets for it")]
    Gone { d: String, got: String, want: String },
    #[error(
        "deployment {d}: replica set {rs} exists with another template (a hash collision); collisionCount is now {count}"
    )]
    Collision { d: String, rs: String, count: i32 },
}

impl Error {
    fn is_conflict(&self) -> bool {
        let source = match self {
            Error::ReplicaSet { source, .. } | Error::Status { source, .. } | Error::Annotate { source, .. } => source,
            _ => return false,
        };
        matches!(source.as_ref(), kube::Error::Api(s) if s.is_conflict())
    }
}

struct State {
    client: kube::Client,
    rses: Store<ReplicaSet>,
    recorder: Recorder,
    backoff: Backoffs<String>,
}

/// Runs the Deployment controller until aborted.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let client = ctx.client.clone();
        let (rses, writer) = reflector::store();
        let rs_events = watcher(Api::<ReplicaSet>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .touched_objects();
        let controller = Controller::new(Api::<Deployment>::all(client.clone()), watcher::Config::default());
        let deployments = controller.store();
        let state = Arc::new(State {
            recorder: Recorder::new(client.clone(), "deployment-controller"),
            client,
            rses,
            backoff: Backoffs::new(Duration::from_millis(200), Duration::from_secs(60)),
        });
        controller
            .watches_stream(rs_events, move |rs| deployments_for(&deployments, &rs))
            .run(reconcile, error_policy, state)
            .for_each(|_| futures::future::ready(()))
            .await;
    })
}

fn is_deployment_ref(api_version: &str, kind: &str) -> bool {
    kind == "Deployment" && api_version.split('/').next() == Some("apps")
}

/// The Deployments a ReplicaSet event concerns: its controller, or for an orphan every
/// Deployment selecting it.
fn deployments_for(deployments: &Store<Deployment>, rs: &ReplicaSet) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.namespace().unwrap_or_default();
    if let Some(owner) = controller_of(&rs.metadata) {
        if is_deployment_ref(&owner.api_version, &owner.kind) {
            return vec![ObjectRef::new(&owner.name).within(&ns)];
        }
        return Vec::new();
    }
    deployments
        .state()
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
        .filter(|d| selector_matches(d.spec.as_ref().map(|s| &s.selector), rs.metadata.labels.as_ref()))
        .map(|d| ObjectRef::from(d.as_ref()))
        .collect()
}

fn error_policy(d: Arc<Deployment>, error: &Error, st: Arc<State>) -> Action {
    let key = format!("{}/{}", d.namespace().unwrap_or_default(), d.name_any());
    let delay = st.backoff.next(&key);
    if error.is_conflict() {
        // Another writer got there first (our cache was a step behind): routine.
        tracing::debug!(%error, retry_in = ?delay, "deployment changed meanwhile; syncing again");
    } else {
        tracing::warn!(%error, retry_in = ?delay, "deployment sync failed");
    }
    Action::requeue(delay)
}

async fn reconcile(d: Arc<Deployment>, st: Arc<State>) -> Result<Action, Error> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let span = tracing::info_span!("deployment", namespace = %ns, name = %name);
    let key = format!("{ns}/{name}");
    let mut sync = SyncOne {
        st: &st,
        key: key.clone(),
        d: (*d).clone(),
        deployments: Api::namespaced(st.client.clone(), &ns),
        rs_api: Api::namespaced(st.client.clone(), &ns),
        ns,
        now: Timestamp::now(),
    };
    let action = sync.run().instrument(span).await?;
    st.backoff.reset(&key);
    Ok(action)
}

/// One sync of one Deployment; `d` is kept current with every write.
struct SyncOne<'a> {
    st: &'a State,
    key: String,
    d: Deployment,
    ns: String,
    deployments: Api<Deployment>,
    rs_api: Api<ReplicaSet>,
    now: Timestamp,
}

impl SyncOne<'_> {
    async fn run(&mut self) -> Result<Action, Error> {
        let _ = self.st.rses.wait_until_ready().await;
        if selects_everything(self.d.spec.as_ref().map(|s| &s.selector)) {
            let note = "This deployment is selecting all pods. A non-empty selector is required.".to_string();
            self.st.recorder.warning(&self.d.object_ref(&()), "SelectingAll", &event_action(&note), note).await;
            let mut status = self.status();
            if status.observed_generation < self.d.metadata.generation {
                status.observed_generation = self.d.metadata.generation;
                self.write_status(status).await?;
            }
            return Ok(Action::await_change());
        }
        let p = Params::of(&self.d).map_err(|source| Error::Spec { d: self.key.clone(), source })?;
        let rses = self.claim_replicasets().await?;
        let (new, mut olds) = split_new(&self.d, rses);

        if self.d.metadata.deletion_timestamp.is_some() {
            let states: Vec<RsState> = olds.iter().chain(&new).map(RsState::of).collect();
            let new_state = new.as_ref().map(RsState::of);
            let all: Vec<&RsState> = states.iter().collect();
            let status = rollout::calculate_status(&p, &self.status(), &all, new_state.as_ref(), self.now);
            self.write_status_if_changed(status).await?;
            return Ok(Action::await_change());
        }

        if let Some(status) = rollout::paused_condition(&p, &self.status(), self.now) {
            self.write_status(status).await?;
        }

        let mut new = match new {
            Some(rs) => Some(self.sync_new_replicaset(&p, rs, &olds).await?),
            None => None,
        };
        let old_states: Vec<RsState> = olds.iter().map(RsState::of).collect();
        let new_state = new.as_ref().map(RsState::of);
        let running = p.recreate
            && !p.paused
            && old_states.iter().all(|r| r.replicas == 0)
            && self.old_pods_running(new_state.as_ref(), &old_states, &olds).await?;
        let status_replicas = self.status().replicas.unwrap_or(0);
        let step = rollout::rollout_step(&p, status_replicas, new_state.as_ref(), &old_states, running);
        tracing::debug!(?step, "rollout step");

        if let Some(replicas) = step.create_new {
            new = Some(self.create_new_replicaset(&p, replicas, &olds).await?);
        }
        for s in &step.scale {
            if let Some(rs) = new.as_mut().filter(|r| r.name_any() == s.name) {
                *rs = self.scale(&p, rs, s).await?;
            } else if let Some(rs) = olds.iter_mut().find(|r| r.name_any() == s.name) {
                *rs = self.scale(&p, rs, s).await?;
            }
        }

        let old_states: Vec<RsState> = olds.iter().map(RsState::of).collect();
        let complete = rollout::deployment_complete(&p, &self.status());
        if step.prune || (step.prune_if_complete && complete) {
            for name in rollout::prune(&p, &old_states) {
                match self.rs_api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {
                        tracing::info!(replicaset = %name, "deleted an old replica set beyond revisionHistoryLimit")
                    }
                    Err(kube::Error::Api(s)) if s.is_not_found() => {}
                    Err(e) => return Err(self.rs_error(&name, "delete", e)),
                }
            }
        }

        let new_state = new.as_ref().map(RsState::of);
        let all: Vec<&RsState> = old_states.iter().chain(new_state.as_ref()).collect();
        let current = self.status();
        let (status, requeue) = if step.resizing {
            (rollout::calculate_status(&p, &current, &all, new_state.as_ref(), self.now), None)
        } else {
            let failures = replica_failures(new.as_ref(), &olds);
            rollout::rollout_status(&p, &current, &all, new_state.as_ref(), &failures, self.now)
        };
        self.write_status_if_changed(status).await?;
        // Recreate waits for old pods to go; no pod watch wakes it, so it looks again.
        let requeue =
            if running { Some(requeue.unwrap_or(Duration::MAX).min(Duration::from_secs(1))) } else { requeue };
        Ok(requeue.map_or_else(Action::await_change, Action::requeue))
    }

    fn status(&self) -> DeploymentStatus {
        self.d.status.clone().unwrap_or_default()
    }

    fn rs_error(&self, rs: &str, action: &'static str, e: kube::Error) -> Error {
        Error::ReplicaSet { d: self.key.clone(), rs: rs.into(), action, source: Box::new(e) }
    }

    /// The ReplicaSets this Deployment controls, adopting matching orphans and
    /// releasing ones that stopped matching (upstream's `getReplicaSetsForDeployment`).
    async fn claim_replicasets(&mut self) -> Result<Vec<ReplicaSet>, Error> {
        let uid = self.d.metadata.uid.clone().unwrap_or_default();
        let selector = self.d.spec.as_ref().map(|s| s.selector.clone());
        let deleting = self.d.metadata.deletion_timestamp.is_some();
        let mut owned = Vec::new();
        let mut adopt = Vec::new();
        for rs in self.st.rses.state().into_iter().filter(|r| r.namespace().as_deref() == Some(self.ns.as_str())) {
            let matches = selector_matches(selector.as_ref(), rs.metadata.labels.as_ref());
            match controller_of(&rs.metadata) {
                Some(owner) if owner.uid != uid => {}
                Some(_) if matches => owned.push((*rs).clone()),
                Some(_) if !deleting => {
                    let patch =
                        json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": uid}], "uid": rs.uid()}});
                    match self.rs_api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await {
                        Ok(_) => tracing::info!(replicaset = %rs.name_any(), "released a replica set"),
                        Err(kube::Error::Api(s)) if s.is_not_found() || s.is_invalid() => {}
                        Err(e) => return Err(self.rs_error(&rs.name_any(), "release", e)),
                    }
                }
                Some(_) => {}
                None if matches && !deleting && rs.metadata.deletion_timestamp.is_none() => adopt.push(rs),
                None => {}
            }
        }
        if adopt.is_empty() {
            return Ok(owned);
        }
        let fresh = self
            .deployments
            .get(&self.d.name_any())
            .await
            .map_err(|e| Error::Recheck { d: self.key.clone(), source: Box::new(e) })?;
        let got = fresh.metadata.uid.clone().unwrap_or_default();
        if got != uid {
            return Err(Error::Gone { d: self.key.clone(), got, want: uid });
        }
        if fresh.metadata.deletion_timestamp.is_some() {
            return Ok(owned);
        }
        let owner = controller_ref("apps/v1", "Deployment", &self.d.metadata);
        for rs in adopt {
            let patch = json!({"metadata": {"ownerReferences": [owner], "uid": rs.uid()}});
            match self.rs_api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await {
                Ok(rs) => {
                    tracing::info!(replicaset = %rs.name_any(), "adopted a replica set");
                    owned.push(rs);
                }
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(self.rs_error(&rs.name_any(), "adopt", e)),
            }
        }
        Ok(owned)
    }

    /// Brings the existing new ReplicaSet's annotations (revision above every old one,
    /// the Deployment's annotations) and minReadySeconds up to date, then the
    /// Deployment's revision (upstream's `getNewReplicaSet`, existing case).
    async fn sync_new_replicaset(
        &mut self,
        p: &Params,
        rs: ReplicaSet,
        olds: &[ReplicaSet],
    ) -> Result<ReplicaSet, Error> {
        let old_states: Vec<RsState> = olds.iter().map(RsState::of).collect();
        let new_revision = rollout::max_revision(&old_states) + 1;
        let annotations = rollout::new_rs_annotations(
            p,
            self.d.metadata.annotations.as_ref(),
            rs.metadata.annotations.as_ref(),
            new_revision,
            true,
        );
        let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        let rs_min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds);
        let rs = if Some(&annotations) != rs.metadata.annotations.as_ref()
            || min_ready.unwrap_or(0) != rs_min_ready.unwrap_or(0)
        {
            let mut copy = rs.clone();
            copy.metadata.annotations = Some(annotations);
            copy.spec.get_or_insert_with(ReplicaSetSpec::default).min_ready_seconds = min_ready;
            self.rs_api
                .replace(&rs.name_any(), &PostParams::default(), &copy)
                .await
                .map_err(|e| self.rs_error(&rs.name_any(), "update", e))?
        } else {
            rs
        };
        let revision = rs.annotations().get(REVISION).cloned().unwrap_or_default();
        self.set_revision(&revision).await?;
        if p.progress_deadline_seconds.is_some() && rollout::condition(&self.status(), PROGRESSING).is_none() {
            let mut status = self.status();
            let msg = format!("Found new replica set \"{}\"", rs.name_any());
            rollout::set_condition(
                &mut status,
                rollout::new_condition(PROGRESSING, "True", FOUND_NEW_RS, msg, self.now),
            );
            self.write_status(status).await?;
        }
        Ok(rs)
    }

    /// Creates the ReplicaSet for the current template (upstream's `getNewReplicaSet`,
    /// creating case), resolving a name clash with a different template by bumping
    /// `status.collisionCount`.
    async fn create_new_replicaset(
        &mut self,
        p: &Params,
        replicas: i32,
        olds: &[ReplicaSet],
    ) -> Result<ReplicaSet, Error> {
        let spec = self.d.spec.clone().unwrap_or_default();
        let collision_count = self.status().collision_count;
        let hash = rollout::pod_template_hash(&spec.template, collision_count);
        let name = format!("{}-{hash}", self.d.name_any());
        let mut template = spec.template.clone();
        let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
        meta.labels.get_or_insert_with(BTreeMap::new).insert(HASH_LABEL.into(), hash.clone());
        let labels = meta.labels.clone();
        let mut selector = spec.selector.clone();
        selector.match_labels.get_or_insert_with(BTreeMap::new).insert(HASH_LABEL.into(), hash);
        let old_states: Vec<RsState> = olds.iter().map(RsState::of).collect();
        let new_revision = rollout::max_revision(&old_states) + 1;
        let annotations =
            rollout::new_rs_annotations(p, self.d.metadata.annotations.as_ref(), None, new_revision, false);
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.ns.clone()),
                labels,
                annotations: Some(annotations),
                owner_references: Some(vec![controller_ref("apps/v1", "Deployment", &self.d.metadata)]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let (created, existed) = match self.rs_api.create(&PostParams::default(), &rs).await {
            Ok(created) => (created, false),
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                let existing = self.rs_api.get(&name).await.map_err(|e| self.rs_error(&name, "read", e))?;
                let ours =
                    controller_of(&existing.metadata).is_some_and(|o| Some(&o.uid) == self.d.metadata.uid.as_ref());
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| rollout::templates_equal_ignoring_hash(t, &spec.template));
                if !(ours && same) {
                    let mut status = self.status();
                    let count = status.collision_count.unwrap_or(0).saturating_add(1);
                    status.collision_count = Some(count);
                    self.write_status(status).await?;
                    return Err(Error::Collision { d: self.key.clone(), rs: name, count });
                }
                (existing, true)
            }
            Err(e) => {
                let msg = format!("Failed to create new replica set \"{name}\": {e}");
                if p.progress_deadline_seconds.is_some() {
                    let mut status = self.status();
                    let cond = rollout::new_condition(PROGRESSING, "False", FAILED_RS_CREATE, msg.clone(), self.now);
                    rollout::set_condition(&mut status, cond);
                    // The create error is the one worth reporting.
                    let _ = self.write_status(status).await;
                }
                self.st.recorder.warning(&self.d.object_ref(&()), FAILED_RS_CREATE, &event_action(&msg), msg).await;
                return Err(self.rs_error(&name, "create", e));
            }
        };
        if !existed {
            tracing::info!(replicaset = %name, replicas, "created the new replica set");
            if replicas > 0 {
                let note = Scale { name: name.clone(), from: 0, to: replicas }.message();
                self.st.recorder.normal(&self.d.object_ref(&()), "ScalingReplicaSet", &event_action(&note), note).await;
            }
        }
        self.set_revision(&new_revision.to_string()).await?;
        if !existed && p.progress_deadline_seconds.is_some() {
            let mut status = self.status();
            let msg = format!("Created new replica set \"{name}\"");
            rollout::set_condition(
                &mut status,
                rollout::new_condition(PROGRESSING, "True", NEW_RS_CREATED, msg, self.now),
            );
            self.write_status(status).await?;
        }
        Ok(created)
    }

    /// Sets a ReplicaSet's size and its replica annotations; an event if the size moved.
    async fn scale(&mut self, p: &Params, rs: &ReplicaSet, s: &Scale) -> Result<ReplicaSet, Error> {
        let current = rs.spec.as_ref().and_then(|x| x.replicas).unwrap_or(1);
        let (desired, max) = (p.replicas.to_string(), p.max_replicas().to_string());
        let ann = rs.annotations();
        let annotations_stale = ann.get(DESIRED_REPLICAS) != Some(&desired) || ann.get(MAX_REPLICAS) != Some(&max);
        if current == s.to && !annotations_stale {
            return Ok(rs.clone());
        }
        let mut copy = rs.clone();
        copy.spec.get_or_insert_with(ReplicaSetSpec::default).replicas = Some(s.to);
        let ann = copy.metadata.annotations.get_or_insert_with(BTreeMap::new);
        ann.insert(DESIRED_REPLICAS.into(), desired);
        ann.insert(MAX_REPLICAS.into(), max);
        let updated = self
            .rs_api
            .replace(&rs.name_any(), &PostParams::default(), &copy)
            .await
            .map_err(|e| self.rs_error(&rs.name_any(), "scale", e))?;
        if current != s.to {
            let msg = Scale { name: s.name.clone(), from: current, to: s.to }.message();
            tracing::info!("{msg}");
            self.st.recorder.normal(&self.d.object_ref(&()), "ScalingReplicaSet", &event_action(&msg), msg).await;
        }
        Ok(updated)
    }

    /// Recreate's wait: old ReplicaSets still report pods, or old pods have not ended.
    async fn old_pods_running(
        &self,
        new: Option<&RsState>,
        old_states: &[RsState],
        olds: &[ReplicaSet],
    ) -> Result<bool, Error> {
        if olds.is_empty() {
            return Ok(false);
        }
        if old_states.iter().any(|r| r.status_replicas > 0) {
            return Ok(true);
        }
        let Some(query) = selector_query(self.d.spec.as_ref().map(|s| &s.selector)) else { return Ok(false) };
        let pods: Api<Pod> = Api::namespaced(self.st.client.clone(), &self.ns);
        let list = pods
            .list(&ListParams::default().labels(&query))
            .await
            .map_err(|e| Error::Pods { d: self.key.clone(), source: Box::new(e) })?;
        let refs: Vec<&Pod> = list.items.iter().collect();
        Ok(rollout::old_pods_running(new.map(|r| r.uid.as_str()), old_states, &refs))
    }

    /// Records the revision on the Deployment through /status, as upstream's controller
    /// does: a write to the main resource would count as a change (Deployments bump
    /// their generation on annotation changes) and `rollout status` would wait for it.
    async fn set_revision(&mut self, revision: &str) -> Result<(), Error> {
        if revision.is_empty() || self.d.annotations().get(REVISION).map(String::as_str) == Some(revision) {
            return Ok(());
        }
        let patch = json!({"metadata": {"annotations": {REVISION: revision}}});
        self.d = self
            .deployments
            .patch_status(&self.d.name_any(), &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(|e| Error::Annotate { d: self.key.clone(), source: Box::new(e) })?;
        Ok(())
    }

    async fn write_status_if_changed(&mut self, status: DeploymentStatus) -> Result<(), Error> {
        if self.d.status.as_ref() == Some(&status) {
            return Ok(());
        }
        self.write_status(status).await
    }

    /// Replaces the status, carrying the resourceVersion: a status computed from a stale
    /// Deployment is refused and computed again.
    async fn write_status(&mut self, status: DeploymentStatus) -> Result<(), Error> {
        let mut copy = self.d.clone();
        copy.status = Some(status);
        self.d = self
            .deployments
            .replace_status(&self.d.name_any(), &PostParams::default(), &copy)
            .await
            .map_err(|e| Error::Status { d: self.key.clone(), source: Box::new(e) })?;
        Ok(())
    }
}

/// The ReplicaSet whose template is the Deployment's (the oldest, if several are), and
/// the others.
fn split_new(d: &Deployment, mut rses: Vec<ReplicaSet>) -> (Option<ReplicaSet>, Vec<ReplicaSet>) {
    rses.sort_by(|a, b| {
        let t = |r: &ReplicaSet| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
        t(a).cmp(&t(b)).then_with(|| a.name_any().cmp(&b.name_any()))
    });
    let Some(template) = d.spec.as_ref().map(|s| &s.template) else { return (None, rses) };
    let idx = rses.iter().position(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| rollout::templates_equal_ignoring_hash(t, template))
    });
    match idx {
        Some(i) => {
            let new = rses.remove(i);
            (Some(new), rses)
        }
        None => (None, rses),
    }
}

/// ReplicaFailure conditions of the ReplicaSets, the new one's first (upstream's
/// `getReplicaFailures`).
fn replica_failures(new: Option<&ReplicaSet>, olds: &[ReplicaSet]) -> Vec<DeploymentCondition> {
    let of = |rs: &ReplicaSet| -> Vec<DeploymentCondition> {
        rs.status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .filter(|c| c.type_ == REPLICA_FAILURE)
            .map(|c| DeploymentCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_transition_time: c.last_transition_time.clone(),
                last_update_time: c.last_transition_time.clone(),
            })
            .collect()
    };
    let from_new: Vec<DeploymentCondition> = new.map(of).unwrap_or_default();
    if !from_new.is_empty() {
        return from_new;
    }
    olds.iter().flat_map(of).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn template(image: &str, hash: Option<&str>) -> PodTemplateSpec {
        let mut labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        if let Some(h) = hash {
            labels.insert(HASH_LABEL.into(), h.into());
        }
        PodTemplateSpec {
            metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
            spec: Some(PodSpec {
                containers: vec![Container { name: "c".into(), image: Some(image.into()), ..Default::default() }],
                ..Default::default()
            }),
        }
    }

    fn rs(name: &str, created: i64, image: &str) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(Timestamp::from_second(created).unwrap())),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec { template: Some(template(image, Some(name))), ..Default::default() }),
            status: None,
        }
    }

    #[test]
    fn the_new_replicaset_is_the_oldest_with_the_template() {
        let d = Deployment {
            spec: Some(DeploymentSpec { template: template("v2", None), ..Default::default() }),
            ..Default::default()
        };
        let (new, olds) = split_new(&d, vec![rs("c", 30, "v2"), rs("a", 10, "v1"), rs("b", 20, "v2")]);
        assert_eq!(new.map(|r| r.name_any()).as_deref(), Some("b"));
        assert_eq!(olds.iter().map(|r| r.name_any()).collect::<Vec<_>>(), ["a", "c"]);
        let (none, olds) = split_new(&d, vec![rs("a", 10, "v1")]);
        assert!(none.is_none() && olds.len() == 1);
    }
}
