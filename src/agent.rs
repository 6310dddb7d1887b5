//! The node agent: collector and actuator of one node.
//!
//! Two halves on purpose. The Kafka clients are created first, in the namespace the
//! agent starts in (where the broker is reachable); then a data-plane thread enters
//! the node's network namespace (`--netns`, the lab's case; absent on a real node)
//! and owns everything that touches the node's network: the eBPF probes, the link
//! prober, the interface counters and the kernel routing table. The halves talk over
//! channels.

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags};
use rdkafka::consumer::StreamConsumer;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use rdkafka::Message;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use x0_actuator::{Actuator, KernelRouteTarget, NodeNetwork, RouteTarget};
use x0_ingest::{
    enter_netns, interface_index, telemetry_message, InterfaceReader, InterfaceStats, KernelProbes, LinkEvents,
    LinkProber, ProbeSnapshot,
};
use x0_kafka::KafkaConfig;
use x0_pipeline::wall_clock_ns;
use x0_schema::{
    Action, CommandResult, ContentType, HealingCommand, LinkSample, NodeSample, Provenance, TelemetryBatch,
    VerifyingKey, SCHEMA_VERSION,
};

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub network: NodeNetwork,
    /// Enter this network namespace for the data plane (lab nodes).
    pub netns: Option<String>,
    pub kafka: KafkaConfig,
    pub verify_key: VerifyingKey,
    pub telemetry_interval: Duration,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    pub encoding: ContentType,
    /// Use the kernel's interface counters even where eBPF could load.
    pub no_ebpf: bool,
    /// Exit when the process that started us goes away (the lab's children).
    pub exit_with_parent: bool,
}

/// What the agent did, for its exit line.
#[derive(Debug, Default, Clone)]
pub struct AgentReport {
    pub batches: u64,
    pub commands: u64,
    pub applied: u64,
    pub provenance: Option<Provenance>,
}

enum Outbound {
    Telemetry(TelemetryBatch),
    Result(CommandResult),
}

pub async fn run_agent(opts: AgentOptions, mut shutdown: watch::Receiver<bool>) -> Result<AgentReport> {
    let node = opts.network.node.clone();
    let producer = opts.kafka.base_producer(DeliveryLog).context("producer")?;
    let consumer: StreamConsumer = agent_kafka(&opts.kafka)
        .consumer(&format!("x0-agent-{node}"), &[&opts.kafka.topics.commands])
        .context("command consumer")?;

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
        let (opts, stop) = (opts.clone(), stop.clone());
        std::thread::Builder::new()
            .name(format!("x0-agent-{node}"))
            .spawn(move || data_plane(opts, cmd_rx, bell, out_tx, stop, ready_tx))?
    };
    let provenance = ready_rx.await.context("data plane did not start")??;
    eprintln!("agent {node}: telemetry from {}; routes proto {}", provenance.as_str(), x0_actuator::ROUTE_PROTOCOL);

    let mut report = AgentReport { provenance: Some(provenance), ..Default::default() };
    let parent = std::os::unix::process::parent_id();
    let mut parent_check = tokio::time::interval(Duration::from_secs(1));
    // Delivery reports are served after every send (the previous sends' verdicts are
    // in by then); the timer only covers a quiet spell.
    let mut deliveries = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = deliveries.tick() => producer.poll(Duration::ZERO),
            _ = parent_check.tick() => {
                if opts.exit_with_parent && std::os::unix::process::parent_id() != parent {
                    eprintln!("agent {node}: parent went away, exiting");
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
                    let (payload, headers) = telemetry_message(opts.encoding, &batch);
                    let record = BaseRecord::to(&opts.kafka.topics.telemetry).key(&node).payload(&payload).headers(headers);
                    if let Err((e, _)) = producer.send(record) {
                        tracing::warn!(error = %e, "telemetry not queued");
                    }
                    producer.poll(Duration::ZERO);
                }
                Some(Outbound::Result(result)) => {
                    report.commands += 1;
                    report.applied += u64::from(result.status == x0_schema::ResultStatus::Applied);
                    let bytes = result.to_json();
                    let record = BaseRecord::to(&opts.kafka.topics.command_results).key(&node).payload(&bytes);
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
    Ok(report)
}

/// Hears the broker's verdict on every message the agent sent; a failure is logged
/// (telemetry is a stream: the next batch supersedes a lost one; a lost command
/// result leaves that command unacknowledged in the job's history).
struct DeliveryLog;

impl ClientContext for DeliveryLog {}

impl ProducerContext for DeliveryLog {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            tracing::warn!(topic = m.topic(), error = %e, "not delivered");
        }
    }
}

/// Counters of one link end, cumulative, from eBPF or the kernel's interface stats.
#[derive(Debug, Clone, Copy, Default)]
struct Cumulative {
    tx_packets: u64,
    rx_packets: u64,
    tx_bytes: u64,
    rx_bytes: u64,
    drops: u64,
    errors: u64,
    retransmits: u64,
}

fn data_plane(
    opts: AgentOptions,
    commands: std_mpsc::Receiver<Vec<u8>>,
    mut bell: UnixStream,
    out: mpsc::Sender<Outbound>,
    stop: Arc<AtomicBool>,
    ready: tokio::sync::oneshot::Sender<Result<Provenance>>,
) {
    type Plane = (Option<KernelProbes>, Actuator<KernelRouteTarget>, LinkProber, InterfaceReader, LinkEvents, Vec<u32>);
    let setup = || -> Result<Plane> {
        if let Some(ns) = &opts.netns {
            enter_netns(ns).with_context(|| format!("entering namespace {ns}"))?;
        }
        let net = &opts.network;
        let ifindex: Vec<u32> = net
            .neighbours
            .iter()
            .map(|n| interface_index(&n.iface).with_context(|| format!("no interface {}", n.iface)))
            .collect::<Result<_>>()?;
        let probes = if opts.no_ebpf {
            None
        } else {
            match KernelProbes::load().and_then(|mut p| {
                for n in &net.neighbours {
                    p.attach_interface(&n.iface)?;
                }
                Ok(p)
            }) {
                Ok(p) => Some(p),
                Err(e) => {
                    eprintln!(
                        "agent {}: eBPF probes unavailable ({e}); using the kernel's interface counters",
                        net.node
                    );
                    None
                }
            }
        };
        let target = KernelRouteTarget::start(net.clone()).map_err(|e| anyhow::anyhow!("routes: {e}"))?;
        let actuator = Actuator::new(net.node.clone(), opts.verify_key, target);
        let prober =
            LinkProber::bind(net.neighbours.iter().map(|n| n.peer).collect(), opts.probe_interval, opts.probe_timeout)
                .context("binding the link-probe port")?;
        let interfaces = InterfaceReader::open().context("rtnetlink socket")?;
        let link_events = LinkEvents::open().context("rtnetlink link notifications")?;
        Ok((probes, actuator, prober, interfaces, link_events, ifindex))
    };
    let (probes, mut actuator, mut prober, mut interfaces, mut link_events, ifindex) = match setup() {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let provenance = if probes.is_some() { Provenance::Ebpf } else { Provenance::Procfs };
    crate::memory::release_freed_memory();
    let _ = ready.send(Ok(provenance));

    let net = &opts.network;
    let mut last: Vec<Cumulative> = vec![Cumulative::default(); net.neighbours.len()];
    let mut first = true;
    let mut cpu = CpuMeter::default();
    // Node resources are read from procfs at most every 500 ms (one stream-job window)
    // and repeated in between: a busy share over 100 ms says nothing more, and reading
    // /proc/stat and /proc/meminfo ten times a second was a tenth of the agent's cost.
    let resource_every = (NODE_RESOURCE_PERIOD.as_nanos() / opts.telemetry_interval.as_nanos().max(1)).max(1);
    let mut samples_taken: u128 = 0;
    let mut resources = (0.0, 0.0, 0.0);
    let (mut next_sample, mut sample_ts) = next_boundary(opts.telemetry_interval);
    let mut next_reconcile = Instant::now() + Duration::from_secs(1);
    let mut carriers: Vec<bool> = Vec::new();
    // The kernel's view of the links. With the eBPF counters it is needed only for
    // carrier (re-read when the kernel announces a link change) and the rare interface
    // errors (re-read every second), not ten dumps a second of a state that rarely
    // changes. Without eBPF its counters are the telemetry, read every sample.
    let mut kernel: Vec<InterfaceStats> = Vec::new();
    let mut links_changed = true;
    let mut next_link_dump = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        prober.poll(now);
        while let Ok(bytes) = commands.try_recv() {
            let result = actuator.handle(&bytes, wall_clock_ns());
            if result.status == x0_schema::ResultStatus::Applied {
                if let Ok(HealingCommand { action: Action::ProbeRate { interval_ms }, .. }) =
                    HealingCommand::from_json(&bytes)
                {
                    prober.set_interval(Duration::from_millis(interval_ms.into()));
                }
            }
            let _ = out.blocking_send(Outbound::Result(result));
        }
        if now >= next_reconcile {
            // Routes are re-checked when an interface's carrier changed (the kernel
            // deletes routes over an interface set down) and every 5 s regardless.
            next_reconcile = now + Duration::from_secs(5);
            let fixed = actuator.target_mut().reconcile();
            if fixed > 0 {
                tracing::info!(fixed, "routes restored after an interface came back");
            }
        }
        if now >= next_sample {
            let ts = sample_ts;
            (next_sample, sample_ts) = next_boundary(opts.telemetry_interval);
            if probes.is_none() || links_changed || now >= next_link_dump {
                links_changed = false;
                next_link_dump = now + LINK_DUMP_PERIOD;
                kernel = interfaces.read().unwrap_or_default();
            }
            let now_carriers: Vec<bool> =
                ifindex.iter().map(|&i| kernel.iter().any(|k| k.ifindex == i && k.carrier)).collect();
            if now_carriers != carriers {
                carriers = now_carriers;
                next_reconcile = now;
            }
            let snap = probes.as_ref().and_then(|p| p.snapshot().ok());
            let current = cumulative(net, &ifindex, &kernel, snap.as_ref(), &actuator.target().routes());
            let probe_stats = prober.take();
            let mut batch = TelemetryBatch::default();
            for (i, n) in net.neighbours.iter().enumerate() {
                let (c, l) = (current[i], last[i]);
                let d = |a: u64, b: u64| if first { 0 } else { a.saturating_sub(b) };
                let p = probe_stats[i];
                batch.links.push(LinkSample {
                    ts,
                    node: net.node.clone(),
                    peer: n.node.clone(),
                    iface: n.iface.clone(),
                    schema_version: SCHEMA_VERSION,
                    provenance,
                    oper_up: kernel.iter().any(|k| k.ifindex == ifindex[i] && k.carrier),
                    tx_packets: d(c.tx_packets, l.tx_packets),
                    rx_packets: d(c.rx_packets, l.rx_packets),
                    tx_bytes: d(c.tx_bytes, l.tx_bytes),
                    rx_bytes: d(c.rx_bytes, l.rx_bytes),
                    drops: d(c.drops, l.drops),
                    errors: d(c.errors, l.errors),
                    tcp_retransmits: d(c.retransmits, l.retransmits),
                    probes_sent: p.sent,
                    probes_lost: p.lost,
                    rtt_avg_us: p.rtt_avg_us(),
                    rtt_max_us: p.rtt_max_us,
                });
            }
            if samples_taken.is_multiple_of(resource_every) {
                let (cpu_share, softirq) = cpu.sample();
                resources = (cpu_share, softirq, memory_used().unwrap_or(0.0));
            }
            samples_taken += 1;
            let (cpu_share, softirq, mem) = resources;
            batch.nodes.push(NodeSample {
                ts,
                node: net.node.clone(),
                schema_version: SCHEMA_VERSION,
                provenance: Provenance::Procfs,
                cpu: cpu_share,
                mem,
                softirq,
                queue_pressure: 0.0,
                agent_ok: true,
            });
            last = current;
            first = false;
            if out.blocking_send(Outbound::Telemetry(batch)).is_err() {
                break;
            }
        }
        // Sleep until a probe or reply arrives, a command rings, or timed work is due.
        let wake = prober.next_due().min(next_sample).min(next_reconcile);
        if let Some(wait) = wake.checked_duration_since(Instant::now()) {
            let ms = u16::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(u16::MAX);
            let mut fds = [
                PollFd::new(prober.as_fd(), PollFlags::POLLIN),
                PollFd::new(bell.as_fd(), PollFlags::POLLIN),
                PollFd::new(link_events.as_fd(), PollFlags::POLLIN),
            ];
            let _ = poll(&mut fds, ms);
            let ready =
                |fd: &PollFd| fd.revents().is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLERR));
            let (rang, links) = (ready(&fds[1]), ready(&fds[2]));
            if rang {
                let mut drain = [0u8; 64];
                while matches!(bell.read(&mut drain), Ok(n) if n > 0) {}
            }
            // Carrier is read at the next sample boundary (at most one interval later,
            // as when it was polled); the notification only says a dump is due.
            if links && link_events.drain() {
                links_changed = true;
            }
        }
    }
}

/// The next multiple of `interval` on the wall clock, as an instant to wake at and its
/// timestamp. Every agent samples its counters on the same boundaries, so both ends
/// of a link count over the same interval (a skew of a few ms between two agents'
/// samples reads as loss on one side and a surplus on the other).
fn next_boundary(interval: Duration) -> (Instant, i64) {
    let step = i64::try_from(interval.as_nanos()).unwrap_or(i64::MAX).max(1);
    let now = wall_clock_ns();
    let boundary = (now.div_euclid(step) + 1) * step;
    (Instant::now() + Duration::from_nanos(boundary.abs_diff(now)), boundary)
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

const NODE_RESOURCE_PERIOD: Duration = Duration::from_millis(500);
/// How often the links are dumped when nothing announced a change (eBPF counters).
const LINK_DUMP_PERIOD: Duration = Duration::from_secs(1);

/// Cumulative counters per neighbour: eBPF when loaded, else the kernel's own.
/// Retransmits are charged to the link their destination is routed over.
fn cumulative(
    net: &NodeNetwork,
    ifindex: &[u32],
    kernel: &[InterfaceStats],
    snap: Option<&ProbeSnapshot>,
    routes: &[x0_schema::RouteEntry],
) -> Vec<Cumulative> {
    let by_addr: BTreeMap<std::net::Ipv4Addr, &str> = net
        .destinations
        .iter()
        .map(|(n, a)| (*a, n.as_str()))
        .chain(net.neighbours.iter().map(|n| (n.peer, n.node.as_str())))
        .collect();
    let next_hop = |dst: &str| -> Option<String> {
        if net.neighbour(dst).is_some() {
            return Some(dst.to_string());
        }
        routes.iter().find(|r| r.destination == dst).map(|r| r.next_hop.clone())
    };
    let mut retrans: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(s) = snap {
        for (addr, count) in &s.retransmits {
            if let Some(hop) = by_addr.get(addr).and_then(|d| next_hop(d)) {
                *retrans.entry(hop).or_default() += count;
            }
        }
    }
    net.neighbours
        .iter()
        .zip(ifindex)
        .map(|(n, &idx)| {
            let k = kernel.iter().find(|k| k.ifindex == idx).cloned().unwrap_or_default();
            let errors = k.rx_errors + k.tx_errors;
            match snap {
                Some(s) => {
                    let c = s.interfaces.get(&idx).copied().unwrap_or_default();
                    Cumulative {
                        tx_packets: c.tx_packets,
                        rx_packets: c.rx_packets,
                        tx_bytes: c.tx_bytes,
                        rx_bytes: c.rx_bytes,
                        drops: s.drops_on(idx),
                        errors,
                        retransmits: retrans.get(&n.node).copied().unwrap_or(0),
                    }
                }
                None => Cumulative {
                    tx_packets: k.tx_packets,
                    rx_packets: k.rx_packets,
                    tx_bytes: k.tx_bytes,
                    rx_bytes: k.rx_bytes,
                    drops: k.rx_dropped + k.tx_dropped,
                    errors,
                    retransmits: 0,
                },
            }
        })
        .collect()
}

/// Host CPU busy share and softirq share between calls, from /proc/stat. In the lab
/// every namespace shares the host's CPUs, so every node reports the same figure.
#[derive(Debug, Default)]
struct CpuMeter {
    last: Option<(u64, u64, u64)>,
}

impl CpuMeter {
    fn sample(&mut self) -> (f64, f64) {
        let Some(now) = read_cpu() else { return (0.0, 0.0) };
        let out = match self.last {
            Some((total, idle, softirq)) if now.0 > total => {
                let dt = (now.0 - total) as f64;
                (1.0 - (now.1 - idle) as f64 / dt, (now.2 - softirq) as f64 / dt)
            }
            _ => (0.0, 0.0),
        };
        self.last = Some(now);
        (out.0.clamp(0.0, 1.0), out.1.clamp(0.0, 1.0))
    }
}

fn read_cpu() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total, idle, *v.get(6)?))
}

fn memory_used() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<f64> {
        info.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()
    };
    Some(1.0 - field("MemAvailable:")? / field("MemTotal:")?)
}
