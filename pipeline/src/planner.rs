//! Planning reroutes: which nodes must change their route to which destinations so
//! that no traffic crosses a faulted element, with a disjoint backup next hop for the
//! kernel to fail over to on carrier loss.
//!
//! Only routes whose current path crosses a fault change; everything else keeps its
//! route (a controller that re-optimises the whole mesh on every incident flaps routes
//! for nothing). A broken node takes the next hop of the cheapest healthy path; nodes
//! downstream keep theirs unless broken too, which keeps the result loop-free.

use crate::config::PlannerConfig;
use crate::disjoint::{disjoint_paths, CostGraph};
use crate::features::WindowFeatures;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use x0_schema::{Action, Element, NodeId, Topology};

/// A path cost and its node, ordered by cost (then node) for the Dijkstra heap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cost(f64, NodeId);

impl Eq for Cost {}

impl PartialOrd for Cost {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Cost {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// A route we installed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Installed {
    primary: NodeId,
    backup: Option<NodeId>,
    incident: String,
}

/// One planned route change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlannedChange {
    pub target: String,
    pub action: Action,
}

/// What the planner decided and why.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Plan {
    pub changes: Vec<PlannedChange>,
    /// Why this plan, which alternatives, which guardrails held what back.
    pub explanation: Vec<String>,
}

/// The planner's state beyond its inventory and configuration: the routes it installed,
/// the faults it routes around, link costs, the per-route guardrail's history.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct PlannerMemory {
    installed: BTreeMap<(NodeId, NodeId), Installed>,
    faults: BTreeMap<String, Element>,
    cost: HashMap<(NodeId, NodeId), f64>,
    changes_per_route: HashMap<(NodeId, NodeId), VecDeque<i64>>,
}

#[derive(Debug)]
pub(crate) struct Planner {
    topo: Topology,
    config: PlannerConfig,
    installed: BTreeMap<(NodeId, NodeId), Installed>,
    faults: BTreeMap<String, Element>,
    /// ETX-like link cost per (low, high) link, with hysteresis.
    cost: HashMap<(NodeId, NodeId), f64>,
    /// When each (node, destination) route changed in the last minute.
    changes_per_route: HashMap<(NodeId, NodeId), VecDeque<i64>>,
    /// Baseline next hops toward recently used destinations (one BFS each), bounded:
    /// a full table would be n² entries (1.6 GB at 10,000 nodes).
    baseline: HashMap<NodeId, Vec<Option<NodeId>>>,
    baseline_order: VecDeque<NodeId>,
}

/// Next-hop entries the baseline cache may hold (16 bytes each: 64 MB).
const BASELINE_ENTRIES: usize = 4_000_000;

impl Planner {
    pub(crate) fn new(topo: Topology, config: PlannerConfig) -> Self {
        Planner {
            topo,
            config,
            installed: BTreeMap::new(),
            faults: BTreeMap::new(),
            cost: HashMap::new(),
            changes_per_route: HashMap::new(),
            baseline: HashMap::new(),
            baseline_order: VecDeque::new(),
        }
    }

    /// What it must not forget across a restart.
    pub(crate) fn memory(&self) -> PlannerMemory {
        PlannerMemory {
            installed: self.installed.clone(),
            faults: self.faults.clone(),
            cost: self.cost.clone(),
            changes_per_route: self.changes_per_route.clone(),
        }
    }

    /// Takes up where a checkpointed planner left off.
    pub(crate) fn restore(&mut self, m: PlannerMemory) {
        self.installed = m.installed;
        self.faults = m.faults;
        self.cost = m.cost;
        self.changes_per_route = m.changes_per_route;
    }

    /// Updates link costs from a window's loss: ETX = 1 / (delivery a→b · delivery b→a).
    /// A cost moves only when it changes by more than 20% (hysteresis against noise).
    pub(crate) fn observe(&mut self, f: &WindowFeatures) {
        let mut loss: HashMap<(NodeId, NodeId), f64> = HashMap::new();
        for l in &f.links {
            let (Some(a), Some(b)) = (self.topo.id(&l.node), self.topo.id(&l.peer)) else { continue };
            let p = l.loss_ratio.or(l.probe_loss).unwrap_or(0.0).clamp(0.0, 0.99);
            loss.insert((a, b), p);
        }
        for &(a, b) in self.topo.links() {
            let fwd = 1.0 - loss.get(&(a, b)).copied().unwrap_or(0.0);
            let rev = 1.0 - loss.get(&(b, a)).copied().unwrap_or(0.0);
            let etx = 1.0 / (fwd * rev).max(0.01);
            let current = self.cost.entry((a, b)).or_insert(1.0);
            if (etx - *current).abs() / *current > 0.2 {
                *current = etx;
            }
        }
    }

    fn link_cost(&self, a: NodeId, b: NodeId) -> f64 {
        self.cost.get(&(a.min(b), a.max(b))).copied().unwrap_or(1.0)
    }

    fn faulted_nodes(&self) -> HashSet<NodeId> {
        self.faults
            .values()
            .filter_map(|e| match e {
                Element::Node { id } => self.topo.id(id),
                _ => None,
            })
            .collect()
    }

    fn faulted_links(&self) -> HashSet<(NodeId, NodeId)> {
        self.faults
            .values()
            .filter_map(|e| match e {
                Element::Link { a, b } => self.topo.id(a).zip(self.topo.id(b)).map(|(a, b)| (a.min(b), a.max(b))),
                _ => None,
            })
            .collect()
    }

    fn baseline_next(&mut self, s: NodeId, d: NodeId) -> Option<NodeId> {
        if !self.baseline.contains_key(&d) {
            let capacity = (BASELINE_ENTRIES / self.topo.len().max(1)).max(2);
            while self.baseline.len() >= capacity {
                let Some(old) = self.baseline_order.pop_front() else { break };
                self.baseline.remove(&old);
            }
            self.baseline.insert(d, self.topo.baseline_next_hops(d));
            self.baseline_order.push_back(d);
        }
        self.baseline[&d][s]
    }

    /// The destinations some route of which crosses a fault. A route crosses a faulted
    /// link at one of its ends, and a faulted node from one of its neighbours, so only
    /// those nodes' next hops need looking at: one BFS from each of them and from each
    /// of their neighbours gives every baseline next hop they have (the first neighbour
    /// one hop closer), instead of one BFS per destination of the mesh.
    fn affected_destinations(&self, bad_nodes: &HashSet<NodeId>, bad_links: &HashSet<(NodeId, NodeId)>) -> Vec<NodeId> {
        let n = self.topo.len();
        let mut ends: Vec<NodeId> = bad_links.iter().flat_map(|&(a, b)| [a, b]).collect();
        for &c in bad_nodes {
            ends.extend(self.topo.neighbours(c).iter().copied());
        }
        ends.sort_unstable();
        ends.dedup();
        ends.retain(|x| !bad_nodes.contains(x));
        let mut hops: HashMap<NodeId, Vec<usize>> = HashMap::new();
        let mut affected = vec![false; n];
        for &x in &ends {
            for &v in std::iter::once(&x).chain(self.topo.neighbours(x)) {
                hops.entry(v).or_insert_with(|| self.topo.distances_to(v, &|_, _| true));
            }
            let from_x = &hops[&x];
            for (d, seen) in affected.iter_mut().enumerate() {
                if *seen || d == x || bad_nodes.contains(&d) || from_x[d] == usize::MAX {
                    continue;
                }
                let next = match self.installed.get(&(x, d)) {
                    Some(r) => Some(r.primary),
                    None => self.topo.neighbours(x).iter().copied().find(|y| {
                        let to_d = hops[y][d];
                        to_d != usize::MAX && to_d + 1 == from_x[d]
                    }),
                };
                *seen = next
                    .is_some_and(|y| bad_links.contains(&(x.min(y), x.max(y))) || (bad_nodes.contains(&y) && y != d));
            }
        }
        (0..n).filter(|&d| affected[d]).collect()
    }

    fn effective_next(&mut self, s: NodeId, d: NodeId) -> Option<NodeId> {
        match self.installed.get(&(s, d)) {
            Some(r) => Some(r.primary),
            None => self.baseline_next(s, d),
        }
    }

    /// Nodes whose current path to `d` crosses a fault, loops or dead-ends.
    fn broken_towards(
        &mut self,
        d: NodeId,
        bad_nodes: &HashSet<NodeId>,
        bad_links: &HashSet<(NodeId, NodeId)>,
    ) -> Vec<NodeId> {
        let n = self.topo.len();
        // 0 unknown, 1 fine, 2 broken
        let mut state = vec![0u8; n];
        state[d] = 1;
        for s in 0..n {
            if state[s] != 0 || bad_nodes.contains(&s) {
                continue;
            }
            let mut walk = vec![s];
            let mut on_walk = HashSet::from([s]);
            let verdict = loop {
                let at = *walk.last().expect("non-empty");
                if state[at] != 0 {
                    break state[at];
                }
                let Some(next) = self.effective_next(at, d) else { break 2 };
                if bad_links.contains(&(at.min(next), at.max(next)))
                    || (bad_nodes.contains(&next) && next != d)
                    || !on_walk.insert(next)
                {
                    break 2;
                }
                walk.push(next);
            };
            for v in walk {
                if state[v] == 0 {
                    state[v] = verdict;
                }
            }
        }
        (0..n).filter(|&s| state[s] == 2 && !bad_nodes.contains(&s)).collect()
    }

    fn healthy_graph(&self, bad_nodes: &HashSet<NodeId>, bad_links: &HashSet<(NodeId, NodeId)>) -> CostGraph {
        let mut g = CostGraph::new(self.topo.len());
        for &(a, b) in self.topo.links() {
            if !bad_nodes.contains(&a) && !bad_nodes.contains(&b) && !bad_links.contains(&(a, b)) {
                g.add_edge(a, b, self.link_cost(a, b));
            }
        }
        g
    }

    /// Cheapest healthy-path cost from every node to `d` (Dijkstra, binary heap).
    fn distances(&self, d: NodeId, bad_nodes: &HashSet<NodeId>, bad_links: &HashSet<(NodeId, NodeId)>) -> Vec<f64> {
        let n = self.topo.len();
        let mut dist = vec![f64::INFINITY; n];
        let mut done = vec![false; n];
        let mut heap = BinaryHeap::from([Reverse(Cost(0.0, d))]);
        dist[d] = 0.0;
        while let Some(Reverse(Cost(at, v))) = heap.pop() {
            if done[v] || at > dist[v] {
                continue;
            }
            done[v] = true;
            for &u in self.topo.neighbours(v) {
                if bad_nodes.contains(&u) || bad_links.contains(&(u.min(v), u.max(v))) {
                    continue;
                }
                let c = dist[v] + self.link_cost(u, v);
                if c < dist[u] {
                    dist[u] = c;
                    heap.push(Reverse(Cost(c, u)));
                }
            }
        }
        dist
    }

    /// The churn guardrail, per route as route-flap damping is: a repair may move every
    /// route that crosses a fault (hundreds at one node of a big mesh), but no one route
    /// more often than `max_changes_per_route_per_minute`.
    fn allow_change(&mut self, node: NodeId, destination: NodeId, now_ns: i64) -> bool {
        let q = self.changes_per_route.entry((node, destination)).or_default();
        while q.front().is_some_and(|&t| t < now_ns - 60_000_000_000) {
            q.pop_front();
        }
        if q.len() as u32 >= self.config.max_changes_per_route_per_minute {
            return false;
        }
        q.push_back(now_ns);
        true
    }

    /// Routes around the faults, installing overrides owned by `incident`.
    fn reroute(&mut self, incident: &str, now_ns: i64, plan: &mut Plan) {
        let bad_nodes = self.faulted_nodes();
        let bad_links = self.faulted_links();
        let g = self.healthy_graph(&bad_nodes, &bad_links);
        let mut unreachable = 0;
        let mut held = 0;
        for d in self.affected_destinations(&bad_nodes, &bad_links) {
            let broken = self.broken_towards(d, &bad_nodes, &bad_links);
            if broken.is_empty() {
                continue;
            }
            let dist = self.distances(d, &bad_nodes, &bad_links);
            for s in broken {
                if dist[s].is_infinite() {
                    unreachable += 1;
                    continue;
                }
                let current = self.effective_next(s, d);
                let via = |n: NodeId| self.link_cost(s, n) + dist[n];
                let primary = self
                    .topo
                    .neighbours(s)
                    .iter()
                    .copied()
                    .filter(|&n| {
                        !bad_nodes.contains(&n) && !bad_links.contains(&(s.min(n), s.max(n))) && dist[n].is_finite()
                    })
                    .min_by(|&x, &y| {
                        // Among equally cheap next hops the current one wins: a route that
                        // need not move does not (on a grid most ties would move it).
                        via(x).total_cmp(&via(y)).then((Some(y) == current).cmp(&(Some(x) == current))).then(x.cmp(&y))
                    })
                    .expect("finite distance implies a usable neighbour");
                // A node that is broken only because a hop downstream is keeps its next
                // hop: fixing that hop fixes it, and an identical route is no change.
                if self.effective_next(s, d) == Some(primary) {
                    continue;
                }
                if !self.allow_change(s, d, now_ns) {
                    held += 1;
                    continue;
                }
                let backup = disjoint_paths(&g, s, d, self.config.k_paths.max(2))
                    .iter()
                    .filter_map(|p| p.get(1).copied())
                    .find(|&h| h != primary);
                self.installed.insert((s, d), Installed { primary, backup, incident: incident.to_string() });
                plan.changes.push(PlannedChange {
                    target: self.topo.name(s).to_string(),
                    action: Action::RouteReplace {
                        destination: self.topo.name(d).to_string(),
                        primary: self.topo.name(primary).to_string(),
                        backup: backup.map(|b| self.topo.name(b).to_string()),
                    },
                });
            }
        }
        if unreachable > 0 {
            plan.explanation.push(format!(
                "{unreachable} (node, destination) pair(s) have no healthy path left; their routes were left alone"
            ));
        }
        if held > 0 {
            plan.explanation.push(format!(
                "{held} route change(s) held back: more than {} changes of one route per minute",
                self.config.max_changes_per_route_per_minute
            ));
        }
    }

    /// Plans the repair for a newly diagnosed fault on `element`.
    pub(crate) fn plan_fault(&mut self, incident: &str, element: &Element, now_ns: i64) -> Plan {
        let mut plan = Plan::default();
        if !self.topo.connected_without(element) {
            plan.explanation.push(format!(
                "without {element} the mesh is partitioned; only pairs with a surviving path are rerouted"
            ));
        }
        self.faults.insert(incident.to_string(), element.clone());
        self.reroute(incident, now_ns, &mut plan);
        let targets: HashSet<&str> = plan.changes.iter().map(|c| c.target.as_str()).collect();
        plan.explanation.insert(
            0,
            format!(
                "route {} (node, destination) pair(s) on {} node(s) around {element}: each takes the next hop of its cheapest healthy path (ETX link costs), with the first hop of an edge-disjoint alternative (Suurballe, k = {}) as kernel failover backup; routes that did not cross {element} were left alone",
                plan.changes.len(),
                targets.len(),
                self.config.k_paths.max(2)
            ),
        );
        plan
    }

    /// The fault of `incident` has cleared: withdraw its routes, except where another
    /// active fault still needs a detour.
    pub(crate) fn plan_clear(&mut self, incident: &str, now_ns: i64) -> Plan {
        let mut plan = Plan::default();
        self.faults.remove(incident);
        let mine: Vec<((NodeId, NodeId), Installed)> =
            self.installed.iter().filter(|(_, r)| r.incident == incident).map(|(k, r)| (*k, r.clone())).collect();
        for (k, _) in &mine {
            self.installed.remove(k);
        }
        let mut replan = Plan::default();
        if !self.faults.is_empty() {
            let owner = self.faults.keys().next().cloned().unwrap_or_default();
            self.reroute(&owner, now_ns, &mut replan);
        }
        let still: HashSet<(String, String)> = replan
            .changes
            .iter()
            .filter_map(|c| match &c.action {
                Action::RouteReplace { destination, .. } => Some((c.target.clone(), destination.clone())),
                _ => None,
            })
            .collect();
        for ((s, d), _) in &mine {
            let key = (self.topo.name(*s).to_string(), self.topo.name(*d).to_string());
            if !still.contains(&key) {
                plan.changes
                    .push(PlannedChange { target: key.0, action: Action::RouteWithdraw { destination: key.1 } });
            }
        }
        plan.changes.extend(replan.changes);
        plan.explanation.push(format!(
            "fault cleared: {} route(s) returned to baseline",
            plan.changes.iter().filter(|c| matches!(c.action, Action::RouteWithdraw { .. })).count()
        ));
        plan.explanation.extend(replan.explanation);
        plan
    }

    /// How many routes we own now.
    #[cfg(test)]
    pub(crate) fn installed_routes(&self) -> usize {
        self.installed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x0_schema::{Shape, TopologySpec};

    fn planner() -> Planner {
        let topo = Topology::generate(&TopologySpec { shape: Shape::Grid, nodes: 16, seed: 1, links: vec![] }).unwrap();
        let config = PlannerConfig { max_changes_per_route_per_minute: 1000, ..crate::Config::default().planner };
        Planner::new(topo, config)
    }

    /// Follows the planned routes (overrides over baseline) from s to d.
    fn walk(p: &mut Planner, s: NodeId, d: NodeId) -> Option<Vec<NodeId>> {
        let mut path = vec![s];
        while *path.last()? != d {
            let next = p.effective_next(*path.last()?, d)?;
            if path.contains(&next) {
                return None;
            }
            path.push(next);
        }
        Some(path)
    }

    #[test]
    fn after_a_link_fault_no_path_crosses_it_and_none_loops() {
        let mut p = planner();
        let plan = p.plan_fault("i1", &Element::link("n5", "n6"), 0);
        assert!(!plan.changes.is_empty());
        for s in 0..16 {
            for d in 0..16 {
                if s == d {
                    continue;
                }
                let path = walk(&mut p, s, d).expect("loop-free and complete");
                assert!(!path.windows(2).any(|w| (w[0] == 5 && w[1] == 6) || (w[0] == 6 && w[1] == 5)), "{path:?}");
            }
        }
        for c in &plan.changes {
            let Action::RouteReplace { primary, backup: Some(backup), .. } = &c.action else {
                panic!("grid always has a backup: {c:?}")
            };
            assert_ne!(primary, backup);
        }
    }

    #[test]
    fn a_crashed_node_is_avoided_and_clearing_withdraws_everything() {
        let mut p = planner();
        let plan = p.plan_fault("i1", &Element::node("n5"), 0);
        let n = plan.changes.len();
        for s in (0..16).filter(|&s| s != 5) {
            for d in (0..16).filter(|&d| d != 5 && d != s) {
                assert!(!walk(&mut p, s, d).unwrap().contains(&5));
            }
        }
        let clear = p.plan_clear("i1", 1);
        assert_eq!(clear.changes.len(), n);
        assert!(clear.changes.iter().all(|c| matches!(c.action, Action::RouteWithdraw { .. })));
        assert_eq!(p.installed_routes(), 0);
    }

    /// No plan partitions the mesh: in the topology of every bundled scenario, for a
    /// fault on every link and every node, every pair the fault leaves connected still
    /// has a loop-free route that avoids it, and no other pair is touched.
    #[test]
    fn no_plan_in_any_bundled_scenario_partitions_the_mesh() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/scenarios");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("examples/scenarios") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            let scenario = x0_schema::Scenario::from_file(&path).expect("bundled scenarios parse");
            let topo = Topology::generate(&scenario.topology).expect("topology");
            let n = topo.len();
            let elements: Vec<Element> = topo
                .links()
                .iter()
                .map(|&(a, b)| topo.link_element(a, b))
                .chain(topo.names().iter().map(|m| Element::node(m)))
                .collect();
            for e in &elements {
                let mut p = Planner::new(topo.clone(), planner().config.clone());
                p.plan_fault("i", e, 0);
                let (bad_node, bad_link) = match e {
                    Element::Node { id } => (topo.id(id), None),
                    Element::Link { a, b } => (None, topo.id(a).zip(topo.id(b))),
                };
                let crosses =
                    |x: NodeId, y: NodeId| bad_link.is_some_and(|(a, b)| (x, y) == (a, b) || (x, y) == (b, a));
                for d in (0..n).filter(|&d| Some(d) != bad_node) {
                    let reach =
                        topo.distances_to(d, &|x, y| Some(x) != bad_node && Some(y) != bad_node && !crosses(x, y));
                    for s in (0..n).filter(|&s| s != d && Some(s) != bad_node && reach[s] != usize::MAX) {
                        let path = walk(&mut p, s, d).unwrap_or_else(|| {
                            panic!("{}: after {e}, {s} has no loop-free route to {d}", scenario.name)
                        });
                        assert!(
                            !path.iter().any(|&v| Some(v) == bad_node) && !path.windows(2).any(|w| crosses(w[0], w[1])),
                            "{}: after {e}, {s} -> {d} still crosses it: {path:?}",
                            scenario.name
                        );
                    }
                }
                checked += 1;
            }
        }
        assert!(checked > 100, "checked {checked} faults");
    }

    #[test]
    fn the_rate_guardrail_holds_changes_back() {
        let mut p = planner();
        p.config.max_changes_per_route_per_minute = 1;
        let first = p.plan_fault("i1", &Element::node("n5"), 0);
        assert!(!first.changes.is_empty() && !first.explanation.iter().any(|e| e.contains("held back")));
        // The same routes, moved again within the minute (n5's neighbour fails too).
        let plan = p.plan_fault("i2", &Element::node("n6"), 1_000);
        assert!(plan.explanation.iter().any(|e| e.contains("held back")), "{:?}", plan.explanation);
    }
}
