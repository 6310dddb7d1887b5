//! GraphSAGE over the mesh (burn): nodes are mesh nodes, edges are link ends carrying
//! their measurements; two mean-aggregation layers; an anomaly head per node and one
//! per link.
//!
//! Why this shape. Each node starts from its own report plus the mean of what it
//! measured on its links and the mean of what its neighbours measured towards it (so a
//! silent node is still described by its neighbours, and a node whose claims nobody
//! shares looks different from one whose neighbours all suffer). Aggregation is per
//! node (mean of neighbour states, then one `Linear`), never per edge, so scoring
//! costs two gathers and two scatters over the edges plus dense work per node: it has
//! to score a 100,000-node window in well under 100 ms on one core. The link head is
//! symmetric in its two ends (sum and absolute difference of the end nodes' states,
//! element-wise max and min of the two ends' measurements), so a link scores the same
//! whichever end is called `a`.

use crate::graph::{GraphWindow, EDGE_FEATURES, NODE_FEATURES};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, relu, sigmoid};
use burn::tensor::IndexingUpdateOp;
use serde::{Deserialize, Serialize};

/// Model size; stored with the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelShape {
    /// Width of the node states.
    pub hidden: usize,
}

impl Default for ModelShape {
    fn default() -> Self {
        ModelShape { hidden: 16 }
    }
}

#[derive(Module, Debug)]
/// The GraphSAGE model: node and edge encoders, message passing over the mesh, an
/// anomaly head per node and per link.
pub struct GraphSage {
    input: Linear,
    self1: Linear,
    neigh1: Linear,
    self2: Linear,
    neigh2: Linear,
    node_head: Linear,
    link_hidden: Linear,
    link_head: Linear,
}

/// Per-column mean and standard deviation of the inputs, fitted on the training set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normaliser {
    /// Per node feature, its mean over the training windows.
    pub node_mean: Vec<f32>,
    /// Per node feature, its standard deviation.
    pub node_std: Vec<f32>,
    /// Per edge feature, its mean.
    pub edge_mean: Vec<f32>,
    /// Per edge feature, its standard deviation.
    pub edge_std: Vec<f32>,
}

fn moments<const N: usize>(rows: impl Iterator<Item = [f32; N]>) -> (Vec<f32>, Vec<f32>) {
    let (mut n, mut sum, mut sq) = (0f64, [0f64; N], [0f64; N]);
    for r in rows {
        n += 1.0;
        for i in 0..N {
            sum[i] += f64::from(r[i]);
            sq[i] += f64::from(r[i]) * f64::from(r[i]);
        }
    }
    let n = n.max(1.0);
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let std = (0..N).map(|i| ((sq[i] / n - (sum[i] / n).powi(2)).max(0.0).sqrt() as f32).max(1e-3)).collect();
    (mean, std)
}

impl Normaliser {
    /// Means and deviations over `windows`.
    pub fn fit<'a>(windows: impl Iterator<Item = &'a GraphWindow> + Clone) -> Self {
        let (node_mean, node_std) = moments(windows.clone().flat_map(|w| w.node_x.iter().copied()));
        let (edge_mean, edge_std) = moments(windows.flat_map(|w| w.edge_x.iter().copied()));
        Normaliser { node_mean, node_std, edge_mean, edge_std }
    }

    fn apply<const N: usize>(rows: &[[f32; N]], mean: &[f32], std: &[f32], out: &mut Vec<f32>) {
        for r in rows {
            out.extend((0..N).map(|i| (r[i] - mean[i]) / std[i]));
        }
    }
}

/// Width of the first layer's input per node: its report, the mean of what it
/// measured on its links, the mean of what its neighbours measured towards it.
const NODE_INPUT: usize = NODE_FEATURES + 2 * EDGE_FEATURES;
/// Width of the measurement part of the link head's input: element-wise max and min of
/// the two ends' measurements.
const LINK_INPUT: usize = 2 * EDGE_FEATURES;

/// The topology of a batch (which ends join which nodes), as index tensors. It depends
/// only on the mesh's shape, not on its measurements, so the stream job builds it once
/// per topology and reuses it for every window ([`GraphBatch::with_index`]).
#[derive(Debug, Clone)]
pub struct GraphIndex {
    src: Tensor<1, Int>,
    dst: Tensor<1, Int>,
    inv_degree: Tensor<2>,
    link_a: Tensor<1, Int>,
    link_b: Tensor<1, Int>,
    /// `inv_degree` as numbers, for the input means.
    inv: Vec<f32>,
    /// Nodes of one window.
    pub nodes: usize,
    /// Links of one window.
    pub links: usize,
}

impl GraphIndex {
    /// The index tensors of `windows`' topology.
    pub fn new(windows: &[&GraphWindow], device: &Device) -> Self {
        let nodes: usize = windows.iter().map(|w| w.nodes()).sum();
        let ends: usize = windows.iter().map(|w| w.ends()).sum();
        let (mut src, mut dst) = (Vec::with_capacity(ends), Vec::with_capacity(ends));
        let (mut link_a, mut link_b) = (Vec::with_capacity(ends / 2), Vec::with_capacity(ends / 2));
        let mut degree = vec![0u32; nodes];
        let mut node_off = 0i64;
        for w in windows {
            for (e, (&s, &d)) in w.src.iter().zip(&w.dst).enumerate() {
                let (s, d) = (node_off + i64::from(s), node_off + i64::from(d));
                src.push(s);
                dst.push(d);
                degree[d as usize] += 1;
                // Ends come in pairs (a→b, b→a): one link per pair.
                if e % 2 == 0 {
                    link_a.push(s);
                    link_b.push(d);
                }
            }
            node_off += w.nodes() as i64;
        }
        let inv: Vec<f32> = degree.iter().map(|&d| if d > 0 { 1.0 / d as f32 } else { 0.0 }).collect();
        let links = link_a.len();
        let ints = |v: Vec<i64>| {
            let n = v.len();
            Tensor::<1, Int>::from_data(TensorData::new(v, [n]), device)
        };
        GraphIndex {
            src: ints(src),
            dst: ints(dst),
            inv_degree: Tensor::from_data(TensorData::new(inv.clone(), [nodes, 1]), device),
            link_a: ints(link_a),
            link_b: ints(link_b),
            inv,
            nodes,
            links,
        }
    }
}

/// A batch of windows as one block-diagonal graph, ready for the model.
///
/// The parts of the forward pass that depend only on the inputs (the first layer's
/// per-node means of the link measurements, the link head's max/min of its two ends)
/// are computed here, once, in plain loops over the window: they have no parameters to
/// learn, and doing them as tensor ops cost two scatters, four gathers and their
/// temporary buffers on every window.
#[derive(Debug, Clone)]
pub struct GraphBatch {
    node_in: Tensor<2>,
    link_in: Tensor<2>,
    index: GraphIndex,
}

impl GraphBatch {
    /// `windows` as one block-diagonal graph, normalised.
    pub fn new(windows: &[&GraphWindow], norm: &Normaliser, device: &Device) -> Self {
        Self::with_index(windows, norm, GraphIndex::new(windows, device), device)
    }

    /// A batch over `index`, which must have been built from windows of the same shape.
    pub fn with_index(windows: &[&GraphWindow], norm: &Normaliser, index: GraphIndex, device: &Device) -> Self {
        let mut node_in = vec![0f32; index.nodes * NODE_INPUT];
        let mut link_in = Vec::with_capacity(index.links * LINK_INPUT);
        let mut edge = Vec::with_capacity(EDGE_FEATURES * 2);
        let mut node_off = 0usize;
        for w in windows {
            for (v, x) in w.node_x.iter().enumerate() {
                let row = &mut node_in[(node_off + v) * NODE_INPUT..][..NODE_FEATURES];
                for (i, out) in row.iter_mut().enumerate() {
                    *out = (x[i] - norm.node_mean[i]) / norm.node_std[i];
                }
            }
            for (e, (&s, &d)) in w.src.iter().zip(&w.dst).enumerate().step_by(2) {
                let (s, d) = (node_off + s as usize, node_off + d as usize);
                edge.clear();
                Normaliser::apply(&w.edge_x[e..e + 2], &norm.edge_mean, &norm.edge_std, &mut edge);
                let (ab, ba) = edge.split_at(EDGE_FEATURES);
                link_in.extend(ab.iter().zip(ba).map(|(x, y)| x.max(*y)));
                link_in.extend(ab.iter().zip(ba).map(|(x, y)| x.min(*y)));
                // What `s` measured towards `d` and `d` towards `s`: sums for now.
                for (i, (x, y)) in ab.iter().zip(ba).enumerate() {
                    node_in[s * NODE_INPUT + NODE_FEATURES + i] += x;
                    node_in[d * NODE_INPUT + NODE_FEATURES + EDGE_FEATURES + i] += x;
                    node_in[d * NODE_INPUT + NODE_FEATURES + i] += y;
                    node_in[s * NODE_INPUT + NODE_FEATURES + EDGE_FEATURES + i] += y;
                }
            }
            node_off += w.nodes();
        }
        for (row, inv) in node_in.chunks_exact_mut(NODE_INPUT).zip(&index.inv) {
            row[NODE_FEATURES..].iter_mut().for_each(|x| *x *= inv);
        }
        GraphBatch {
            node_in: Tensor::from_data(TensorData::new(node_in, [index.nodes, NODE_INPUT]), device),
            link_in: Tensor::from_data(TensorData::new(link_in, [index.links, LINK_INPUT]), device),
            index,
        }
    }

    /// Nodes across the batch.
    pub fn nodes(&self) -> usize {
        self.index.nodes
    }

    /// Links across the batch.
    pub fn links(&self) -> usize {
        self.index.links
    }

    /// Mean over the ends arriving at each node of `values` (one row per end).
    fn mean_at(&self, index: &Tensor<1, Int>, values: Tensor<2>) -> Tensor<2> {
        let [_, width] = values.dims();
        let zeros = Tensor::<2>::zeros([self.index.nodes, width], &values.device());
        zeros.select_assign(0, index.clone(), values, IndexingUpdateOp::Add) * self.index.inv_degree.clone()
    }
}

/// The model's raw outputs for a batch: one logit per node and per link.
#[derive(Debug, Clone)]
pub struct Logits {
    pub node: Tensor<2>,
    pub link: Tensor<2>,
}

impl GraphSage {
    /// A model of `shape` with fresh weights.
    pub fn new(shape: ModelShape, device: &Device) -> Self {
        let h = shape.hidden;
        let lin = |i: usize, o: usize| LinearConfig::new(i, o).init(device);
        GraphSage {
            input: lin(NODE_INPUT, h),
            self1: lin(h, h),
            neigh1: lin(h, h),
            self2: lin(h, h),
            neigh2: lin(h, h),
            node_head: lin(h, 1),
            link_hidden: lin(2 * h + LINK_INPUT, h),
            link_head: lin(h, 1),
        }
    }

    /// Anomaly logits per node and per link.
    pub fn forward(&self, b: &GraphBatch) -> Logits {
        let ix = &b.index;
        let h0 = relu(self.input.forward(b.node_in.clone()));
        let neigh = b.mean_at(&ix.dst, h0.clone().select(0, ix.src.clone()));
        let h1 = relu(self.self1.forward(h0) + self.neigh1.forward(neigh));
        let neigh = b.mean_at(&ix.dst, h1.clone().select(0, ix.src.clone()));
        let h2 = relu(self.self2.forward(h1) + self.neigh2.forward(neigh));

        let node = self.node_head.forward(h2.clone());
        let (ha, hb) = (h2.clone().select(0, ix.link_a.clone()), h2.select(0, ix.link_b.clone()));
        let pair = Tensor::cat(vec![ha.clone() + hb.clone(), (ha - hb).abs(), b.link_in.clone()], 1);
        let link = self.link_head.forward(relu(self.link_hidden.forward(pair)));
        Logits { node, link }
    }
}

/// Weighted binary cross-entropy with logits: `Σ w·(softplus(z) − y·z) / Σ w`.
pub(crate) fn weighted_bce(logits: Tensor<2>, targets: Tensor<2>, weights: Tensor<2>) -> Tensor<1> {
    let per = -log_sigmoid(-logits.clone()) - targets * logits;
    let total = weights.clone().sum().clamp_min(1e-6);
    (per * weights).sum() / total
}

/// Probabilities from logits, as plain numbers.
pub(crate) fn probabilities(logits: Tensor<2>) -> Vec<f32> {
    sigmoid(logits).into_data().try_to_vec::<f32>().unwrap_or_default()
}
