//! Service ClusterIP and NodePort allocation, as pure functions over the set in use.
//!
//! The caller (service admission) holds one lock while it reads the addresses in use
//! from the cache, picks, and stores the Service, so two creates never get one address.
//! As upstream, the lower part of the range (1/16, between 16 and 256 addresses) is kept
//! for addresses users ask for (such as the cluster DNS, `.10`), and dynamic picks come
//! from above it when possible.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use rand::Rng;

use crate::ipnet_lite::Ipv4Net;

pub const NODE_PORT_MIN: u16 = 30000;
pub const NODE_PORT_MAX: u16 = 32767;

/// Picks a free ClusterIP: never the network address, the broadcast address or `.1`
/// (the `kubernetes` Service).
pub fn pick_cluster_ip(cidr: &Ipv4Net, used: &HashSet<Ipv4Addr>, rng: &mut impl Rng) -> Option<Ipv4Addr> {
    let size = cidr.size();
    if size < 4 {
        return None;
    }
    let usable = size - 2; // addresses 1 ..= size-2
    let static_band = (size / 16).clamp(16, 256).min(usable);
    // Try the dynamic band first, then the static band, each from a random start.
    let bands = [(static_band + 1, size - 2), (2, static_band)];
    for (lo, hi) in bands {
        if lo > hi {
            continue;
        }
        let span = hi - lo + 1;
        let start = rng.random_range(0..span);
        for i in 0..span {
            let n = lo + (start + i) % span;
            let ip = cidr.nth(n as u32);
            if !used.contains(&ip) {
                return Some(ip);
            }
        }
    }
    None
}

/// Picks a free NodePort from 30000–32767.
pub fn pick_node_port(used: &HashSet<u16>, rng: &mut impl Rng) -> Option<u16> {
    let span = u32::from(NODE_PORT_MAX - NODE_PORT_MIN) + 1;
    let start = rng.random_range(0..span);
    (0..span).map(|i| NODE_PORT_MIN + ((start + i) % span) as u16).find(|p| !used.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ips_stay_in_range_and_avoid_reserved() {
        let cidr: Ipv4Net = "10.96.0.0/28".parse().unwrap();
        let mut used = HashSet::new();
        used.insert(cidr.nth(1));
        let mut rng = rand::rng();
        let mut got = HashSet::new();
        while let Some(ip) = pick_cluster_ip(&cidr, &used, &mut rng) {
            assert!(cidr.contains(ip));
            assert_ne!(ip, cidr.nth(0));
            assert_ne!(ip, cidr.nth(15));
            assert!(got.insert(ip), "duplicate {ip}");
            used.insert(ip);
        }
        // 16 addresses minus network, broadcast and .1.
        assert_eq!(got.len(), 13);
    }

    #[test]
    fn dynamic_band_is_preferred() {
        let cidr: Ipv4Net = "10.96.0.0/12".parse().unwrap();
        let mut rng = rand::rng();
        for _ in 0..100 {
            let ip = pick_cluster_ip(&cidr, &HashSet::new(), &mut rng).unwrap();
            assert!(u32::from(ip) - cidr.network() > 256, "{ip} in the static band");
        }
    }

    #[test]
    fn node_ports_are_unique_until_exhausted() {
        let mut used = HashSet::new();
        let mut rng = rand::rng();
        for _ in 0..2768 {
            let p = pick_node_port(&used, &mut rng).unwrap();
            assert!((NODE_PORT_MIN..=NODE_PORT_MAX).contains(&p));
            assert!(used.insert(p));
        }
        assert_eq!(pick_node_port(&used, &mut rng), None);
    }
}
