//! Regions of the inventory: how several stream-job instances split one mesh through
//! Kafka's consumer groups.
//!
//! Each region's telemetry goes to its own partition set, and the consumer group
//! hands partitions (so regions) to instances. An instance must see both ends of
//! every link it judges, and every neighbour of every node it judges (a crash is
//! told from a link fault by all the neighbours losing everything), so a node's
//! telemetry also goes to every region within [`HALO_HOPS`] of it: the ghost cells
//! of a partitioned graph computation. Every element has exactly one owning region
//! (a node its own; a link between regions the lower-numbered one), and only the
//! owner's instance opens incidents and plans for it.

use crate::{Element, NodeId, Topology};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// How far beyond its own nodes a region's instance sees: a border link's far end
/// (1) and that end's neighbours (2), enough to tell its crash from a link fault.
pub const HALO_HOPS: usize = 2;

/// The `regions` key of `[topology]`: how many (cut automatically), or the nodes of
/// each by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RegionsSpec {
    /// This many regions, cut around far-apart seeds (graph Voronoi cells).
    Count(usize),
    /// The nodes of each region; a node not listed joins the first.
    Explicit(Vec<Vec<String>>),
}

impl Default for RegionsSpec {
    fn default() -> Self {
        RegionsSpec::Count(1)
    }
}

impl RegionsSpec {
    /// One region: no split (the default).
    pub fn is_single(&self) -> bool {
        matches!(self, RegionsSpec::Count(n) if *n <= 1)
    }
}

/// The regions of one inventory: each node's region, and which regions see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regions {
    of: Vec<u32>,
    count: u32,
    /// Per node: the regions within [`HALO_HOPS`] of it (its own first), sorted after that.
    audience: Vec<Vec<u32>>,
}

impl Regions {
    /// The regions `spec` asks for over `topology`'s nodes.
    pub fn new(topology: &Topology, spec: &RegionsSpec) -> Regions {
        let adjacency: Vec<Vec<usize>> = (0..topology.len()).map(|v| topology.neighbours(v).to_vec()).collect();
        let of = match spec {
            RegionsSpec::Count(k) => voronoi_cells(&adjacency, (*k).max(1)),
            RegionsSpec::Explicit(groups) => {
                let mut of = vec![0; topology.len()];
                for (r, group) in groups.iter().enumerate() {
                    for id in group.iter().filter_map(|n| topology.id(n)) {
                        of[id] = r as u32;
                    }
                }
                of
            }
        };
        let count = of.iter().copied().max().map_or(1, |m| m + 1);
        if count == 1 {
            return Regions::single(topology.len());
        }
        let mut audience: Vec<Vec<u32>> = of.iter().map(|&r| vec![r]).collect();
        for r in 0..count {
            let own: Vec<usize> = (0..of.len()).filter(|&v| of[v] == r).collect();
            for (v, d) in hop_counts(&adjacency, &own).into_iter().enumerate() {
                if d > 0 && d <= HALO_HOPS {
                    audience[v].push(r);
                }
            }
        }
        for a in &mut audience {
            a[1..].sort_unstable();
        }
        Regions { of, count, audience }
    }

    /// One region holding every node of `nodes` (no split).
    pub fn single(nodes: usize) -> Regions {
        Regions { of: vec![0; nodes], count: 1, audience: vec![] }
    }

    /// How many regions (1: the mesh is not split).
    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// A node's region.
    pub fn of(&self, node: NodeId) -> u32 {
        self.of[node]
    }

    /// The regions whose instances need `node`'s telemetry: its own, then those within
    /// [`HALO_HOPS`].
    pub fn audience(&self, node: NodeId) -> &[u32] {
        const ONE: &[u32] = &[0];
        self.audience.get(node).map_or(ONE, Vec::as_slice)
    }

    /// The region that owns `element` (opens its incidents, plans its repairs): a node's
    /// own; a link's lower-numbered end region. None for an element not in the inventory.
    pub fn owner(&self, topology: &Topology, element: &Element) -> Option<u32> {
        match element {
            Element::Node { id } => topology.id(id).map(|v| self.of[v]),
            Element::Link { a, b } => Some(self.of[topology.id(a)?].min(self.of[topology.id(b)?])),
        }
    }

    /// The partition a region's telemetry goes to, on a topic of `partitions`
    /// (region modulo partitions: with fewer partitions than regions, regions share).
    pub fn partition(region: u32, partitions: usize) -> i32 {
        (region as usize % partitions.max(1)) as i32
    }

    /// The partitions of a topic of `partitions` that `node`'s telemetry goes to: one
    /// per region of its audience, sorted, without repeats.
    pub fn partitions_of(&self, node: NodeId, partitions: usize) -> Vec<i32> {
        let mut to: Vec<i32> = self.audience(node).iter().map(|&r| Regions::partition(r, partitions)).collect();
        to.sort_unstable();
        to.dedup();
        to
    }

    /// The regions whose telemetry lands on the `partitions` of a topic of `count`.
    pub fn on_partitions(&self, partitions: &[i32], count: usize) -> Vec<u32> {
        (0..self.count).filter(|&r| partitions.contains(&Regions::partition(r, count))).collect()
    }
}

/// Hop counts from the nearest of `from` (`usize::MAX` where unreachable): a
/// multi-source breadth-first search.
pub fn hop_counts(adjacency: &[Vec<usize>], from: &[usize]) -> Vec<usize> {
    let mut d = vec![usize::MAX; adjacency.len()];
    let mut queue = VecDeque::new();
    for &s in from {
        d[s] = 0;
        queue.push_back(s);
    }
    while let Some(v) = queue.pop_front() {
        for &u in &adjacency[v] {
            if d[u] == usize::MAX {
                d[u] = d[v] + 1;
                queue.push_back(u);
            }
        }
    }
    d
}

/// The node farthest by `d` (reachable ones only; the first on ties).
pub fn farthest_node(d: &[usize]) -> usize {
    (0..d.len()).filter(|&v| d[v] != usize::MAX).max_by_key(|&v| (d[v], std::cmp::Reverse(v))).unwrap_or(0)
}

/// Cuts a graph into `k` cells around far-apart seeds (farthest-point sampling); each
/// node joins its nearest seed (the earlier seed on ties). Unreachable nodes join
/// cell 0. Deterministic. The dashboard draws big meshes by the same cells.
pub fn voronoi_cells(adjacency: &[Vec<usize>], k: usize) -> Vec<u32> {
    if adjacency.is_empty() {
        return vec![];
    }
    let mut seeds = vec![farthest_node(&hop_counts(adjacency, &[0]))];
    let mut nearest = hop_counts(adjacency, &seeds);
    while seeds.len() < k {
        let next = farthest_node(&nearest);
        if nearest[next] == 0 {
            break;
        }
        seeds.push(next);
        for (d, s) in nearest.iter_mut().zip(hop_counts(adjacency, &[next])) {
            *d = (*d).min(s);
        }
    }
    // One multi-source sweep, remembering which seed reached each node first.
    let mut owner = vec![u32::MAX; adjacency.len()];
    let mut queue = VecDeque::new();
    for (r, &s) in seeds.iter().enumerate() {
        owner[s] = r as u32;
        queue.push_back(s);
    }
    while let Some(v) = queue.pop_front() {
        for &u in &adjacency[v] {
            if owner[u] == u32::MAX {
                owner[u] = owner[v];
                queue.push_back(u);
            }
        }
    }
    owner.iter().map(|&o| if o == u32::MAX { 0 } else { o }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Shape, TopologySpec};

    fn grid(nodes: usize) -> Topology {
        Topology::generate(&TopologySpec {
            shape: Shape::Grid,
            nodes,
            seed: 1,
            links: vec![],
            regions: RegionsSpec::default(),
        })
        .unwrap()
    }

    /// Two regions of a 6×6 grid: every node in one, every link owned once, and each
    /// region's instance sees both ends of its links and every neighbour of its nodes.
    #[test]
    fn each_region_sees_what_it_judges() {
        let topo = grid(36);
        let regions = Regions::new(&topo, &RegionsSpec::Count(2));
        assert_eq!(regions.count(), 2);
        let sizes = [0, 1].map(|r| (0..36).filter(|&v| regions.of(v) == r).count());
        assert!(sizes.iter().all(|&s| s >= 12), "{sizes:?}");
        let sees = |r: u32, v: usize| regions.audience(v).contains(&r);
        let mut border = 0;
        for &(a, b) in topo.links() {
            let owner = regions.owner(&topo, &topo.link_element(a, b)).unwrap();
            // The owner sees both ends, and every neighbour of each end.
            for v in [a, b] {
                assert!(sees(owner, v) && topo.neighbours(v).iter().all(|&u| sees(owner, u)), "link n{a}-n{b}");
            }
            border += usize::from(regions.of(a) != regions.of(b));
        }
        assert!(border > 0);
        // A node's region sees every neighbour of its neighbours.
        for v in 0..36 {
            for &u in topo.neighbours(v) {
                assert!(
                    topo.neighbours(u).iter().all(|&w| sees(regions.of(v), w)),
                    "n{v}'s region sees n{u}'s neighbours"
                );
            }
        }
        // Interior nodes far from the border go to their own region only.
        assert!((0..36).any(|v| regions.audience(v).len() == 1));
        assert_eq!(Regions::partition(1, 2), 1);
        assert_eq!(regions.on_partitions(&[1], 2), vec![1]);
        assert_eq!(regions.on_partitions(&[0], 1), vec![0, 1]);
    }

    /// Named regions; a node left out joins the first.
    #[test]
    fn regions_by_name() {
        let topo = grid(4);
        let spec = RegionsSpec::Explicit(vec![vec!["n0".into()], vec!["n3".into(), "n2".into()]]);
        let regions = Regions::new(&topo, &spec);
        assert_eq!((0..4).map(|v| regions.of(v)).collect::<Vec<_>>(), vec![0, 0, 1, 1]);
        assert_eq!(regions.owner(&topo, &Element::link("n1", "n3")), Some(0));
        assert_eq!(regions.owner(&topo, &Element::node("n3")), Some(1));
    }
}
