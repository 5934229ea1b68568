//! From plans to nft commands: the full (replace-everything) script and the per-Service
//! deltas, both pure. [`Applied`] remembers what the table holds so a change to one
//! Service becomes only the commands that differ.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::planner::{BaseObject, ElementKey, MapName, Plan, ServiceRules};
use crate::services::ServiceKey;

/// One nft command on a per-Service object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    AddSet { name: String, timeout: u32 },
    AddChain(String),
    FlushChain(String),
    AddRule { chain: String, rule: String },
    AddElement { key: ElementKey, verdict: String },
    DeleteElement(ElementKey),
    DeleteChain(String),
    DeleteSet(String),
}

/// What the table holds (or will hold once the last script is applied).
///
/// Two Services may claim the same map key (e.g. the same external IP and port); nft can
/// hold only one, so the smallest Service key wins and the others wait in `claims` until
/// it lets go. This keeps full and incremental syncs in agreement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    services: BTreeMap<ServiceKey, ServiceRules>,
    claims: BTreeMap<ElementKey, BTreeMap<ServiceKey, String>>,
}

impl Applied {
    pub fn new(plan: Plan) -> Applied {
        let mut claims: BTreeMap<ElementKey, BTreeMap<ServiceKey, String>> = BTreeMap::new();
        for (svc, rules) in &plan.services {
            for (key, verdict) in &rules.elements {
                claims.entry(key.clone()).or_default().insert(svc.clone(), verdict.clone());
            }
        }
        Applied { services: plan.services, claims }
    }

    /// The rules recorded for one Service.
    pub fn rules(&self, key: &ServiceKey) -> Option<&ServiceRules> {
        self.services.get(key)
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// The map elements actually in the table: each key's winning claim.
    pub fn effective_elements(&self) -> BTreeMap<&ElementKey, &String> {
        self.claims.iter().filter_map(|(k, c)| Some((k, c.values().next()?))).collect()
    }

    /// Every per-Service command to build the table from empty (after the base).
    pub fn create_ops(&self) -> Vec<Op> {
        let mut ops = Vec::new();
        for rules in self.services.values() {
            ops.extend(rules.sets.iter().map(|(name, t)| Op::AddSet { name: name.clone(), timeout: *t }));
            ops.extend(rules.chains.keys().map(|c| Op::AddChain(c.clone())));
        }
        for rules in self.services.values() {
            for (chain, list) in &rules.chains {
                ops.extend(list.iter().map(|r| Op::AddRule { chain: chain.clone(), rule: r.clone() }));
            }
        }
        ops.extend(
            self.effective_elements()
                .into_iter()
                .map(|(key, verdict)| Op::AddElement { key: key.clone(), verdict: verdict.clone() }),
        );
        ops
    }

    /// Records that `key` now plans to `new` (`None`/empty: gone) and returns the commands
    /// turning the old table into the new one, ordered so every reference exists when it
    /// is made and nothing is deleted while still referenced.
    pub fn update(&mut self, key: &ServiceKey, new: Option<ServiceRules>) -> Vec<Op> {
        let new = new.filter(|r| !r.is_empty());
        let old = self.services.remove(key).unwrap_or_default();
        let empty = ServiceRules::default();
        let newr = new.as_ref().unwrap_or(&empty);
        let mut ops = Vec::new();

        // 1. New sets and (empty) chains first, so rules and elements can point at them.
        for (name, timeout) in &newr.sets {
            if !old.sets.contains_key(name) {
                ops.push(Op::AddSet { name: name.clone(), timeout: *timeout });
            }
        }
        for name in newr.chains.keys() {
            if !old.chains.contains_key(name) {
                ops.push(Op::AddChain(name.clone()));
            }
        }
        // 2. Fill new chains, refill changed ones.
        for (name, rules) in &newr.chains {
            match old.chains.get(name) {
                Some(prev) if prev == rules => continue,
                Some(_) => ops.push(Op::FlushChain(name.clone())),
                None => {}
            }
            ops.extend(rules.iter().map(|r| Op::AddRule { chain: name.clone(), rule: r.clone() }));
        }
        // 3. Map elements whose winning claim changed.
        let touched: Vec<ElementKey> = old.elements.keys().chain(newr.elements.keys()).cloned().collect();
        for ek in touched {
            let claims = self.claims.entry(ek.clone()).or_default();
            let before = claims.values().next().cloned();
            match newr.elements.get(&ek) {
                Some(v) => claims.insert(key.clone(), v.clone()),
                None => claims.remove(key),
            };
            let after = claims.values().next().cloned();
            if claims.is_empty() {
                self.claims.remove(&ek);
            }
            if before == after {
                continue;
            }
            if before.is_some() {
                ops.push(Op::DeleteElement(ek.clone()));
            }
            if let Some(verdict) = after {
                ops.push(Op::AddElement { key: ek, verdict });
            }
        }
        // 4. Old chains and sets, once nothing points at them: flushing first drops the
        //    references between the Service's own chains.
        let gone: Vec<&String> = old.chains.keys().filter(|c| !newr.chains.contains_key(*c)).collect();
        ops.extend(gone.iter().map(|c| Op::FlushChain((*c).clone())));
        ops.extend(gone.iter().map(|c| Op::DeleteChain((*c).clone())));
        ops.extend(old.sets.keys().filter(|s| !newr.sets.contains_key(*s)).map(|s| Op::DeleteSet(s.clone())));

        if let Some(new) = new {
            self.services.insert(key.clone(), new);
        }
        ops
    }
}

/// Renders the script that atomically replaces whatever table of that name exists with
/// the base plus `applied` (one transaction: `add` makes the `delete` safe when absent).
pub fn full_script(table: &str, base: &[BaseObject], applied: &Applied) -> String {
    let mut out = String::with_capacity(256 * applied.service_count() + 4096);
    let _ = writeln!(out, "add table ip {table}");
    let _ = writeln!(out, "delete table ip {table}");
    let _ = writeln!(out, "add table ip {table}");
    render_base(&mut out, table, base);
    let ops = applied.create_ops();
    // Elements go in batches: one command per map and chunk is much cheaper for nft to
    // parse than one command per element.
    let (elements, rest): (Vec<&Op>, Vec<&Op>) = ops.iter().partition(|op| matches!(op, Op::AddElement { .. }));
    for op in rest {
        render_op(&mut out, table, op);
    }
    for map in MapName::ALL {
        let items: Vec<String> = elements
            .iter()
            .filter_map(|op| match op {
                Op::AddElement { key, .. } if key.map == map && map.is_set() => Some(key.key.clone()),
                Op::AddElement { key, verdict } if key.map == map => Some(format!("{} : {verdict}", key.key)),
                _ => None,
            })
            .collect();
        for chunk in items.chunks(1000) {
            let _ = writeln!(out, "add element ip {table} {} {{ {} }}", map.as_str(), chunk.join(", "));
        }
    }
    out
}

/// Renders per-Service commands.
pub fn render(table: &str, ops: &[Op]) -> String {
    let mut out = String::new();
    for op in ops {
        render_op(&mut out, table, op);
    }
    out
}

fn render_base(out: &mut String, table: &str, base: &[BaseObject]) {
    for obj in base {
        let _ = match obj {
            BaseObject::Map { name, declaration, set: true } => {
                writeln!(out, "add set ip {table} {name} {{ {declaration} ; }}")
            }
            BaseObject::Map { name, declaration, set: false } => {
                writeln!(out, "add map ip {table} {name} {{ {declaration} ; }}")
            }
            BaseObject::Chain { name, hook: Some(hook) } => writeln!(out, "add chain ip {table} {name} {{ {hook} }}"),
            BaseObject::Chain { name, hook: None } => writeln!(out, "add chain ip {table} {name}"),
            BaseObject::Rule { chain, rule } => writeln!(out, "add rule ip {table} {chain} {rule}"),
        };
    }
}

fn render_op(out: &mut String, table: &str, op: &Op) {
    let _ = match op {
        Op::AddSet { name, timeout } => writeln!(
            out,
            "add set ip {table} {name} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ; }}"
        ),
        Op::AddChain(name) => writeln!(out, "add chain ip {table} {name}"),
        Op::FlushChain(name) => writeln!(out, "flush chain ip {table} {name}"),
        Op::AddRule { chain, rule } => writeln!(out, "add rule ip {table} {chain} {rule}"),
        Op::AddElement { key, .. } if key.map.is_set() => {
            writeln!(out, "add element ip {table} {} {{ {} }}", key.map.as_str(), key.key)
        }
        Op::AddElement { key, verdict } => {
            writeln!(out, "add element ip {table} {} {{ {} : {verdict} }}", key.map.as_str(), key.key)
        }
        Op::DeleteElement(key) => writeln!(out, "delete element ip {table} {} {{ {} }}", key.map.as_str(), key.key),
        Op::DeleteChain(name) => writeln!(out, "delete chain ip {table} {name}"),
        Op::DeleteSet(name) => writeln!(out, "delete set ip {table} {name}"),
    };
}
