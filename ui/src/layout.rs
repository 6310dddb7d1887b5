//! Where each node (or, on a big mesh, each region) sits on the map.
//!
//! Hand-written because nothing on crates.io lays out a graph without a rendering
//! stack around it, and the two steps are short: landmark coordinates (graph distance
//! to far-apart nodes, which puts a grid on a grid and a ring on a ring), then a
//! bounded number of Fruchterman–Reingold steps to untangle the rest. Beyond
//! [`DETAIL_MAX`] nodes the mesh is cut into regions (graph Voronoi cells around
//! far-apart seeds), each drawn at the mean landmark position of its nodes.

use x0_schema::{farthest_node as farthest, hop_counts as bfs, Topology};

/// The largest mesh drawn node by node; a bigger one is drawn by region.
pub const DETAIL_MAX: usize = 400;
/// Nodes per region on a big mesh (about).
const REGION_NODES: usize = 150;
/// Regions at most, whatever the mesh size.
const REGIONS_MAX: usize = 120;

/// A map of the mesh, coordinates in 0..1000.
#[derive(Debug, Clone)]
pub(crate) struct MeshMap {
    /// Node positions (node mode) or region positions (region mode).
    pub pos: Vec<[f32; 2]>,
    /// Each node's region; None in node mode.
    pub region_of: Option<Vec<u32>>,
    /// Region mode: the links between regions, with how many mesh links each stands for.
    pub region_links: Vec<(u32, u32, u32)>,
    /// Region mode: nodes per region.
    pub region_sizes: Vec<u32>,
}

impl MeshMap {
    /// Lays `topo` out, node by node up to [`DETAIL_MAX`] nodes, else by region.
    pub(crate) fn new(topo: &Topology) -> Self {
        let n = topo.len();
        let adjacency: Vec<Vec<usize>> = (0..n).map(|v| topo.neighbours(v).to_vec()).collect();
        if n <= DETAIL_MAX {
            let pos = layout(&adjacency);
            return MeshMap { pos, region_of: None, region_links: vec![], region_sizes: vec![] };
        }
        let k = n.div_ceil(REGION_NODES).clamp(2, REGIONS_MAX);
        let region_of = x0_schema::voronoi_cells(&adjacency, k);
        let mut region_sizes = vec![0u32; k];
        for &r in &region_of {
            region_sizes[r as usize] += 1;
        }
        let mut between = std::collections::BTreeMap::new();
        for &(a, b) in topo.links() {
            let (ra, rb) = (region_of[a], region_of[b]);
            if ra != rb {
                *between.entry((ra.min(rb), ra.max(rb))).or_insert(0u32) += 1;
            }
        }
        // Each region sits at the mean landmark position of its nodes: the regions keep
        // the mesh's own shape (a grid of regions for a grid).
        let coords = landmarks(&adjacency);
        let mut pos = vec![[0.0f32; 2]; k];
        for (v, &r) in region_of.iter().enumerate() {
            pos[r as usize][0] += coords[v][0] / region_sizes[r as usize] as f32;
            pos[r as usize][1] += coords[v][1] / region_sizes[r as usize] as f32;
        }
        normalise(&mut pos);
        let region_links = between.into_iter().map(|((a, b), c)| (a, b, c)).collect();
        MeshMap { pos, region_of: Some(region_of), region_links, region_sizes }
    }
}

/// Positions in 0..1000 for a graph: landmark coordinates, untangled by
/// Fruchterman–Reingold.
fn layout(adjacency: &[Vec<usize>]) -> Vec<[f32; 2]> {
    let n = adjacency.len();
    if n == 0 {
        return vec![];
    }
    if n == 1 {
        return vec![[500.0, 500.0]];
    }
    let mut pos = landmarks(adjacency);
    normalise(&mut pos);
    force_directed(adjacency, &mut pos);
    normalise(&mut pos);
    pos
}

/// Each vertex's graph distances to far-apart landmarks as coordinates (not normalised).
fn landmarks(adjacency: &[Vec<usize>]) -> Vec<[f32; 2]> {
    let n = adjacency.len();
    // Landmarks: two ends of a long path give x, the node farthest from both gives y.
    let p1 = farthest(&bfs(adjacency, &[0]));
    let d1 = bfs(adjacency, &[p1]);
    let p2 = farthest(&d1);
    let d2 = bfs(adjacency, &[p2]);
    let p3 =
        (0..n).filter(|&v| d1[v] != usize::MAX).max_by_key(|&v| (d1[v].min(d2[v]), std::cmp::Reverse(v))).unwrap_or(0);
    let d3 = bfs(adjacency, &[p3]);
    let coord = |d: usize| if d == usize::MAX { 0.0 } else { d as f32 };
    (0..n)
        .map(|v| {
            // A little deterministic jitter separates nodes the landmarks cannot tell apart.
            let jitter = ((v * 7919) % 97) as f32 / 97.0 - 0.5;
            [coord(d1[v]) - coord(d2[v]) + jitter * 0.3, -coord(d3[v]) + jitter * 0.2]
        })
        .collect()
}

/// Fruchterman–Reingold steps on `pos` (in 0..1000).
fn force_directed(adjacency: &[Vec<usize>], pos: &mut [[f32; 2]]) {
    let n = adjacency.len();
    // Fruchterman–Reingold: springs along edges, repulsion between all pairs (n is at
    // most a few hundred here), a temperature that cools to zero.
    let ideal = 1000.0 / (n as f32).sqrt();
    let steps = 120;
    for step in 0..steps {
        let temperature = ideal * (1.0 - step as f32 / steps as f32) * 0.5;
        let mut shift = vec![[0.0f32; 2]; n];
        for v in 0..n {
            for u in (v + 1)..n {
                let (dx, dy) = (pos[v][0] - pos[u][0], pos[v][1] - pos[u][1]);
                let d2 = (dx * dx + dy * dy).max(1.0);
                let f = ideal * ideal / d2;
                shift[v][0] += dx * f;
                shift[v][1] += dy * f;
                shift[u][0] -= dx * f;
                shift[u][1] -= dy * f;
            }
            for &u in &adjacency[v] {
                let (dx, dy) = (pos[v][0] - pos[u][0], pos[v][1] - pos[u][1]);
                let d = (dx * dx + dy * dy).sqrt().max(1.0);
                shift[v][0] -= dx * d / ideal;
                shift[v][1] -= dy * d / ideal;
            }
        }
        for (p, s) in pos.iter_mut().zip(&shift) {
            let len = (s[0] * s[0] + s[1] * s[1]).sqrt().max(1e-6);
            let step = len.min(temperature);
            p[0] += s[0] / len * step;
            p[1] += s[1] / len * step;
        }
    }
}

/// Scales positions into 40..960, keeping the aspect ratio, centred on the short axis.
fn normalise(pos: &mut [[f32; 2]]) {
    let (mut lo, mut hi) = ([f32::MAX; 2], [f32::MIN; 2]);
    for p in pos.iter() {
        for i in 0..2 {
            lo[i] = lo[i].min(p[i]);
            hi[i] = hi[i].max(p[i]);
        }
    }
    let span = (hi[0] - lo[0]).max(hi[1] - lo[1]).max(1e-6);
    for p in pos.iter_mut() {
        for i in 0..2 {
            let margin = (920.0 - (hi[i] - lo[i]) / span * 920.0) / 2.0;
            p[i] = 40.0 + margin + (p[i] - lo[i]) / span * 920.0;
        }
    }
}

/// A side × side grid.
#[cfg(test)]
pub(crate) fn grid(side: usize) -> Topology {
    let names = (0..side * side).map(|i| format!("n{i}")).collect();
    let mut links: Vec<(usize, usize)> = Vec::new();
    for r in 0..side {
        for c in 0..side {
            let v = r * side + c;
            if c + 1 < side {
                links.push((v, v + 1));
            }
            if r + 1 < side {
                links.push((v, v + side));
            }
        }
    }
    Topology::from_links(names, links)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_grid_is_drawn_node_by_node_without_overlaps() {
        let map = MeshMap::new(&grid(4));
        assert!(map.region_of.is_none());
        assert_eq!(map.pos.len(), 16);
        for (i, p) in map.pos.iter().enumerate() {
            assert!(p.iter().all(|c| (39.0..=961.0).contains(c)), "{p:?}");
            for q in &map.pos[i + 1..] {
                let d = ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt();
                assert!(d > 40.0, "nodes {p:?} and {q:?} overlap");
            }
        }
    }

    #[test]
    fn a_big_mesh_is_cut_into_connected_regions() {
        let topo = grid(40);
        let map = MeshMap::new(&topo);
        let region_of = map.region_of.as_ref().expect("region mode");
        let k = map.pos.len();
        assert_eq!(k, 1600usize.div_ceil(REGION_NODES));
        assert_eq!(map.region_sizes.iter().sum::<u32>(), 1600);
        assert!(map.region_sizes.iter().all(|&s| s > 0));
        // Every region is connected inside itself (Voronoi cells of a BFS are).
        for r in 0..k as u32 {
            let members: Vec<usize> = (0..topo.len()).filter(|&v| region_of[v] == r).collect();
            let mut seen = vec![false; topo.len()];
            let mut stack = vec![members[0]];
            seen[members[0]] = true;
            while let Some(v) = stack.pop() {
                for &u in topo.neighbours(v) {
                    if region_of[u] == r && !seen[u] {
                        seen[u] = true;
                        stack.push(u);
                    }
                }
            }
            assert!(members.iter().all(|&v| seen[v]), "region {r} is not connected");
        }
        assert!(!map.region_links.is_empty());
    }
}
