//! The pod network of this node: a CNI configuration list (bridge + host-local on the
//! node's podCIDR; containerd adds loopback itself) that containerd's CRI plugin runs for every
//! sandbox. What the seed's manual steps do by hand — a bridge with the gateway address,
//! a veth per pod, a default route through the gateway — the reference plugins do here.

use std::path::Path;

use serde_json::{Value, json};

/// The file name containerd picks up (it reads the first file of its conf dir).
pub const CONFLIST: &str = "10-rkube.conflist";

/// The configuration list for a node whose pods get addresses from `pod_cidr`.
/// `bridge` names the Linux bridge (unique per cluster, ≤ 15 bytes) and `ipam_dir`
/// holds host-local's leases, so clusters on one machine never share either.
pub fn conflist(bridge: &str, pod_cidr: &str, ipam_dir: &Path) -> Value {
    json!({
        "cniVersion": "0.4.0",
        "name": "rkube",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": ipam_dir.display().to_string(),
                    "ranges": [[{"subnet": pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}]
                }
            }
        ]
    })
}

/// Writes the configuration list atomically (containerd may read it at any moment).
pub fn write(conf_dir: &Path, conflist: &Value) -> std::io::Result<()> {
    std::fs::create_dir_all(conf_dir)?;
    let tmp = conf_dir.join(format!(".{CONFLIST}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(conflist)?)?;
    std::fs::rename(tmp, conf_dir.join(CONFLIST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_and_range_come_from_the_node() {
        let c = conflist("rk0a1b2c3d", "10.244.3.0/24", Path::new("/d/agent/cni-ipam"));
        assert_eq!(c["plugins"][0]["bridge"], "rk0a1b2c3d");
        assert_eq!(c["plugins"][0]["ipam"]["ranges"][0][0]["subnet"], "10.244.3.0/24");
        assert_eq!(c["plugins"][0]["ipam"]["dataDir"], "/d/agent/cni-ipam");
        assert_eq!(c["plugins"][0]["isGateway"], true);
    }
}
