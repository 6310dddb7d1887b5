//! Repairing routes at the fault's edge: planning that scales with the fault, not with
//! the mesh.
//!
//! Every route that crosses a faulted link passes one of its ends with the link as next
//! hop, and every route that crosses a crashed node passes one of its neighbours with
//! the crash as next hop. Re-pointing those edge nodes alone repairs every route of the
//! mesh, provided each new next hop leads on to the destination without coming back and
//! without crossing a fault. Whether it does is decided from fewest-hop distances, as
//! IP fast reroute decides its loop-free alternates (RFC 5286): when every fewest-hop
//! path from `z` to `d` is strictly shorter than any path from `z` to `d` through `s`,
//! then `z`'s baseline route to `d` (one of those fewest-hop paths) does not touch `s`.
//! The distances needed are those from the few nodes around the faults, one BFS each,
//! shared by every destination: a destination costs a few lookups, and nothing is n².
//!
//! Where no neighbour of the edge node qualifies, the repair walks up to [`MAX_DEPTH`]
//! hops around it (each node on the way takes an override), and past a near-bridge,
//! where the other way round is longer, on up to [`DEEP_DEPTH`] hops over at most
//! [`DEEP_NODES`] nodes; where that fails too, the planner repairs that one
//! destination over its whole shortest-path tree instead.
//! Hand-written: this is the planner's core, and no routing crate offers it.

use rustc_hash::FxHashSet;
use x0_schema::{NodeId, Topology};

/// How far from the edge node the shallow search goes (every candidate's own hop
/// distances, shared by every destination: candidates this close to the fault recur).
pub(crate) const MAX_DEPTH: usize = 3;

/// How far the deep search goes when the shallow one found nothing, before the planner
/// falls back to the destination's whole tree. Candidates this far out are judged on
/// the destination's distances (one BFS per destination, not one per candidate).
/// A whole-tree repair moves every route behind the cut (tens of thousands of route
/// changes for one near-bridge link of a 2,000-node mesh); a path this long moves a
/// dozen per destination.
pub(crate) const DEEP_DEPTH: usize = 12;

/// Nodes the deep search may visit.
pub(crate) const DEEP_NODES: usize = 2048;

/// A distance beyond any real one, still safe to add to another.
pub(crate) const FAR: u64 = 1 << 40;

/// Fewest-hop distances over every link (the metric baseline routes follow, faults or
/// not) from a few nodes, computed on demand: one BFS per node, at most `capacity`,
/// plus those from the destination being repaired, in a slot of their own that the
/// next destination reuses (a plan visits thousands of destinations, each once: kept,
/// their distances would spend the budget the nodes around the fault share).
pub(crate) struct Hops {
    /// Where each node's distances are in `tables` (`u32::MAX`: not held). An index,
    /// not a map: `between` runs millions of times in a plan of a big mesh.
    slot: Vec<u32>,
    tables: Vec<Vec<u32>>,
    capacity: usize,
    destination: Option<(NodeId, Vec<u32>)>,
    /// The links as flat arrays, built at the first BFS (a BFS over `Topology`'s
    /// per-node vectors chases a pointer per node: 7 ms at 100,000 nodes).
    graph: Option<FlatGraph>,
    queue: Vec<u32>,
}

/// Adjacency in compressed sparse rows: node v's neighbours are
/// `targets[offsets[v]..offsets[v + 1]]`.
struct FlatGraph {
    offsets: Vec<u32>,
    targets: Vec<u32>,
}

impl FlatGraph {
    fn of(topo: &Topology) -> Self {
        let mut offsets = Vec::with_capacity(topo.len() + 1);
        let mut targets = Vec::with_capacity(topo.links().len() * 2);
        offsets.push(0);
        for v in 0..topo.len() {
            targets.extend(topo.neighbours(v).iter().map(|&u| u as u32));
            offsets.push(targets.len() as u32);
        }
        FlatGraph { offsets, targets }
    }

    /// Hop counts from `from` into `dist` (`u32::MAX`: unreachable).
    fn bfs(&self, from: NodeId, dist: &mut Vec<u32>, queue: &mut Vec<u32>) {
        dist.clear();
        dist.resize(self.offsets.len() - 1, u32::MAX);
        queue.clear();
        queue.push(from as u32);
        dist[from] = 0;
        let mut head = 0;
        while let Some(&v) = queue.get(head) {
            head += 1;
            let next = dist[v as usize] + 1;
            for &u in &self.targets[self.offsets[v as usize] as usize..self.offsets[v as usize + 1] as usize] {
                if dist[u as usize] == u32::MAX {
                    dist[u as usize] = next;
                    queue.push(u);
                }
            }
        }
    }
}

impl Hops {
    /// Room for `max_entries` distances in all (4 bytes each), and never fewer than 16
    /// nodes' worth.
    pub(crate) fn new(nodes: usize, max_entries: usize) -> Self {
        Hops {
            slot: vec![u32::MAX; nodes],
            tables: Vec::new(),
            capacity: (max_entries / nodes.max(1)).max(16),
            destination: None,
            graph: None,
            queue: Vec::new(),
        }
    }

    fn held(&self, v: NodeId) -> bool {
        self.slot[v] != u32::MAX
    }

    fn bfs_into(&mut self, topo: &Topology, from: NodeId, dist: &mut Vec<u32>) {
        let graph = self.graph.get_or_insert_with(|| FlatGraph::of(topo));
        graph.bfs(from, dist, &mut self.queue);
    }

    fn hold(&mut self, topo: &Topology, v: NodeId) {
        let mut dist = Vec::new();
        self.bfs_into(topo, v, &mut dist);
        self.slot[v] = self.tables.len() as u32;
        self.tables.push(dist);
    }

    /// Makes the distances from the destination `d` known, outside the budget, in
    /// place of the previous destination's.
    pub(crate) fn focus(&mut self, topo: &Topology, d: NodeId) {
        if self.held(d) || self.destination.as_ref().is_some_and(|(v, _)| *v == d) {
            return;
        }
        let mut dist = self.destination.take().map(|(_, dist)| dist).unwrap_or_default();
        self.bfs_into(topo, d, &mut dist);
        self.destination = Some((d, dist));
    }

    fn distances_from(&self, v: NodeId) -> Option<&[u32]> {
        match (self.slot[v], &self.destination) {
            (i, _) if i != u32::MAX => Some(&self.tables[i as usize]),
            (_, Some((d, dist))) if *d == v => Some(dist),
            _ => None,
        }
    }

    /// Makes the distances from `v` known; false when the budget is spent.
    pub(crate) fn ensure(&mut self, topo: &Topology, v: NodeId) -> bool {
        self.ensure_within(topo, v, self.capacity)
    }

    /// Makes the distances from `v` known while half the budget is free: for a deep
    /// search's candidates, which recur across destinations (the same way round a
    /// near-bridge serves many) but must not starve the nodes near the fault.
    pub(crate) fn ensure_spare(&mut self, topo: &Topology, v: NodeId) -> bool {
        self.ensure_within(topo, v, self.capacity / 2)
    }

    fn ensure_within(&mut self, topo: &Topology, v: NodeId, limit: usize) -> bool {
        if self.held(v) {
            return true;
        }
        if self.tables.len() >= limit {
            return false;
        }
        self.hold(topo, v);
        true
    }

    /// Makes the distances from `v` known whatever the budget (the few nodes at the
    /// fault itself, without which nothing can be planned).
    pub(crate) fn require(&mut self, topo: &Topology, v: NodeId) {
        if !self.held(v) {
            self.hold(topo, v);
        }
    }

    /// Whether the distances from `v` are known.
    pub(crate) fn known(&self, v: NodeId) -> bool {
        self.distances_from(v).is_some()
    }

    /// Hops between `a` and `b`, [`FAR`] when unreachable; the distances from one of
    /// them must be known.
    pub(crate) fn between(&self, a: NodeId, b: NodeId) -> u64 {
        let h = match (self.distances_from(a), self.distances_from(b)) {
            (Some(from_a), _) => from_a[b],
            (None, Some(from_b)) => from_b[a],
            (None, None) => panic!("hop distances from neither {a} nor {b} are known"),
        };
        if h == u32::MAX {
            FAR
        } else {
            u64::from(h)
        }
    }

    /// `v`'s baseline next hop toward `d`: its first neighbour one hop closer, as
    /// `Topology::baseline_next_hops` picks it. None where `v` is `d`, `d` is out of
    /// reach, or neither the distances from `d` nor from every neighbour of `v` are
    /// known.
    pub(crate) fn baseline_next(&self, topo: &Topology, v: NodeId, d: NodeId) -> Option<NodeId> {
        let around = topo.neighbours(v);
        if v == d || !(self.known(d) || around.iter().all(|&y| self.known(y))) {
            return None;
        }
        let closest = around.iter().map(|&y| self.between(y, d)).min().filter(|&h| h < FAR)?;
        around.iter().copied().find(|&y| self.between(y, d) == closest)
    }

    /// From how many nodes distances are held, and their bytes (the destination's
    /// slot included).
    pub(crate) fn footprint(&self) -> (usize, usize) {
        let slot = self.destination.iter().map(|(_, dist)| dist.len() * 4);
        (
            self.tables.len() + usize::from(self.destination.is_some()),
            self.tables.iter().map(|v| v.len() * 4).chain(slot).sum(),
        )
    }
}

/// The faulted elements routes must avoid.
pub(crate) struct Faults<'a> {
    /// Crashed nodes: no route crosses them.
    pub nodes: &'a FxHashSet<NodeId>,
    /// (low, high) node ids.
    pub links: &'a FxHashSet<(NodeId, NodeId)>,
    /// Of `nodes`, those reporting again while their incident is open: still crossed
    /// by no route until it clears, but their own routes and the routes toward them
    /// are repaired like any node's.
    pub returned: &'a FxHashSet<NodeId>,
}

impl Faults<'_> {
    /// Whether the hop a→b is usable: its link is not faulted and b is not crashed.
    pub(crate) fn hop_ok(&self, a: NodeId, b: NodeId) -> bool {
        !self.nodes.contains(&b) && !self.links.contains(&(a.min(b), a.max(b)))
    }

    /// Whether a route toward `d` may take the hop a→b: a usable hop, or the last hop
    /// into `d` itself when `d` is back from a crash.
    pub(crate) fn hop_toward(&self, a: NodeId, b: NodeId, d: NodeId) -> bool {
        self.hop_ok(a, b) || (b == d && self.returned.contains(&b) && !self.links.contains(&(a.min(b), a.max(b))))
    }

    /// Crashed and not back: neither source nor destination of a repair.
    pub(crate) fn down(&self, n: NodeId) -> bool {
        self.nodes.contains(&n) && !self.returned.contains(&n)
    }
}

/// Where a question needed more distances than the budget allows.
#[derive(Debug)]
pub(crate) struct OverBudget;

/// Whether `z`'s baseline route to `d` crosses no faulted link and touches none of
/// `avoid` (crashed nodes belong there, and every node whose route toward `d` is not
/// its baseline): sufficient, every fewest-hop path from `z` to `d` is strictly
/// shorter than any through them, and than any across a faulted link one of whose
/// ends routes across it.
pub(crate) fn clean_exit(
    topo: &Topology,
    hops: &mut Hops,
    faults: &Faults,
    z: NodeId,
    d: NodeId,
    avoid: &[NodeId],
    by_destination: bool,
) -> Result<bool, OverBudget> {
    if z == d {
        return Ok(true);
    }
    if avoid.contains(&z) {
        return Ok(false);
    }
    // Distances are symmetric: z's own serve, which later destinations and the
    // guardrail's current-route check reuse; with `by_destination` (a deep search's
    // far-out candidates), or with the budget spent, the destination's do (one BFS,
    // kept for this destination only).
    let own = hops.known(z) || (!by_destination && hops.ensure(topo, z));
    if !own {
        hops.focus(topo, d);
    }
    let zd = hops.between(z, d);
    if zd >= FAR {
        return Ok(false);
    }
    for &s in avoid.iter().filter(|&&s| s != d) {
        if !hops.ensure(topo, s) {
            // Over budget: z's distances and d's serve instead of s's.
            hops.focus(topo, d);
            if !hops.known(z) {
                return Err(OverBudget);
            }
        }
        if zd >= hops.between(z, s) + hops.between(s, d) {
            return Ok(false);
        }
    }
    for &(a, b) in faults.links {
        hops.require(topo, a);
        hops.require(topo, b);
        // A route toward d crosses a→b only where a's next hop toward d is b. Outside
        // `avoid`, a routes by its baseline; in it, the check above keeps z's route
        // away from a altogether. A link neither end routes across (its ends repaired
        // already, or d lying elsewhere) cannot be crossed, however many fewest-hop
        // paths pass it: on a grid most do, and each rejected exit sent the repair on
        // to the deep search.
        let routes_across = |u: NodeId, v: NodeId, hops: &Hops| {
            !avoid.contains(&u) && hops.baseline_next(topo, u, d).is_none_or(|n| n == v)
        };
        if !routes_across(a, b, hops) && !routes_across(b, a, hops) {
            continue;
        }
        if zd >= hops.between(z, a) + 1 + hops.between(b, d) || zd >= hops.between(z, b) + 1 + hops.between(a, d) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A repair of one edge node's route: the path `x, p1, …, z` whose nodes each take
/// the next one as next hop.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EdgeRepair {
    pub path: Vec<NodeId>,
    /// `z` is a node repaired before toward the same destination (the path joins its
    /// repair), not an exit whose baseline route is clean.
    pub joins: bool,
}

/// A repair of `x`'s route to `d`: the path `x, p1, …, z` with `z` the first node
/// whose baseline route is clean, or one of `joins` (nodes whose routes toward `d`
/// were repaired already). The shallowest such path wins, then the cheapest (link
/// costs to `z`, fewest hops from `z` on). `Ok(None)`: none within [`MAX_DEPTH`]
/// hops, or with `deep` within [`DEEP_DEPTH`] (past [`MAX_DEPTH`] visiting at most
/// [`DEEP_NODES`] nodes).
#[allow(clippy::too_many_arguments)]
pub(crate) fn repair_at_edge(
    topo: &Topology,
    hops: &mut Hops,
    faults: &Faults,
    cost: &dyn Fn(NodeId, NodeId) -> f64,
    x: NodeId,
    d: NodeId,
    avoid: &[NodeId],
    joins: &[NodeId],
    deep: bool,
) -> Result<Option<EdgeRepair>, OverBudget> {
    let mut level = vec![vec![x]];
    let mut seen = FxHashSet::from_iter([x]);
    for depth in 1..=if deep { DEEP_DEPTH } else { MAX_DEPTH } {
        if depth > MAX_DEPTH && seen.len() > DEEP_NODES {
            break;
        }
        let (mut next, mut joined) = (Vec::new(), Vec::new());
        for path in &level {
            let at = *path.last().expect("non-empty");
            for &z in topo.neighbours(at) {
                if !faults.hop_toward(at, z, d) || !seen.insert(z) {
                    continue;
                }
                // One allocation, not a clone at exact capacity then a regrowth.
                let mut p = Vec::with_capacity(path.len() + 1);
                p.extend_from_slice(path);
                p.push(z);
                if joins.contains(&z) {
                    joined.push(p);
                } else if z == d || !avoid.contains(&z) {
                    next.push(p);
                }
            }
        }
        let mut best: Option<(f64, EdgeRepair)> = None;
        let mut around = Vec::with_capacity(avoid.len() + depth);
        for (p, joins) in next.iter().map(|p| (p, false)).chain(joined.iter().map(|p| (p, true))) {
            let z = *p.last().expect("non-empty");
            if !joins {
                around.clear();
                around.extend_from_slice(avoid);
                around.extend_from_slice(&p[1..p.len() - 1]);
                // A far-out candidate is judged on its own distances while the budget
                // has room (the next destination asks about it again), else on the
                // destination's (one BFS, this destination only). The same numbers.
                let by_destination = depth > MAX_DEPTH && !hops.ensure_spare(topo, z);
                if !clean_exit(topo, hops, faults, z, d, &around, by_destination)? {
                    continue;
                }
            }
            // An exit judged on d's distances: the same numbers as z's.
            let known = hops.known(z) || hops.known(d);
            let onward = if known { hops.between(z, d) as f64 } else { 0.0 };
            let c = p.windows(2).map(|w| cost(w[0], w[1])).sum::<f64>() + onward;
            if best.as_ref().is_none_or(|(bc, b)| c < *bc || (c == *bc && *p < b.path)) {
                best = Some((c, EdgeRepair { path: p.clone(), joins }));
            }
        }
        if let Some((_, repair)) = best {
            return Ok(Some(repair));
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    Ok(None)
}

/// The backup next hop for `v`'s route to `d` besides `primary`: a loop-free
/// alternate where one exists (RFC 5286: the cheapest neighbour whose own baseline
/// route avoids `v`, the faults and `avoid`, so the kernel fails over to it on carrier
/// loss without a loop); elsewhere the cheapest other usable neighbour, which U-turns
/// what it gets back from `v` as every baseline backup does (see the kernel lab).
#[allow(clippy::too_many_arguments)]
pub(crate) fn alternate(
    topo: &Topology,
    hops: &mut Hops,
    faults: &Faults,
    cost: &dyn Fn(NodeId, NodeId) -> f64,
    v: NodeId,
    primary: NodeId,
    d: NodeId,
    avoid: &[NodeId],
) -> Option<NodeId> {
    let mut around = avoid.to_vec();
    if !around.contains(&v) {
        around.push(v);
    }
    // Ranked: loop-free first, then one that holds no override toward d (its route is
    // the baseline the U-turn tables know), then the cheapest.
    let mut best: Option<((bool, bool), f64, NodeId)> = None;
    for &w in topo.neighbours(v) {
        if w == primary || !faults.hop_toward(v, w, d) {
            continue;
        }
        let rank = (matches!(clean_exit(topo, hops, faults, w, d, &around, false), Ok(true)), !around.contains(&w));
        let c = cost(v, w) + if hops.ensure(topo, w) { hops.between(w, d) as f64 } else { 0.0 };
        if best.is_none_or(|(r, bc, _)| rank > r || rank == r && c < bc) {
            best = Some((rank, c, w));
        }
    }
    best.map(|(_, _, w)| w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use x0_schema::{Shape, TopologySpec};

    fn grid(side: usize) -> Topology {
        Topology::generate(&TopologySpec {
            shape: Shape::Grid,
            nodes: side * side,
            seed: 1,
            links: vec![],
            regions: Default::default(),
        })
        .expect("grid")
    }

    /// Walks baseline next hops (fewest hops, lowest id first) from s to d.
    fn baseline_path(topo: &Topology, s: NodeId, d: NodeId) -> Vec<NodeId> {
        topo.baseline_path(s, d).expect("connected")
    }

    /// The exit test never lets through a node whose baseline route touches what it
    /// must avoid: checked against the real baseline paths of a grid, for every pair.
    #[test]
    fn a_clean_exit_is_clean_on_its_real_baseline_path() {
        let topo = grid(6);
        let (a, b) = (14, 15);
        let (nodes, links) = (FxHashSet::from_iter([21]), FxHashSet::from_iter([(a, b)]));
        let returned = FxHashSet::default();
        let faults = Faults { nodes: &nodes, links: &links, returned: &returned };
        let mut hops = Hops::new(topo.len(), 1 << 20);
        let mut passed = 0;
        for z in 0..topo.len() {
            for d in 0..topo.len() {
                if z == d || d == 21 || z == 21 {
                    continue;
                }
                let avoid = [21, 8];
                if clean_exit(&topo, &mut hops, &faults, z, d, &avoid, false).expect("budget") {
                    passed += 1;
                    let path = baseline_path(&topo, z, d);
                    assert!(
                        !path.contains(&21) && !path[..path.len() - 1].contains(&8) || d == 8,
                        "{z}->{d}: {path:?}"
                    );
                    assert!(!path.windows(2).any(|w| (w[0].min(w[1]), w[0].max(w[1])) == (a, b)), "{z}->{d}: {path:?}");
                }
            }
        }
        assert!(passed > 500, "{passed}");
    }

    /// The textbook case local repair cannot do in one hop: on a grid row, the link
    /// ahead is cut, and both side neighbours route back through us. The repair goes
    /// around the cut in three hops and ends on a clean route.
    #[test]
    fn the_repair_goes_around_a_cut_on_a_grid_row() {
        let topo = grid(8);
        // Row 3: nodes 24..=31; cut 27-28, route 27 -> 31.
        let links = FxHashSet::from_iter([(27, 28)]);
        let nodes = FxHashSet::default();
        let returned = FxHashSet::default();
        let faults = Faults { nodes: &nodes, links: &links, returned: &returned };
        let mut hops = Hops::new(topo.len(), 1 << 20);
        hops.require(&topo, 27);
        hops.require(&topo, 28);
        let repair = repair_at_edge(&topo, &mut hops, &faults, &|_, _| 1.0, 27, 31, &[27], &[], false)
            .expect("budget")
            .expect("a repair");
        assert!(!repair.joins);
        let path = repair.path;
        assert_eq!(path.first(), Some(&27));
        assert!(path.len() <= MAX_DEPTH + 1);
        let z = *path.last().unwrap();
        let rest = baseline_path(&topo, z, 31);
        assert!(
            !rest.contains(&27) && !rest.windows(2).any(|w| w == [27, 28] || w == [28, 27]),
            "{path:?} then {rest:?}"
        );
        for p in &path[1..path.len() - 1] {
            assert!(!rest.contains(p), "{path:?} then {rest:?}");
        }
        // 27 has a backup besides its primary, across a healthy link.
        let alt = alternate(&topo, &mut hops, &faults, &|_, _| 1.0, 27, path[1], 31, &[27]).expect("a backup");
        assert!(alt != path[1] && alt != 28 && topo.neighbours(27).contains(&alt));
    }

    /// Past a near-bridge the way round is long: on a ring of 12 with the link 0-1 cut,
    /// 0's only way to 1 is six hops round the other side, beyond the shallow search;
    /// the deep search finds it and ends on a clean route.
    #[test]
    fn the_deep_search_goes_the_long_way_round() {
        let names = (0..12).map(|i| format!("n{i}")).collect();
        let topo = Topology::from_links(names, (0..12).map(|i| (i, (i + 1) % 12)));
        let (nodes, links) = (FxHashSet::default(), FxHashSet::from_iter([(0, 1)]));
        let returned = FxHashSet::default();
        let faults = Faults { nodes: &nodes, links: &links, returned: &returned };
        let mut hops = Hops::new(topo.len(), 1 << 20);
        hops.require(&topo, 0);
        hops.require(&topo, 1);
        let repair = repair_at_edge(&topo, &mut hops, &faults, &|_, _| 1.0, 0, 1, &[0], &[], true)
            .expect("budget")
            .expect("a repair");
        assert_eq!(repair.path, vec![0, 11, 10, 9, 8, 7, 6]);
        assert!(repair.path.len() > MAX_DEPTH + 1);
        let rest = baseline_path(&topo, 6, 1);
        assert!(!rest.contains(&0) && !rest.contains(&7), "{rest:?}");
    }

    /// Where a neighbour's own route avoids us, that neighbour is the backup.
    #[test]
    fn a_loop_free_alternate_is_preferred() {
        let topo = grid(6);
        let (nodes, links) = (FxHashSet::default(), FxHashSet::from_iter([(14, 15)]));
        let returned = FxHashSet::default();
        let faults = Faults { nodes: &nodes, links: &links, returned: &returned };
        let mut hops = Hops::new(topo.len(), 1 << 20);
        // 14 toward 35 (bottom right): 20 (below) and 15 (right, cut) lead there; 8 and 13 go back through 14.
        let w = alternate(&topo, &mut hops, &faults, &|_, _| 1.0, 14, 13, 35, &[14]).expect("a backup");
        assert_eq!(w, 20);
        assert!(!baseline_path(&topo, w, 35).contains(&14));
    }

    #[test]
    fn the_budget_is_kept() {
        let topo = grid(10);
        let mut hops = Hops::new(topo.len(), 100 * 20);
        for v in 0..20 {
            assert!(hops.ensure(&topo, v));
        }
        assert!(!hops.ensure(&topo, 20));
        hops.require(&topo, 20);
        assert_eq!(hops.footprint(), (21, 21 * 100 * 4));
    }
}
