//! networking.k8s.io and discovery.k8s.io kinds.

use jiff::Timestamp;
use serde_json::Value;

use crate::core::load_balancer_addresses;
use crate::duration::age;
use crate::fields::{arr_at, format_label_selector, list_with_more, name, opt_int, opt_str, str_at};
use crate::table::{AGE, NAME, Printer, cells, col};

pub(crate) static INGRESS: Printer = Printer {
    columns: &[
        NAME,
        col("Class", "string", "IngressClass that implements this ingress."),
        col("Hosts", "string", "Hosts the rules match."),
        col("Address", "string", "Load-balancer addresses of the ingress."),
        col("Ports", "string", "Ports the ingress listens on."),
        AGE,
    ],
    cells: ingress_cells,
};

fn ingress_cells(ing: &Value, now: Timestamp) -> Vec<Value> {
    let ports = if arr_at(ing, "/spec/tls").is_empty() { "80" } else { "80, 443" };
    let address: Vec<String> = load_balancer_addresses(ing).into_iter().collect();
    cells![
        name(ing),
        opt_str(ing, "/spec/ingressClassName").unwrap_or("<none>"),
        format_hosts(arr_at(ing, "/spec/rules")),
        address.join(","),
        ports,
        age(ing, now),
    ]
}

fn format_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut hosts = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
            break;
        }
        let host = str_at(rule, "/host");
        if !host.is_empty() {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return "*".to_string();
    }
    let joined = hosts.join(",");
    // Upstream counts the overflow in rules, whether or not they name a host.
    if more { format!("{joined} + {} more...", rules.len() - MAX) } else { joined }
}

pub(crate) static INGRESS_CLASS: Printer = Printer {
    columns: &[
        NAME,
        col("Controller", "string", "Controller that implements the class."),
        col("Parameters", "string", "Resource holding extra parameters, as kind.group/name."),
        AGE,
    ],
    cells: |ic, now| {
        let parameters = match ic.pointer("/spec/parameters").filter(|p| p.is_object()) {
            None => "<none>".to_string(),
            Some(p) => {
                let kind = str_at(p, "/kind");
                let kind = match opt_str(p, "/apiGroup") {
                    Some(group) => format!("{kind}.{group}"),
                    None => kind.to_string(),
                };
                format!("{kind}/{}", str_at(p, "/name"))
            }
        };
        cells![name(ic), str_at(ic, "/spec/controller"), parameters, age(ic, now)]
    },
};

pub(crate) static NETWORK_POLICY: Printer = Printer {
    columns: &[NAME, col("Pod-Selector", "string", "Pods the policy applies to."), AGE],
    cells: |np, now| cells![name(np), format_label_selector(np.pointer("/spec/podSelector")), age(np, now)],
};

pub(crate) static ENDPOINT_SLICE: Printer = Printer {
    columns: &[
        NAME,
        col("AddressType", "string", "IPv4, IPv6 or FQDN."),
        col("Ports", "string", "Ports of the slice."),
        col("Endpoints", "string", "Addresses of the slice's endpoints."),
        AGE,
    ],
    cells: endpoint_slice_cells,
};

fn endpoint_slice_cells(slice: &Value, now: Timestamp) -> Vec<Value> {
    const MAX: usize = 3;
    let ports = arr_at(slice, "/ports");
    let port_list: Vec<String> = ports
        .iter()
        .take(MAX)
        .map(|p| match (opt_int(p, "/port"), opt_str(p, "/name")) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => "*".to_string(),
        })
        .collect();
    let addresses: Vec<String> = arr_at(slice, "/endpoints")
        .iter()
        .flat_map(|e| arr_at(e, "/addresses").iter().filter_map(Value::as_str))
        .map(str::to_string)
        .collect();
    cells![
        name(slice),
        str_at(slice, "/addressType"),
        list_with_more(&port_list, ports.len(), MAX),
        list_with_more(&addresses, addresses.len(), MAX),
        age(slice, now),
    ]
}
