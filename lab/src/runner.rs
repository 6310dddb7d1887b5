//! Drives a simulated mesh against Kafka in (scaled) real time.

use crate::target::lock;
use crate::{SimMesh, SimRouteTarget};
use futures::future::join_all;
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use thiserror::Error;
use tokio::sync::watch;
use x0_actuator::Actuator;
use x0_kafka::rdkafka;
use x0_kafka::rdkafka::message::OwnedHeaders;
use x0_kafka::{KafkaConfig, KafkaError, Signer, TelemetryPublisher};
use x0_schema::{CommandResult, ContentType, ResultStatus, VerifyingKey};

#[derive(Debug, Error)]
/// Why a simulation against a broker stopped.
pub enum SimRunError {
    /// The broker could not be reached or used.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
}

/// Counts from one simulation run.
#[derive(Debug, Default, Clone)]
pub struct SimRunStats {
    /// Simulation ticks run.
    pub ticks: u64,
    /// Telemetry messages sent.
    pub telemetry_messages: u64,
    /// Samples in them.
    pub samples: u64,
    /// Messages the broker did not take.
    pub send_failures: u64,
    /// Commands received.
    pub commands: u64,
    /// Of those, answered applied (a duplicate's answer included).
    pub commands_applied: u64,
    /// Distinct command ids handled.
    pub distinct_commands: u64,
    /// Commands the actuators handed to their route tables (a duplicate is not).
    pub applications: u64,
    /// The most times one command id reached a route table (at most once: 1).
    pub max_applications_per_command: u64,
}

/// Runs the mesh until its scenario ends: telemetry out every interval (divided by
/// `speed`), commands in through one actuator per node, results out; both
/// authenticated by `signer` (the simulated nodes' keys) when it signs. `on_tick` sees
/// the mesh after each step (progress display).
pub async fn run_simulation(
    mesh: Arc<Mutex<SimMesh>>,
    kafka: &KafkaConfig,
    key: VerifyingKey,
    signer: Signer,
    speed: f64,
    encoding: ContentType,
    mut on_tick: impl FnMut(&SimMesh),
) -> Result<SimRunStats, SimRunError> {
    let producer = kafka.producer()?;
    let topology = lock(&mesh).topology().clone();
    let publisher = TelemetryPublisher::new(kafka, encoding)?
        .signed(signer.clone())
        .regioned(&topology, std::time::Duration::from_secs(15))?;
    let consumer = kafka.consumer("x0-sim-actuators", &[&kafka.topics.commands])?;
    let (stop_tx, stop_rx) = watch::channel(false);
    // Actuators stamp results with a continuous clock (scenario start + wall time ×
    // speed), not the tick clock, so command round trips are measured, not rounded.
    let (t0, start_ns) = (std::time::Instant::now(), lock(&mesh).now_ns());
    let clock = move || start_ns + (t0.elapsed().as_nanos() as f64 * speed) as i64;
    let results = kafka.topics.command_results.clone();
    let actuators = actuator_host(consumer, producer.clone(), results, mesh.clone(), (key, signer), clock, stop_rx);
    let actuators = tokio::spawn(actuators);

    let interval = lock(&mesh).scenario().telemetry_interval.div_f64(speed.max(0.01));
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut stats = SimRunStats::default();
    loop {
        timer.tick().await;
        let batches = {
            let mut m = lock(&mesh);
            if m.finished() {
                break;
            }
            let out = m.step();
            on_tick(&m);
            out
        };
        stats.ticks += 1;
        stats.samples += batches.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        let sends = batches.iter().map(|(node, batch)| publisher.publish(node, batch));
        for sent in join_all(sends).await {
            stats.telemetry_messages += 1;
            if let Err(e) = sent {
                stats.send_failures += 1;
                tracing::warn!(error = %e, "telemetry not delivered");
            }
        }
    }
    let _ = stop_tx.send(true);
    let handled = actuators.await.unwrap_or_default();
    stats.commands = handled.messages;
    stats.commands_applied = handled.applied;
    stats.distinct_commands = handled.per_command.len() as u64;
    stats.applications = handled.per_command.values().sum();
    stats.max_applications_per_command = handled.per_command.values().copied().max().unwrap_or(0);
    Ok(stats)
}

/// One consumer for the whole simulated mesh, one [`Actuator`] per node: each command
/// is verified by its target node's actuator exactly as a real agent would.
async fn actuator_host(
    consumer: StreamConsumer,
    producer: FutureProducer,
    results_topic: String,
    mesh: Arc<Mutex<SimMesh>>,
    (key, signer): (VerifyingKey, Signer),
    clock: impl Fn() -> i64,
    mut stop: watch::Receiver<bool>,
) -> Handled {
    let names: Vec<String> = lock(&mesh).topology().names().to_vec();
    let mut actuators: HashMap<String, Actuator<SimRouteTarget>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), Actuator::new(n.clone(), key, SimRouteTarget::new(mesh.clone(), i))))
        .collect();
    let twice = lock(&mesh).options().deliver_commands_twice;
    let mut handled = Handled::default();
    loop {
        let msg = tokio::select! {
            _ = stop.changed() => break,
            m = consumer.recv() => m,
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "command consumer error");
                continue;
            }
        };
        let payload = msg.payload().unwrap_or_default();
        let target = msg.key().and_then(|k| std::str::from_utf8(k).ok()).unwrap_or_default().to_string();
        for _ in 0..if twice { 2 } else { 1 } {
            let now = clock();
            let before = actuators.get(&target).map_or(0, |a| a.applications());
            let result = match actuators.get_mut(&target) {
                Some(a) => a.handle(payload, now),
                None => CommandResult {
                    schema_version: x0_schema::SCHEMA_VERSION,
                    command_id: x0_schema::HealingCommand::id_of_malformed(payload).unwrap_or_default(),
                    node: target.clone(),
                    status: ResultStatus::Rejected,
                    reason: format!("no node {target:?} in this mesh"),
                    applied_at: now,
                    routes: vec![],
                },
            };
            let after = actuators.get(&target).map_or(0, |a| a.applications());
            handled.messages += 1;
            handled.applied += u64::from(result.status == ResultStatus::Applied);
            *handled.per_command.entry(result.command_id.clone()).or_default() += after - before;
            let bytes = result.to_json();
            let headers = signer.sign(OwnedHeaders::new(), &result.node, &bytes);
            let record = FutureRecord::to(&results_topic).key(result.node.as_str()).payload(&bytes).headers(headers);
            // Queued, not awaited: waiting out each result's delivery report capped the
            // whole mesh at one command per broker round trip (about 280 a second on
            // the mock cluster, where a 2,000-node repair is tens of thousands).
            match producer.send_result(record) {
                Ok(delivery) => {
                    tokio::spawn(async move {
                        if let Ok(Err((e, _))) = delivery.await {
                            tracing::warn!(error = %e, "could not publish command result");
                        }
                    });
                }
                Err((e, _)) => tracing::warn!(error = %e, "could not queue command result"),
            }
        }
    }
    handled
}

/// What the actuators handled.
#[derive(Debug, Default)]
struct Handled {
    /// Command messages (each delivery counts).
    messages: u64,
    /// Answers that said applied.
    applied: u64,
    /// Times each command id reached a route table.
    per_command: HashMap<String, u64>,
}
