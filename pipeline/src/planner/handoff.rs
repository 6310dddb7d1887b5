//! A region's repairs moving to the instance that takes the region over (see
//! `crate::handoff`): the faults its incidents route around and the routes installed
//! in their names, so the new holder withdraws them when the faults clear.
//!
//! Not carried: link costs (the new holder measures its own from the region's
//! telemetry) and the per-route flap guard's history (it starts afresh).
//!
//! The same handoffs, read by every instance, are each one's view of the others'
//! work (Kafka Streams' global table): a repair avoids their faults, takes their
//! routes for where traffic goes now, and is made again when they change. Who holds
//! a route of a (node, destination) both installed: the later plan; the other
//! instance yields it on reading the later one's handoff (and will not withdraw it).

use super::{Installed, Plan, Planner};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use x0_schema::{Element, NodeId, Topology};

/// The planner's part of a region's handoff.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PlannerSlice {
    faults: Vec<(String, Element)>,
    installed: Vec<((NodeId, NodeId), Installed)>,
}

impl Planner {
    /// What the planner holds for `incidents`.
    pub(crate) fn hand_off(&self, incidents: &BTreeSet<&str>) -> PlannerSlice {
        PlannerSlice {
            faults: self
                .faults
                .iter()
                .filter(|(id, _)| incidents.contains(id.as_str()))
                .map(|(id, e)| (id.clone(), e.clone()))
                .collect(),
            installed: self
                .installed
                .iter()
                .filter(|(_, r)| incidents.contains(r.incident.as_str()))
                .map(|(k, r)| (*k, r.clone()))
                .collect(),
        }
    }

    /// Takes up what another instance held for the incidents in `taken`. A route this
    /// planner already installed for its own incident stays its own (the newer word on
    /// that node). Returns the routes taken up, and those left so.
    pub(crate) fn take_over(&mut self, slice: PlannerSlice, taken: &BTreeSet<&str>) -> (usize, usize) {
        let (mut routes, mut clashes) = (0, 0);
        for (id, e) in slice.faults.into_iter().filter(|(id, _)| taken.contains(id.as_str())) {
            self.faults.insert(id, e);
        }
        for (k, r) in slice.installed.into_iter().filter(|(_, r)| taken.contains(r.incident.as_str())) {
            match self.installed.entry(k) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(r);
                    routes += 1;
                }
                std::collections::btree_map::Entry::Occupied(_) => clashes += 1,
            }
        }
        (routes, clashes)
    }

    /// Forgets the faults and routes of `incidents`, now another instance's.
    pub(crate) fn let_go(&mut self, incidents: &BTreeSet<&str>) {
        self.faults.retain(|id, _| !incidents.contains(id.as_str()));
        self.installed.retain(|_, r| !incidents.contains(r.incident.as_str()));
    }
}

/// Other instances' faults and routes, per region they own.
#[derive(Debug, Default)]
pub(crate) struct Foreign {
    regions: BTreeMap<u32, PlannerSlice>,
    /// Their routes merged: (node, destination) → (next hop, planned at).
    routes: FxHashMap<(NodeId, NodeId), (NodeId, i64)>,
    nodes: FxHashSet<NodeId>,
    links: FxHashSet<(NodeId, NodeId)>,
}

impl Foreign {
    /// Another instance's next hop for `s` toward `d`, if it installed one.
    pub(crate) fn next_hop(&self, s: NodeId, d: NodeId) -> Option<NodeId> {
        if self.routes.is_empty() {
            return None; // the common case, on the planner's hottest path
        }
        self.routes.get(&(s, d)).map(|&(n, _)| n)
    }

    /// The (node, destination) pairs others hold routes for.
    pub(crate) fn routes(&self) -> impl Iterator<Item = (NodeId, NodeId)> + '_ {
        self.routes.keys().copied()
    }

    /// `own` faults and theirs.
    pub(crate) fn with_faults(
        &self,
        own_nodes: &FxHashSet<NodeId>,
        own_links: &FxHashSet<(NodeId, NodeId)>,
    ) -> (FxHashSet<NodeId>, FxHashSet<(NodeId, NodeId)>) {
        (own_nodes.union(&self.nodes).copied().collect(), own_links.union(&self.links).copied().collect())
    }

    fn rebuild(&mut self, topo: &Topology) {
        self.routes.clear();
        self.nodes.clear();
        self.links.clear();
        for slice in self.regions.values() {
            for (k, r) in &slice.installed {
                let newer = self.routes.get(k).is_none_or(|&(_, at)| r.at > at);
                if newer {
                    self.routes.insert(*k, (r.primary, r.at));
                }
            }
            for (_, e) in &slice.faults {
                match e {
                    Element::Node { id } => self.nodes.extend(topo.id(id)),
                    Element::Link { a, b } => {
                        if let (Some(a), Some(b)) = (topo.id(a), topo.id(b)) {
                            self.links.insert((a.min(b), a.max(b)));
                        }
                    }
                }
            }
        }
    }
}

impl Planner {
    /// Takes another instance's handoff of `region` as its current work. A route this
    /// planner holds for the same (node, destination) but planned earlier is theirs
    /// now: forgotten here (never withdrawn from here). Returns whether their faults or
    /// routes changed.
    pub(crate) fn observe_foreign(&mut self, region: u32, slice: PlannerSlice) -> bool {
        for (k, r) in &slice.installed {
            let yields = self.installed.get(k).is_some_and(|own| (own.at, &own.incident) < (r.at, &r.incident));
            if yields {
                self.installed.remove(k);
            }
        }
        if self.foreign.regions.get(&region) == Some(&slice) {
            return false;
        }
        self.foreign.regions.insert(region, slice);
        self.foreign.rebuild(&self.topo);
        true
    }

    /// Forgets what another instance held for `region` (it is this planner's now).
    pub(crate) fn forget_foreign(&mut self, region: u32) {
        if self.foreign.regions.remove(&region).is_some() {
            self.foreign.rebuild(&self.topo);
        }
    }

    /// The incidents whose faults this planner routes around.
    pub(crate) fn fault_incidents(&self) -> Vec<String> {
        self.faults.keys().cloned().collect()
    }

    /// Repairs again, in `incident`'s name, every route that crosses one of this
    /// planner's faults now that another instance's routes or faults changed (a route
    /// it withdrew may fall back across ours; a fault of theirs may lie on our detour).
    pub(crate) fn reconcile(&mut self, incident: &str, now_ns: i64) -> Plan {
        let started = std::time::Instant::now();
        let mut plan = Plan::default();
        self.reroute(incident, now_ns, &mut plan);
        plan.explanation.insert(
            0,
            format!(
                "another instance's faults or routes changed: {} route(s) crossing this incident's fault repaired again",
                plan.changes.len()
            ),
        );
        plan.cost.changes = plan.changes.len();
        plan.cost.took = started.elapsed();
        plan
    }
}
