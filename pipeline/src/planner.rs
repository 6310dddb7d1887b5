//! Planning reroutes: which nodes must change their route to which destinations so
//! that no traffic crosses a faulted element, with a backup next hop for the kernel to
//! fail over to on carrier loss.
//!
//! Only routes whose current path crosses a fault change; everything else keeps its
//! route (a controller that re-optimises the whole mesh on every incident flaps routes
//! for nothing). They are repaired at the fault's edge where a nearby node's own route
//! provably avoids the fault (`local_repair`); elsewhere, per destination, a broken
//! node whose next hop is not strictly closer over healthy paths takes the next hop of
//! its cheapest healthy path, which keeps the result loop-free.

use crate::config::PlannerConfig;
use crate::features::WindowFeatures;
use crate::local_repair::{
    alternate, clean_exit, repair_at_edge, EdgeRepair, Faults, Hops, DEEP_DEPTH, FAR, MAX_DEPTH,
};
use crate::stats::PlanCost;
use rustc_hash::{FxHashMap, FxHashSet};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashSet, VecDeque};
use std::time::Instant;
use x0_schema::{Action, Element, NodeId, Topology};

mod handoff;
pub(crate) use handoff::PlannerSlice;

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
    /// Stream time it was planned (the later of two instances' routes for one
    /// (node, destination) stands; see `handoff`).
    #[serde(default)]
    at: i64,
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
    /// What planning it cost (kept out of the explanation, which must not vary from
    /// run to run).
    pub cost: PlanCost,
}

/// The planner's state beyond its inventory and configuration: the routes it installed,
/// the faults it routes around, link costs, the per-route guardrail's history.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct PlannerMemory {
    installed: BTreeMap<(NodeId, NodeId), Installed>,
    faults: BTreeMap<String, Element>,
    cost: FxHashMap<(NodeId, NodeId), f64>,
    changes_per_route: FxHashMap<(NodeId, NodeId), VecDeque<i64>>,
    #[serde(default)]
    returned: BTreeSet<NodeId>,
}

#[derive(Debug)]
pub(crate) struct Planner {
    topo: Topology,
    config: PlannerConfig,
    installed: BTreeMap<(NodeId, NodeId), Installed>,
    faults: BTreeMap<String, Element>,
    /// Crashed nodes reporting again while their incident is open (see
    /// [`Planner::node_returned`]).
    returned: BTreeSet<NodeId>,
    /// ETX-like link cost per (low, high) link, with hysteresis.
    cost: FxHashMap<(NodeId, NodeId), f64>,
    /// When each (node, destination) route changed in the last minute.
    changes_per_route: FxHashMap<(NodeId, NodeId), VecDeque<i64>>,
    /// Baseline next hops toward recently used destinations (one BFS each), bounded:
    /// a full table would be n² entries (1.6 GB at 10,000 nodes).
    baseline: FxHashMap<NodeId, Vec<Option<NodeId>>>,
    baseline_order: VecDeque<NodeId>,
    /// Hop distances a plan may hold ([`HOP_ENTRIES`]; smaller in tests).
    hop_entries: usize,
    /// Other job instances' faults and routes, per region they own, from their
    /// handoffs (a mesh split among instances; see `handoff`).
    foreign: handoff::Foreign,
}

/// Next-hop entries the baseline cache may hold (16 bytes each: 64 MB).
const BASELINE_ENTRIES: usize = 4_000_000;

/// Hop distances a plan may hold (4 bytes each: 64 MB), beyond those of the nodes at
/// the fault itself.
const HOP_ENTRIES: usize = 16_000_000;

/// One node's new route in a repair.
#[derive(Debug, Clone, Copy)]
struct Hop {
    node: NodeId,
    primary: NodeId,
    backup: Option<NodeId>,
}

/// What one reroute did, for its explanation.
#[derive(Debug, Default)]
struct Tally {
    at_edge: usize,
    whole_tree: usize,
    unreachable: usize,
    held: usize,
}

impl Planner {
    pub(crate) fn new(topo: Topology, config: PlannerConfig) -> Self {
        Planner {
            topo,
            config,
            installed: BTreeMap::new(),
            faults: BTreeMap::new(),
            returned: BTreeSet::new(),
            cost: FxHashMap::default(),
            changes_per_route: FxHashMap::default(),
            baseline: FxHashMap::default(),
            baseline_order: VecDeque::new(),
            hop_entries: HOP_ENTRIES,
            foreign: Default::default(),
        }
    }

    /// What it must not forget across a restart.
    pub(crate) fn memory(&self) -> PlannerMemory {
        PlannerMemory {
            installed: self.installed.clone(),
            faults: self.faults.clone(),
            cost: self.cost.clone(),
            changes_per_route: self.changes_per_route.clone(),
            returned: self.returned.clone(),
        }
    }

    /// Whether `action` on `target` is still what the planner wants there: the route
    /// it installed (a replace), or none of its own (a withdraw).
    pub(crate) fn still_wants(&self, target: &str, action: &Action) -> bool {
        let node = |n: &str| self.topo.id(n);
        match action {
            Action::RouteReplace { destination, primary, backup } => {
                let (Some(s), Some(d), Some(p)) = (node(target), node(destination), node(primary)) else {
                    return false;
                };
                let b = match backup.as_deref().map(node) {
                    None => None,
                    Some(Some(b)) => Some(b),
                    Some(None) => return false,
                };
                self.installed.get(&(s, d)).is_some_and(|r| r.primary == p && r.backup == b)
            }
            Action::RouteWithdraw { destination } => match (node(target), node(destination)) {
                (Some(s), Some(d)) => !self.installed.contains_key(&(s, d)),
                _ => false,
            },
            _ => false,
        }
    }

    /// The routes it installed and has not withdrawn, by node and destination.
    pub(crate) fn wanted(&self) -> Vec<crate::live::WantedRoute> {
        let name = |n: NodeId| self.topo.name(n).to_string();
        self.installed
            .iter()
            .map(|(&(s, d), r)| crate::live::WantedRoute {
                node: name(s),
                destination: name(d),
                primary: name(r.primary),
                backup: r.backup.map(name),
                incident: r.incident.clone(),
            })
            .collect()
    }

    /// Takes up where a checkpointed planner left off.
    pub(crate) fn restore(&mut self, m: PlannerMemory) {
        self.installed = m.installed;
        self.faults = m.faults;
        self.cost = m.cost;
        self.changes_per_route = m.changes_per_route;
        self.returned = m.returned;
    }

    /// Updates link costs from a window's loss: ETX = 1 / (delivery a→b · delivery b→a).
    /// A cost moves only when it changes by more than 20% (hysteresis against noise).
    pub(crate) fn observe(&mut self, f: &WindowFeatures) {
        // Delivery per (low, high) link, each direction: only links that lost anything
        // this window, and those whose cost is not 1 yet, can change (a window of a
        // 100,000-node mesh need not walk its 200,000 links).
        let mut delivery: FxHashMap<(NodeId, NodeId), (f64, f64)> = FxHashMap::default();
        for l in &f.links {
            let p = l.loss_ratio.or(l.probe_loss).unwrap_or(0.0).clamp(0.0, 0.99);
            if p <= 0.0 {
                continue;
            }
            let (Some(a), Some(b)) = (self.topo.id(&l.node), self.topo.id(&l.peer)) else { continue };
            if !self.topo.neighbours(a).contains(&b) {
                continue;
            }
            let e = delivery.entry((a.min(b), a.max(b))).or_insert((1.0, 1.0));
            if a < b {
                e.0 = 1.0 - p;
            } else {
                e.1 = 1.0 - p;
            }
        }
        for (&k, _) in self.cost.iter().filter(|&(_, &c)| c != 1.0) {
            delivery.entry(k).or_insert((1.0, 1.0));
        }
        for (k, (fwd, rev)) in delivery {
            let etx = 1.0 / (fwd * rev).max(0.01);
            let current = self.link_cost(k.0, k.1);
            if (etx - current).abs() / current > 0.2 {
                if etx == 1.0 {
                    self.cost.remove(&k);
                } else {
                    self.cost.insert(k, etx);
                }
            }
        }
    }

    fn link_cost(&self, a: NodeId, b: NodeId) -> f64 {
        self.cost.get(&(a.min(b), a.max(b))).copied().unwrap_or(1.0)
    }

    fn faulted_nodes(&self) -> FxHashSet<NodeId> {
        self.faults
            .values()
            .filter_map(|e| match e {
                Element::Node { id } => self.topo.id(id),
                _ => None,
            })
            .collect()
    }

    fn faulted_links(&self) -> FxHashSet<(NodeId, NodeId)> {
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

    /// The routes to repair at the fault's edge: per destination, the nodes whose next
    /// hop toward it crosses a fault. A route crosses a faulted link at one of its ends
    /// and a faulted node from one of its neighbours, so only those nodes' next hops
    /// need looking at: the distances from each of them and from each of their
    /// neighbours give every baseline next hop they have (the first neighbour one hop
    /// closer), instead of one BFS per destination of the mesh.
    /// `own`: the faults this planner answers for (another instance's are avoided, not
    /// repaired around: see `handoff`).
    fn edge_routes(&self, hops: &mut Hops, faults: &Faults, own: &Faults) -> Vec<(NodeId, Vec<NodeId>)> {
        let n = self.topo.len();
        let mut ends: Vec<NodeId> = own.links.iter().flat_map(|&(a, b)| [a, b]).collect();
        for &c in own.nodes {
            ends.extend(self.topo.neighbours(c).iter().copied());
        }
        ends.sort_unstable();
        ends.dedup();
        ends.retain(|&x| !faults.down(x));
        for &x in &ends {
            for &v in std::iter::once(&x).chain(self.topo.neighbours(x)) {
                hops.require(&self.topo, v);
            }
        }
        let mut at_edge: Vec<Vec<NodeId>> = vec![Vec::new(); n];
        for &x in &ends {
            for (d, edge) in at_edge.iter_mut().enumerate() {
                if d == x || faults.down(d) || hops.between(x, d) >= FAR {
                    continue;
                }
                let next = self.current_next(hops, x, d);
                if next.is_some_and(|y| !faults.hop_toward(x, y, d)) {
                    edge.push(x);
                }
            }
        }
        at_edge.into_iter().enumerate().filter(|(_, xs)| !xs.is_empty()).collect()
    }

    /// `s`'s override toward `d`, ours or another instance's, if it has one.
    fn override_next(&self, s: NodeId, d: NodeId) -> Option<NodeId> {
        match self.installed.get(&(s, d)) {
            Some(r) => Some(r.primary),
            None => self.foreign.next_hop(s, d),
        }
    }

    fn effective_next(&mut self, s: NodeId, d: NodeId) -> Option<NodeId> {
        match self.override_next(s, d) {
            Some(n) => Some(n),
            None => self.baseline_next(s, d),
        }
    }

    /// Nodes whose current path to `d` crosses a fault, loops or dead-ends: `true` at
    /// their index.
    fn broken_towards(&mut self, d: NodeId, faults: &Faults) -> Vec<bool> {
        const UNKNOWN: u8 = 0;
        const FINE: u8 = 1;
        const BROKEN: u8 = 2;
        const WALKING: u8 = 3;
        let n = self.topo.len();
        let mut state = vec![UNKNOWN; n];
        state[d] = FINE;
        let mut walk = Vec::new();
        for s in 0..n {
            if state[s] != UNKNOWN || faults.down(s) {
                continue;
            }
            walk.clear();
            walk.push(s);
            state[s] = WALKING;
            let verdict = loop {
                let at = *walk.last().expect("non-empty");
                let Some(next) = self.effective_next(at, d) else { break BROKEN };
                if !faults.hop_toward(at, next, d) || state[next] == WALKING {
                    break BROKEN;
                }
                if state[next] != UNKNOWN {
                    break state[next];
                }
                state[next] = WALKING;
                walk.push(next);
            };
            for &v in &walk {
                state[v] = verdict;
            }
        }
        state.iter().enumerate().map(|(s, &v)| v == BROKEN && !faults.down(s)).collect()
    }

    /// Cheapest healthy-path cost from every node to `d` (Dijkstra, binary heap). A
    /// node back from a crash gets a cost (its own route is repaired) but no path
    /// passes through it.
    fn distances(&self, d: NodeId, faults: &Faults) -> Vec<f64> {
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
            if v != d && faults.nodes.contains(&v) {
                continue;
            }
            for &u in self.topo.neighbours(v) {
                if faults.down(u) || faults.links.contains(&(u.min(v), u.max(v))) {
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
        let allowed = self.may_change(node, destination, now_ns);
        if allowed {
            self.changes_per_route.entry((node, destination)).or_default().push_back(now_ns);
        }
        allowed
    }

    fn may_change(&mut self, node: NodeId, destination: NodeId, now_ns: i64) -> bool {
        let Some(q) = self.changes_per_route.get_mut(&(node, destination)) else { return true };
        while q.front().is_some_and(|&t| t < now_ns - 60_000_000_000) {
            q.pop_front();
        }
        (q.len() as u32) < self.config.max_changes_per_route_per_minute
    }

    /// Routes around the faults, installing overrides owned by `incident`: at the
    /// fault's edge where that suffices (`local_repair`), over the destination's whole
    /// shortest-path tree where it does not.
    fn reroute(&mut self, incident: &str, now_ns: i64, plan: &mut Plan) {
        let own_nodes = self.faulted_nodes();
        let own_links = self.faulted_links();
        let returned: FxHashSet<NodeId> = self.returned.iter().copied().filter(|n| own_nodes.contains(n)).collect();
        let own = Faults { nodes: &own_nodes, links: &own_links, returned: &returned };
        // Paths avoid other instances' faults too; only routes crossing ours are ours
        // to repair.
        let (bad_nodes, bad_links) = self.foreign.with_faults(&own_nodes, &own_links);
        let faults = Faults { nodes: &bad_nodes, links: &bad_links, returned: &returned };
        let mut hops = Hops::new(self.topo.len(), self.hop_entries);
        let mut holders: FxHashMap<NodeId, Vec<NodeId>> = FxHashMap::default();
        for (s, d) in self.installed.keys().copied().chain(self.foreign.routes()) {
            holders.entry(d).or_default().push(s);
        }
        let mut tally = Tally::default();
        let edge = self.edge_routes(&mut hops, &faults, &own);
        // At least one change per route crossing the fault: reserved once, not grown
        // (and copied) a doubling at a time.
        let crossing = edge.iter().map(|(_, xs)| xs.len()).sum();
        plan.changes.reserve(crossing);
        self.changes_per_route.reserve(crossing);
        for (d, xs) in edge {
            // Nodes a repair's exit must not route through: crashed ones, the edge
            // itself, and any that already hold an override toward d.
            let mut avoid: Vec<NodeId> =
                bad_nodes.iter().chain(&xs).chain(holders.get(&d).into_iter().flatten()).copied().collect();
            avoid.sort_unstable();
            avoid.dedup();
            match self.local_repair(&mut hops, &faults, d, &xs, &avoid) {
                Some(paths) => {
                    tally.at_edge += paths.len();
                    for path in paths {
                        self.install_path(incident, d, &path, now_ns, plan, &mut tally, &hops);
                    }
                }
                None => {
                    tally.whole_tree += 1;
                    self.repair_tree(incident, d, &faults, now_ns, plan, &mut tally);
                }
            }
        }
        let (_, bytes) = hops.footprint();
        plan.cost.at_edge += tally.at_edge;
        plan.cost.whole_tree += tally.whole_tree;
        plan.cost.hop_bytes = plan.cost.hop_bytes.max(bytes);
        plan.explanation.push(format!(
            "{} route(s) repaired at the fault's edge, {} destination(s) over their whole shortest-path tree",
            tally.at_edge, tally.whole_tree
        ));
        if tally.unreachable > 0 {
            plan.explanation.push(format!(
                "{} (node, destination) pair(s) have no healthy path left; their routes were left alone",
                tally.unreachable
            ));
        }
        if tally.held > 0 {
            plan.explanation.push(format!(
                "{} route change(s) held back: more than {} changes of one route per minute",
                tally.held, self.config.max_changes_per_route_per_minute
            ));
        }
    }

    /// Repairs at the fault's edge, one path per edge node in `xs` (see
    /// `local_repair`); None where one of them has none, or where the repairs would
    /// cross each other's routes: the destination is then repaired over its tree.
    fn local_repair(
        &self,
        hops: &mut Hops,
        faults: &Faults,
        d: NodeId,
        xs: &[NodeId],
        avoid: &[NodeId],
    ) -> Option<Vec<Vec<Hop>>> {
        let cost = |a: NodeId, b: NodeId| self.link_cost(a, b);
        let mut around = avoid.to_vec();
        let mut repairs: Vec<EdgeRepair> = Vec::with_capacity(xs.len());
        // First each edge node on its own; then those that found no clean exit may
        // join a neighbour's repair (two sides of a crash, around each other); only
        // where neither is within reach does the search go deep (past a near-bridge).
        let mut pending = Vec::new();
        for &x in xs {
            match repair_at_edge(&self.topo, hops, faults, &cost, x, d, &around, &[], false).ok()? {
                Some(r) => {
                    around.extend_from_slice(&r.path[1..r.path.len() - 1]);
                    repairs.push(r);
                }
                None => pending.push(x),
            }
        }
        for x in pending {
            let repaired: Vec<NodeId> =
                repairs.iter().flat_map(|r| r.path[..r.path.len() - usize::from(!r.joins)].iter().copied()).collect();
            let r = match repair_at_edge(&self.topo, hops, faults, &cost, x, d, &around, &repaired, false).ok()? {
                Some(r) => r,
                None => repair_at_edge(&self.topo, hops, faults, &cost, x, d, &around, &repaired, true).ok()??,
            };
            around.extend_from_slice(&r.path[1..r.path.len() - 1]);
            repairs.push(r);
        }
        // A later repair may pass where an earlier one's exit routes: check them all
        // against every node that now holds an override.
        if repairs.len() > 1 || repairs.iter().any(|r| r.path.len() > 2) {
            for r in repairs.iter().filter(|r| !r.joins) {
                let z = *r.path.last().expect("non-empty");
                let deep = r.path.len() > MAX_DEPTH + 1;
                if !clean_exit(&self.topo, hops, faults, z, d, &around, deep).ok()? {
                    return None;
                }
            }
        }
        let paths: Vec<Vec<NodeId>> = repairs.into_iter().map(|r| r.path).collect();
        let with_backup = self.config.k_paths >= 2;
        Some(
            paths
                .iter()
                .map(|p| {
                    p.windows(2)
                        .map(|w| Hop {
                            node: w[0],
                            primary: w[1],
                            backup: with_backup
                                .then(|| alternate(&self.topo, hops, faults, &cost, w[0], w[1], d, &around))
                                .flatten(),
                        })
                        .collect()
                })
                .collect(),
        )
    }

    /// Installs one edge repair, all of it or (held back by the guardrail) none.
    #[allow(clippy::too_many_arguments)]
    fn install_path(
        &mut self,
        incident: &str,
        d: NodeId,
        path: &[Hop],
        now_ns: i64,
        plan: &mut Plan,
        tally: &mut Tally,
        hops: &Hops,
    ) {
        // The edge node's route crosses the fault: it moves whatever the distances say.
        let moving: Vec<&Hop> = path
            .iter()
            .enumerate()
            .filter(|&(i, h)| i == 0 || self.current_next(hops, h.node, d) != Some(h.primary))
            .map(|(_, h)| h)
            .collect();
        if !moving.iter().all(|h| self.may_change(h.node, d, now_ns)) {
            tally.held += 1;
            return;
        }
        for h in moving {
            self.allow_change(h.node, d, now_ns);
            self.install(incident, h.node, d, (h.primary, h.backup), now_ns, plan);
        }
    }

    /// `v`'s next hop toward `d` now, where the hop distances from its neighbours are
    /// known (None where they are not: the route is then simply replaced).
    fn current_next(&self, hops: &Hops, v: NodeId, d: NodeId) -> Option<NodeId> {
        match self.override_next(v, d) {
            Some(n) => Some(n),
            None => hops.baseline_next(&self.topo, v, d),
        }
    }

    fn install(
        &mut self,
        incident: &str,
        s: NodeId,
        d: NodeId,
        (primary, backup): (NodeId, Option<NodeId>),
        at: i64,
        plan: &mut Plan,
    ) {
        self.installed.insert((s, d), Installed { primary, backup, incident: incident.to_string(), at });
        plan.changes.push(PlannedChange {
            target: self.topo.name(s).to_string(),
            action: Action::RouteReplace {
                destination: self.topo.name(d).to_string(),
                primary: self.topo.name(primary).to_string(),
                backup: backup.map(|b| self.topo.name(b).to_string()),
            },
        });
    }

    /// Repairs the routes to `d` over its whole tree: every node whose path crosses a
    /// fault and whose next hop is not already strictly closer to `d` takes the next
    /// hop of its cheapest healthy path (nodes downstream keep theirs unless broken
    /// too, which keeps the result loop-free). Its backup is a
    /// loop-free alternate where one exists: a neighbour strictly closer to `d`, or one
    /// whose route is intact (that route cannot come back through a broken node);
    /// elsewhere the cheapest other neighbour, which U-turns as baseline backups do.
    fn repair_tree(
        &mut self,
        incident: &str,
        d: NodeId,
        faults: &Faults,
        now_ns: i64,
        plan: &mut Plan,
        tally: &mut Tally,
    ) {
        let broken = self.broken_towards(d, faults);
        if !broken.contains(&true) {
            return;
        }
        let dist = self.distances(d, faults);
        for s in (0..self.topo.len()).filter(|&s| broken[s]) {
            if dist[s].is_infinite() {
                tally.unreachable += 1;
                continue;
            }
            let current = self.effective_next(s, d);
            // A node that is broken only because a hop downstream is keeps its next
            // hop when that hop is strictly closer to d over healthy paths: every
            // broken node then steps strictly closer, so fixing the hops downstream
            // fixes it without a loop (babeld's feasibility condition, in effect).
            if current.is_some_and(|c| faults.hop_toward(s, c, d) && dist[c] < dist[s]) {
                continue;
            }
            let via = |n: NodeId| self.link_cost(s, n) + dist[n];
            let usable: Vec<NodeId> = self
                .topo
                .neighbours(s)
                .iter()
                .copied()
                .filter(|&n| faults.hop_toward(s, n, d) && dist[n].is_finite())
                .collect();
            // The current next hop, were it among the cheapest, is strictly closer and
            // was kept above: the primary is a change.
            let primary = *usable
                .iter()
                .min_by(|&&x, &&y| via(x).total_cmp(&via(y)).then(x.cmp(&y)))
                .expect("finite distance implies a usable neighbour");
            let backup = (self.config.k_paths >= 2)
                .then(|| {
                    usable
                        .iter()
                        .copied()
                        .filter(|&n| n != primary)
                        .min_by_key(|&n| (dist[n] >= dist[s] && broken[n], Cost(via(n), n)))
                })
                .flatten();
            if !self.allow_change(s, d, now_ns) {
                tally.held += 1;
                continue;
            }
            self.install(incident, s, d, (primary, backup), now_ns, plan);
        }
    }

    /// Plans the repair for a newly diagnosed fault on `element`.
    pub(crate) fn plan_fault(&mut self, incident: &str, element: &Element, now_ns: i64) -> Plan {
        let started = Instant::now();
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
                "route {} (node, destination) pair(s) on {} node(s) around {element}: where a node next to the fault has a neighbour (or a path of up to {MAX_DEPTH} hops, {DEEP_DEPTH} past a near-bridge) whose own route avoids it, only that changes; elsewhere each node whose route crosses it takes the next hop of its cheapest healthy path (ETX link costs); backups are loop-free alternates where one exists{}; routes that did not cross {element} were left alone",
                plan.changes.len(),
                targets.len(),
                if self.config.k_paths >= 2 { "" } else { " (none: planner.k_paths = 1)" }
            ),
        );
        plan.cost.changes = plan.changes.len();
        plan.cost.took = started.elapsed();
        plan
    }

    /// The fault of `incident` has cleared: withdraw its routes, except where another
    /// active fault still needs a detour.
    pub(crate) fn plan_clear(&mut self, incident: &str, now_ns: i64) -> Plan {
        let started = Instant::now();
        let mut plan = Plan::default();
        self.faults.remove(incident);
        let still_down = self.faulted_nodes();
        self.returned.retain(|n| still_down.contains(n));
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
        plan.cost = PlanCost { took: started.elapsed(), changes: plan.changes.len(), ..replan.cost };
        plan
    }

    /// The nodes routed around (crashed or overloaded: the planner knows the element,
    /// not the cause), with their incident and whether they are back.
    pub(crate) fn crashed(&self) -> Vec<(String, String, bool)> {
        self.faults
            .iter()
            .filter_map(|(id, e)| match e {
                Element::Node { id: node } => {
                    let back = self.topo.id(node).is_some_and(|n| self.returned.contains(&n));
                    Some((id.clone(), node.clone(), back))
                }
                Element::Link { .. } => None,
            })
            .collect()
    }

    /// A crashed node reports again while its incident is open. Until the incident
    /// clears on evidence, no route crosses it (a node that crashed once may again);
    /// but it is a node that takes commands again, and its own routes (and the routes
    /// toward it) are repaired around the faults still open, in `incident`'s name. Its
    /// routes were left alone while it was down: a link that failed meanwhile may lie
    /// across them.
    pub(crate) fn node_returned(&mut self, incident: &str, node: &str, now_ns: i64) -> Plan {
        let started = Instant::now();
        let mut plan = Plan::default();
        let Some(n) = self.topo.id(node) else { return plan };
        if !self.returned.insert(n) {
            return plan;
        }
        self.reroute(incident, now_ns, &mut plan);
        plan.explanation.insert(
            0,
            format!(
                "{node} reports again: no route crosses it until its incident clears; its own routes and those toward it repaired around the faults still open ({} route(s) on {} node(s))",
                plan.changes.len(),
                plan.changes.iter().map(|c| c.target.as_str()).collect::<HashSet<_>>().len()
            ),
        );
        plan.cost.changes = plan.changes.len();
        plan.cost.took = started.elapsed();
        plan
    }

    /// A node back from a crash fell silent again: no plan sends it commands until it
    /// is back (they would expire, and a plan with an expired command rolls back whole).
    pub(crate) fn node_silent_again(&mut self, node: &str) {
        if let Some(n) = self.topo.id(node) {
            self.returned.remove(&n);
        }
    }

    /// Whether `incident` has a fault routed around or routes installed in its name. An
    /// incident that planned nothing (its fault was already avoided) still holds its
    /// fault, and may own routes another incident's clearing re-planned around it: it
    /// must be cleared through [`plan_clear`](Self::plan_clear) all the same.
    pub(crate) fn holds(&self, incident: &str) -> bool {
        self.faults.contains_key(incident) || self.installed.values().any(|r| r.incident == incident)
    }

    /// How many routes we own now.
    #[cfg(test)]
    pub(crate) fn installed_routes(&self) -> usize {
        self.installed.len()
    }
}

#[cfg(test)]
mod tests;
