//! Why a pod fits nowhere, worded exactly as kube-scheduler words it, because users
//! (and their tooling) read and grep these messages in `kubectl describe pod`:
//!
//! `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {spray:
//! mortein}. preemption: 0/3 nodes are available: 3 Preemption is not helpful for
//! scheduling.`
//!
//! Reasons are counted per node, rendered as `"<count> <reason>"` and sorted as strings
//! (Go's `sort.Strings`, so `"10 …"` sorts before `"2 …"`, as upstream).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// How bad a filter failure is (upstream's status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Could fit if pods were removed from the node (preemption might help).
    Unschedulable,
    /// Removing pods would not help (`UnschedulableAndUnresolvable`).
    Unresolvable,
}

/// One node's verdict from the first filter that rejected it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<Cow<'static, str>>,
}

impl Status {
    pub fn unschedulable(reason: impl Into<Cow<'static, str>>) -> Status {
        Status { code: Code::Unschedulable, reasons: vec![reason.into()] }
    }

    pub fn unresolvable(reason: impl Into<Cow<'static, str>>) -> Status {
        Status { code: Code::Unresolvable, reasons: vec![reason.into()] }
    }
}

/// A count of nodes per reason.
pub type Histogram = BTreeMap<String, usize>;

/// The outcome of a scheduling attempt that found no node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FitError {
    /// The cluster has no nodes at all (upstream's `ErrNoNodesAvailable`).
    #[error("no nodes available to schedule pods")]
    NoNodesAvailable,
    #[error("{0}")]
    Unfit(Diagnosis),
}

/// What every node said, and what preemption would have said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub num_all_nodes: usize,
    /// A PreFilter rejected the pod for all nodes at once; then no per-node reasons are shown.
    pub pre_filter_msg: Option<String>,
    pub reasons: Histogram,
    /// The PostFilter (preemption) verdict, `preemption: …`.
    pub post_filter_msg: Option<String>,
}

/// `"0/N nodes are available: a, b."`, the shape both the main message and the
/// preemption message take.
pub fn render_nodes(num_all_nodes: usize, pre_filter_msg: Option<&str>, reasons: &Histogram) -> String {
    let mut msg = format!("0/{num_all_nodes} nodes are available:");
    if let Some(pre) = pre_filter_msg {
        msg.push_str(&format!(" {pre}."));
    } else if !reasons.is_empty() {
        let mut parts: Vec<String> = reasons.iter().map(|(reason, n)| format!("{n} {reason}")).collect();
        parts.sort();
        msg.push_str(&format!(" {}.", parts.join(", ")));
    }
    msg
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render_nodes(self.num_all_nodes, self.pre_filter_msg.as_deref(), &self.reasons))?;
        if let Some(post) = &self.post_filter_msg {
            write!(f, " {post}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(pairs: &[(&str, usize)]) -> Histogram {
        pairs.iter().map(|(r, n)| (r.to_string(), *n)).collect()
    }

    #[test]
    fn renders_upstream_messages() {
        let d = Diagnosis {
            num_all_nodes: 3,
            pre_filter_msg: None,
            reasons: hist(&[("node(s) had untolerated taint {spray: mortein}", 2), ("Insufficient cpu", 1)]),
            post_filter_msg: Some(format!(
                "preemption: {}",
                render_nodes(3, None, &hist(&[("Preemption is not helpful for scheduling", 3)]))
            )),
        };
        assert_eq!(
            FitError::Unfit(d).to_string(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {spray: mortein}. \
             preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
        assert_eq!(FitError::NoNodesAvailable.to_string(), "no nodes available to schedule pods");
    }

    #[test]
    fn sorts_as_strings_like_go() {
        let s = render_nodes(12, None, &hist(&[("Too many pods", 2), ("Insufficient memory", 10)]));
        assert_eq!(s, "0/12 nodes are available: 10 Insufficient memory, 2 Too many pods.");
        let s = render_nodes(3, None, &hist(&[("b", 1), ("a", 1), ("c", 1)]));
        assert_eq!(s, "0/3 nodes are available: 1 a, 1 b, 1 c.");
    }

    #[test]
    fn prefilter_message_replaces_reasons() {
        let d = Diagnosis {
            num_all_nodes: 2,
            pre_filter_msg: Some("pod affinity terms conflict".into()),
            reasons: hist(&[("ignored", 2)]),
            post_filter_msg: Some("preemption: not eligible due to preemptionPolicy=Never.".into()),
        };
        assert_eq!(
            d.to_string(),
            "0/2 nodes are available: pod affinity terms conflict. preemption: not eligible due to preemptionPolicy=Never."
        );
    }
}
