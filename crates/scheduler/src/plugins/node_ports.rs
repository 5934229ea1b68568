//! NodePorts: a `hostPort` can be taken once per node, protocol and address.

use crate::fit_error::Status;
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;

pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    let conflict = pod.host_ports.iter().any(|want| node.used_ports.iter().any(|used| want.conflicts(used)));
    conflict.then(|| Status::unschedulable(ERR_REASON))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{N, P};
    use std::sync::Arc;

    #[test]
    fn host_ports_by_table() {
        let cases = [
            (P::new("new"), Some(P::new("old").host_port(80, "TCP", "")), false),
            (P::new("new").host_port(80, "TCP", ""), None, false),
            (P::new("new").host_port(80, "TCP", ""), Some(P::new("old").host_port(80, "TCP", "")), true),
            (P::new("new").host_port(80, "", ""), Some(P::new("old").host_port(80, "TCP", "0.0.0.0")), true),
            (P::new("new").host_port(80, "UDP", ""), Some(P::new("old").host_port(80, "TCP", "")), false),
            (
                P::new("new").host_port(80, "TCP", "127.0.0.1"),
                Some(P::new("old").host_port(80, "TCP", "127.0.0.2")),
                false,
            ),
            (P::new("new").host_port(80, "TCP", "127.0.0.1"), Some(P::new("old").host_port(80, "TCP", "")), true),
            (P::new("new").host_port(8080, "TCP", ""), Some(P::new("old").host_port(80, "TCP", "")), false),
        ];
        for (i, (pod, existing, conflict)) in cases.into_iter().enumerate() {
            let mut node = NodeInfo::new(N::new("n").build());
            if let Some(e) = existing {
                node.add_pod(Arc::new(e.on("n").build()));
            }
            assert_eq!(filter(&pod.build(), &node).is_some(), conflict, "case {i}");
        }
    }
}
