//! The mesh graph a scenario generates, its probe flows, baseline routes and resolved
//! fault targets. The simulator, the stream job and the lab all derive these from the
//! same scenario with this code, so they agree on names, links and baseline routing.

use crate::{Element, Fault, FaultTarget, Regions, Scenario, Shape, TopologySpec, TrafficPairs};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, HashSet, VecDeque};
use thiserror::Error;

/// Index of a node in its [`Topology`].
pub type NodeId = usize;

#[derive(Debug, Error, PartialEq)]
/// Why a topology could not be built from a scenario (the scenario's author to fix).
pub enum TopologyError {
    #[error("topology has no nodes")]
    /// The topology has no node.
    Empty,
    /// A fault names a link or node the topology does not have.
    #[error("fault {fault}: unknown target {target:?}")]
    UnknownTarget {
        /// The fault's index in the scenario.
        fault: usize,
        /// The target it names.
        target: String,
    },
    /// `[topology] regions` lists a node the topology does not have.
    #[error("regions: unknown node {0:?}")]
    UnknownRegionNode(String),
    /// An `auto` fault found no element of the kind it needs.
    #[error("fault {fault}: no eligible {what} for target = \"auto\"")]
    NoAutoTarget {
        /// The fault's index in the scenario.
        fault: usize,
        /// What kind of element it needed.
        what: &'static str,
    },
}

/// An undirected mesh graph with named nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    names: Vec<String>,
    index: HashMap<String, NodeId>,
    links: Vec<(NodeId, NodeId)>,
    adjacency: Vec<Vec<NodeId>>,
    regions: Regions,
}

impl Topology {
    /// Builds a topology from explicit names and links (duplicates ignored).
    pub fn from_links(names: Vec<String>, links: impl IntoIterator<Item = (NodeId, NodeId)>) -> Self {
        let index = names.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
        let mut adjacency = vec![Vec::new(); names.len()];
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (a, b) in links {
            let key = (a.min(b), a.max(b));
            if a != b && seen.insert(key) {
                out.push(key);
                adjacency[a].push(b);
                adjacency[b].push(a);
            }
        }
        for adj in &mut adjacency {
            adj.sort_unstable();
        }
        let regions = Regions::single(names.len());
        Topology { names, index, links: out, adjacency, regions }
    }

    /// Generates the scenario's topology; deterministic for a seed.
    pub fn generate(spec: &TopologySpec) -> Result<Self, TopologyError> {
        let n = spec.nodes;
        let named = |n: usize| (0..n).map(|i| format!("n{i}")).collect::<Vec<_>>();
        let topo = match spec.shape {
            Shape::Grid => {
                let side = (n as f64).sqrt().ceil() as usize;
                let mut links = Vec::new();
                for i in 0..n {
                    if (i % side) + 1 < side && i + 1 < n {
                        links.push((i, i + 1));
                    }
                    if i + side < n {
                        links.push((i, i + side));
                    }
                }
                Self::from_links(named(n), links)
            }
            Shape::Ring => Self::from_links(named(n), (0..n).map(|i| (i, (i + 1) % n))),
            Shape::RingOfRings => Self::from_links(named(n), ring_of_rings(n)),
            Shape::RandomGeometric => Self::from_links(named(n), random_geometric(n, spec.seed)),
            Shape::Explicit => {
                let mut names: Vec<String> = Vec::new();
                let mut idx: HashMap<String, usize> = HashMap::new();
                let mut id = |s: &String, names: &mut Vec<String>| {
                    *idx.entry(s.clone()).or_insert_with(|| {
                        names.push(s.clone());
                        names.len() - 1
                    })
                };
                let links: Vec<_> = spec.links.iter().map(|[a, b]| (id(a, &mut names), id(b, &mut names))).collect();
                Self::from_links(names, links)
            }
        };
        if topo.names.is_empty() {
            return Err(TopologyError::Empty);
        }
        if let crate::RegionsSpec::Explicit(groups) = &spec.regions {
            if let Some(unknown) = groups.iter().flatten().find(|n| topo.id(n).is_none()) {
                return Err(TopologyError::UnknownRegionNode(unknown.clone()));
            }
        }
        let regions = Regions::new(&topo, &spec.regions);
        Ok(Topology { regions, ..topo })
    }

    /// Its regions (one unless the inventory splits it among job instances).
    pub fn regions(&self) -> &Regions {
        &self.regions
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there is no node.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// A node's name.
    pub fn name(&self, id: NodeId) -> &str {
        &self.names[id]
    }

    /// Every node's name, by id.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// A node's id by name.
    pub fn id(&self, name: &str) -> Option<NodeId> {
        self.index.get(name).copied()
    }

    /// Links as (lower id, higher id).
    pub fn links(&self) -> &[(NodeId, NodeId)] {
        &self.links
    }

    /// A node's neighbours.
    pub fn neighbours(&self, id: NodeId) -> &[NodeId] {
        &self.adjacency[id]
    }

    /// Whether two nodes share a link.
    pub fn has_link(&self, a: NodeId, b: NodeId) -> bool {
        self.adjacency[a].binary_search(&b).is_ok()
    }

    /// The element for a link by ids.
    pub fn link_element(&self, a: NodeId, b: NodeId) -> Element {
        Element::link(&self.names[a], &self.names[b])
    }

    /// Hop counts from every node to `dst` over links `usable(a, b)` allows
    /// (`usize::MAX` where unreachable).
    pub fn distances_to(&self, dst: NodeId, usable: &dyn Fn(NodeId, NodeId) -> bool) -> Vec<usize> {
        let mut dist = vec![usize::MAX; self.len()];
        dist[dst] = 0;
        let mut queue = VecDeque::from([dst]);
        while let Some(v) = queue.pop_front() {
            for &u in &self.adjacency[v] {
                if dist[u] == usize::MAX && usable(u, v) {
                    dist[u] = dist[v] + 1;
                    queue.push_back(u);
                }
            }
        }
        dist
    }

    /// Baseline routing towards `dst`: for every node, the next hop on a fewest-hops
    /// path, ties broken by lowest node id. This is what nodes route by before any
    /// healing command (the lab installs the same routes).
    pub fn baseline_next_hops(&self, dst: NodeId) -> Vec<Option<NodeId>> {
        let dist = self.distances_to(dst, &|_, _| true);
        (0..self.len())
            .map(|s| {
                if s == dst || dist[s] == usize::MAX {
                    return None;
                }
                self.adjacency[s].iter().copied().find(|&n| dist[n] != usize::MAX && dist[n] + 1 == dist[s])
            })
            .collect()
    }

    /// The baseline path from `src` to `dst` (node ids, both ends included).
    pub fn baseline_path(&self, src: NodeId, dst: NodeId) -> Option<Vec<NodeId>> {
        let next = self.baseline_next_hops(dst);
        let mut path = vec![src];
        let mut at = src;
        while at != dst {
            at = next[at]?;
            path.push(at);
        }
        Some(path)
    }

    /// Whether the mesh stays connected without `element`.
    pub fn connected_without(&self, element: &Element) -> bool {
        self.connected_without_all(std::slice::from_ref(element))
    }

    /// Whether the mesh's remaining nodes stay connected without all of `elements`
    /// (nodes, with their links, and links).
    pub fn connected_without_all(&self, elements: &[Element]) -> bool {
        let mut skip_nodes = HashSet::new();
        let mut skip_links = HashSet::new();
        for e in elements {
            match e {
                Element::Node { id } => skip_nodes.extend(self.id(id)),
                Element::Link { a, b } => {
                    skip_links.extend(self.id(a).zip(self.id(b)).map(|(a, b)| (a.min(b), a.max(b))))
                }
            }
        }
        let Some(start) = (0..self.len()).find(|i| !skip_nodes.contains(i)) else { return true };
        let usable = |u: NodeId, v: NodeId| {
            !skip_nodes.contains(&u) && !skip_nodes.contains(&v) && !skip_links.contains(&(u.min(v), u.max(v)))
        };
        let reached = self.distances_to(start, &usable).iter().filter(|&&d| d != usize::MAX).count();
        reached == self.len() - skip_nodes.len()
    }

    /// The scenario's probe flows as (source, destination) pairs; deterministic.
    /// A count draws distinct ordered pairs at random (never materialising all n²).
    pub fn flows(&self, scenario: &Scenario) -> Vec<(NodeId, NodeId)> {
        let n = self.len();
        match scenario.traffic.pairs {
            TrafficPairs::All(_) => (0..n).flat_map(|a| (0..n).filter(move |&b| b != a).map(move |b| (a, b))).collect(),
            TrafficPairs::Count(k) => {
                let k = k.min(n * n.saturating_sub(1));
                let mut rng = ChaCha8Rng::seed_from_u64(scenario.topology.seed ^ 0xF10E);
                let mut seen = HashSet::new();
                let mut pairs = Vec::with_capacity(k);
                while pairs.len() < k {
                    let (a, b) = (rng.gen_range(0..n), rng.gen_range(0..n));
                    if a != b && seen.insert((a, b)) {
                        pairs.push((a, b));
                    }
                }
                pairs
            }
        }
    }

    /// Resolves each fault's target to an element. `auto` picks, deterministically
    /// from the seed, among the three elements carrying the most baseline probe flows
    /// whose loss does not partition the mesh (a fault that cannot be routed around
    /// cannot be healed by rerouting, only reported).
    pub fn resolve_faults(&self, scenario: &Scenario) -> Result<Vec<Element>, TopologyError> {
        if scenario.faults.is_empty() {
            return Ok(vec![]);
        }
        let mut load: HashMap<Element, usize> = HashMap::new();
        for (s, d) in self.flows(scenario) {
            if let Some(path) = self.baseline_path(s, d) {
                for w in path.windows(2) {
                    *load.entry(self.link_element(w[0], w[1])).or_default() += 1;
                }
                for &v in &path[1..path.len() - 1] {
                    *load.entry(Element::node(&self.names[v])).or_default() += 1;
                }
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(scenario.topology.seed ^ 0xFA17);
        let mut taken: HashSet<Element> = HashSet::new();
        scenario.faults.iter().enumerate().map(|(i, f)| self.resolve_one(i, f, &load, &mut rng, &mut taken)).collect()
    }

    fn resolve_one(
        &self,
        i: usize,
        fault: &Fault,
        load: &HashMap<Element, usize>,
        rng: &mut ChaCha8Rng,
        taken: &mut HashSet<Element>,
    ) -> Result<Element, TopologyError> {
        let unknown = || TopologyError::UnknownTarget { fault: i, target: fault.target.clone() };
        let element = match fault.parsed_target() {
            FaultTarget::Link(a, b) => {
                let (x, y) = (self.id(&a).ok_or_else(unknown)?, self.id(&b).ok_or_else(unknown)?);
                if !self.has_link(x, y) {
                    return Err(unknown());
                }
                Element::link(&a, &b)
            }
            FaultTarget::Node(n) => {
                let liar = self.id(&n).ok_or_else(unknown)?;
                // A byzantine reporter's link ends must be links it has.
                for peer in fault.lies_about() {
                    let peer = self.id(&peer).ok_or_else(unknown)?;
                    if !self.has_link(liar, peer) {
                        return Err(unknown());
                    }
                }
                Element::node(&n)
            }
            FaultTarget::Auto => {
                let wants_link = fault.kind.targets_link();
                let mut candidates: Vec<(&Element, usize)> = load
                    .iter()
                    .filter(|(e, _)| matches!(e, Element::Link { .. }) == wants_link)
                    .filter(|(e, _)| !taken.contains(*e) && self.connected_without(e))
                    .map(|(e, &l)| (e, l))
                    .collect();
                candidates.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(y.0)));
                candidates.truncate(3);
                let what = if wants_link { "link" } else { "node" };
                let pick = candidates.get(rng.gen_range(0..candidates.len().max(1)));
                pick.map(|(e, _)| (*e).clone()).ok_or(TopologyError::NoAutoTarget { fault: i, what })?
            }
        };
        taken.insert(element.clone());
        Ok(element)
    }
}

/// Rings of about √n nodes; ring heads and ring middles each form a backbone ring, so
/// losing any one node or link never partitions the mesh.
fn ring_of_rings(n: usize) -> Vec<(NodeId, NodeId)> {
    let rings = ((n as f64).sqrt().round() as usize).clamp(2, n / 3);
    let mut starts = Vec::new();
    let mut links = Vec::new();
    for r in 0..rings {
        let (lo, hi) = (r * n / rings, (r + 1) * n / rings);
        starts.push((lo, lo + (hi - lo) / 2));
        for i in lo..hi {
            links.push((i, if i + 1 == hi { lo } else { i + 1 }));
        }
    }
    for r in 0..rings {
        let next = (r + 1) % rings;
        links.push((starts[r].0, starts[next].0));
        links.push((starts[r].1, starts[next].1));
    }
    links
}

/// Nodes placed uniformly in the unit square, linked within a radius that keeps the
/// mean degree near 6; components are then joined by their closest pair of nodes.
fn random_geometric(n: usize, seed: u64) -> Vec<(NodeId, NodeId)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pos: Vec<(f64, f64)> = (0..n).map(|_| (rng.gen::<f64>(), rng.gen::<f64>())).collect();
    let d2 = |a: usize, b: usize| (pos[a].0 - pos[b].0).powi(2) + (pos[a].1 - pos[b].1).powi(2);
    let radius2 = 6.0 / (std::f64::consts::PI * n as f64);
    let mut links: Vec<_> =
        (0..n).flat_map(|a| (a + 1..n).map(move |b| (a, b))).filter(|&(a, b)| d2(a, b) <= radius2).collect();
    loop {
        let topo = Topology::from_links(vec![String::new(); n], links.clone());
        let dist = topo.distances_to(0, &|_, _| true);
        let (inside, outside): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| dist[i] != usize::MAX);
        if outside.is_empty() {
            return links;
        }
        let best = inside
            .iter()
            .flat_map(|&a| outside.iter().map(move |&b| (a, b)))
            .min_by(|x, y| d2(x.0, x.1).total_cmp(&d2(y.0, y.1)))
            .expect("both sides non-empty");
        links.push(best);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(shape: Shape, nodes: usize) -> TopologySpec {
        TopologySpec { shape, nodes, seed: 7, links: vec![], regions: Default::default() }
    }

    #[test]
    fn grid16_has_24_links() {
        let t = Topology::generate(&spec(Shape::Grid, 16)).unwrap();
        assert_eq!((t.len(), t.links().len()), (16, 24));
        assert!(t.has_link(5, 6) && t.has_link(5, 9) && !t.has_link(3, 4));
    }

    #[test]
    fn generated_shapes_are_connected_and_survive_one_failure() {
        for (shape, n) in [(Shape::Grid, 16), (Shape::Ring, 8), (Shape::RingOfRings, 25), (Shape::RandomGeometric, 50)]
        {
            let t = Topology::generate(&spec(shape, n)).unwrap();
            assert_eq!(t.len(), n);
            assert!(t.distances_to(0, &|_, _| true).iter().all(|&d| d != usize::MAX), "{shape:?} disconnected");
            if shape != Shape::RandomGeometric {
                for i in 0..n {
                    assert!(t.connected_without(&Element::node(t.name(i))), "{shape:?} cut vertex n{i}");
                }
            }
        }
    }

    #[test]
    fn baseline_paths_are_shortest_and_deterministic() {
        let t = Topology::generate(&spec(Shape::Grid, 16)).unwrap();
        let p = t.baseline_path(0, 15).unwrap();
        assert_eq!(p.len(), 7);
        assert_eq!(p, t.baseline_path(0, 15).unwrap());
    }

    #[test]
    fn random_geometric_is_deterministic_per_seed() {
        let a = Topology::generate(&spec(Shape::RandomGeometric, 50)).unwrap();
        let b = Topology::generate(&spec(Shape::RandomGeometric, 50)).unwrap();
        assert_eq!(a, b);
    }
}
