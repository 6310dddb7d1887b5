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
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::time::Instant;
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
    /// Hop distances a plan may hold ([`HOP_ENTRIES`]; smaller in tests).
    hop_entries: usize,
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
            cost: HashMap::new(),
            changes_per_route: HashMap::new(),
            baseline: HashMap::new(),
            baseline_order: VecDeque::new(),
            hop_entries: HOP_ENTRIES,
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

    /// The routes to repair at the fault's edge: per destination, the nodes whose next
    /// hop toward it crosses a fault. A route crosses a faulted link at one of its ends
    /// and a faulted node from one of its neighbours, so only those nodes' next hops
    /// need looking at: the distances from each of them and from each of their
    /// neighbours give every baseline next hop they have (the first neighbour one hop
    /// closer), instead of one BFS per destination of the mesh.
    fn edge_routes(&self, hops: &mut Hops, faults: &Faults) -> Vec<(NodeId, Vec<NodeId>)> {
        let n = self.topo.len();
        let mut ends: Vec<NodeId> = faults.links.iter().flat_map(|&(a, b)| [a, b]).collect();
        for &c in faults.nodes {
            ends.extend(self.topo.neighbours(c).iter().copied());
        }
        ends.sort_unstable();
        ends.dedup();
        ends.retain(|x| !faults.nodes.contains(x));
        for &x in &ends {
            for &v in std::iter::once(&x).chain(self.topo.neighbours(x)) {
                hops.require(&self.topo, v);
            }
        }
        let mut at_edge: Vec<Vec<NodeId>> = vec![Vec::new(); n];
        for &x in &ends {
            for (d, edge) in at_edge.iter_mut().enumerate() {
                if d == x || faults.nodes.contains(&d) || hops.between(x, d) >= FAR {
                    continue;
                }
                let next = match self.installed.get(&(x, d)) {
                    Some(r) => Some(r.primary),
                    None => hops.baseline_next(&self.topo, x, d),
                };
                if next.is_some_and(|y| !faults.hop_ok(x, y)) {
                    edge.push(x);
                }
            }
        }
        at_edge.into_iter().enumerate().filter(|(_, xs)| !xs.is_empty()).collect()
    }

    fn effective_next(&mut self, s: NodeId, d: NodeId) -> Option<NodeId> {
        match self.installed.get(&(s, d)) {
            Some(r) => Some(r.primary),
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
            if state[s] != UNKNOWN || faults.nodes.contains(&s) {
                continue;
            }
            walk.clear();
            walk.push(s);
            state[s] = WALKING;
            let verdict = loop {
                let at = *walk.last().expect("non-empty");
                let Some(next) = self.effective_next(at, d) else { break BROKEN };
                if !faults.hop_ok(at, next) || state[next] == WALKING {
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
        state.iter().enumerate().map(|(s, &v)| v == BROKEN && !faults.nodes.contains(&s)).collect()
    }

    /// Cheapest healthy-path cost from every node to `d` (Dijkstra, binary heap).
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
            for &u in self.topo.neighbours(v) {
                if !faults.hop_ok(v, u) {
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
        let bad_nodes = self.faulted_nodes();
        let bad_links = self.faulted_links();
        let faults = Faults { nodes: &bad_nodes, links: &bad_links };
        let mut hops = Hops::new(self.topo.len(), self.hop_entries);
        let mut holders: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
        for &(s, d) in self.installed.keys() {
            holders.entry(d).or_default().push(s);
        }
        let mut tally = Tally::default();
        for (d, xs) in self.edge_routes(&mut hops, &faults) {
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
            self.install(incident, h.node, d, h.primary, h.backup, plan);
        }
    }

    /// `v`'s next hop toward `d` now, where the hop distances from its neighbours are
    /// known (None where they are not: the route is then simply replaced).
    fn current_next(&self, hops: &Hops, v: NodeId, d: NodeId) -> Option<NodeId> {
        match self.installed.get(&(v, d)) {
            Some(r) => Some(r.primary),
            None => hops.baseline_next(&self.topo, v, d),
        }
    }

    fn install(
        &mut self,
        incident: &str,
        s: NodeId,
        d: NodeId,
        primary: NodeId,
        backup: Option<NodeId>,
        plan: &mut Plan,
    ) {
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
            if current.is_some_and(|c| faults.hop_ok(s, c) && dist[c] < dist[s]) {
                continue;
            }
            let via = |n: NodeId| self.link_cost(s, n) + dist[n];
            let usable: Vec<NodeId> = self
                .topo
                .neighbours(s)
                .iter()
                .copied()
                .filter(|&n| faults.hop_ok(s, n) && dist[n].is_finite())
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
            self.install(incident, s, d, primary, backup, plan);
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
        let topo = Topology::generate(&TopologySpec {
            shape: Shape::Grid,
            nodes: 16,
            seed: 1,
            links: vec![],
            regions: Default::default(),
        })
        .unwrap();
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

    /// Every pair the faults leave connected has a loop-free route that avoids them.
    fn assert_routes_avoid(p: &mut Planner, nodes: &[NodeId], links: &[(NodeId, NodeId)], what: &str) {
        let topo = p.topo.clone();
        let n = topo.len();
        let bad = |x: NodeId, y: NodeId| nodes.contains(&y) || links.contains(&(x.min(y), x.max(y)));
        for d in (0..n).filter(|d| !nodes.contains(d)) {
            let reach = topo.distances_to(d, &|x, y| !nodes.contains(&x) && !bad(x, y));
            for s in (0..n).filter(|&s| s != d && !nodes.contains(&s) && reach[s] != usize::MAX) {
                let path = walk(p, s, d).unwrap_or_else(|| panic!("{what}: {s} has no loop-free route to {d}"));
                assert!(!path.windows(2).any(|w| bad(w[0], w[1])), "{what}: {s} -> {d} crosses a fault: {path:?}");
            }
        }
    }

    /// Meshes of every shape, a few hundred nodes, faults that pile up and clear in
    /// another order: after each step, every route is loop-free and avoids every active
    /// fault, and most repairs stay at the fault's edge.
    #[test]
    fn overlapping_faults_on_generated_meshes_leave_no_route_broken() {
        let mut seed = 7u64;
        let mut draw = |below: usize| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize % below
        };
        for (shape, nodes) in
            [(Shape::Grid, 225), (Shape::RandomGeometric, 200), (Shape::RingOfRings, 120), (Shape::Ring, 40)]
        {
            let topo =
                Topology::generate(&TopologySpec { shape, nodes, seed: 3, links: vec![], regions: Default::default() })
                    .unwrap();
            let mut p = Planner::new(topo.clone(), planner().config.clone());
            let (mut crashed, mut cut) = (Vec::new(), Vec::new());
            let mut incidents = Vec::new();
            for i in 0..3 {
                let element = if i == 1 {
                    let v = draw(topo.len());
                    crashed.push(v);
                    Element::node(topo.name(v))
                } else {
                    let (a, b) = topo.links()[draw(topo.links().len())];
                    cut.push((a.min(b), a.max(b)));
                    topo.link_element(a, b)
                };
                let id = format!("i{i}");
                let plan = p.plan_fault(&id, &element, i as i64);
                incidents.push(id);
                assert_routes_avoid(&mut p, &crashed, &cut, &format!("{shape:?} after {element}"));
                assert!(
                    plan.explanation.iter().any(|e| e.contains("repaired at the fault's edge")),
                    "{:?}",
                    plan.explanation
                );
            }
            for id in [&incidents[1], &incidents[0], &incidents[2]] {
                p.plan_clear(id, 10);
                match id.as_str() {
                    "i1" => crashed.clear(),
                    "i0" => {
                        cut.remove(0);
                    }
                    _ => cut.clear(),
                }
                assert_routes_avoid(&mut p, &crashed, &cut, &format!("{shape:?} after clearing {id}"));
            }
            assert_eq!(p.installed_routes(), 0);
        }
    }

    /// A link cut in the middle of a grid is repaired where it happened: the two ends
    /// and a few nodes beside them change routes, not every node upstream.
    #[test]
    fn a_cut_is_repaired_at_its_edge() {
        let topo = Topology::generate(&TopologySpec {
            shape: Shape::Grid,
            nodes: 400,
            seed: 1,
            links: vec![],
            regions: Default::default(),
        })
        .unwrap();
        let mut p = Planner::new(topo.clone(), planner().config.clone());
        let crossing = (0..topo.len())
            .map(|d| {
                let next = topo.baseline_next_hops(d);
                usize::from(next[210] == Some(211)) + usize::from(next[211] == Some(210))
            })
            .sum::<usize>();
        let plan = p.plan_fault("i1", &Element::link("n210", "n211"), 0);
        let targets: HashSet<&str> = plan.changes.iter().map(|c| c.target.as_str()).collect();
        assert!(targets.len() <= 8, "{targets:?}");
        // Every route across the cut changes at its end; a few need a node beside it too.
        let at_ends = plan.changes.iter().filter(|c| c.target == "n210" || c.target == "n211").count();
        assert_eq!(at_ends, crossing);
        assert!(plan.changes.len() <= 2 * crossing, "{} changes for {crossing} routes", plan.changes.len());
        assert_routes_avoid(&mut p, &[], &[(210, 211)], "n210-n211");
    }

    /// A node crash a few hops behind a link that is still down: the routes the link's
    /// repair moved must be gone around too, which sends many destinations to the deep
    /// search. Each destination's distances must not stay held after its repair (they
    /// once spent the plan's distance budget, and every destination after that was
    /// repaired over its whole tree: 50 s for one crash at 100,000 nodes).
    #[test]
    fn a_crash_behind_a_downed_link_is_repaired_at_the_edge_in_bounded_memory() {
        let topo = Topology::generate(&TopologySpec {
            shape: Shape::Grid,
            nodes: 900,
            seed: 1,
            links: vec![],
            regions: Default::default(),
        })
        .unwrap();
        let (a, b) = (15 * 30 + 15, topo.neighbours(15 * 30 + 15)[0]);
        let adjacency: Vec<Vec<usize>> = (0..topo.len()).map(|v| topo.neighbours(v).to_vec()).collect();
        let from_link = x0_schema::hop_counts(&adjacency, &[a, b]);
        let mut with_link = Planner::new(topo.clone(), planner().config.clone());
        with_link.plan_fault("i1", &topo.link_element(a, b), 0);
        // A budget of 100 nodes' distances (100,000 nodes get 160): before, crash n498
        // held the distances from 282 nodes here, one per destination repaired deep.
        let budget = 100;
        let mut heaviest: Option<(usize, NodeId, Planner)> = None;
        for c in (0..topo.len()).filter(|&v| from_link[v] == 4).step_by(3) {
            let mut p = Planner::new(topo.clone(), planner().config.clone());
            p.hop_entries = budget * topo.len();
            p.restore(with_link.memory());
            let plan = p.plan_fault("i2", &Element::node(topo.name(c)), 1);
            assert_eq!(plan.cost.whole_tree, 0, "crash {c}: {:?}", plan.explanation);
            // Within the budget, and one destination's slot.
            let held = plan.cost.hop_bytes / (4 * topo.len());
            assert!(held <= budget + 1, "crash {c}: distances from {held} nodes held");
            if heaviest.as_ref().is_none_or(|(h, _, _)| held > *h) {
                heaviest = Some((held, c, p));
            }
        }
        let (_, c, mut p) = heaviest.expect("crashes four hops from the link");
        assert_routes_avoid(&mut p, &[c], &[(a.min(b), a.max(b))], &format!("crash {c} behind {a}-{b}"));
    }

    /// Two faults close together, in every relative placement up to five hops apart
    /// (a crash or a second link behind a link that is down): every route still avoids
    /// both and none loops.
    #[test]
    fn faults_close_together_leave_no_route_broken() {
        let topo = Topology::generate(&TopologySpec {
            shape: Shape::Grid,
            nodes: 256,
            seed: 1,
            links: vec![],
            regions: Default::default(),
        })
        .unwrap();
        let (a, b) = (8 * 16 + 8, topo.neighbours(8 * 16 + 8)[0]);
        let first = (a.min(b), a.max(b));
        let adjacency: Vec<Vec<usize>> = (0..topo.len()).map(|v| topo.neighbours(v).to_vec()).collect();
        let from_link = x0_schema::hop_counts(&adjacency, &[a, b]);
        let mut with_link = Planner::new(topo.clone(), planner().config.clone());
        with_link.plan_fault("i1", &topo.link_element(a, b), 0);
        let near: Vec<NodeId> = (0..topo.len()).filter(|&v| (1..=5).contains(&from_link[v])).collect();
        for (i, &v) in near.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
            let mut p = Planner::new(topo.clone(), planner().config.clone());
            p.restore(with_link.memory());
            if i % 2 == 0 {
                p.plan_fault("i2", &Element::node(topo.name(v)), 1);
                assert_routes_avoid(&mut p, &[v], &[first], &format!("crash {v} near {a}-{b}"));
            } else {
                let w = topo.neighbours(v)[i % topo.neighbours(v).len()];
                let second = (v.min(w), v.max(w));
                if second == first {
                    continue;
                }
                p.plan_fault("i2", &topo.link_element(v, w), 1);
                assert_routes_avoid(&mut p, &[], &[first, second], &format!("link {v}-{w} near {a}-{b}"));
            }
        }
    }

    #[test]
    fn the_rate_guardrail_holds_changes_back() {
        let mut p = planner();
        p.config.max_changes_per_route_per_minute = 1;
        let first = p.plan_fault("i1", &Element::node("n5"), 0);
        assert!(!first.changes.is_empty() && !first.explanation.iter().any(|e| e.contains("held back")));
        // The same route, moved again within the minute: its new next hop's link fails.
        let (target, primary) = first
            .changes
            .iter()
            .find_map(|c| match &c.action {
                Action::RouteReplace { primary, .. } => Some((c.target.clone(), primary.clone())),
                _ => None,
            })
            .expect("a route replaced");
        let plan = p.plan_fault("i2", &Element::link(&target, &primary), 1_000);
        assert!(plan.explanation.iter().any(|e| e.contains("held back")), "{:?}", plan.explanation);
    }
}
