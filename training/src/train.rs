//! Training the graph model on labelled windows, and scoring with it.

use crate::dataset::{Label, LabelledWindow};
use crate::eval::{evaluate, Scores};
use crate::graph::GraphWindow;
use crate::model::{probabilities, weighted_bce, GraphBatch, GraphSage, Normaliser};
use crate::run_options::{EpochLoss, TrainOptions};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// A trained model with what it needs to score: its input normalisation and the
/// decision threshold chosen on validation runs.
#[derive(Debug)]
pub struct Trained {
    /// The weights kept.
    pub model: GraphSage,
    /// Its input normalisation.
    pub normaliser: Normaliser,
    /// The decision threshold chosen on validation runs.
    pub threshold: f32,
    /// Loss per epoch.
    pub losses: Vec<EpochLoss>,
    /// The epoch whose weights were kept (lowest validation loss).
    pub best_epoch: usize,
    /// Runs trained on.
    pub train_runs: usize,
    /// Runs validated on.
    pub validation_runs: usize,
    /// Node windows trained on.
    pub train_node_windows: usize,
}

/// Targets and weights of a batch, class-balanced: faulty elements are rare, so they
/// weigh as much in total as the healthy ones (capped at 50× each).
fn targets(
    windows: &[&LabelledWindow],
    pick: impl Fn(&LabelledWindow) -> &[Label],
    device: &Device,
    pos_weight: f32,
) -> (Tensor<2>, Tensor<2>) {
    let (mut y, mut w) = (Vec::new(), Vec::new());
    for win in windows {
        for l in pick(win) {
            y.push(f32::from(u8::from(l.faulty)));
            w.push(if l.faulty { l.weight * pos_weight } else { l.weight });
        }
    }
    let n = y.len();
    (Tensor::from_data(TensorData::new(y, [n, 1]), device), Tensor::from_data(TensorData::new(w, [n, 1]), device))
}

fn positive_weight(windows: &[&LabelledWindow], pick: impl Fn(&LabelledWindow) -> &[Label]) -> f32 {
    let (mut pos, mut neg) = (0f64, 0f64);
    for w in windows {
        for l in pick(w).iter().filter(|l| l.weight > 0.0) {
            if l.faulty {
                pos += 1.0;
            } else {
                neg += 1.0;
            }
        }
    }
    if pos == 0.0 {
        1.0
    } else {
        (neg / pos).clamp(1.0, 50.0) as f32
    }
}

struct Prepared {
    batch: GraphBatch,
    node_y: Tensor<2>,
    node_w: Tensor<2>,
    link_y: Tensor<2>,
    link_w: Tensor<2>,
}

fn prepare(
    windows: &[&LabelledWindow],
    size: usize,
    norm: &Normaliser,
    weights: (f32, f32),
    device: &Device,
) -> Vec<Prepared> {
    windows
        .chunks(size.max(1))
        .map(|chunk| {
            let graphs: Vec<&GraphWindow> = chunk.iter().map(|w| &w.graph).collect();
            let (node_y, node_w) = targets(chunk, |w| &w.nodes, device, weights.0);
            let (link_y, link_w) = targets(chunk, |w| &w.links, device, weights.1);
            Prepared { batch: GraphBatch::new(&graphs, norm, device), node_y, node_w, link_y, link_w }
        })
        .collect()
}

fn loss(model: &GraphSage, p: &Prepared) -> Tensor<1> {
    let out = model.forward(&p.batch);
    weighted_bce(out.node, p.node_y.clone(), p.node_w.clone())
        + weighted_bce(out.link, p.link_y.clone(), p.link_w.clone())
}

/// Splits runs into training and validation: every `every`-th run in name order.
pub fn split_runs(windows: &[LabelledWindow], every: usize) -> (Vec<&LabelledWindow>, Vec<&LabelledWindow>) {
    let mut runs: Vec<&str> = windows.iter().map(|w| w.run.as_str()).collect();
    runs.sort_unstable();
    runs.dedup();
    let held: std::collections::HashSet<&str> =
        runs.iter().enumerate().filter(|(i, _)| every > 0 && i % every == every - 1).map(|(_, r)| *r).collect();
    windows.iter().partition(|w| !held.contains(w.run.as_str()))
}

/// Trains on `windows` (split by run into training and validation), reporting each
/// finished step as (epoch, step, steps per epoch, running loss).
pub fn train(
    windows: &[LabelledWindow],
    opts: &TrainOptions,
    mut progress: impl FnMut(usize, usize, usize, f64),
) -> Trained {
    let device = Device::flex().autodiff();
    device.seed(opts.seed);
    let (train_set, val_set) = split_runs(windows, opts.validation_every);
    let normaliser = Normaliser::fit(train_set.iter().map(|w| &w.graph));
    let weights = (positive_weight(&train_set, |w| &w.nodes), positive_weight(&train_set, |w| &w.links));
    let mut order = train_set.clone();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    let val = prepare(&val_set, opts.batch_windows * 4, &normaliser, weights, &device.clone().inner());
    let mut model = GraphSage::new(opts.shape, &device);
    let mut optim = AdamConfig::new().init();
    let mut losses = Vec::new();
    let mut best: Option<(f64, usize, GraphSage)> = None;
    for epoch in 0..opts.epochs {
        order.shuffle(&mut rng);
        let batches = prepare(&order, opts.batch_windows, &normaliser, weights, &device);
        let (mut sum, steps) = (0f64, batches.len());
        for (i, b) in batches.iter().enumerate() {
            let l = loss(&model, b);
            sum += f64::from(l.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(l.backward(), &model);
            model = optim.step(opts.learning_rate, model, grads);
            progress(epoch, i + 1, steps, sum / (i + 1) as f64);
        }
        let scoring = model.valid();
        let vl: f64 = val.iter().map(|b| f64::from(loss(&scoring, b).into_scalar::<f32>())).sum::<f64>()
            / val.len().max(1) as f64;
        losses.push(EpochLoss { epoch, train: sum / steps.max(1) as f64, validation: vl });
        // Early stopping: the epoch with the lowest validation loss is the one kept.
        if val.is_empty() || best.as_ref().is_none_or(|(b, _, _)| vl < *b) {
            best = Some((vl, epoch, scoring));
        }
    }
    let (model, best_epoch) = match best {
        Some((_, e, m)) => (m, e),
        None => (model.valid(), 0),
    };
    let val_windows: Vec<LabelledWindow> = val_set.iter().map(|w| (*w).clone()).collect();
    let scores = score_windows(&model, &normaliser, &val_windows);
    let threshold = choose_threshold(&val_windows, &scores, opts.max_window_fpr);
    let runs = |s: &[&LabelledWindow]| s.iter().map(|w| w.run.as_str()).collect::<std::collections::HashSet<_>>().len();
    Trained {
        train_node_windows: train_set.iter().map(|w| w.graph.nodes()).sum(),
        train_runs: runs(&train_set),
        validation_runs: runs(&val_set),
        model,
        normaliser,
        threshold,
        losses,
        best_epoch,
    }
}

/// The threshold with the best event F1 among those within the false-positive budget
/// (the lowest-FPR one if none is).
pub fn choose_threshold(windows: &[LabelledWindow], scores: &Scores, max_fpr: f64) -> f32 {
    let mut best: Option<(f64, f32)> = None;
    let mut fallback = (f64::MAX, 0.5f32);
    for i in 1..100 {
        let t = i as f32 / 100.0;
        let Some(q) = evaluate(windows, scores, t).remove("all") else { continue };
        if q.window_fpr < fallback.0 {
            fallback = (q.window_fpr, t);
        }
        if q.window_fpr <= max_fpr && best.is_none_or(|(f1, _)| q.f1 > f1) {
            best = Some((q.f1, t));
        }
    }
    best.map_or(fallback.1, |(_, t)| t)
}

/// Scores every window (inference, batched).
pub fn score_windows(model: &GraphSage, norm: &Normaliser, windows: &[LabelledWindow]) -> Scores {
    let device = Device::flex();
    let mut out = Scores::default();
    for chunk in windows.chunks(256) {
        let graphs: Vec<&GraphWindow> = chunk.iter().map(|w| &w.graph).collect();
        let batch = GraphBatch::new(&graphs, norm, &device);
        let logits = model.forward(&batch);
        let (nodes, links) = (probabilities(logits.node), probabilities(logits.link));
        let (mut n, mut l) = (0, 0);
        for w in chunk {
            out.nodes.push(nodes[n..n + w.graph.nodes()].to_vec());
            out.links.push(links[l..l + w.graph.links()].to_vec());
            n += w.graph.nodes();
            l += w.graph.links();
        }
    }
    out
}
