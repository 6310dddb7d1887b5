//! Scoring one window of a large mesh with the graph model, on one core.
//!
//! A `--nodes`-node grid (about two links per node), every node and link end with
//! healthy measurements and a few faulty links; the timed part is everything the stream
//! job does per window with the model: normalising the inputs, building the batch and
//! the forward pass.
//!
//! taskset -c 0 cargo bench -p x0-training --bench scoring -- [--nodes 100000] [--rounds 20]

use std::time::Instant;
use x0_training::{
    GraphDetector, GraphSage, GraphWindow, LinkEndInput, ModelCard, ModelShape, NodeInput, Normaliser, TrainOptions,
};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let nodes = arg("--nodes", 100_000);
    let rounds = arg("--rounds", 20);
    let side = (nodes as f64).sqrt().ceil() as usize;
    let mut g = GraphWindow {
        node_x: (0..nodes)
            .map(|i| {
                NodeInput::vector(Some(&NodeInput { cpu: 0.1 + (i % 7) as f64 * 0.05, mem: 0.4, ..Default::default() }))
            })
            .collect(),
        ..Default::default()
    };
    for i in 0..nodes {
        for j in [i + 1, i + side] {
            if j < nodes && (j != i + 1 || (i + 1) % side != 0) {
                let lossy = (i * 7919) % 10_007 == 0;
                let end = LinkEndInput {
                    loss_ratio: Some(if lossy { 0.3 } else { 0.001 }),
                    probe_loss: Some(if lossy { 0.4 } else { 0.0 }),
                    rtt_avg_us: Some(1000.0 + (i % 13) as f64 * 150.0),
                    tx_packets: 400.0,
                    peer_present: true,
                    ..Default::default()
                };
                let v = LinkEndInput::vector(Some(&end));
                g.push_link(i as u32, j as u32, v, v);
            }
        }
    }
    // The weights do not change the cost; the shipped model's shape and normalisation do.
    let detector = GraphDetector::builtin().unwrap_or_else(|| {
        let device = burn::prelude::Device::flex();
        let card = ModelCard {
            version: "bench".into(),
            shape: ModelShape::default(),
            normaliser: Normaliser::fit(std::iter::once(&g)),
            threshold: 0.5,
            options: TrainOptions::default(),
            datasets: vec![],
            train_runs: 0,
            train_node_windows: 0,
            losses: vec![],
            best_epoch: 0,
            held_out: Default::default(),
        };
        GraphDetector::new(card, GraphSage::new(ModelShape::default(), &device))
    });
    let _ = detector.score(&g); // warm-up
    let mut ms: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            let s = detector.score(&g);
            assert_eq!(s.nodes.len(), nodes);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let p = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    println!(
        "model {} scoring a {nodes}-node, {}-link window: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms over {rounds} rounds",
        detector.version(),
        g.links(),
        p(0.5),
        p(0.95),
        p(1.0)
    );
}
