//! Which part of a mesh split into regions this job instance answers for.
//!
//! The consumer group decides: the telemetry partitions assigned to this instance
//! are the regions it owns ([`x0_schema::Regions`]). It takes in its regions' nodes
//! and their halo, judges everything it sees, and opens incidents only for the
//! elements it owns; another instance owns the rest. A node near a border sends its
//! batches to every region that needs them, so an instance holding two of those
//! regions' partitions takes one copy only.

use x0_schema::{Element, Regions, Topology};

/// The regions this instance owns, from its telemetry partitions.
#[derive(Debug, Clone)]
pub(crate) struct Ownership {
    /// Partitions of the telemetry topic.
    partitions: usize,
    /// Assigned to this instance, sorted.
    assigned: Vec<i32>,
    /// Per region: owned.
    owned: Vec<bool>,
    /// Digest of the inventory (a region's handoff names it).
    inventory: String,
}

impl Ownership {
    /// Nothing owned yet, on a telemetry topic of `partitions`.
    pub(crate) fn new(topology: &Topology, partitions: usize) -> Ownership {
        Ownership {
            partitions: partitions.max(1),
            assigned: vec![],
            owned: vec![false; topology.regions().count()],
            inventory: crate::checkpoint::inventory_digest(topology),
        }
    }

    /// Takes the consumer group's assignment; true when it changed.
    pub(crate) fn assign(&mut self, topology: &Topology, mut assigned: Vec<i32>) -> bool {
        assigned.sort_unstable();
        assigned.dedup();
        if assigned == self.assigned {
            return false;
        }
        let regions = topology.regions().on_partitions(&assigned, self.partitions);
        self.owned.iter_mut().for_each(|o| *o = false);
        for r in &regions {
            self.owned[*r as usize] = true;
        }
        self.assigned = assigned;
        true
    }

    /// Whether `partition` is among those assigned.
    pub(crate) fn holds(&self, partition: i32) -> bool {
        self.assigned.binary_search(&partition).is_ok()
    }

    /// The regions owned.
    pub(crate) fn regions(&self) -> Vec<u32> {
        (0..self.owned.len() as u32).filter(|&r| self.owned[r as usize]).collect()
    }

    /// Whether `region` is owned.
    pub(crate) fn owns_region(&self, region: u32) -> bool {
        self.owned.get(region as usize).copied().unwrap_or(false)
    }

    /// Digest of the inventory the regions were cut from.
    pub(crate) fn inventory(&self) -> &str {
        &self.inventory
    }

    /// Whether this instance opens incidents and plans for `element`.
    pub(crate) fn owns(&self, topology: &Topology, element: &Element) -> bool {
        topology.regions().owner(topology, element).is_some_and(|r| self.owned[r as usize])
    }

    /// Whether this instance sees `node` at all (it is in the halo of a region owned).
    pub(crate) fn sees(&self, topology: &Topology, node: &str) -> bool {
        topology.id(node).is_some_and(|v| topology.regions().audience(v).iter().any(|&r| self.owned[r as usize]))
    }

    /// Whether the copy of `node`'s batch that came on `partition` is the one to take:
    /// the lowest of its partitions this instance holds (each copy is the same batch).
    pub(crate) fn takes_copy(&self, topology: &Topology, node: &str, partition: i32) -> bool {
        let Some(v) = topology.id(node) else { return true };
        let first = topology
            .regions()
            .audience(v)
            .iter()
            .map(|&r| Regions::partition(r, self.partitions))
            .filter(|&p| self.holds(p))
            .min();
        first.is_none_or(|p| p == partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x0_schema::{RegionsSpec, Shape, TopologySpec};

    #[test]
    fn one_copy_per_batch_and_one_owner_per_element() {
        let topo = Topology::generate(&TopologySpec {
            shape: Shape::Grid,
            nodes: 36,
            seed: 1,
            links: vec![],
            regions: RegionsSpec::Count(2),
        })
        .unwrap();
        let (mut a, mut b) = (Ownership::new(&topo, 2), Ownership::new(&topo, 2));
        assert!(a.assign(&topo, vec![0]) && b.assign(&topo, vec![1]));
        assert!(!a.assign(&topo, vec![0]), "unchanged");
        for &(x, y) in topo.links() {
            let e = topo.link_element(x, y);
            assert!(a.owns(&topo, &e) != b.owns(&topo, &e), "{e} has exactly one owner");
        }
        // A border node's batch comes on both partitions; each instance takes its copy,
        // and one instance holding both takes one.
        let border = (0..36).find(|&v| topo.regions().audience(v).len() == 2).unwrap();
        let name = topo.name(border);
        assert!(a.takes_copy(&topo, name, 0) && b.takes_copy(&topo, name, 1));
        assert!(a.assign(&topo, vec![0, 1]));
        assert!(a.takes_copy(&topo, name, 0) && !a.takes_copy(&topo, name, 1));
        assert_eq!(a.regions(), vec![0, 1]);
    }
}
