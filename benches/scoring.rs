//! Scoring one window of a large mesh with the graph model, on one core.
//!
//! A `--nodes`-node grid (about two links per node), every node and link end with
//! healthy measurements and a few faulty links; the timed part is everything the stream
//! job does per window with the model: normalising the inputs, building the batch and
//! the forward pass, with the allocator set up as the stream job sets it.
//!
//! taskset -c 0 cargo bench --bench scoring -- [--nodes 100000] [--rounds 20] [--allocator-defaults]

use std::time::Instant;
use x0_training::{GraphDetector, GraphWindow, LinkEndInput, NodeInput};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // As `run` and `demo` do; `--allocator-defaults` measures glibc's defaults instead.
    if !std::env::args().any(|a| a == "--allocator-defaults") {
        x0_pipeline::keep_freed_memory();
    }
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
    let Some(detector) = GraphDetector::builtin() else {
        eprintln!("the built-in model does not load");
        std::process::exit(1);
    };
    let time = |d: &GraphDetector| {
        let t = Instant::now();
        let s = d.score(&g);
        assert_eq!(s.nodes.len(), nodes);
        t.elapsed().as_secs_f64() * 1000.0
    };
    let _ = time(&detector); // warm-up; builds the topology's index
    let steady: Vec<f64> = (0..rounds).map(|_| time(&detector)).collect();
    // The first window after the mesh changed shape also builds the index tensors.
    let changed: Vec<f64> =
        (0..rounds.div_ceil(4)).map(|_| GraphDetector::builtin().map(|d| time(&d)).unwrap_or(f64::NAN)).collect();
    println!("model {} scoring a {nodes}-node, {}-link window on one core:", detector.version(), g.links());
    for (what, mut ms) in [("same topology as the last window", steady), ("first window of a new topology", changed)] {
        ms.sort_by(f64::total_cmp);
        let p = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        println!(
            "  {what}: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms over {} rounds",
            p(0.5),
            p(0.95),
            p(1.0),
            ms.len()
        );
    }
}
