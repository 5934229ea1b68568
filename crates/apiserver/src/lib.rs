//! The Kubernetes API server of rkube.
//!
//! It serves the Kubernetes REST API over HTTPS so that the real kubectl, client-go,
//! kube-rs and the Python client work unchanged. Requests flow:
//! [`server`] (TLS, client-certificate authentication) → [`router`] (path parsing,
//! discovery, OpenAPI, health) → [`rest`] (get/list/create/update/patch/delete of any kind
//! in `rkube_registry::RESOURCES`) or [`watch`] → [`admission`] (defaulting, validation,
//! namespace and service checks) → `rkube_store::Store`. Reads and watches come from the
//! [`cache`], which follows the store. Errors are `rkube_apimachinery::ApiError` until
//! the edge turns them into `metav1.Status`.
//!
//! Start reading at [`run`].

use std::net::IpAddr;
use std::path::PathBuf;

pub mod admission;
pub mod auth;
pub mod body;
pub mod cache;
pub mod certs;
pub mod discovery;
pub mod ipalloc;
pub mod join;
pub mod metrics;
pub mod openapi;
pub mod proxy;
pub mod remotecommand;
pub mod rest;
pub mod reviews;
pub mod router;
pub mod server;
pub mod table;
pub mod tokens;
pub mod watch;

pub use server::{RunningServer, run};

/// The Kubernetes version whose API we serve (the one of the pinned `k8s-openapi` types).
pub const KUBERNETES_MAJOR: &str = "1";
pub const KUBERNETES_MINOR: &str = "33";
pub const GIT_VERSION: &str = "v1.33.0+rkube";

/// What the API server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub bind_address: IpAddr,
    pub port: u16,
    /// Where to write the admin kubeconfig once the API answers.
    pub kubeconfig: Option<PathBuf>,
    pub service_cidr: ipnet_lite::Ipv4Net,
    pub cluster_cidr: ipnet_lite::Ipv4Net,
    /// Extra names and addresses the serving certificate covers.
    pub tls_sans: Vec<String>,
    /// How often the store history is compacted (to the revision of one interval ago);
    /// watches from before it get 410 Gone. Upstream's `--etcd-compaction-interval`.
    pub compaction_interval: std::time::Duration,
    /// How long pods tolerate not-ready and unreachable nodes unless they say otherwise.
    pub default_tolerations: admission::TolerationSeconds,
}

/// A minimal IPv4 CIDR type, enough for the service and cluster ranges.
pub mod ipnet_lite {
    use std::net::Ipv4Addr;
    use std::str::FromStr;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Ipv4Net {
        pub addr: Ipv4Addr,
        pub prefix: u8,
    }

    impl Ipv4Net {
        pub fn network(&self) -> u32 {
            u32::from(self.addr) & self.mask()
        }
        pub fn mask(&self) -> u32 {
            if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) }
        }
        pub fn size(&self) -> u64 {
            1u64 << (32 - u32::from(self.prefix))
        }
        pub fn contains(&self, ip: Ipv4Addr) -> bool {
            u32::from(ip) & self.mask() == self.network()
        }
        /// The `n`-th address of the range.
        pub fn nth(&self, n: u32) -> Ipv4Addr {
            Ipv4Addr::from(self.network().wrapping_add(n))
        }
    }

    impl FromStr for Ipv4Net {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, Self::Err> {
            let (a, p) = s.split_once('/').ok_or_else(|| format!("invalid CIDR {s:?}: expected ADDRESS/PREFIX"))?;
            let addr: Ipv4Addr = a.parse().map_err(|_| format!("invalid CIDR {s:?}: bad IPv4 address"))?;
            let prefix: u8 = p.parse().map_err(|_| format!("invalid CIDR {s:?}: bad prefix length"))?;
            if prefix > 30 {
                return Err(format!("invalid CIDR {s:?}: prefix must be at most /30"));
            }
            Ok(Ipv4Net { addr, prefix })
        }
    }

    impl std::fmt::Display for Ipv4Net {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}/{}", Ipv4Addr::from(self.network()), self.prefix)
        }
    }
}
