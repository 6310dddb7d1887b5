//! The stream job on Kafka: telemetry in, commands and incidents out, results in,
//! history to Parquet. Bad input goes to the dead-letter topic with a reason; the job
//! keeps running.

use crate::checkpoint::{CheckpointError, CheckpointMeta, CheckpointStore, Offsets, CHECKPOINT_FORMAT};
use crate::healing_loop::{HealingLoop, Publication, Rejection};
use crate::history::History;
use crate::stats::JobStats;
use futures::future::join_all;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::watch;
use x0_kafka::rdkafka;
use x0_kafka::{dead_letter, header, KafkaConfig, KafkaError};
use x0_schema::{
    decode_telemetry, wall_clock_ns, CommandResult, ContentType, Incident, CONTENT_TYPE_HEADER, MAC_HEADER,
    PRODUCER_HEADER,
};
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
    /// No broker answered for too long (at start, or `kafka.outage_limit` later).
    #[error("no Kafka broker of {brokers:?} answered for {waited:?} ({reason}); check kafka.brokers and the cluster")]
    Unreachable {
        /// `kafka.brokers`.
        brokers: String,
        /// How long it waited.
        waited: Duration,
        /// What the client said last.
        reason: String,
    },
    /// The checkpoint could not be written or taken up.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The fleet secret or the producers' keys could not be read (the operator's to fix).
    #[error("{0}")]
    Keys(String),
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
    /// Replaced when the broker fences it (see [`x0_kafka::fenced`]).
    producer: std::sync::RwLock<FutureProducer>,
    kafka: KafkaConfig,
    /// Partitions of the handoff topic (0: the mesh is not split among instances).
    handoff_partitions: usize,
    stats: std::sync::Arc<JobStats>,
}

/// One message to publish: topic, key, payload, an explicit partition, and a
/// handoff part's header.
type Record<'a> = (&'a String, String, Vec<u8>, Option<i32>, Option<String>);

/// Attempts per publication before the job gives up (backing off 100 ms, doubling).
const PUBLISH_ATTEMPTS: u32 = 6;

/// The largest incident message published whole (Kafka brokers refuse messages over
/// 1 MB by default, compressed or not).
const INCIDENT_MESSAGE_MAX: usize = 900_000;

/// An incident as published on `x0.incidents`: whole when it fits, else with its
/// action list cut to what fits and the cut said in the explanation (a repair on a mesh
/// of thousands is thousands of commands; the history's Parquet keeps every one).
fn incident_message(incident: &x0_schema::Incident) -> Vec<u8> {
    let whole = incident.to_json();
    if whole.len() <= INCIDENT_MESSAGE_MAX {
        return whole;
    }
    let mut cut = incident.clone();
    let per_action = (whole.len() / incident.actions.len().max(1)).max(1);
    let room = INCIDENT_MESSAGE_MAX.saturating_sub(whole.len() - per_action * incident.actions.len()) / 2;
    let keep = (room / per_action).min(incident.actions.len());
    cut.actions.truncate(keep);
    cut.explanation.push_str(&format!(
        "\n(this message lists {keep} of its {} commands; the incident history has them all)",
        incident.actions.len()
    ));
    let mut message = cut.to_json();
    while message.len() > INCIDENT_MESSAGE_MAX && !cut.actions.is_empty() {
        let half = cut.actions.len() / 2;
        cut.actions.truncate(half);
        message = cut.to_json();
    }
    tracing::warn!(
        incident_id = %incident.incident_id,
        bytes = whole.len(),
        commands = incident.actions.len(),
        listed = cut.actions.len(),
        "incident too large for one message: published with its command list cut"
    );
    message
}

impl Io {
    /// The producer in use (a cheap handle).
    fn producer(&self) -> FutureProducer {
        self.producer.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces a fenced producer with a new one (a new producer id), once however
    /// many sends saw it fenced: only when `failed` is still the one in use.
    fn replace_fenced(&self, failed: &FutureProducer) -> Result<(), JobError> {
        let mut current = self.producer.write().unwrap_or_else(|p| p.into_inner());
        if std::ptr::eq(current.client().native_ptr(), failed.client().native_ptr()) {
            tracing::warn!("the broker fenced the job's producer; starting a new one");
            *current = self.kafka.job_producer()?;
        }
        Ok(())
    }

    /// Publishes every output and waits for the broker to acknowledge each, retrying
    /// with bounded backoff. An output that cannot be published stops the job: its
    /// offsets are not committed, so a restarted job replays the decision (with the
    /// same command ids) instead of losing it.
    async fn send(&self, outputs: Vec<Publication>) -> Result<(), JobError> {
        // Each output as its messages (a region's handoff is one or more parts).
        let mut records: Vec<Record> = Vec::new();
        for o in outputs {
            match &o {
                Publication::Command(c) => {
                    tracing::info!(command_id = %c.id, incident_id = %c.incident_id, node = %c.target, action = c.action.kind(), "command issued");
                    records.push((&self.kafka.topics.commands, c.target.clone(), c.to_json(), None, None));
                }
                Publication::Handoff(h) => {
                    tracing::debug!(region = h.region, incidents = h.incidents(), "region handoff");
                    let partition = crate::handoff::handoff_partition(h.region, self.handoff_partitions);
                    for (key, part, bytes) in h.parts(crate::handoff::HANDOFF_PART_BYTES) {
                        records.push((&self.kafka.topics.handoff, key, bytes, Some(partition), Some(part)));
                    }
                }
                Publication::Incident(i) => {
                    tracing::info!(
                        incident_id = %i.incident_id,
                        state = i.state.as_str(),
                        root_cause = i.root_cause.as_ref().map_or("", |rc| rc.kind.as_str()),
                        element = %i.root_cause.as_ref().map(|rc| rc.element.to_string()).unwrap_or_default(),
                        confidence = i.root_cause.as_ref().map_or(0.0, |rc| rc.confidence),
                        outcome = i.outcome.as_str(),
                        "incident"
                    );
                    records.push((
                        &self.kafka.topics.incidents,
                        i.incident_id.clone(),
                        incident_message(i),
                        None,
                        None,
                    ));
                }
            }
        }
        let sends = records.into_iter().map(|(topic, key, payload, partition, part)| async move {
            let mut backoff = Duration::from_millis(100);
            for attempt in 1..=PUBLISH_ATTEMPTS {
                let mut record = FutureRecord::to(topic).key(key.as_str()).payload(&payload);
                if let Some(p) = partition {
                    record = record.partition(p);
                }
                if let Some(part) = &part {
                    let header = Header { key: crate::handoff::HANDOFF_PART_HEADER, value: Some(part.as_str()) };
                    record = record.headers(OwnedHeaders::new().insert(header));
                }
                let producer = self.producer();
                match producer.send(record, Duration::from_secs(5)).await {
                    Ok(_) => {
                        if part.is_some() {
                            JobStats::bump(&self.stats.handoffs);
                        }
                        return Ok(());
                    }
                    Err((e, _)) if x0_kafka::fenced(&e) && attempt < PUBLISH_ATTEMPTS => {
                        self.replace_fenced(&producer)?;
                    }
                    Err((e, _))
                        if part.is_some()
                            && (attempt == PUBLISH_ATTEMPTS
                                || e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge)) =>
                    {
                        // A handoff part that cannot be published (a broker whose
                        // message.max.bytes is under the part size) costs a successor the
                        // region's open work, not this job its life: said and counted.
                        JobStats::bump(&self.stats.handoff_failures);
                        tracing::error!(error = %e, topic = %topic, key = %key, bytes = payload.len(), "region handoff not published: a successor would not carry this region's open incidents on");
                        return Ok(());
                    }
                    Err((e, _)) if attempt == PUBLISH_ATTEMPTS => {
                        return Err(JobError::Kafka(KafkaError::Delivery { topic: topic.clone(), source: e }))
                    }
                    Err((e, _)) => {
                        tracing::warn!(error = %e, topic = %topic, key = %key, bytes = payload.len(), attempt, "publish failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                    }
                }
            }
            Ok(())
        });
        join_all(sends).await.into_iter().collect()
    }
}

/// Checkpointing for a job that must survive a restart (see [`CheckpointStore`]).
#[derive(Debug, Clone)]
pub struct Durability {
    /// Where the checkpoint lives.
    pub store: CheckpointStore,
    /// At most one checkpoint per this long, at a window boundary.
    pub interval: Duration,
    /// Digest of the inventory (written into each checkpoint).
    pub inventory: String,
    /// Offsets the restored state covers: earlier messages are skipped.
    pub resume: Offsets,
}

/// What [`Positions::take`] found.
struct Taken {
    new: bool,
    skipped: u64,
}

/// Where the job is in its inputs: the next offset per topic and partition.
#[derive(Debug, Default)]
struct Positions {
    next: Offsets,
    /// Covered by the restored checkpoint: messages before these are already in the state.
    resume: Offsets,
}

impl Positions {
    /// Whether a message is new to the state; notes it as taken in. `skipped`: how
    /// many offsets before it were never delivered (the broker discarded them).
    fn take<M: Message>(&mut self, m: &M) -> Taken {
        let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
        let resume = self.resume.get(topic).and_then(|p| p.get(&partition)).copied();
        if resume.is_some_and(|next| offset < next) {
            return Taken { new: false, skipped: 0 };
        }
        let parts = self.next.entry(topic.to_string()).or_default();
        let expected = parts.get(&partition).copied().or(resume);
        parts.insert(partition, offset + 1);
        Taken { new: true, skipped: expected.map_or(0, |e| (offset - e).max(0) as u64) }
    }

    /// Everything taken in, including what the restored state covered.
    fn covered(&self) -> Offsets {
        let mut all = self.resume.clone();
        for (topic, parts) in &self.next {
            all.entry(topic.clone()).or_default().extend(parts);
        }
        all
    }
}

/// Writes a checkpoint covering `positions`, then commits those offsets.
fn checkpoint(
    core: &HealingLoop,
    durable: &Durability,
    job_id: &str,
    positions: &Positions,
    consumers: [&StreamConsumer; 2],
) -> Result<(), JobError> {
    let offsets = positions.covered();
    let meta = CheckpointMeta {
        format: CHECKPOINT_FORMAT,
        job_id: job_id.to_string(),
        inventory: durable.inventory.clone(),
        offsets: offsets.clone(),
        written_at_ns: wall_clock_ns(),
    };
    let cost = durable.store.write(&meta, core)?;
    core.stats().checkpointed(cost.bytes, cost.ms);
    for consumer in consumers {
        // Only the partitions this instance holds now: another instance of the group
        // commits its own (a partition that moved away is no longer ours to commit).
        let mut tpl = TopicPartitionList::new();
        let assigned = consumer.assignment().map_err(KafkaError::from)?;
        for e in assigned.elements() {
            if let Some(&next) = offsets.get(e.topic()).and_then(|p| p.get(&e.partition())) {
                tpl.add_partition_offset(e.topic(), e.partition(), Offset::Offset(next)).map_err(KafkaError::from)?;
            }
        }
        if tpl.count() > 0 {
            // Asynchronous: the checkpoint is what a restart trusts; a commit lost to a
            // crash only means more input is skipped as already covered.
            if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                tracing::warn!(error = %e, "offset commit failed; the next checkpoint commits again");
            }
        }
    }
    Ok(())
}

/// Runs until `shutdown` turns true; then writes the final history and returns.
/// Without `durable`, nothing survives the process (the demo, the lab, tests); with
/// it, the state is checkpointed at window boundaries and offsets are committed only
/// behind a checkpoint.
pub async fn run_job(
    mut core: HealingLoop,
    kafka: &KafkaConfig,
    data_dir: &std::path::Path,
    job_id: &str,
    durable: Option<Durability>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<JobReport, JobError> {
    let manual = durable.is_some();
    // A durable job is a static member of its groups: restarted, it takes its
    // partitions back at once.
    let instance = |role: &str| manual.then(|| format!("{job_id}-{role}"));
    let telemetry: StreamConsumer =
        kafka.consumer_with(&kafka.group_id, &[&kafka.topics.telemetry], manual, instance("telemetry").as_deref())?;
    // Each instance must see the results of its own commands: a group of its own,
    // stable across restarts (the job id is, when durable).
    let results: StreamConsumer = kafka.consumer_with(
        &format!("{}-results-{job_id}", kafka.group_id),
        &[&kafka.topics.command_results],
        manual,
        instance("results").as_deref(),
    )?;
    let mut io = Io {
        producer: std::sync::RwLock::new(kafka.job_producer()?),
        kafka: kafka.clone(),
        handoff_partitions: 0,
        stats: core.stats().clone(),
    };
    // A broker that cannot be reached at start is an error now, not a silent wait.
    let startup = STARTUP_CONTACT.min(kafka.outage_limit.max(Duration::from_secs(1)));
    let partitions = broker_contact(&io.producer(), &kafka.topics.telemetry, startup).await.map_err(|e| {
        JobError::Unreachable { brokers: kafka.brokers.clone(), waited: startup, reason: e.to_string() }
    })?;
    core.expect_sources(&partitions, wall_clock_ns());
    core.split_by_regions(partitions.len());
    if core.is_split() {
        // A region's open work travels on the handoff topic (see `crate::handoff`): a
        // split mesh without it would lose every open incident of a dead instance.
        let topic = &kafka.topics.handoff;
        io.handoff_partitions = x0_kafka::partition_count(&io.producer(), topic, startup).inspect_err(|e| {
            // The broker answered (it just did, above): the topic is what is missing.
            tracing::error!(error = %e, "a mesh split into regions needs the handoff topic {topic:?}: create it compacted (cleanup.policy=compact), as many partitions as the telemetry topic");
        })?;
    }
    core.stats().durable.store(manual, std::sync::atomic::Ordering::Relaxed);
    // Every instance watches the others' handoffs: its repairs avoid their faults and
    // take their routes for where traffic goes (see `Planner::observe_foreign`).
    let view = match io.handoff_partitions {
        0 => None,
        p => Some(crate::handoff::watch_handoffs(
            kafka,
            &format!("{}-handoff-view-{job_id}", kafka.group_id),
            &kafka.topics.handoff,
            p,
        )?),
    };
    let mut view_parts = crate::handoff::Assembler::default();
    let mut lag_tick = tokio::time::interval(LAG_EVERY);
    let mut lag_task = None;
    let mut last_contact = Instant::now();
    let mut watchdog = tokio::time::interval(WATCHDOG_EVERY);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut history = History::new(data_dir, job_id);
    let mut positions =
        Positions { resume: durable.as_ref().map(|d| d.resume.clone()).unwrap_or_default(), ..Default::default() };
    // The first checkpoint at the first window boundary (a restarted job re-secures
    // its progress at once), then at most one per interval.
    let mut last_checkpoint: Option<Instant> = None;
    let mut windows_at_checkpoint = JobStats::get(&core.stats().windows_closed);
    let mut discard_warned: Option<Instant> = None;
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
                Ok(m) if !positions.take(&m).new => {}
                Ok(m) => {
                    // Who answers first (its MAC under its node's key), then what, then
                    // whether it may answer that command.
                    let payload = m.payload().unwrap_or_default();
                    let taken = core
                        .authenticate(m.key(), None, header(&m, MAC_HEADER), payload)
                        .and_then(|_| {
                            CommandResult::from_json(payload).map_err(|e| Rejection {
                                label: "bad_result",
                                reason: format!("not a command result: {e}"),
                            })
                        })
                        .and_then(|r| core.check_result(&r, m.key()).map(|()| r));
                    match taken {
                        Ok(r) => {
                            tracing::info!(command_id = %r.command_id, node = %r.node, status = r.status.as_str(), reason = %r.reason, "command result");
                            io.send(core.on_result(&r)).await?;
                            io.send(core.take_handoffs()).await?
                        }
                        Err(refused) => {
                            core.stats().dead_lettered(refused.label);
                            tracing::warn!(reason = %refused.reason, "command result refused");
                            if let Err(e) = dead_letter(&io.producer(), &kafka.topics.dlq, m.key(), payload, &refused.reason).await {
                                tracing::error!(error = %e, "dead-lettering failed");
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "result consumer"),
            },
            m = crate::handoff::next_handoff(view.as_ref()) => match m {
                Ok(m) => match view_parts.take(m.key(), header(&m, crate::handoff::HANDOFF_PART_HEADER), m.payload().unwrap_or_default()) {
                    Some((_, Ok(h))) => core.observe_foreign(h),
                    Some((region, Err(e))) => tracing::warn!(region, offset = m.offset(), error = %e, "handoff unreadable; skipped"),
                    None => {}
                },
                Err(e) => tracing::warn!(error = %e, "handoff view consumer"),
            },
            m = telemetry.recv() => match m {
                Ok(m) => {
                    let taken = positions.take(&m);
                    if taken.skipped > 0 {
                        let total = core.stats().telemetry_discarded.fetch_add(taken.skipped, std::sync::atomic::Ordering::Relaxed) + taken.skipped;
                        if discard_warned.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(5)) {
                            tracing::warn!(
                                partition = m.partition(),
                                skipped = taken.skipped,
                                total,
                                "the job is not keeping up: the broker discarded telemetry before it was read"
                            );
                            discard_warned = Some(Instant::now());
                        }
                    }
                    if !core.holds_partition(m.partition()) {
                        take_assignment(&mut core, &telemetry, &io, job_id).await?;
                    }
                    if !taken.new || !core.takes_copy(m.key(), m.partition()) {
                        continue;
                    }
                    let payload = m.payload().unwrap_or_default();
                    // Who speaks first (a forged message costs no decoding), then
                    // what it says, then whether it may say it.
                    let admitted = core
                        .authenticate(m.key(), header(&m, PRODUCER_HEADER), header(&m, MAC_HEADER), payload)
                        .and_then(|speaker| {
                            let batch = ContentType::from_header(header(&m, CONTENT_TYPE_HEADER))
                                .and_then(|ct| decode_telemetry(ct, payload))
                                .map_err(|e| Rejection { label: e.label(), reason: e.to_string() })?;
                            core.check_speaker(&speaker, &batch).map(|()| batch)
                        })
                        .and_then(|batch| core.admit(m.partition(), batch, wall_clock_ns()))
                        .map_err(|r| (r.label, r.reason));
                    if let Err((label, reason)) = admitted {
                        core.stats().dead_lettered(label);
                        tracing::debug!(%reason, "telemetry dead-lettered");
                        if let Err(e) = dead_letter(&io.producer(), &kafka.topics.dlq, m.key(), payload, &reason).await {
                            tracing::error!(error = %e, "dead-lettering failed");
                        }
                        continue;
                    }
                    match core.close_ready().await {
                        Ok(outputs) => io.send(outputs).await?,
                        Err(e) => tracing::error!(error = %e, "feature computation failed; window skipped"),
                    }
                    // The changelog after the decision's commands, before any checkpoint.
                    io.send(core.take_handoffs()).await?;
                    // At a window boundary, once its outputs are acknowledged.
                    let closed = JobStats::get(&core.stats().windows_closed);
                    if let Some(d) = &durable {
                        if closed > windows_at_checkpoint && last_checkpoint.is_none_or(|t| t.elapsed() >= d.interval) {
                            checkpoint(&core, d, job_id, &positions, [&telemetry, &results])?;
                            (last_checkpoint, windows_at_checkpoint) = (Some(Instant::now()), closed);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "telemetry consumer"),
            },
            _ = lag_tick.tick() => {
                take_assignment(&mut core, &telemetry, &io, job_id).await?;
                refresh_lag(&io.producer(), consumer_positions([&telemetry, &results]), core.stats().clone(), &mut lag_task);
            }
            _ = watchdog.tick() => {
                match broker_contact(&io.producer(), &kafka.topics.telemetry, WATCHDOG_EVERY).await {
                    Ok(_) => last_contact = Instant::now(),
                    // Every agent buffers meanwhile, and windows wait for the
                    // watermark: an outage is the job's, not the mesh's. Past the limit
                    // the job stops with the reason (its checkpoint carries it over).
                    Err(e) if last_contact.elapsed() >= kafka.outage_limit => {
                        return Err(JobError::Unreachable {
                            brokers: kafka.brokers.clone(),
                            waited: last_contact.elapsed(),
                            reason: e.to_string(),
                        })
                    }
                    Err(e) => tracing::warn!(error = %e, "no broker answers; waiting"),
                }
            }
            _ = flush.tick() => {
                flushes += 1;
                if let Err(e) = write_history(&mut core, &mut history, &mut written, flushes.is_multiple_of(FEATURES_EVERY)) {
                    tracing::error!(error = %e, "writing history failed; will retry");
                }
            }
        }
    }
    // A clean stop hands the open incidents over in a last checkpoint; without one,
    // they are closed with the reason (no incident stays open after its job).
    match &durable {
        Some(d) => checkpoint(&core, d, job_id, &positions, [&telemetry, &results])?,
        None => core.close_all("the stream job stopped (it keeps no checkpoint): closed unfinished"),
    }
    write_history(&mut core, &mut history, &mut written, true)?;
    Ok(JobReport { incidents: core.incidents(), commands: core.command_rows() })
}

/// How long taking a region over may wait for its handoff to be read.
const HANDOFF_READ_LIMIT: Duration = Duration::from_secs(10);

/// Takes the telemetry consumer's current assignment: on a mesh split into regions,
/// the regions this instance owns (see [`HealingLoop::assign`]). A region it did not
/// own before is taken over from its handoff before any of its telemetry is judged,
/// and the handoff is published again as this instance's.
async fn take_assignment(
    core: &mut HealingLoop,
    telemetry: &StreamConsumer,
    io: &Io,
    job_id: &str,
) -> Result<(), JobError> {
    let Ok(assigned) = telemetry.assignment() else { return Ok(()) };
    let partitions: Vec<i32> = assigned.elements().iter().map(|e| e.partition()).collect();
    if partitions.is_empty() {
        // Mid-rebalance (the group revokes every partition before it assigns them
        // again): the regions stay as they were until the group says otherwise.
        return Ok(());
    }
    let before = core.owned_regions();
    let Some(regions) = core.assign(partitions) else { return Ok(()) };
    tracing::info!(?regions, "this instance now owns these regions of the mesh");
    eprintln!("stream job: owns regions {regions:?} of the mesh");
    let gained: Vec<u32> = regions.iter().copied().filter(|r| !before.contains(r)).collect();
    if gained.is_empty() || io.handoff_partitions == 0 {
        return Ok(());
    }
    let kafka = &io.kafka;
    let reader = format!("{}-handoff-{job_id}", kafka.group_id);
    let handoffs = crate::handoff::read_handoffs(
        kafka,
        &reader,
        &kafka.topics.handoff,
        io.handoff_partitions,
        &gained,
        HANDOFF_READ_LIMIT,
    )
    .await?;
    let mut republish = Vec::new();
    for (region, h) in handoffs {
        let (from, written) = (h.from.clone(), h.written_at_ns);
        let Some(t) = core.take_over(h) else { continue };
        JobStats::bump(&core.stats().takeovers);
        tracing::info!(region, %from, incidents = ?t.incidents, left_out = ?t.left_out, routes = t.routes, clashes = t.clashes, "region taken over");
        eprintln!(
            "stream job: took over region {region} from {from} (handoff {:.1} s old): {} open incident(s) {:?}, {} route(s){}",
            (wall_clock_ns() - written) as f64 / 1e9,
            t.incidents.len(),
            t.incidents,
            t.routes,
            if t.left_out.is_empty() { String::new() } else { format!(", left out {:?}", t.left_out) }
        );
        republish.push(Publication::Handoff(Box::new(core.region_handoff(region))));
    }
    io.send(republish).await
}

const SNAPSHOT_EVERY: Duration = Duration::from_secs(2);
/// How often the consumer lag `/metrics` and `/readyz` report is refreshed.
const LAG_EVERY: Duration = Duration::from_secs(2);

/// Where the consumers are: the next offset per (topic, partition) they hold (the
/// first offset when they have taken nothing yet).
fn consumer_positions(consumers: [&StreamConsumer; 2]) -> Vec<(String, i32, Option<i64>)> {
    let mut at = Vec::new();
    for c in consumers {
        let Ok(positions) = c.position() else { continue };
        for e in positions.elements() {
            let next = match e.offset() {
                Offset::Offset(n) => Some(n),
                _ => None,
            };
            at.push((e.topic().to_string(), e.partition(), next));
        }
    }
    at
}

/// Refreshes the consumer lag in `stats` off the job's thread: the broker's high
/// watermark of each partition (a metadata request per partition, on a blocking
/// thread) minus the consumer's position. A partition the broker does not answer for
/// is left out. Returns at once; `busy` skips a refresh while one is under way.
fn refresh_lag(
    producer: &FutureProducer,
    positions: Vec<(String, i32, Option<i64>)>,
    stats: std::sync::Arc<JobStats>,
    busy: &mut Option<tokio::task::JoinHandle<()>>,
) {
    if busy.as_ref().is_some_and(|t| !t.is_finished()) {
        return;
    }
    let producer = producer.clone();
    *busy = Some(tokio::task::spawn_blocking(move || {
        let mut lag = std::collections::BTreeMap::new();
        for (topic, partition, next) in positions {
            if let Ok((low, high)) = producer.client().fetch_watermarks(&topic, partition, Duration::from_secs(1)) {
                lag.insert((topic, partition), (high - next.unwrap_or(low).max(low)).max(0));
            }
        }
        stats.set_lag(lag);
    }));
}
/// How often the job checks that a broker answers.
const WATCHDOG_EVERY: Duration = Duration::from_secs(5);
/// How long the job waits for a broker to answer at start.
const STARTUP_CONTACT: Duration = Duration::from_secs(15);

/// Asks the cluster for `topic`'s metadata (any broker answering will do), without
/// blocking the runtime; returns its partitions.
async fn broker_contact(producer: &FutureProducer, topic: &str, within: Duration) -> Result<Vec<i32>, KafkaError> {
    let (producer, topic) = (producer.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let m = producer.client().fetch_metadata(Some(&topic), within)?;
        Ok(m.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect())
    })
    .await
    .unwrap_or(Err(rdkafka::error::KafkaError::Canceled))
    .map_err(KafkaError::from)
}
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
        let incidents = core.incidents();
        core.stats().set_incidents(&incidents);
        history.snapshot(&incidents, &core.command_rows())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{OwnedMessage, Timestamp};

    fn at(partition: i32, offset: i64) -> OwnedMessage {
        OwnedMessage::new(None, None, "x0.telemetry".into(), Timestamp::NotAvailable, partition, offset, None)
    }

    /// An incident with more commands than one message holds is published with its
    /// command list cut, and says so; a small one goes whole.
    #[test]
    fn a_huge_incident_still_fits_one_message() {
        let mut incident = x0_schema::Incident {
            schema_version: x0_schema::SCHEMA_VERSION,
            incident_id: "inc-1".into(),
            opened_at: 0,
            detected_at: 0,
            diagnosed_at: None,
            mitigated_at: None,
            resolved_at: None,
            state: x0_schema::IncidentState::Mitigating,
            symptoms: vec![],
            root_cause: None,
            actions: vec![],
            outcome: x0_schema::Outcome::Open,
            mttd_ms: None,
            mttr_ms: None,
            model_version: String::new(),
            explanation: "plan".into(),
            reopened_at: vec![],
        };
        assert_eq!(incident_message(&incident), incident.to_json());
        incident.actions = (0..20_000)
            .map(|i| x0_schema::ActionRecord {
                command_id: format!("cmd-{i:08}-0000-0000-0000-000000000000"),
                target: format!("n{i}"),
                action: x0_schema::Action::RouteWithdraw { destination: format!("n{}", i + 1) },
                issued_at: i,
                status: None,
                reason: None,
                acked_at: None,
            })
            .collect();
        let message = incident_message(&incident);
        assert!(incident.to_json().len() > INCIDENT_MESSAGE_MAX && message.len() <= INCIDENT_MESSAGE_MAX);
        let published: x0_schema::Incident = serde_json::from_slice(&message).expect("an incident");
        assert!(published.actions.len() > 1_000 && published.actions.len() < 20_000);
        assert!(published.explanation.contains("of its 20000 commands"), "{}", published.explanation);
    }

    /// Offsets the consumer jumped over were discarded by the broker: counted, per
    /// partition, from where the restored checkpoint left off too.
    #[test]
    fn skipped_offsets_are_counted_as_discarded() {
        let mut resume = Offsets::new();
        resume.entry("x0.telemetry".into()).or_default().insert(1, 100);
        let mut p = Positions { resume, ..Default::default() };
        assert_eq!(p.take(&at(0, 0)).skipped, 0);
        assert_eq!(p.take(&at(0, 1)).skipped, 0);
        assert_eq!(p.take(&at(0, 5)).skipped, 3);
        let covered = p.take(&at(1, 99));
        assert!(!covered.new && covered.skipped == 0);
        assert_eq!(p.take(&at(1, 100)).skipped, 0);
        let after = p.take(&at(1, 250));
        assert!(after.new && after.skipped == 149);
    }
}
