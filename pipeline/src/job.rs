//! The stream job on Kafka: telemetry in, commands and incidents out, results in,
//! history to Parquet. Bad input goes to the dead-letter topic with a reason; the job
//! keeps running.

use crate::healing_loop::{HealingLoop, Publication};
use crate::history::History;
use futures::future::join_all;
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;
use x0_kafka::rdkafka;
use x0_kafka::{dead_letter, header, KafkaConfig, KafkaError};
use x0_schema::{decode_telemetry, wall_clock_ns, CommandResult, ContentType, Incident, CONTENT_TYPE_HEADER};
use x0_sql::CommandRow;

#[derive(Debug, Error)]
/// Why the stream job stopped.
pub enum JobError {
    #[error(transparent)]
    /// The broker could not be reached or used.
    Kafka(#[from] KafkaError),
    #[error("writing history: {0}")]
    /// The history could not be written.
    History(#[from] std::io::Error),
    /// The feature SQL could not be read or planned (the operator's to fix).
    #[error("feature SQL {file:?}: {reason}")]
    FeatureSql {
        /// The file (empty: the built-in one).
        file: String,
        /// What went wrong.
        reason: String,
    },
}

/// What the job knew when it stopped.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// Every incident it held.
    pub incidents: Vec<Incident>,
    /// Every command it sent.
    pub commands: Vec<CommandRow>,
}

struct Io {
    producer: FutureProducer,
    kafka: KafkaConfig,
}

impl Io {
    async fn send(&self, outputs: Vec<Publication>) {
        let sends = outputs.into_iter().map(|o| async move {
            let (topic, key, payload) = match &o {
                Publication::Command(c) => (&self.kafka.topics.commands, c.target.clone(), c.to_json()),
                Publication::Incident(i) => (&self.kafka.topics.incidents, i.incident_id.clone(), i.to_json()),
            };
            let record = FutureRecord::to(topic).key(key.as_str()).payload(&payload);
            if let Err((e, _)) = self.producer.send(record, Duration::from_secs(5)).await {
                tracing::error!(error = %e, topic = %topic, "could not publish");
            }
        });
        join_all(sends).await;
    }
}

/// Runs until `shutdown` turns true; then writes the final history and returns.
pub async fn run_job(
    mut core: HealingLoop,
    kafka: &KafkaConfig,
    data_dir: &std::path::Path,
    job_id: &str,
    mut shutdown: watch::Receiver<bool>,
) -> Result<JobReport, JobError> {
    let telemetry: StreamConsumer = kafka.consumer(&kafka.group_id, &[&kafka.topics.telemetry])?;
    // Each instance must see the results of its own commands: a group of its own.
    let results: StreamConsumer =
        kafka.consumer(&format!("{}-results-{job_id}", kafka.group_id), &[&kafka.topics.command_results])?;
    let io = Io { producer: kafka.producer()?, kafka: kafka.clone() };
    let mut history = History::new(data_dir, job_id);
    // Incidents and commands are snapshotted often (a crash loses at most this much);
    // feature rows are batched into fewer, larger files.
    let mut flush = tokio::time::interval(SNAPSHOT_EVERY);
    let mut flushes = 0u32;
    let mut written = None;
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            m = results.recv() => match m {
                Ok(m) => match CommandResult::from_json(m.payload().unwrap_or_default()) {
                    Ok(r) => io.send(core.on_result(&r)).await,
                    Err(e) => {
                        core.stats().dead_lettered("bad_result");
                        let reason = format!("not a command result: {e}");
                        if let Err(e) = dead_letter(&io.producer, &kafka.topics.dlq, m.key(), m.payload().unwrap_or_default(), &reason).await {
                            tracing::error!(error = %e, "dead-lettering failed");
                        }
                    }
                },
                Err(e) => tracing::warn!(error = %e, "result consumer"),
            },
            m = telemetry.recv() => match m {
                Ok(m) => {
                    let payload = m.payload().unwrap_or_default();
                    let admitted = ContentType::from_header(header(&m, CONTENT_TYPE_HEADER))
                        .and_then(|ct| decode_telemetry(ct, payload))
                        .map_err(|e| (e.label(), e.to_string()))
                        .and_then(|batch| core.admit(m.partition(), batch, wall_clock_ns()).map_err(|r| (r.label, r.reason)));
                    if let Err((label, reason)) = admitted {
                        core.stats().dead_lettered(label);
                        tracing::debug!(%reason, "telemetry dead-lettered");
                        if let Err(e) = dead_letter(&io.producer, &kafka.topics.dlq, m.key(), payload, &reason).await {
                            tracing::error!(error = %e, "dead-lettering failed");
                        }
                        continue;
                    }
                    match core.close_ready().await {
                        Ok(outputs) => io.send(outputs).await,
                        Err(e) => tracing::error!(error = %e, "feature computation failed; window skipped"),
                    }
                }
                Err(e) => tracing::warn!(error = %e, "telemetry consumer"),
            },
            _ = flush.tick() => {
                flushes += 1;
                if let Err(e) = write_history(&mut core, &mut history, &mut written, flushes.is_multiple_of(FEATURES_EVERY)) {
                    tracing::error!(error = %e, "writing history failed; will retry");
                }
            }
        }
    }
    write_history(&mut core, &mut history, &mut written, true)?;
    Ok(JobReport { incidents: core.incidents(), commands: core.command_rows() })
}

const SNAPSHOT_EVERY: Duration = Duration::from_secs(2);
/// Feature files are written every this many snapshots (30 s).
const FEATURES_EVERY: u32 = 15;

/// Snapshots incidents and commands if they changed since `written` (the generation
/// last written), and appends feature rows when `features`.
fn write_history(
    core: &mut HealingLoop,
    history: &mut History,
    written: &mut Option<u64>,
    features: bool,
) -> std::io::Result<()> {
    if *written != Some(core.generation()) {
        history.snapshot(&core.incidents(), &core.command_rows())?;
        *written = Some(core.generation());
        core.evict_settled();
    }
    if features {
        history.append_features(core.take_feature_rows())?;
        let run = history.job_id().to_string();
        history.append_model_inputs(core.take_model_inputs(&run))?;
    }
    Ok(())
}
