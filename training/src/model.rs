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
    pub hidden: usize,
}

impl Default for ModelShape {
    fn default() -> Self {
        ModelShape { hidden: 24 }
    }
}

#[derive(Module, Debug)]
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
    pub node_mean: Vec<f32>,
    pub node_std: Vec<f32>,
    pub edge_mean: Vec<f32>,
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

/// A batch of windows as one block-diagonal graph, ready for the model.
#[derive(Debug, Clone)]
pub struct GraphBatch {
    node_x: Tensor<2>,
    edge_x: Tensor<2>,
    src: Tensor<1, Int>,
    dst: Tensor<1, Int>,
    inv_degree: Tensor<2>,
    link_a: Tensor<1, Int>,
    link_b: Tensor<1, Int>,
    end_ab: Tensor<1, Int>,
    end_ba: Tensor<1, Int>,
    pub nodes: usize,
    pub links: usize,
}

impl GraphBatch {
    pub fn new(windows: &[&GraphWindow], norm: &Normaliser, device: &Device) -> Self {
        let nodes: usize = windows.iter().map(|w| w.nodes()).sum();
        let ends: usize = windows.iter().map(|w| w.ends()).sum();
        let (mut node_x, mut edge_x) =
            (Vec::with_capacity(nodes * NODE_FEATURES), Vec::with_capacity(ends * EDGE_FEATURES));
        let (mut src, mut dst) = (Vec::with_capacity(ends), Vec::with_capacity(ends));
        let mut degree = vec![0f32; nodes];
        let (mut link_a, mut link_b, mut end_ab, mut end_ba) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut node_off, mut end_off) = (0i64, 0i64);
        for w in windows {
            Normaliser::apply(&w.node_x, &norm.node_mean, &norm.node_std, &mut node_x);
            Normaliser::apply(&w.edge_x, &norm.edge_mean, &norm.edge_std, &mut edge_x);
            for (e, (&s, &d)) in w.src.iter().zip(&w.dst).enumerate() {
                src.push(node_off + i64::from(s));
                dst.push(node_off + i64::from(d));
                degree[(node_off + i64::from(d)) as usize] += 1.0;
                if e % 2 == 0 {
                    link_a.push(node_off + i64::from(s));
                    link_b.push(node_off + i64::from(d));
                    end_ab.push(end_off + e as i64);
                    end_ba.push(end_off + e as i64 + 1);
                }
            }
            node_off += w.nodes() as i64;
            end_off += w.ends() as i64;
        }
        let links = link_a.len();
        let inv_degree: Vec<f32> = degree.iter().map(|&d| if d > 0.0 { 1.0 / d } else { 0.0 }).collect();
        let ints = |v: Vec<i64>| {
            let n = v.len();
            Tensor::<1, Int>::from_data(TensorData::new(v, [n]), device)
        };
        GraphBatch {
            node_x: Tensor::from_data(TensorData::new(node_x, [nodes, NODE_FEATURES]), device),
            edge_x: Tensor::from_data(TensorData::new(edge_x, [ends, EDGE_FEATURES]), device),
            src: ints(src),
            dst: ints(dst),
            inv_degree: Tensor::from_data(TensorData::new(inv_degree, [nodes, 1]), device),
            link_a: ints(link_a),
            link_b: ints(link_b),
            end_ab: ints(end_ab),
            end_ba: ints(end_ba),
            nodes,
            links,
        }
    }

    /// Mean over the ends arriving at each node of `values` (one row per end).
    fn mean_at(&self, index: &Tensor<1, Int>, values: Tensor<2>) -> Tensor<2> {
        let [_, width] = values.dims();
        let zeros = Tensor::<2>::zeros([self.nodes, width], &values.device());
        zeros.select_assign(0, index.clone(), values, IndexingUpdateOp::Add) * self.inv_degree.clone()
    }
}

/// The model's raw outputs for a batch: one logit per node and per link.
#[derive(Debug, Clone)]
pub struct Logits {
    pub node: Tensor<2>,
    pub link: Tensor<2>,
}

impl GraphSage {
    pub fn new(shape: ModelShape, device: &Device) -> Self {
        let h = shape.hidden;
        let lin = |i: usize, o: usize| LinearConfig::new(i, o).init(device);
        GraphSage {
            input: lin(NODE_FEATURES + 2 * EDGE_FEATURES, h),
            self1: lin(h, h),
            neigh1: lin(h, h),
            self2: lin(h, h),
            neigh2: lin(h, h),
            node_head: lin(h, 1),
            link_hidden: lin(2 * h + 2 * EDGE_FEATURES, h),
            link_head: lin(h, 1),
        }
    }

    pub fn forward(&self, b: &GraphBatch) -> Logits {
        // What each node measured on its links, and what its neighbours measured towards it.
        let measured = b.mean_at(&b.src, b.edge_x.clone());
        let seen = b.mean_at(&b.dst, b.edge_x.clone());
        let h0 = relu(self.input.forward(Tensor::cat(vec![b.node_x.clone(), measured, seen], 1)));
        let neigh = b.mean_at(&b.dst, h0.clone().select(0, b.src.clone()));
        let h1 = relu(self.self1.forward(h0) + self.neigh1.forward(neigh));
        let neigh = b.mean_at(&b.dst, h1.clone().select(0, b.src.clone()));
        let h2 = relu(self.self2.forward(h1) + self.neigh2.forward(neigh));

        let node = self.node_head.forward(h2.clone());
        let (ha, hb) = (h2.clone().select(0, b.link_a.clone()), h2.select(0, b.link_b.clone()));
        let (eab, eba) = (b.edge_x.clone().select(0, b.end_ab.clone()), b.edge_x.clone().select(0, b.end_ba.clone()));
        let pair = Tensor::cat(
            vec![ha.clone() + hb.clone(), (ha - hb).abs(), eab.clone().max_pair(eba.clone()), eab.min_pair(eba)],
            1,
        );
        let link = self.link_head.forward(relu(self.link_hidden.forward(pair)));
        Logits { node, link }
    }
}

/// Weighted binary cross-entropy with logits: `Σ w·(softplus(z) − y·z) / Σ w`.
pub fn weighted_bce(logits: Tensor<2>, targets: Tensor<2>, weights: Tensor<2>) -> Tensor<1> {
    let per = -log_sigmoid(-logits.clone()) - targets * logits;
    let total = weights.clone().sum().clamp_min(1e-6);
    (per * weights).sum() / total
}

/// Probabilities from logits, as plain numbers.
pub fn probabilities(logits: Tensor<2>) -> Vec<f32> {
    sigmoid(logits).into_data().try_to_vec::<f32>().unwrap_or_default()
}
