//! Two per-namespace publishers of kube-controller-manager:
//!
//! - the ServiceAccount controller ([`run`]): a `default` ServiceAccount in every active
//!   namespace, created when the namespace appears and again whenever it is deleted;
//! - the root CA publisher ([`run_root_ca`], upstream's `root-ca-cert-publisher`): the
//!   `kube-root-ca.crt` ConfigMap (`ca.crt`: the cluster CA that signed the apiserver's
//!   serving certificate) in every namespace, restored when edited or deleted.
//!
//! Both reconcile namespaces and are woken by watches on the one object they keep per
//! namespace (a field selector on its name), so a deletion or edit is repaired at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::Context;
use crate::workqueue::Backoffs;

pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
pub const ROOT_CA_KEY: &str = "ca.crt";
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {what} in namespace {namespace}: {source}")]
    Get {
        what: &'static str,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot {action} {what} in namespace {namespace}: {source}")]
    Write {
        action: &'static str,
        what: &'static str,
        namespace: String,
        #[source]
        source: kube::Error,
    },
}

pub struct State {
    client: Client,
    root_ca_pem: String,
    failures: Backoffs<String>,
}

fn state(ctx: &Context) -> Arc<State> {
    Arc::new(State {
        client: ctx.client.clone(),
        root_ca_pem: ctx.options.root_ca_pem.clone(),
        failures: Backoffs::new(Duration::from_millis(200), Duration::from_secs(60)),
    })
}

fn namespace_of<K: ResourceExt>(o: K) -> Option<ObjectRef<Namespace>> {
    o.namespace().map(|ns| ObjectRef::new(&ns))
}

/// Starts the ServiceAccount controller.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let st = state(&ctx);
        let namespaces: Api<Namespace> = Api::all(st.client.clone());
        let accounts: Api<ServiceAccount> = Api::all(st.client.clone());
        let only_default = watcher::Config::default().fields(&format!("metadata.name={DEFAULT_SERVICE_ACCOUNT}"));
        Controller::new(namespaces, watcher::Config::default())
            .watches(accounts, only_default, namespace_of)
            .run(reconcile_service_account, error_policy, st)
            .for_each(|_| futures::future::ready(()))
            .await;
    })
}

/// Starts the root CA publisher.
pub fn run_root_ca(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let st = state(&ctx);
        if st.root_ca_pem.trim().is_empty() {
            tracing::warn!("no cluster CA given to the controllers: kube-root-ca.crt is not published");
            return;
        }
        let namespaces: Api<Namespace> = Api::all(st.client.clone());
        let configmaps: Api<ConfigMap> = Api::all(st.client.clone());
        let only_ours = watcher::Config::default().fields(&format!("metadata.name={ROOT_CA_CONFIGMAP}"));
        Controller::new(namespaces, watcher::Config::default())
            .watches(configmaps, only_ours, namespace_of)
            .run(reconcile_root_ca, error_policy, st)
            .for_each(|_| futures::future::ready(()))
            .await;
    })
}

fn error_policy(ns: Arc<Namespace>, error: &Error, st: Arc<State>) -> Action {
    tracing::warn!(namespace = %ns.name_any(), %error, "will retry");
    Action::requeue(st.failures.next(&ns.name_any()))
}

/// Whether a create failed only because the namespace is gone or terminating, which
/// retrying will not change (upstream ignores both).
fn namespace_unwritable(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || (s.code == 403 && s.message.contains("being terminated")))
}

#[tracing::instrument(skip_all, fields(namespace = %ns.name_any()))]
async fn reconcile_service_account(ns: Arc<Namespace>, st: Arc<State>) -> Result<Action, Error> {
    let name = ns.name_any();
    // Upstream only fills active namespaces: a terminating one refuses new content.
    if ns.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Active") != "Active"
        || ns.metadata.deletion_timestamp.is_some()
    {
        return Ok(Action::await_change());
    }
    let api: Api<ServiceAccount> = Api::namespaced(st.client.clone(), &name);
    let what = "the default ServiceAccount";
    let current = api.get_opt(DEFAULT_SERVICE_ACCOUNT).await.map_err(|source| Error::Get {
        what,
        namespace: name.clone(),
        source,
    })?;
    if current.is_none() {
        let sa = ServiceAccount {
            metadata: ObjectMeta { name: Some(DEFAULT_SERVICE_ACCOUNT.into()), ..Default::default() },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => tracing::info!("created the default ServiceAccount"),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) if namespace_unwritable(&e) => {}
            Err(source) => return Err(Error::Write { action: "create", what, namespace: name, source }),
        }
    }
    st.failures.reset(&name);
    Ok(Action::await_change())
}

/// What the root CA publisher does with a namespace's `kube-root-ca.crt`.
#[derive(Debug, Clone, PartialEq)]
pub enum RootCaAction {
    Nothing,
    Create(ConfigMap),
    /// Rewrite the data and the description (other fields and annotations are kept).
    Update(ConfigMap),
}

/// Upstream's rule: the data must be exactly `ca.crt`, and the description annotation
/// present (any non-empty value).
pub fn root_ca_action(current: Option<&ConfigMap>, ca_pem: &str) -> RootCaAction {
    let data = BTreeMap::from([(ROOT_CA_KEY.to_string(), ca_pem.to_string())]);
    let Some(cm) = current else {
        return RootCaAction::Create(ConfigMap {
            metadata: ObjectMeta {
                name: Some(ROOT_CA_CONFIGMAP.into()),
                annotations: Some(BTreeMap::from([(DESCRIPTION_ANNOTATION.to_string(), DESCRIPTION.to_string())])),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        });
    };
    let described =
        cm.metadata.annotations.as_ref().and_then(|a| a.get(DESCRIPTION_ANNOTATION)).is_some_and(|d| !d.is_empty());
    if cm.data.as_ref() == Some(&data) && described {
        return RootCaAction::Nothing;
    }
    let mut cm = cm.clone();
    cm.data = Some(data);
    cm.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
    RootCaAction::Update(cm)
}

#[tracing::instrument(skip_all, fields(namespace = %ns.name_any()))]
async fn reconcile_root_ca(ns: Arc<Namespace>, st: Arc<State>) -> Result<Action, Error> {
    let name = ns.name_any();
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let api: Api<ConfigMap> = Api::namespaced(st.client.clone(), &name);
    let what = "the kube-root-ca.crt ConfigMap";
    let current =
        api.get_opt(ROOT_CA_CONFIGMAP).await.map_err(|source| Error::Get { what, namespace: name.clone(), source })?;
    match root_ca_action(current.as_ref(), &st.root_ca_pem) {
        RootCaAction::Nothing => {}
        RootCaAction::Create(cm) => match api.create(&PostParams::default(), &cm).await {
            Ok(_) => tracing::info!("published kube-root-ca.crt"),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) if namespace_unwritable(&e) => {}
            Err(source) => return Err(Error::Write { action: "create", what, namespace: name, source }),
        },
        RootCaAction::Update(cm) => match api.replace(ROOT_CA_CONFIGMAP, &PostParams::default(), &cm).await {
            Ok(_) => tracing::info!("restored kube-root-ca.crt"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => return Err(Error::Write { action: "update", what, namespace: name, source }),
        },
    }
    st.failures.reset(&name);
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(data: &[(&str, &str)], annotations: &[(&str, &str)]) -> ConfigMap {
        let map = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(ROOT_CA_CONFIGMAP.into()),
                resource_version: Some("7".into()),
                annotations: (!annotations.is_empty()).then(|| map(annotations)),
                ..Default::default()
            },
            data: (!data.is_empty()).then(|| map(data)),
            ..Default::default()
        }
    }

    #[test]
    fn the_root_ca_configmap_is_kept_as_upstream() {
        let ca = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n";
        let good = cm(&[("ca.crt", ca)], &[(DESCRIPTION_ANNOTATION, DESCRIPTION)]);
        let created = match root_ca_action(None, ca) {
            RootCaAction::Create(c) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(created.data, good.data);
        assert_eq!(created.metadata.annotations, good.metadata.annotations);
        assert_eq!(created.metadata.name.as_deref(), Some(ROOT_CA_CONFIGMAP));
        let cases = [
            (good.clone(), false),
            (cm(&[("ca.crt", ca)], &[(DESCRIPTION_ANNOTATION, "something else")]), false),
            (cm(&[("ca.crt", "tampered")], &[(DESCRIPTION_ANNOTATION, DESCRIPTION)]), true),
            (cm(&[("ca.crt", ca), ("extra", "x")], &[(DESCRIPTION_ANNOTATION, DESCRIPTION)]), true),
            (cm(&[], &[(DESCRIPTION_ANNOTATION, DESCRIPTION)]), true),
            (cm(&[("ca.crt", ca)], &[]), true),
            (cm(&[("ca.crt", ca)], &[(DESCRIPTION_ANNOTATION, "")]), true),
        ];
        for (current, rewrite) in cases {
            match root_ca_action(Some(&current), ca) {
                RootCaAction::Nothing => assert!(!rewrite, "{current:?}"),
                RootCaAction::Update(c) => {
                    assert!(rewrite, "{current:?}");
                    assert_eq!(c.data, good.data);
                    let desc = c.metadata.annotations.as_ref().and_then(|a| a.get(DESCRIPTION_ANNOTATION));
                    assert_eq!(desc.map(String::as_str), Some(DESCRIPTION));
                    // The update is a compare-and-swap on what was read.
                    assert_eq!(c.metadata.resource_version.as_deref(), Some("7"));
                }
                RootCaAction::Create(_) => panic!("it exists: {current:?}"),
            }
        }
        // Other annotations survive a repair.
        let mut extra = cm(&[("ca.crt", "old")], &[("team", "a")]);
        extra.metadata.labels = Some(BTreeMap::from([("l".to_string(), "v".to_string())]));
        let RootCaAction::Update(fixed) = root_ca_action(Some(&extra), ca) else { panic!("should update") };
        assert_eq!(fixed.metadata.annotations.unwrap().get("team").map(String::as_str), Some("a"));
        assert!(fixed.metadata.labels.is_some());
    }
}
