//! Addresses, interface names and baseline routes for a topology built from network
//! namespaces.
//!
//! Node `i` owns `10.255.i/256.i%256/32` on its loopback; link `k` is the /30
//! `10.0.0.0 + 4k` (`.1` on the lower-id end). Each node's interface towards node `j`
//! is `x0-j`.
//!
//! Baseline routes: the primary next hop is the topology's fewest-hop path. The backup
//! is a loop-free alternate (RFC 5286), a neighbour whose own primary path to the
//! destination does not come back through us; where none exists (LFA covers 85% of a
//! grid's routes), a U-turn alternate (draft-atlas-ip-local-protect-uturn): a
//! neighbour whose primary *is* us but which, for packets arriving from us, has a
//! route of its own that avoids both of us (installed in a per-incoming-interface
//! table). Both are checked by walking the installed next hops, so the kernel's
//! carrier failover can never loop. With U-turns a grid is fully covered.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use x0_actuator::{BaselineRoute, Neighbour, NodeNetwork};
use x0_schema::{NodeId, Topology};

/// Node `i`'s own address (a /32 on its loopback).
pub fn node_address(i: NodeId) -> Ipv4Addr {
    Ipv4Addr::new(10, 255, (i / 256) as u8, (i % 256) as u8)
}

/// Addresses of the lower- and higher-id ends of link `k`.
pub fn link_addresses(k: usize) -> (Ipv4Addr, Ipv4Addr) {
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 0)) + 4 * k as u32;
    (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
}

/// Name of the interface towards `peer`.
pub fn iface_name(peer: NodeId) -> String {
    format!("x0-{peer}")
}

/// Primary and loop-free backup next hop of every node towards every destination:
/// `routes[node][dst] = (primary, backup)`.
pub fn baseline_routes(topo: &Topology) -> BaselineRoutes {
    baseline_plan(topo).0
}

/// U-turn routes: `uturn[c][a][dst] = via`: at node `c`, packets for `dst` arriving
/// from neighbour `a` (whose primary towards `dst` failed) go via `via`.
pub type UturnRoutes = Vec<BTreeMap<NodeId, BTreeMap<NodeId, NodeId>>>;
/// Per node: destination → (primary next hop, backup next hop).
pub type BaselineRoutes = Vec<BTreeMap<NodeId, (NodeId, Option<NodeId>)>>;

/// Baseline primaries and backups, plus the U-turn routes the backups rely on.
pub fn baseline_plan(topo: &Topology) -> (BaselineRoutes, UturnRoutes) {
    let n = topo.len();
    let mut routes = vec![BTreeMap::new(); n];
    let mut uturn: UturnRoutes = vec![BTreeMap::new(); n];
    for dst in 0..n {
        let next = topo.baseline_next_hops(dst);
        let dist = topo.distances_to(dst, &|_, _| true);
        // At c, for packets from neighbour a whose primary is a: an exit avoiding both.
        let uturn_exit = |c: NodeId, a: NodeId| -> Option<NodeId> {
            topo.neighbours(c)
                .iter()
                .copied()
                .filter(|&x| x != a && dist[x] != usize::MAX && reaches_without(&next, x, dst, &[a, c], n))
                .min_by_key(|&x| (dist[x], x))
        };
        for a in (0..n).filter(|&a| a != dst) {
            let Some(p) = next[a] else { continue };
            let dist = &dist;
            let candidates = || topo.neighbours(a).iter().copied().filter(move |&c| c != p && dist[c] != usize::MAX);
            let lfa = candidates().filter(|&c| reaches_without(&next, c, dst, &[a], n)).min_by_key(|&c| (dist[c], c));
            let backup = lfa.or_else(|| {
                let (c, exit) = candidates()
                    .filter(|&c| next[c] == Some(a))
                    .filter_map(|c| uturn_exit(c, a).map(|x| (c, x)))
                    .min_by_key(|&(c, _)| (dist[c], c))?;
                uturn[c].entry(a).or_default().insert(dst, exit);
                Some(c)
            });
            routes[a].insert(dst, (p, backup));
        }
    }
    (routes, uturn)
}

/// Whether following primaries from `from` reaches `dst` without visiting `avoid`.
fn reaches_without(next: &[Option<NodeId>], from: NodeId, dst: NodeId, avoid: &[NodeId], n: usize) -> bool {
    let mut at = from;
    for _ in 0..n {
        if at == dst {
            return true;
        }
        if avoid.contains(&at) {
            return false;
        }
        match next[at] {
            Some(h) => at = h,
            None => return false,
        }
    }
    false
}

/// Share of (node, destination) pairs that have a loop-free backup.
pub fn backup_coverage(routes: &[BTreeMap<NodeId, (NodeId, Option<NodeId>)>]) -> f64 {
    let (with, all) = routes
        .iter()
        .flat_map(|r| r.values())
        .fold((0usize, 0usize), |(w, a), (_, b)| (w + usize::from(b.is_some()), a + 1));
    if all == 0 {
        1.0
    } else {
        with as f64 / all as f64
    }
}

/// Every node's [`NodeNetwork`].
pub fn node_networks(topo: &Topology) -> Vec<NodeNetwork> {
    let (routes, uturn) = baseline_plan(topo);
    let destinations: BTreeMap<String, Ipv4Addr> =
        (0..topo.len()).map(|i| (topo.name(i).to_string(), node_address(i))).collect();
    let mut neighbours: Vec<Vec<Neighbour>> = vec![Vec::new(); topo.len()];
    for (k, &(a, b)) in topo.links().iter().enumerate() {
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        let (lo_addr, hi_addr) = link_addresses(k);
        neighbours[lo].push(Neighbour {
            node: topo.name(hi).into(),
            iface: iface_name(hi),
            local: lo_addr,
            peer: hi_addr,
        });
        neighbours[hi].push(Neighbour {
            node: topo.name(lo).into(),
            iface: iface_name(lo),
            local: hi_addr,
            peer: lo_addr,
        });
    }
    (0..topo.len())
        .map(|i| NodeNetwork {
            node: topo.name(i).to_string(),
            address: node_address(i),
            neighbours: std::mem::take(&mut neighbours[i]),
            destinations: destinations.clone(),
            baseline: routes[i]
                .iter()
                .map(|(&d, &(p, b))| {
                    let name = |x: NodeId| topo.name(x).to_string();
                    (name(d), BaselineRoute { primary: name(p), backup: b.map(name) })
                })
                .collect(),
            uturn: uturn[i]
                .iter()
                .map(|(&from, r)| {
                    let name = |x: NodeId| topo.name(x).to_string();
                    (name(from), r.iter().map(|(&d, &via)| (name(d), name(via))).collect())
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use x0_schema::Scenario;

    fn grid16() -> Topology {
        let s: Scenario = toml::from_str(
            r#"
            name = "g"
            duration = "10s"
            [topology]
            shape = "grid"
            nodes = 16
            seed = 1
            [traffic]
            pairs = 20
            rate_pps = 50
            "#,
        )
        .unwrap();
        Topology::generate(&s.topology).unwrap()
    }

    #[test]
    fn backups_never_loop_back_and_differ_from_primaries() {
        let topo = grid16();
        let (routes, uturn) = baseline_plan(&topo);
        for (a, r) in routes.iter().enumerate() {
            for (&d, &(p, b)) in r {
                assert!(topo.has_link(a, p));
                if let Some(b) = b {
                    assert_ne!(b, p);
                    assert!(topo.has_link(a, b));
                    // from b, the primaries reach d without returning to a, or b
                    // U-turns packets from a onto an exit that avoids both
                    let next = topo.baseline_next_hops(d);
                    let lfa = reaches_without(&next, b, d, &[a], topo.len());
                    let uturn = uturn[b]
                        .get(&a)
                        .and_then(|r| r.get(&d))
                        .is_some_and(|&x| x != a && reaches_without(&next, x, d, &[a, b], topo.len()));
                    assert!(lfa || uturn, "{a}->{d} via {b}");
                }
            }
        }
        assert_eq!(backup_coverage(&routes), 1.0, "LFA + U-turn cover every route of a grid");
    }

    #[test]
    fn addresses_are_unique() {
        let topo = grid16();
        let nets = node_networks(&topo);
        let mut seen = std::collections::HashSet::new();
        for n in &nets {
            assert!(seen.insert(n.address));
            for nb in &n.neighbours {
                assert!(seen.insert(nb.local), "{nb:?}");
            }
        }
    }
}
