//! Champion and challenger, and hot reload: a model trained on simulated datasets is
//! promoted, a worse challenger (untrained) is not, and a running stream core serves a
//! newly promoted model from the next window on, recording its version on incidents.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use x0_harness::datasets::write_datasets;
use x0_harness::retrain::run_training;
use x0_lab::{SimMesh, SimOptions};
use x0_pipeline::{Config, FeatureEngine, HealingLoop, JobStats, BUILTIN_FEATURES_SQL};
use x0_schema::Scenario;
use x0_training::{champion, promote, TrainOptions};

fn scenario(name: &str, seed: u64) -> String {
    format!(
        r#"
        name = "{name}"
        duration = "24s"
        telemetry_interval = "100ms"
        [topology]
        shape = "grid"
        nodes = 9
        seed = {seed}
        [traffic]
        pairs = 12
        rate_pps = 50
        [[fault]]
        at = "8s"
        kind = "link-loss"
        target = "auto"
        loss = 0.4
        duration = "10s"
        "#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_better_model_is_promoted_a_worse_one_is_not_and_a_running_job_serves_the_champion() {
    let dir = tempfile::tempdir().unwrap();
    let (train_dir, held_dir) = (dir.path().join("train-scenarios"), dir.path().join("held-scenarios"));
    std::fs::create_dir_all(&train_dir).unwrap();
    std::fs::create_dir_all(&held_dir).unwrap();
    std::fs::write(train_dir.join("a.toml"), scenario("train-loss", 1)).unwrap();
    std::fs::write(held_dir.join("b.toml"), scenario("held-loss", 99)).unwrap();
    let config = Config {
        model: x0_pipeline::ModelConfig { registry: String::new(), record_inputs: true },
        ..Config::default()
    };
    let (train_ds, held_ds) = (dir.path().join("train"), dir.path().join("held"));
    write_datasets(&config, &train_dir, &train_ds, 6, |_| {}).await.unwrap();
    write_datasets(&config, &held_dir, &held_ds, 2, |_| {}).await.unwrap();

    let registry = dir.path().join("models");
    let good = TrainOptions { epochs: 25, batch_windows: 16, validation_every: 3, ..Default::default() };
    let first = run_training(std::slice::from_ref(&train_ds), None, &held_ds, &registry, &good, false).await.unwrap();
    assert!(first.promoted, "the first model becomes champion");
    let f1 = first.comparison["graphsage"]["all"].f1;
    assert!(f1 > 0.5, "the trained model detects the held-out faults: {:?}", first.comparison["graphsage"]["all"]);
    let worse = TrainOptions { epochs: 0, seed: 8, ..good };
    let second = run_training(&[train_ds], None, &held_ds, &registry, &worse, false).await.unwrap();
    assert!(!second.promoted, "an untrained challenger does not replace the champion");
    assert_eq!(champion(&registry).unwrap().as_deref(), Some(first.version.as_str()));

    // A stream core serving the registry's champion.
    let mut config = Config::default();
    config.model.registry = registry.display().to_string();
    let scenario = Scenario::from_toml_str(&scenario("serve", 5)).unwrap();
    let mut mesh = SimMesh::new(&scenario, SimOptions { start_ns: 1_000_000_000_000, ..Default::default() }).unwrap();
    let stats = Arc::new(JobStats::default());
    let features = FeatureEngine::new(BUILTIN_FEATURES_SQL).await.unwrap();
    let mut core = HealingLoop::new(
        config,
        mesh.topology().clone(),
        features,
        x0_schema::generate_signing_key(),
        stats.clone(),
        "t",
    );
    let mut windows_after_promotion = None;
    let mut incidents_versions = Vec::new();
    while !mesh.finished() {
        for (_, batch) in mesh.step() {
            core.admit(0, batch, mesh.now_ns()).unwrap();
        }
        let before = x0_pipeline::JobStats::get(&stats.windows_closed);
        core.close_ready().await.unwrap();
        let closed = x0_pipeline::JobStats::get(&stats.windows_closed) - before;
        if mesh.elapsed().as_secs() == 4 && windows_after_promotion.is_none() {
            promote(&registry, &second.version).unwrap();
            windows_after_promotion = Some(0);
        } else if let Some(n) = windows_after_promotion.as_mut() {
            *n += closed;
            if *n >= 1 {
                assert_eq!(
                    x0_pipeline::JobStats::get(&stats.model_swaps),
                    1,
                    "served within one window of the promotion"
                );
            }
        }
        incidents_versions.extend(core.incidents().into_iter().map(|i| i.model_version));
    }
    assert!(windows_after_promotion.unwrap() >= 1);
    assert_eq!(x0_pipeline::JobStats::get(&stats.model_swaps), 1);
    assert!(
        incidents_versions.iter().all(|v| v.starts_with("gsage-")),
        "incidents record the graph model's version: {incidents_versions:?}"
    );
}
