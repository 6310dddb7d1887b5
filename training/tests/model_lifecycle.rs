//! The model's life on a toy problem: windows written to Parquet and read back
//! unchanged, a model trained on them that separates faulty from healthy links,
//! saved to a registry, loaded, scoring identically, and promoted atomically.
#![allow(clippy::unwrap_used)]

use x0_training::{
    champion, evaluate, load_champion, promote, read_datasets, score_windows, train, DatasetWriter, GraphDetector,
    GraphWindow, Label, LabelledWindow, LinkEndInput, ModelCard, NodeInput, TrainOptions,
};

/// A ring of 6 nodes; in odd runs link 2-3 loses 40% of its probes from window 5 on.
fn toy(runs: usize) -> Vec<LabelledWindow> {
    let mut out = Vec::new();
    for r in 0..runs {
        for i in 0..20i64 {
            let mut g = GraphWindow {
                node_x: (0..6)
                    .map(|_| NodeInput::vector(Some(&NodeInput { cpu: 0.2, mem: 0.4, ..Default::default() })))
                    .collect(),
                ..Default::default()
            };
            let mut links = Vec::new();
            for k in 0..6u32 {
                let faulty = r % 2 == 1 && k == 2 && i >= 5;
                let end = LinkEndInput {
                    probe_loss: Some(if faulty { 0.4 } else { 0.0 }),
                    loss_ratio: Some(if faulty { 0.35 } else { 0.001 }),
                    rtt_avg_us: Some(1500.0),
                    tx_packets: 500.0,
                    peer_present: true,
                    ..Default::default()
                };
                let v = LinkEndInput::vector(Some(&end));
                g.push_link(k, (k + 1) % 6, v, v);
                links.push(Label { faulty, weight: 1.0, kind: faulty.then(|| "link-loss".into()), robust_flag: false });
            }
            out.push(LabelledWindow {
                run: format!("toy#{r}"),
                window: i,
                start_ns: i * 500_000_000,
                node_names: (0..6).map(|n| format!("n{n}")).collect(),
                graph: g,
                nodes: vec![Label { weight: 1.0, ..Default::default() }; 6],
                links,
            });
        }
    }
    out
}

#[tokio::test]
async fn windows_round_trip_train_save_load_and_promote() {
    let dir = tempfile::tempdir().unwrap();
    let windows = toy(10);
    let mut w = DatasetWriter::create(&dir.path().join("ds")).unwrap();
    for x in &windows {
        w.write(x).unwrap();
    }
    assert_eq!(w.finish().unwrap(), (200, 1200));
    let back = read_datasets(&[&dir.path().join("ds")]).await.unwrap();
    assert_eq!(back, windows, "Parquet round trip changes nothing");

    let opts = TrainOptions { epochs: 30, batch_windows: 16, validation_every: 5, ..Default::default() };
    let t = train(&back, &opts, |_, _, _, _| {});
    assert!(t.losses.last().unwrap().train < t.losses[0].train, "{:?}", t.losses);
    let card = ModelCard {
        version: "toy-1".into(),
        shape: opts.shape,
        normaliser: t.normaliser.clone(),
        threshold: t.threshold,
        options: opts.clone(),
        datasets: vec![],
        train_runs: t.train_runs,
        train_node_windows: t.train_node_windows,
        losses: t.losses.clone(),
        best_epoch: t.best_epoch,
        held_out: Default::default(),
    };
    let det = GraphDetector::new(card, t.model);
    let held = toy(4)
        .into_iter()
        .map(|mut w| {
            w.run = format!("held-{}", w.run);
            w
        })
        .collect::<Vec<_>>();
    let scores = score_windows(det.graph(), &det.card.normaliser, &held);
    let q = &evaluate(&held, &scores, det.threshold())["all"];
    assert_eq!((q.events, q.detected, q.alarms_false), (2, 2, 0), "{q:?}");

    let registry = dir.path().join("models");
    det.save(&registry).unwrap();
    assert_eq!(champion(&registry).unwrap(), None);
    promote(&registry, "toy-1").unwrap();
    let loaded = load_champion(&registry).unwrap().unwrap();
    assert_eq!(
        (&loaded.card.version, loaded.card.threshold, &loaded.card.normaliser),
        (&det.card.version, det.card.threshold, &det.card.normaliser)
    );
    for w in &held[..5] {
        assert_eq!(loaded.score(&w.graph), det.score(&w.graph), "a loaded model scores identically");
    }
}
