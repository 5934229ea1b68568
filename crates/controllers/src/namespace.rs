//! The namespace controller: empties a namespace being deleted, then releases it.
//!
//! Deleting a namespace only marks it (deletionTimestamp, phase `Terminating`), because
//! its `spec.finalizers` holds `kubernetes`. This controller, as upstream's namespaced
//! resources deleter, deletes every namespaced resource in it (found by discovery;
//! `deletecollection` where served, else one delete per object), reports progress in
//! the namespace's status conditions (`NamespaceContentRemaining`,
//! `NamespaceFinalizersRemaining`, `NamespaceDeletionContentFailure`, …), and once
//! nothing is left removes `kubernetes` through the `finalize` subresource, after which
//! the apiserver removes the namespace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition, NamespaceStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::verbs;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::Context;
use crate::apiresources::{ApiResources, Resource};
use crate::workqueue::Backoffs;

/// The finalizer this controller owns in `spec.finalizers`.
pub const FINALIZER: &str = "kubernetes";
/// Upstream's wait for content held by finalizers.
const FINALIZER_ESTIMATE_SECONDS: u64 = 15;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read namespace {namespace}: {source}")]
    Get {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot discover the resources to delete from namespace {namespace}: {source}")]
    Discovery {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot delete all content of namespace {namespace}: {}", messages.join(", "))]
    Content { namespace: String, messages: Vec<String> },
    #[error(
        "cannot finalize namespace {namespace}: the server serves no PUT of namespaces/finalize and keeps spec.finalizers on update"
    )]
    FinalizeNotServed { namespace: String },
    #[error("cannot finalize namespace {namespace}: {source}")]
    Finalize {
        namespace: String,
        #[source]
        source: kube::Error,
    },
}

/// What the controller keeps between reconciles.
pub struct State {
    client: Client,
    /// Per namespace: how many times content was still there (short waits first).
    remaining: Backoffs<String>,
    failures: Backoffs<String>,
}

/// Starts the controller.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let state = Arc::new(State {
            client: ctx.client.clone(),
            remaining: Backoffs::new(Duration::from_secs(1), Duration::from_secs(60)),
            failures: Backoffs::new(Duration::from_millis(500), Duration::from_secs(60)),
        });
        let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
        Controller::new(namespaces, watcher::Config::default())
            .run(reconcile, error_policy, state)
            .for_each(|_| futures::future::ready(()))
            .await;
    })
}

fn error_policy(ns: Arc<Namespace>, error: &Error, state: Arc<State>) -> Action {
    tracing::warn!(namespace = %ns.name_any(), %error, "namespace deletion will be retried");
    Action::requeue(state.failures.next(&ns.name_any()))
}

/// What deleting a namespace's content found, per resource.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ContentTotals {
    /// `plural.group` → objects left.
    pub remaining: BTreeMap<String, usize>,
    /// finalizer → objects left holding it.
    pub finalizers: BTreeMap<String, usize>,
    pub delete_errors: Vec<String>,
    pub discovery_error: Option<String>,
    /// Seconds the remaining content may reasonably take (graceful pods, finalizers).
    pub estimate_seconds: u64,
}

#[tracing::instrument(skip_all, fields(namespace = %ns.name_any()))]
async fn reconcile(ns: Arc<Namespace>, state: Arc<State>) -> Result<Action, Error> {
    let name = ns.name_any();
    if ns.metadata.deletion_timestamp.is_none() {
        state.remaining.reset(&name);
        state.failures.reset(&name);
        return Ok(Action::await_change());
    }
    let api: Api<Namespace> = Api::all(state.client.clone());
    // The cache may lag: act on the namespace as it is now.
    let Some(mut live) = api.get_opt(&name).await.map_err(|source| Error::Get { namespace: name.clone(), source })?
    else {
        return Ok(Action::await_change());
    };
    if live.metadata.deletion_timestamp.is_none() || finalized(&live) {
        return Ok(Action::await_change());
    }
    if live.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating") {
        live.status.get_or_insert_with(Default::default).phase = Some("Terminating".into());
        live = update_status(&api, &live).await.unwrap_or(live);
    }
    let totals = delete_all_content(&state.client, &name).await;
    let now = jiff::Timestamp::now();
    if let Some(conditions) = updated_conditions(live.status.as_ref(), &totals, now) {
        live.status.get_or_insert_with(Default::default).conditions = Some(conditions);
        live = update_status(&api, &live).await.unwrap_or(live);
    }
    let mut messages = totals.delete_errors.clone();
    messages.extend(totals.discovery_error.clone());
    if !messages.is_empty() {
        return Err(Error::Content { namespace: name, messages });
    }
    if !totals.remaining.is_empty() {
        let wait = remaining_wait(&state.remaining, &name, totals.estimate_seconds);
        tracing::debug!(remaining = ?totals.remaining, ?wait, "content remains");
        return Ok(Action::requeue(wait));
    }
    finalize(&api, &live).await?;
    tracing::info!("namespace emptied and finalized");
    state.remaining.reset(&name);
    state.failures.reset(&name);
    Ok(Action::await_change())
}

/// Whether `spec.finalizers` still holds ours.
fn still_ours(ns: &Namespace) -> bool {
    ns.spec.as_ref().and_then(|s| s.finalizers.as_ref()).is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

/// Upstream's rule: nothing left in `spec.finalizers`.
fn finalized(ns: &Namespace) -> bool {
    ns.spec.as_ref().and_then(|s| s.finalizers.as_ref()).is_none_or(|f| f.is_empty())
}

async fn update_status(api: &Api<Namespace>, ns: &Namespace) -> Option<Namespace> {
    match api.replace_status(&ns.name_any(), &PostParams::default(), ns).await {
        Ok(n) => Some(n),
        Err(e) => {
            // As upstream: status is informative, deletion goes on.
            tracing::debug!(error = %e, "could not update the namespace status");
            None
        }
    }
}

/// The namespace's `spec.finalizers` without ours, sorted and deduplicated as upstream.
pub fn finalizers_without_ours(ns: &Namespace) -> Vec<String> {
    let mut f: Vec<String> = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != FINALIZER)
        .collect();
    f.sort();
    f.dedup();
    f
}

async fn finalize(api: &Api<Namespace>, live: &Namespace) -> Result<(), Error> {
    let name = live.name_any();
    let mut body = live.clone();
    body.spec.get_or_insert_with(Default::default).finalizers = Some(finalizers_without_ours(live));
    let err = |source| Error::Finalize { namespace: name.clone(), source };
    match api.replace_subresource("finalize", &name, &PostParams::default(), &body).await {
        Ok(_) => Ok(()),
        // A server without the finalize subresource's PUT (rkube's apiserver, for now):
        // the main resource's update carries spec.finalizers there.
        Err(kube::Error::Api(s)) if s.code == 405 || s.code == 404 => {
            tracing::debug!("the finalize subresource is not served; updating the namespace instead");
            match api.replace(&name, &PostParams::default(), &body).await {
                Ok(ns) if still_ours(&ns) => Err(Error::FinalizeNotServed { namespace: name.clone() }),
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(err(e)),
            }
        }
        Err(e) => Err(err(e)),
    }
}

/// Deletes everything in the namespace; reports what is left. Errors of one resource
/// do not stop the others.
async fn delete_all_content(client: &Client, ns: &str) -> ContentTotals {
    let mut totals = ContentTotals::default();
    let resources = match ApiResources::discover(client.clone()).await {
        Ok(r) => r,
        Err(e) => {
            totals.discovery_error = Some(format!("Discovery failed: {e}"));
            return totals;
        }
    };
    let deletable = resources.preferred().iter().filter(|r| r.namespaced && r.supports(verbs::DELETE));
    for r in deletable {
        match delete_all_of(client, ns, r).await {
            Ok(left) => {
                if left.count > 0 {
                    totals.remaining.insert(r.group_resource(), left.count);
                }
                for (f, n) in left.finalizers {
                    *totals.finalizers.entry(f).or_default() += n;
                }
                totals.estimate_seconds = totals.estimate_seconds.max(left.estimate_seconds);
            }
            Err(e) => {
                if let Some(n) = e.remaining {
                    totals.remaining.insert(r.group_resource(), n);
                }
                totals.delete_errors.push(e.message);
            }
        }
    }
    totals.delete_errors.sort();
    totals
}

#[derive(Debug, Default)]
struct Left {
    count: usize,
    finalizers: BTreeMap<String, usize>,
    estimate_seconds: u64,
}

struct ResourceError {
    message: String,
    remaining: Option<usize>,
}

fn gvr(r: &Resource) -> String {
    // Upstream's GroupVersionResource.String().
    format!("{}/{}, Resource={}", r.ar.group, r.ar.version, r.ar.plural)
}

async fn delete_all_of(client: &Client, ns: &str, r: &Resource) -> Result<Left, ResourceError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &r.ar);
    let fail = |what: &str, e: kube::Error| ResourceError {
        message: format!("failed to {what} {} in namespace {ns}: {e}", gvr(r)),
        remaining: None,
    };
    let mut collection_done = false;
    if r.supports(verbs::DELETE_COLLECTION) {
        match api.delete_collection(&DeleteParams::background(), &ListParams::default()).await {
            Ok(_) => collection_done = true,
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {}
            Err(e) => return Err(fail("delete collection of", e)),
        }
    }
    if !collection_done {
        let items = api.list_metadata(&ListParams::default()).await.map_err(|e| fail("list", e))?;
        for item in items {
            if item.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match api.delete(&item.name_any(), &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(fail("delete", e)),
            }
        }
    }
    if !r.supports(verbs::LIST) {
        return Ok(Left::default());
    }
    let left = api.list_metadata(&ListParams::default()).await.map_err(|e| fail("list", e))?;
    if left.items.is_empty() {
        return Ok(Left::default());
    }
    let mut out = Left { count: left.items.len(), ..Default::default() };
    for item in &left.items {
        for f in item.metadata.finalizers.iter().flatten() {
            *out.finalizers.entry(f.clone()).or_default() += 1;
        }
    }
    if r.ar.group.is_empty() && r.ar.plural == "pods" {
        out.estimate_seconds = pod_grace_estimate(client, ns).await;
    }
    if out.estimate_seconds == 0 && !out.finalizers.is_empty() {
        out.estimate_seconds = FINALIZER_ESTIMATE_SECONDS;
    }
    if out.estimate_seconds == 0 {
        return Err(ResourceError {
            message: format!("unexpected items still remain in namespace: {ns} for gvr: {}", gvr(r)),
            remaining: Some(out.count),
        });
    }
    Ok(out)
}

/// Upstream's estimateGracefulTerminationForPods: the longest grace period of the pods
/// not yet terminated.
async fn pod_grace_estimate(client: &Client, ns: &str) -> u64 {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let Ok(list) = pods.list(&ListParams::default()).await else { return 0 };
    list.items
        .iter()
        .filter(|p| !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")))
        .filter_map(|p| {
            p.metadata
                .deletion_grace_period_seconds
                .or(p.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        })
        .map(|g| u64::try_from(g).unwrap_or(0))
        .max()
        .unwrap_or(0)
}

/// The condition types this controller maintains, in upstream's order, with their
/// reason and message when all is well.
const CONDITIONS: [(&str, &str, &str); 5] = [
    ("NamespaceDeletionDiscoveryFailure", "ResourcesDiscovered", "All resources successfully discovered"),
    ("NamespaceDeletionGroupVersionParsingFailure", "ParsedGroupVersions", "All legacy kube types successfully parsed"),
    (
        "NamespaceDeletionContentFailure",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    ("NamespaceContentRemaining", "ContentRemoved", "All content successfully removed"),
    ("NamespaceFinalizersRemaining", "ContentHasNoFinalizers", "All content-preserving finalizers finished"),
];

/// The (type, reason, message) of each failing condition, as upstream's
/// namespaceConditionUpdater words them.
pub fn failing_conditions(t: &ContentTotals) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    if let Some(e) = &t.discovery_error {
        out.push(("NamespaceDeletionDiscoveryFailure", "DiscoveryFailed", e.clone()));
    }
    if !t.delete_errors.is_empty() {
        out.push((
            "NamespaceDeletionContentFailure",
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                t.delete_errors.len(),
                t.delete_errors.join(", ")
            ),
        ));
    }
    let remaining: Vec<String> =
        t.remaining.iter().filter(|(_, n)| **n > 0).map(|(gr, n)| format!("{gr} has {n} resource instances")).collect();
    if !remaining.is_empty() {
        let msg = format!("Some resources are remaining: {}", remaining.join(", "));
        out.push(("NamespaceContentRemaining", "SomeResourcesRemain", msg));
    }
    let finalizers: Vec<String> =
        t.finalizers.iter().filter(|(_, n)| **n > 0).map(|(f, n)| format!("{f} in {n} resource instances")).collect();
    if !finalizers.is_empty() {
        let msg = format!("Some content in the namespace has finalizers remaining: {}", finalizers.join(", "));
        out.push(("NamespaceFinalizersRemaining", "SomeFinalizersRemain", msg));
    }
    out
}

/// The namespace's conditions after this round, or `None` when nothing changed
/// (upstream's updateConditions: other conditions are kept; a transition time only
/// moves when the status does).
pub fn updated_conditions(
    status: Option<&NamespaceStatus>,
    totals: &ContentTotals,
    now: jiff::Timestamp,
) -> Option<Vec<NamespaceCondition>> {
    let failing = failing_conditions(totals);
    let mut conditions = status.and_then(|s| s.conditions.clone()).unwrap_or_default();
    let mut changed = false;
    for (type_, ok_reason, ok_message) in CONDITIONS {
        let (status, reason, message) = match failing.iter().find(|(t, _, _)| *t == type_) {
            Some((_, reason, message)) => ("True", *reason, message.clone()),
            None => ("False", ok_reason, ok_message.to_string()),
        };
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            None => {
                conditions.push(NamespaceCondition {
                    type_: type_.into(),
                    status: status.into(),
                    reason: Some(reason.into()),
                    message: Some(message),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
            Some(c) => {
                if c.status != status || c.reason.as_deref() != Some(reason) || c.message.as_deref() != Some(&message) {
                    if c.status != status {
                        c.last_transition_time = Some(Time(now));
                    }
                    c.status = status.into();
                    c.reason = Some(reason.into());
                    c.message = Some(message);
                    changed = true;
                }
            }
        }
    }
    changed.then_some(conditions)
}

/// How long to wait before looking at remaining content again: 1 s, 2 s, 4 s … capped by
/// upstream's only wait (estimate/2 + 1 s), so small namespaces go quickly.
fn remaining_wait(backoffs: &Backoffs<String>, namespace: &str, estimate_seconds: u64) -> Duration {
    backoffs.next(&namespace.to_string()).min(Duration::from_secs(estimate_seconds / 2 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceSpec;

    fn totals(remaining: &[(&str, usize)], finalizers: &[(&str, usize)], errors: &[&str]) -> ContentTotals {
        ContentTotals {
            remaining: remaining.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            finalizers: finalizers.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            delete_errors: errors.iter().map(|s| s.to_string()).collect(),
            discovery_error: None,
            estimate_seconds: 0,
        }
    }

    #[test]
    fn failing_conditions_are_worded_as_upstream() {
        let cases = vec![
            (totals(&[], &[], &[]), vec![]),
            (
                totals(&[("configmaps.", 2), ("replicasets.apps", 1)], &[("example.com/hold", 3)], &[]),
                vec![
                    (
                        "NamespaceContentRemaining",
                        "SomeResourcesRemain",
                        "Some resources are remaining: configmaps. has 2 resource instances, replicasets.apps has 1 resource instances",
                    ),
                    (
                        "NamespaceFinalizersRemaining",
                        "SomeFinalizersRemain",
                        "Some content in the namespace has finalizers remaining: example.com/hold in 3 resource instances",
                    ),
                ],
            ),
            (
                totals(&[("pods.", 1)], &[], &["boom"]),
                vec![
                    (
                        "NamespaceDeletionContentFailure",
                        "ContentDeletionFailed",
                        "Failed to delete all resource types, 1 remaining: boom",
                    ),
                    (
                        "NamespaceContentRemaining",
                        "SomeResourcesRemain",
                        "Some resources are remaining: pods. has 1 resource instances",
                    ),
                ],
            ),
        ];
        for (t, want) in cases {
            let got = failing_conditions(&t);
            let got: Vec<(&str, &str, &str)> = got.iter().map(|(a, b, c)| (*a, *b, c.as_str())).collect();
            assert_eq!(got, want, "{t:?}");
        }
    }

    #[test]
    fn conditions_change_only_when_their_state_does() {
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let blocked = totals(&[("configmaps.", 1)], &[("example.com/hold", 1)], &[]);
        let first = updated_conditions(None, &blocked, t0).expect("all five are new");
        assert_eq!(first.len(), 5);
        let by = |c: &[NamespaceCondition], t: &str| c.iter().find(|c| c.type_ == t).cloned().unwrap();
        assert_eq!(by(&first, "NamespaceContentRemaining").status, "True");
        assert_eq!(by(&first, "NamespaceDeletionContentFailure").status, "False");
        assert_eq!(by(&first, "NamespaceDeletionContentFailure").reason.as_deref(), Some("ContentDeleted"));
        let status = NamespaceStatus { conditions: Some(first.clone()), phase: Some("Terminating".into()) };
        assert_eq!(updated_conditions(Some(&status), &blocked, t1), None, "same state: no write");
        let cleared = updated_conditions(Some(&status), &totals(&[], &[], &[]), t1).expect("changed");
        let c = by(&cleared, "NamespaceContentRemaining");
        assert_eq!((c.status.as_str(), c.reason.as_deref()), ("False", Some("ContentRemoved")));
        assert_eq!(c.last_transition_time, Some(Time(t1)));
        // A condition whose status stays keeps its transition time even when its message moves.
        let more = totals(&[("configmaps.", 2)], &[("example.com/hold", 2)], &[]);
        let moved = updated_conditions(Some(&status), &more, t1).expect("message changed");
        assert_eq!(by(&moved, "NamespaceContentRemaining").last_transition_time, Some(Time(t0)));
        // Conditions of other types are kept.
        let mut foreign = first.clone();
        foreign.push(NamespaceCondition { type_: "Other".into(), status: "True".into(), ..Default::default() });
        let status = NamespaceStatus { conditions: Some(foreign), phase: None };
        let kept = updated_conditions(Some(&status), &totals(&[], &[], &[]), t1).unwrap();
        assert!(kept.iter().any(|c| c.type_ == "Other"));
    }

    #[test]
    fn finalize_drops_only_our_finalizer() {
        let ns = |f: Option<Vec<&str>>| Namespace {
            spec: Some(NamespaceSpec { finalizers: f.map(|v| v.into_iter().map(str::to_string).collect()) }),
            ..Default::default()
        };
        assert_eq!(finalizers_without_ours(&ns(Some(vec!["kubernetes"]))), Vec::<String>::new());
        assert_eq!(
            finalizers_without_ours(&ns(Some(vec!["z.io/x", "kubernetes", "a.io/y", "z.io/x"]))),
            ["a.io/y", "z.io/x"]
        );
        assert_eq!(finalizers_without_ours(&ns(None)), Vec::<String>::new());
        assert!(finalized(&ns(None)) && finalized(&ns(Some(vec![]))));
        assert!(!finalized(&ns(Some(vec!["kubernetes"]))));
        assert!(!finalized(&ns(Some(vec!["other.io/x"]))), "upstream: any finalizer left");
        assert!(still_ours(&ns(Some(vec!["other.io/x", "kubernetes"]))));
        assert!(!still_ours(&ns(Some(vec!["other.io/x"]))) && !still_ours(&ns(None)));
    }

    #[test]
    fn remaining_content_is_retried_sooner_than_upstream_then_as_upstream() {
        let b = Backoffs::new(Duration::from_secs(1), Duration::from_secs(60));
        let got: Vec<u64> = (0..6).map(|_| remaining_wait(&b, "x", FINALIZER_ESTIMATE_SECONDS).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 8, 8]);
        assert_eq!(remaining_wait(&b, "x", 30).as_secs(), 16);
        assert_eq!(remaining_wait(&b, "y", 0).as_secs(), 1);
        b.reset(&"x".to_string());
        assert_eq!(remaining_wait(&b, "x", 30).as_secs(), 1);
    }
}
