//! The agent's Kafka half: starts the data plane, relays its telemetry and results to
//! the broker and the commands addressed to this node back to it.
//!
//! Two halves on purpose. The Kafka clients are created first, in the namespace the
//! agent starts in (where the broker is reachable); then the data-plane thread enters
//! the node's network namespace (`--netns`, the lab's case; absent on a real node) and
//! owns everything that touches the node's network. The halves talk over channels.

use crate::config::AgentSettings;
use crate::data_plane::{data_plane, Outbound, PlaneLinks};
use crate::metrics::AgentMetrics;
use anyhow::{Context, Result};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use x0_actuator::NodeNetwork;
use x0_kafka::rdkafka::consumer::StreamConsumer;
use x0_kafka::rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext};
use x0_kafka::rdkafka::{ClientContext, Message};
use x0_kafka::{telemetry_message, KafkaConfig};
use x0_schema::{ContentType, Provenance, VerifyingKey};

/// Everything one agent runs with.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The node's neighbours, addresses and baseline routes.
    pub network: NodeNetwork,
    /// Enter this network namespace for the data plane (lab nodes).
    pub netns: Option<String>,
    /// Brokers, topics and librdkafka options.
    pub kafka: KafkaConfig,
    /// The key healing commands must be signed with.
    pub verify_key: VerifyingKey,
    /// Signs the node's telemetry and command results (its own key), or not.
    pub signer: x0_kafka::Signer,
    /// Intervals, encoding, eBPF.
    pub settings: AgentSettings,
    /// Exit when the process that started us goes away (the lab's children).
    pub exit_with_parent: bool,
}

/// What the agent did, for its exit line.
#[derive(Debug, Default, Clone)]
pub struct AgentReport {
    /// Telemetry batches handed to the producer.
    pub batches: u64,
    /// Commands answered.
    pub commands: u64,
    /// Commands applied.
    pub applied: u64,
    /// Telemetry batches lost: the producer's buffer was full, or the broker did not
    /// take them within `message.timeout.ms` (a broker outage; the oldest go first).
    pub telemetry_dropped: u64,
    /// Where its counters came from.
    pub provenance: Option<Provenance>,
}

/// Runs one node's agent until `shutdown` turns true (or its data plane fails).
pub async fn run_agent(opts: AgentOptions, mut shutdown: watch::Receiver<bool>) -> Result<AgentReport> {
    let node = opts.network.node.clone();
    // While the broker is away, telemetry waits in librdkafka's bounded queue; what
    // outlives `message.timeout.ms` (10 s), oldest first, or finds the queue full, is
    // dropped and counted. Routes are untouched: the agent fails open.
    let metrics = AgentMetrics::default();
    let fenced = Arc::new(AtomicBool::new(false));
    let new_producer = || {
        let log = DeliveryLog {
            telemetry: opts.kafka.topics.telemetry.clone(),
            metrics: metrics.clone(),
            fenced: fenced.clone(),
        };
        opts.kafka.base_producer(log).context("producer")
    };
    let mut producer = new_producer()?;
    // Every partition of the command topic, outside any group membership: a restarted
    // agent reads on from its committed offsets at once (a redelivered command gets
    // its journal's answer).
    let consumer: StreamConsumer =
        agent_kafka(&opts.kafka).unmanaged_consumer(&format!("x0-agent-{node}")).context("command consumer")?;
    let mut assigned = false;
    let mut assign_retry = tokio::time::interval(Duration::from_secs(1));
    let encoding = ContentType::from(opts.settings.encoding);

    let (cmd_tx, cmd_rx) = std_mpsc::channel::<Vec<u8>>();
    // Rings the data plane's doorbell: it sleeps in poll(2) on its probe socket and
    // this, so a command is applied at once without the thread waking on a timer.
    let (mut doorbell, bell) = UnixStream::pair()?;
    doorbell.set_nonblocking(true)?;
    bell.set_nonblocking(true)?;
    let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(1024);
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<Provenance>>();
    let plane = {
        let links = PlaneLinks { commands: cmd_rx, bell, out: out_tx, stop: stop.clone(), ready: ready_tx };
        let opts = opts.clone();
        std::thread::Builder::new().name(format!("x0-agent-{node}")).spawn(move || data_plane(opts, links))?
    };
    let provenance = ready_rx.await.context("data plane did not start")??;
    metrics.set_mode(provenance);
    say(&node, &format!("telemetry from {}; routes proto {}", provenance.as_str(), x0_actuator::ROUTE_PROTOCOL));
    let _endpoint = match opts.settings.listen.as_str() {
        "" => None,
        addr => {
            let m = metrics.clone();
            let ready: x0_ops::ReadyCheck = Arc::new(move || m.readiness(DELIVERY_FRESH));
            let ep = x0_ops::Endpoint::serve(addr, metrics.registry(), ready)
                .await
                .with_context(|| format!("listening on {addr}"))?;
            say(&node, &format!("endpoint http://{}/metrics", ep.addr()));
            Some(ep)
        }
    };

    let mut report = AgentReport { provenance: Some(provenance), ..Default::default() };
    let parent = std::os::unix::process::parent_id();
    let mut parent_check = tokio::time::interval(Duration::from_secs(1));
    // Delivery reports are served after every send (the previous sends' verdicts are
    // in by then); the timer only covers a quiet spell.
    let mut deliveries = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = deliveries.tick() => {
                producer.poll(Duration::ZERO);
                metrics.set_buffered(producer.in_flight_count().max(0) as usize);
                // An idempotent producer whose in-flight messages timed out (a broker
                // paused past `message.timeout.ms`) bumps its epoch, and a broker may
                // then fence it (tansu 0.6 does): every later message fails, forever.
                // Both that and a fatal error get a new producer (a new producer id);
                // the old one's queue is purged on drop and counted as dropped.
                let fatal = producer.client().fatal_error().map(|(code, why)| format!("{code}: {why}"));
                if let Some(why) = fatal.or_else(|| fenced.swap(false, Ordering::Relaxed).then(|| "fenced".to_string())) {
                    tracing::warn!(reason = %why, "producer can send no more; starting a new one");
                    producer = new_producer()?;
                    metrics.producer_restarts.inc();
                }
            }
            // Until the broker has told us the command topic's partitions (it may be
            // away at start): a short wait on this thread, a second apart.
            _ = assign_retry.tick(), if !assigned => {
                match x0_kafka::assign_all(&consumer, &opts.kafka.topics.commands, Duration::from_millis(300)) {
                    Ok(_) => {
                        assigned = true;
                        metrics.assigned.store(true, Ordering::Relaxed);
                    }
                    Err(e) => tracing::warn!(error = %e, "command topic not available yet"),
                }
            }
            _ = parent_check.tick() => {
                if opts.exit_with_parent && std::os::unix::process::parent_id() != parent {
                    say(&node, "parent went away, exiting");
                    break;
                }
            }
            m = consumer.recv() => match m {
                Ok(m) => {
                    // Every agent reads the command topic; commands are keyed by target node.
                    if m.key() == Some(node.as_bytes()) {
                        let _ = cmd_tx.send(m.payload().unwrap_or_default().to_vec());
                        let _ = doorbell.write(&[1]);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "command consumer"),
            },
            out = out_rx.recv() => match out {
                Some(Outbound::Telemetry(batch)) => {
                    report.batches += 1;
                    metrics.telemetry(&batch);
                    let (payload, headers) = telemetry_message(encoding, &batch);
                    let headers = opts.signer.sign(headers, &node, &payload);
                    // One copy per region that needs it (none listed: by key).
                    let partitions = &opts.settings.telemetry_partitions;
                    for partition in partitions.iter().copied().map(Some).chain(partitions.is_empty().then_some(None)) {
                        let mut record = BaseRecord::to(&opts.kafka.topics.telemetry).key(&node).payload(&payload).headers(headers.clone());
                        record.partition = partition;
                        if let Err((e, _)) = producer.send(record) {
                            metrics.dropped.inc();
                            tracing::warn!(error = %e, "telemetry not queued");
                        }
                    }
                    producer.poll(Duration::ZERO);
                }
                Some(Outbound::Result(result)) => {
                    report.commands += 1;
                    report.applied += u64::from(result.status == x0_schema::ResultStatus::Applied);
                    metrics.command(&result);
                    tracing::info!(node = %node, command_id = %result.command_id, status = result.status.as_str(), reason = %result.reason, "command answered");
                    let bytes = result.to_json();
                    let headers = opts.signer.sign(x0_kafka::rdkafka::message::OwnedHeaders::new(), &node, &bytes);
                    let record = BaseRecord::to(&opts.kafka.topics.command_results).key(&node).payload(&bytes).headers(headers);
                    if let Err((e, _)) = producer.send(record) {
                        tracing::warn!(error = %e, "command result not queued");
                    }
                }
                None => break,
            },
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = doorbell.write(&[1]);
    drop(cmd_tx);
    // Unblocks a data plane waiting for room in the channel.
    drop(out_rx);
    let _ = tokio::task::spawn_blocking(move || plane.join()).await;
    if let Err(e) = producer.flush(Duration::from_secs(5)) {
        tracing::warn!(error = %e, "results and telemetry still queued at exit");
    }
    report.telemetry_dropped = metrics.dropped.get();
    Ok(report)
}

/// Hears the broker's verdict on every message the agent sent; a failure is logged
/// (telemetry is a stream: the next batch supersedes a lost one; a lost command
/// result leaves that command unacknowledged in the job's history).
struct DeliveryLog {
    /// The telemetry topic, and the batches sent there the broker never took.
    telemetry: String,
    metrics: AgentMetrics,
    /// Set when the broker refused our producer id: only a new producer sends again.
    fenced: Arc<AtomicBool>,
}

impl ClientContext for DeliveryLog {}

impl ProducerContext for DeliveryLog {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_ok() {
            self.metrics.delivered_ns.store(x0_schema::wall_clock_ns(), Ordering::Relaxed);
        }
        if let Err((e, m)) = result {
            if x0_kafka::fenced(e) {
                self.fenced.store(true, Ordering::Relaxed);
            }
            if m.topic() == self.telemetry {
                if x0_kafka::possibly_persisted(m) {
                    self.metrics.uncertain.inc();
                } else {
                    self.metrics.dropped.inc();
                }
            }
            tracing::warn!(topic = m.topic(), error = %e, "not delivered");
        }
    }
}

/// `/readyz` wants a message of ours delivered within this long (longer than a
/// broker hiccup; a broker gone this long means telemetry is being lost).
const DELIVERY_FRESH: Duration = Duration::from_secs(15);

/// Says something about the agent to its operator: a log event when logs are JSON,
/// else a line on stderr.
fn say(node: &str, what: &str) {
    if x0_ops::json_logs() {
        tracing::info!(node = %node, "{what}");
    } else {
        eprintln!("agent {node}: {what}");
    }
}

/// The agent's Kafka settings. Commands are rare and the consumer otherwise polls for
/// nothing: a fetch waits up to 100 ms for data (a real broker answers as soon as a
/// command arrives; librdkafka's mock cluster waits the full time, so in the lab a
/// command can take up to 100 ms longer), not the job's 5 ms that would cost every
/// node 200 fetches a second. Explicit settings win.
fn agent_kafka(kafka: &KafkaConfig) -> KafkaConfig {
    let mut k = kafka.clone();
    k.options.entry("fetch.wait.max.ms".into()).or_insert_with(|| "100".into());
    k
}
