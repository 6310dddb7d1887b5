//! The healing loop on a mesh split into regions among several job instances: which
//! regions it owns, from its telemetry partitions (see [`crate::ownership`]).

use super::HealingLoop;
use crate::ownership::Ownership;
use x0_schema::{Element, Topology};

impl HealingLoop {
    /// Splits the work by the inventory's regions, on a telemetry topic of
    /// `partitions`: from now on this loop owns only the regions of the partitions
    /// [`assign`](Self::assign) gives it. Nothing changes on an inventory of one region.
    pub fn split_by_regions(&mut self, partitions: usize) {
        if self.topo.regions().count() > 1 {
            self.ownership = Some(Ownership::new(&self.topo, partitions));
        }
    }

    /// Takes the consumer group's assignment of telemetry partitions. Returns the
    /// regions now owned when they changed. Nodes it no longer sees are forgotten as
    /// reporters (their silence is another instance's news), and the open incidents of
    /// regions no longer owned are let go (their new owner takes them over from their
    /// handoff, see [`take_over`](Self::take_over)).
    pub fn assign(&mut self, partitions: Vec<i32>) -> Option<Vec<u32>> {
        let ownership = self.ownership.as_mut()?;
        if !ownership.assign(&self.topo, partitions) {
            return None;
        }
        // Every region not owned now, not only those just lost: a state restored from a
        // checkpoint may hold any region's incidents.
        let lost: Vec<u32> = (0..self.topo.regions().count() as u32).filter(|&r| !ownership.owns_region(r)).collect();
        let let_go = self.let_go(&lost);
        if !let_go.is_empty() {
            tracing::info!(incidents = ?let_go, "open incidents of regions another instance owns now: let go");
        }
        let (Some(ownership), topo) = (&self.ownership, &self.topo) else { return None };
        // What another instance held for a region owned now is this loop's to hold.
        for r in ownership.regions() {
            self.planner.forget_foreign(r);
        }
        self.seen.retain(|n| ownership.sees(topo, n));
        // The model scores only the nodes this instance sees and the links among them
        // (a graph of the whole inventory would cost every instance the whole mesh's
        // inference). Its recorded inputs so far were over the old view: dropped.
        let names: Vec<String> = topo.names().iter().filter(|n| ownership.sees(topo, n)).cloned().collect();
        let index: std::collections::HashMap<&str, usize> =
            names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let links: Vec<(usize, usize)> = topo
            .links()
            .iter()
            .filter_map(|&(a, b)| Some((*index.get(topo.name(a))?, *index.get(topo.name(b))?)))
            .collect();
        let regions = ownership.regions();
        self.seen_mesh = Some(Topology::from_links(names, links));
        self.model_inputs.clear();
        Some(regions)
    }

    /// Whether the mesh is split among instances (the inventory has regions and
    /// [`split_by_regions`](Self::split_by_regions) was called).
    pub fn is_split(&self) -> bool {
        self.ownership.is_some()
    }

    /// The regions owned now (every region's number when the mesh is not split).
    pub fn owned_regions(&self) -> Vec<u32> {
        match &self.ownership {
            Some(o) => o.regions(),
            None => (0..self.topo.regions().count() as u32).collect(),
        }
    }

    /// The mesh the model scores: what this instance sees.
    pub(super) fn model_view(&self) -> &Topology {
        self.seen_mesh.as_ref().unwrap_or(&self.topo)
    }

    /// Whether telemetry from `partition` is this loop's according to the last
    /// assignment (false: ask the consumer again).
    pub fn holds_partition(&self, partition: i32) -> bool {
        self.ownership.as_ref().is_none_or(|o| o.holds(partition))
    }

    /// Whether to take the copy of a node's batch that came on `partition` (a node
    /// near a border sends one to each region that needs it).
    pub fn takes_copy(&self, key: Option<&[u8]>, partition: i32) -> bool {
        match (&self.ownership, key.and_then(|k| std::str::from_utf8(k).ok())) {
            (Some(o), Some(node)) => o.takes_copy(&self.topo, node, partition),
            _ => true,
        }
    }

    /// Whether this loop opens incidents and plans for `element`.
    pub fn owns(&self, element: &Element) -> bool {
        self.ownership.as_ref().is_none_or(|o| o.owns(&self.topo, element))
    }
}
