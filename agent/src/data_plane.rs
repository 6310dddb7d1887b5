//! The agent's data-plane thread: in the node's network namespace, it samples the
//! counters and link probes into telemetry on the wall clock's interval boundaries,
//! applies commands the moment they arrive, and keeps the routes reconciled.

use crate::node_agent::AgentOptions;
use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags};
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use x0_actuator::{Actuator, KernelRouteTarget, RouteTarget};
use x0_ingest::{
    enter_netns, interface_index, CollectedLink, Collector, InterfaceReader, KernelCounters, KernelLink, KernelProbes,
    LinkEvents, LinkProber,
};
use x0_schema::{wall_clock_ns, Action, CommandResult, HealingCommand, Provenance, TelemetryBatch};

/// What the data plane hands the Kafka half.
pub(crate) enum Outbound {
    Telemetry(TelemetryBatch),
    Result(CommandResult),
}

/// The data plane's ends of the channels to the Kafka half.
pub(crate) struct PlaneLinks {
    pub(crate) commands: std_mpsc::Receiver<Vec<u8>>,
    /// Readable when a command is waiting.
    pub(crate) bell: UnixStream,
    pub(crate) out: mpsc::Sender<Outbound>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) ready: tokio::sync::oneshot::Sender<Result<Provenance>>,
}

/// Node resources are read from procfs every this long (one stream-job window).
const NODE_RESOURCE_PERIOD: Duration = Duration::from_millis(500);
/// Routes are re-checked this often regardless (and at once when a carrier changed:
/// the kernel deletes routes over an interface set down).
const RECONCILE_PERIOD: Duration = Duration::from_secs(5);

struct Plane {
    actuator: Actuator<KernelRouteTarget>,
    prober: LinkProber,
    counters: KernelCounters,
    link_events: LinkEvents,
}

fn set_up(opts: &AgentOptions) -> Result<Plane> {
    if let Some(ns) = &opts.netns {
        enter_netns(ns).with_context(|| format!("entering netns {ns}"))?;
    }
    let net = &opts.network;
    let links: Vec<KernelLink> = net
        .neighbours
        .iter()
        .map(|n| {
            let ifindex = interface_index(&n.iface).with_context(|| format!("no interface {}", n.iface))?;
            Ok(KernelLink { peer: n.node.clone(), ifindex, peer_addr: n.peer })
        })
        .collect::<Result<_>>()?;
    // Routes first (the baseline, then the journal's repairs): a restarted agent puts
    // traffic back before it spends a second or so parsing BTF for its probes.
    let target = KernelRouteTarget::start(net.clone()).map_err(|e| anyhow::anyhow!("routes: {e}"))?;
    let journal = opts.settings.journal(&net.node);
    let actuator = Actuator::with_journal(net.node.clone(), opts.verify_key, target, &journal)
        .with_context(|| format!("actuator journal {}", journal.display()))?;
    let probes = if opts.settings.ebpf { load_probes(opts) } else { None };
    let s = &opts.settings;
    let prober = LinkProber::bind(net.neighbours.iter().map(|n| n.peer).collect(), s.probe_interval, s.probe_timeout)
        .context("binding the link-probe port")?;
    let interfaces = InterfaceReader::open().context("rtnetlink socket")?;
    let link_events = LinkEvents::open().context("rtnetlink link notifications")?;
    let destinations = net.destinations.iter().map(|(n, a)| (n.clone(), *a));
    let counters = KernelCounters::new(links, destinations, probes, interfaces);
    Ok(Plane { actuator, prober, counters, link_events })
}

/// The eBPF probes attached to every link, or None (said once) when they cannot load.
fn load_probes(opts: &AgentOptions) -> Option<KernelProbes> {
    let loaded = KernelProbes::load().and_then(|mut p| {
        for n in &opts.network.neighbours {
            p.attach_interface(&n.iface)?;
        }
        Ok(p)
    });
    match loaded {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!(
                "agent {}: eBPF probes unavailable ({e}); using the kernel's interface counters",
                opts.network.node
            );
            None
        }
    }
}

pub(crate) fn data_plane(opts: AgentOptions, links: PlaneLinks) {
    let PlaneLinks { commands, mut bell, out, stop, ready } = links;
    let mut plane = match set_up(&opts) {
        Ok(p) => p,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let provenance = x0_ingest::CounterSource::provenance(&plane.counters);
    crate::allocator::release_freed_memory();
    let _ = ready.send(Ok(provenance));

    let net = &opts.network;
    let interval = opts.settings.telemetry_interval;
    let node_every = (NODE_RESOURCE_PERIOD.as_nanos() / interval.as_nanos().max(1)).max(1);
    let links = net.neighbours.iter().map(|n| CollectedLink { peer: n.node.clone(), iface: n.iface.clone() }).collect();
    let mut collector = Collector::new(net.node.clone(), links, u64::try_from(node_every).unwrap_or(1));
    let (mut next_sample, mut sample_ts) = next_boundary(interval);
    let mut next_reconcile = Instant::now() + Duration::from_secs(1);
    let mut carriers: Vec<bool> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        plane.prober.poll(now);
        while let Ok(bytes) = commands.try_recv() {
            let result = plane.actuator.handle(&bytes, wall_clock_ns());
            if result.status == x0_schema::ResultStatus::Applied {
                if let Ok(HealingCommand { action: Action::ProbeRate { interval_ms }, .. }) =
                    HealingCommand::from_json(&bytes)
                {
                    plane.prober.set_interval(Duration::from_millis(interval_ms.into()));
                }
            }
            let _ = out.blocking_send(Outbound::Result(result));
        }
        if now >= next_reconcile {
            next_reconcile = now + RECONCILE_PERIOD;
            let fixed = plane.actuator.target_mut().reconcile();
            if fixed > 0 {
                tracing::info!(fixed, "routes restored after an interface came back");
            }
        }
        if now >= next_sample {
            let ts = sample_ts;
            (next_sample, sample_ts) = next_boundary(interval);
            // Retransmits are charged to the link their destination is routed over.
            let routes = plane.actuator.target().routes();
            plane.counters.set_next_hops(routes.into_iter().map(|r| (r.destination, r.next_hop)));
            let probes = plane.prober.take();
            let batch = collector.tick(ts, &mut plane.counters, &probes);
            let now_carriers: Vec<bool> = batch.links.iter().map(|l| l.oper_up).collect();
            if now_carriers != carriers {
                carriers = now_carriers;
                next_reconcile = now;
            }
            if out.blocking_send(Outbound::Telemetry(batch)).is_err() {
                break;
            }
        }
        // Sleep until a probe or reply arrives, a command rings, or timed work is due.
        let wake = plane.prober.next_due().min(next_sample).min(next_reconcile);
        if let Some(wait) = wake.checked_duration_since(Instant::now()) {
            let ms = u16::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(u16::MAX);
            let mut fds = [
                PollFd::new(plane.prober.as_fd(), PollFlags::POLLIN),
                PollFd::new(bell.as_fd(), PollFlags::POLLIN),
                PollFd::new(plane.link_events.as_fd(), PollFlags::POLLIN),
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
            if links && plane.link_events.drain() {
                plane.counters.links_changed();
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
