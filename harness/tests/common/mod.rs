//! A scenario run offline through the healing loop (no Kafka, no actuators), with
//! simulated event time, so every run is the same.

use std::sync::Arc;
use x0_harness::datasets::START_NS;
use x0_lab::{SimMesh, SimOptions};
use x0_pipeline::{Config, FeatureEngine, HealingLoop, JobStats, Publication, BUILTIN_FEATURES_SQL};
use x0_schema::{HealingCommand, Scenario};

/// The loop after the whole scenario, and every command it sent: one `Vec` per window
/// that sent any, in window order.
pub(crate) async fn run_offline(scenario: &Scenario) -> (HealingLoop, Vec<Vec<HealingCommand>>) {
    let mut config = Config::default();
    // Simulated event time is not the wall clock.
    config.window.max_event_age = std::time::Duration::from_secs(100 * 365 * 86_400);
    let mut mesh = SimMesh::new(scenario, SimOptions { start_ns: START_NS, ..Default::default() }).unwrap();
    let features = FeatureEngine::new(BUILTIN_FEATURES_SQL).await.unwrap();
    let stats = Arc::new(JobStats::default());
    let signer = x0_schema::generate_signing_key();
    let mut healing = HealingLoop::new(config, mesh.topology().clone(), features, signer, stats, "snap");
    healing.discard_features();
    let mut sent = Vec::new();
    while !mesh.finished() {
        let now = mesh.now_ns();
        for (_, batch) in mesh.step() {
            healing.admit(0, batch, now).unwrap();
        }
        let commands: Vec<HealingCommand> = healing
            .close_ready()
            .await
            .unwrap()
            .into_iter()
            .filter_map(|p| match p {
                Publication::Command(c) => Some(c),
                Publication::Incident(_) | Publication::Handoff(_) => None,
            })
            .collect();
        if !commands.is_empty() {
            sent.push(commands);
        }
    }
    (healing, sent)
}
