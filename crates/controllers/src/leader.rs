//! Leader election through a `coordination.k8s.io/v1` Lease, as client-go's
//! leaderelection does it: the holder renews `renewTime` every retry period; another
//! candidate takes the Lease over once `renewTime + leaseDurationSeconds` has passed.
//! Writes carry the Lease's resourceVersion, so two candidates cannot both win a race.
//!
//! [`decide`] is the pure rule; [`LeaderElector`] is the loop around it.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// Timings, with client-go's defaults for kube-controller-manager.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    pub lease_duration: Duration,
    pub retry_period: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings { lease_duration: Duration::from_secs(15), retry_period: Duration::from_secs(2) }
    }
}

/// What a candidate should do with the Lease it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No Lease yet: create it, holding it.
    Create,
    /// We hold it: renew it.
    Renew,
    /// Its holder let it expire (or it has none): take it over.
    TakeOver,
    /// Someone else holds a live Lease.
    Follow { holder: String },
}

/// The rule of leader election, a pure function of the Lease and the time.
pub fn decide(lease: Option<&Lease>, identity: &str, now: Timestamp, default_duration: Duration) -> Step {
    let Some(lease) = lease else { return Step::Create };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    if holder == identity {
        return Step::Renew;
    }
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(default_duration);
    let renewed = spec.renew_time.map(|t| t.0).or(spec.acquire_time.map(|t| t.0));
    let expired = match renewed {
        None => true,
        Some(t) => t + jiff::SignedDuration::try_from(duration).unwrap_or(jiff::SignedDuration::MAX) < now,
    };
    if holder.is_empty() || expired { Step::TakeOver } else { Step::Follow { holder } }
}

/// Competes for one Lease in the background and tells whether we lead.
pub struct LeaderElector {
    leading: watch::Receiver<bool>,
}

impl LeaderElector {
    /// Starts competing for `namespace/name` as `identity`.
    pub fn start(client: Client, namespace: &str, name: &str, identity: &str, timings: Timings) -> LeaderElector {
        let (tx, rx) = watch::channel(false);
        let api: Api<Lease> = Api::namespaced(client, namespace);
        let (name, identity) = (name.to_string(), identity.to_string());
        tokio::spawn(async move {
            loop {
                let leading = match try_once(&api, &name, &identity, timings).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::debug!(lease = %name, error = %e, "leader election round failed");
                        false
                    }
                };
                if *tx.borrow() != leading {
                    tracing::info!(lease = %name, %identity, leading, "leadership changed");
                }
                if tx.send(leading).is_err() {
                    return;
                }
                tokio::time::sleep(timings.retry_period).await;
            }
        });
        LeaderElector { leading: rx }
    }

    /// Waits until we lead.
    pub async fn acquired(&mut self) {
        let _ = self.leading.wait_for(|l| *l).await;
    }

    /// Waits until we no longer lead.
    pub async fn lost(&mut self) {
        let _ = self.leading.wait_for(|l| !*l).await;
    }

    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }
}

async fn try_once(api: &Api<Lease>, name: &str, identity: &str, timings: Timings) -> Result<bool, kube::Error> {
    let current = api.get_opt(name).await?;
    let now = Timestamp::now();
    let step = decide(current.as_ref(), identity, now, timings.lease_duration);
    let seconds = i32::try_from(timings.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let write = |mut lease: Lease, take: bool| {
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if take {
            spec.holder_identity = Some(identity.to_string());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = Some(MicroTime(now));
        lease
    };
    match step {
        Step::Follow { .. } => Ok(false),
        Step::Create => {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(name.to_string()), ..Default::default() },
                spec: Some(LeaseSpec { lease_transitions: Some(-1), ..Default::default() }),
            };
            match api.create(&PostParams::default(), &write(lease, true)).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Step::Renew | Step::TakeOver => {
            let lease = current.expect("decide only renews or takes over an existing lease");
            // The resourceVersion in the body makes this a compare-and-swap.
            match api.replace(name, &PostParams::default(), &write(lease, step == Step::TakeOver)).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed: Option<Timestamp>, secs: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: renewed.map(MicroTime),
                lease_duration_seconds: Some(secs),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn leader_election_rule() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let ago = |s: i64| now - jiff::SignedDuration::from_secs(s);
        let d = Duration::from_secs(15);
        let cases = [
            (None, Step::Create),
            (Some(lease("me", Some(ago(100)), 15)), Step::Renew),
            (Some(lease("other", Some(ago(5)), 15)), Step::Follow { holder: "other".into() }),
            (Some(lease("other", Some(ago(16)), 15)), Step::TakeOver),
            (Some(lease("other", Some(ago(16)), 60)), Step::Follow { holder: "other".into() }),
            (Some(lease("", Some(ago(1)), 15)), Step::TakeOver),
            (Some(lease("other", None, 15)), Step::TakeOver),
        ];
        for (l, want) in cases {
            assert_eq!(decide(l.as_ref(), "me", now, d), want, "{l:?}");
        }
    }
}
