//! One scenario through the whole healing loop, offline and deterministic: the
//! simulated mesh, the stream job's [`HealingLoop`] (features in DataFusion, the
//! detector and model, root cause, incidents, planner, signed commands) and one real
//! [`Actuator`] per node applying what it is sent to the mesh's routing tables. Only
//! the broker is left out, so a 300-node run takes seconds rather than its scenario's
//! length, and every run of one scenario is the same. The transport is exercised by
//! the demo and by the tests against a broker.

use crate::datasets::START_NS;
use anyhow::{anyhow, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use x0_actuator::Actuator;
use x0_lab::{GroundTruth, SimMesh, SimOptions, SimRouteTarget};
use x0_pipeline::{Config, FeatureEngine, HealingLoop, JobStats, Publication};
use x0_schema::{Element, HealingCommand, Incident, Scenario};

/// What a closed-loop run leaves to be judged.
#[derive(Debug)]
pub struct ClosedRun {
    /// Every confirmed incident, with its actions and their results.
    pub incidents: Vec<Incident>,
    /// What really happened to the probe packets and to every route.
    pub truth: GroundTruth,
    /// Each fault's element, in scenario order.
    pub elements: Vec<Element>,
    /// Commands sent.
    pub commands: usize,
}

fn lock(mesh: &Mutex<SimMesh>) -> MutexGuard<'_, SimMesh> {
    mesh.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `scenario` to its end. Commands a window close produced reach their actuators
/// one telemetry interval later (the time a broker round trip takes, roughly), and
/// their results go back to the loop at once.
pub async fn run(config: &Config, scenario: &Scenario) -> Result<ClosedRun> {
    let mut config = config.clone();
    // Simulated event time is not the wall clock.
    config.window.max_event_age = std::time::Duration::from_secs(100 * 365 * 86_400);
    let mesh = SimMesh::new(scenario, SimOptions { start_ns: START_NS, ..Default::default() })?;
    let (topo, elements) = (mesh.topology().clone(), mesh.fault_elements());
    let mesh = Arc::new(Mutex::new(mesh));
    let signer = x0_schema::generate_signing_key();
    let key = signer.verifying_key();
    let features = FeatureEngine::new(&config.feature_sql()?).await?;
    let mut healing = HealingLoop::new(config, topo.clone(), features, signer, Arc::new(JobStats::default()), "stress");
    healing.discard_features();
    let mut actuators = actuators(&topo, key, &mesh);
    let mut in_flight: Vec<HealingCommand> = Vec::new();
    let mut commands = 0;
    loop {
        let (now, batches) = {
            let mut m = lock(&mesh);
            if m.finished() {
                break;
            }
            (m.now_ns(), m.step())
        };
        let mut next = Vec::new();
        for cmd in in_flight.drain(..) {
            let actuator =
                actuators.get_mut(&cmd.target).ok_or_else(|| anyhow!("command to unknown node {}", cmd.target))?;
            let result = actuator.handle(&cmd.to_json(), now);
            next.extend(commands_in(healing.on_result(&result)));
        }
        for (_, batch) in batches {
            healing.admit(0, batch, now).map_err(|r| anyhow!("telemetry refused: {}", r.reason))?;
        }
        next.extend(commands_in(healing.close_ready().await?));
        commands += next.len();
        in_flight = next;
    }
    let truth = lock(&mesh).truth().clone();
    Ok(ClosedRun { incidents: healing.incidents(), truth, elements, commands })
}

/// One real actuator per node of `topo`, applying what it is sent to `mesh`'s routing
/// tables and checking signatures against `key`.
pub fn actuators(
    topo: &x0_schema::Topology,
    key: x0_schema::VerifyingKey,
    mesh: &Arc<Mutex<SimMesh>>,
) -> HashMap<String, Actuator<SimRouteTarget>> {
    topo.names()
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), Actuator::new(n.clone(), key, SimRouteTarget::new(mesh.clone(), i))))
        .collect()
}

fn commands_in(publications: Vec<Publication>) -> impl Iterator<Item = HealingCommand> {
    publications.into_iter().filter_map(|p| match p {
        Publication::Command(c) => Some(c),
        Publication::Incident(_) | Publication::Handoff(_) => None,
    })
}
