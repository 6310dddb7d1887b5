//! The node agent: collector and actuator of one node.
//!
//! Two halves on purpose. The Kafka clients are created first, in the namespace the
//! agent starts in (where the broker is reachable); then a data-plane thread enters
//! the node's network namespace (`--netns`, the lab's case; absent on a real node)
//! and owns everything that touches the node's network: the eBPF probes, the link
//! prober, the interface counters and the kernel routing table. The halves talk over
//! channels.

use anyhow::{Context, Result};
use rdkafka::consumer::StreamConsumer;
use rdkafka::producer::FutureRecord;
use rdkafka::Message;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use x0_actuator::{Actuator, KernelRouteTarget, NodeNetwork, RouteTarget};
use x0_ingest::{
    enter_netns, interface_index, read_interfaces, InterfaceStats, KernelProbes, LinkProber, ProbeSnapshot,
    TelemetryPublisher,
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
    let publisher = TelemetryPublisher::new(&opts.kafka, opts.encoding).context("telemetry producer")?;
    let producer = opts.kafka.producer().context("results producer")?;
    let consumer: StreamConsumer =
        opts.kafka.consumer(&format!("x0-agent-{node}"), &[&opts.kafka.topics.commands]).context("command consumer")?;

    let (cmd_tx, cmd_rx) = std_mpsc::channel::<Vec<u8>>();
    let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(1024);
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<Provenance>>();
    let plane = {
        let (opts, stop) = (opts.clone(), stop.clone());
        std::thread::Builder::new()
            .name(format!("x0-agent-{node}"))
            .spawn(move || data_plane(opts, cmd_rx, out_tx, stop, ready_tx))?
    };
    let provenance = ready_rx.await.context("data plane did not start")??;
    eprintln!("agent {node}: telemetry from {}; routes proto {}", provenance.as_str(), x0_actuator::ROUTE_PROTOCOL);

    let mut report = AgentReport { provenance: Some(provenance), ..Default::default() };
    let parent = std::os::unix::process::parent_id();
    let mut parent_check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
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
                    }
                }
                Err(e) => tracing::warn!(error = %e, "command consumer"),
            },
            out = out_rx.recv() => match out {
                Some(Outbound::Telemetry(batch)) => {
                    report.batches += 1;
                    if let Err(e) = publisher.publish(&node, &batch).await {
                        tracing::warn!(error = %e, "telemetry not delivered");
                    }
                }
                Some(Outbound::Result(result)) => {
                    report.commands += 1;
                    report.applied += u64::from(result.status == x0_schema::ResultStatus::Applied);
                    let bytes = result.to_json();
                    let record = FutureRecord::to(&opts.kafka.topics.command_results).key(node.as_str()).payload(&bytes);
                    if let Err((e, _)) = producer.send(record, Duration::from_secs(5)).await {
                        tracing::warn!(error = %e, "command result not delivered");
                    }
                }
                None => break,
            },
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(cmd_tx);
    // Unblocks a data plane waiting for room in the channel.
    drop(out_rx);
    let _ = tokio::task::spawn_blocking(move || plane.join()).await;
    Ok(report)
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
    out: mpsc::Sender<Outbound>,
    stop: Arc<AtomicBool>,
    ready: tokio::sync::oneshot::Sender<Result<Provenance>>,
) {
    let setup = || -> Result<(Option<KernelProbes>, Actuator<KernelRouteTarget>, LinkProber, Vec<u32>)> {
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
        Ok((probes, actuator, prober, ifindex))
    };
    let (probes, mut actuator, mut prober, ifindex) = match setup() {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let provenance = if probes.is_some() { Provenance::Ebpf } else { Provenance::Procfs };
    let _ = ready.send(Ok(provenance));

    let net = &opts.network;
    let mut last: Vec<Cumulative> = vec![Cumulative::default(); net.neighbours.len()];
    let mut first = true;
    let mut cpu = CpuMeter::default();
    let mut next_sample = Instant::now() + opts.telemetry_interval;
    let mut next_reconcile = Instant::now() + Duration::from_secs(1);
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
            next_reconcile = now + Duration::from_millis(500);
            let fixed = actuator.target_mut().reconcile();
            if fixed > 0 {
                tracing::info!(fixed, "routes restored after an interface came back");
            }
        }
        if now >= next_sample {
            next_sample += opts.telemetry_interval;
            if next_sample < now {
                next_sample = now + opts.telemetry_interval;
            }
            let kernel = read_interfaces().unwrap_or_default();
            let snap = probes.as_ref().and_then(|p| p.snapshot().ok());
            let current = cumulative(net, &ifindex, &kernel, snap.as_ref(), &actuator.target().routes());
            let probe_stats = prober.take();
            let ts = wall_clock_ns();
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
            let (cpu_share, softirq) = cpu.sample();
            batch.nodes.push(NodeSample {
                ts,
                node: net.node.clone(),
                schema_version: SCHEMA_VERSION,
                provenance: Provenance::Procfs,
                cpu: cpu_share,
                mem: memory_used().unwrap_or(0.0),
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
        // Sleep until the next probe or sample, at most 5 ms (replies to answer).
        let wake = prober.next_due().min(next_sample).min(Instant::now() + Duration::from_millis(5));
        if let Some(wait) = wake.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

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
