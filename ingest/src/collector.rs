//! The collector: one [`TelemetryBatch`] per tick from whatever counts a node's links.
//!
//! Counter sources report cumulative counters (as the kernel and the eBPF maps keep
//! them); the collector turns them into the per-interval deltas of the telemetry
//! contract, joins the active probes' loss and RTT, and adds the node's own sample.
//! Where the counters come from is a [`CounterSource`]: the kernel
//! ([`KernelCounters`](crate::KernelCounters)) on a node, a fake one in tests.

use crate::link_probe::ProbeStats;
use x0_schema::{LinkSample, NodeSample, Provenance, TelemetryBatch, SCHEMA_VERSION};

/// Cumulative counters of one link end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Packets sent on the link.
    pub tx_packets: u64,
    /// Packets received on the link.
    pub rx_packets: u64,
    /// Bytes sent on the link.
    pub tx_bytes: u64,
    /// Bytes received on the link.
    pub rx_bytes: u64,
    /// Packets the kernel dropped on the link's interface.
    pub drops: u64,
    /// Interface errors, both directions.
    pub errors: u64,
    /// TCP retransmits of connections routed over the link.
    pub retransmits: u64,
}

/// One link end at one instant: its counters and whether it has carrier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkReading {
    /// Cumulative counters.
    pub counters: LinkCounters,
    /// Administratively up with carrier.
    pub oper_up: bool,
}

/// The node's own resources, as shares of the whole (0..=1).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NodeResources {
    /// CPU busy share.
    pub cpu: f64,
    /// Share of CPU time in softirq (packet processing pressure).
    pub softirq: f64,
    /// Memory in use.
    pub mem: f64,
}

/// Where a node's counters come from.
pub trait CounterSource {
    /// What the counters are (`ebpf` or `procfs`), stamped on every link sample.
    fn provenance(&self) -> Provenance;
    /// One reading per link, in the order the collector was given its links.
    fn read_links(&mut self) -> Vec<LinkReading>;
    /// The node's resources now.
    fn read_node(&mut self) -> NodeResources;
}

/// One link of the node as the collector names it in telemetry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedLink {
    /// The neighbour at the other end.
    pub peer: String,
    /// Our interface towards it.
    pub iface: String,
}

/// Turns cumulative readings into one telemetry batch per tick.
#[derive(Debug)]
pub struct Collector {
    node: String,
    links: Vec<CollectedLink>,
    last: Option<Vec<LinkCounters>>,
    /// Node resources are read every this many ticks and repeated in between.
    node_every: u64,
    ticks: u64,
    resources: NodeResources,
}

impl Collector {
    /// A collector for `node`'s `links`, reading node resources every `node_every`
    /// ticks (a busy share over 100 ms says nothing more than one over 500 ms, and
    /// reading procfs ten times a second was a tenth of the agent's cost).
    pub fn new(node: impl Into<String>, links: Vec<CollectedLink>, node_every: u64) -> Self {
        Collector {
            node: node.into(),
            links,
            last: None,
            node_every: node_every.max(1),
            ticks: 0,
            resources: NodeResources::default(),
        }
    }

    /// The batch for the interval ending at `ts` (ns since the epoch): counter deltas
    /// since the previous tick (zero on the first, which only sets the base), the
    /// probes' results `probes` (one per link, in link order) and the node's sample.
    /// A counter that went backwards (an interface re-created) counts as zero.
    pub fn tick(&mut self, ts: i64, source: &mut dyn CounterSource, probes: &[ProbeStats]) -> TelemetryBatch {
        let provenance = source.provenance();
        let readings = source.read_links();
        let mut batch = TelemetryBatch::default();
        for (i, link) in self.links.iter().enumerate() {
            let now = readings.get(i).copied().unwrap_or_default();
            let before = self.last.as_ref().and_then(|l| l.get(i).copied());
            let (c, l) = (now.counters, before.unwrap_or(now.counters));
            let d = |a: u64, b: u64| a.saturating_sub(b);
            let p = probes.get(i).copied().unwrap_or_default();
            batch.links.push(LinkSample {
                ts,
                node: self.node.clone(),
                peer: link.peer.clone(),
                iface: link.iface.clone(),
                schema_version: SCHEMA_VERSION,
                provenance,
                oper_up: now.oper_up,
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
        self.last = Some(readings.iter().map(|r| r.counters).collect());
        if self.ticks.is_multiple_of(self.node_every) {
            self.resources = source.read_node();
        }
        self.ticks += 1;
        let r = self.resources;
        batch.nodes.push(NodeSample {
            ts,
            node: self.node.clone(),
            schema_version: SCHEMA_VERSION,
            provenance: Provenance::Procfs,
            cpu: r.cpu,
            mem: r.mem,
            softirq: r.softirq,
            queue_pressure: 0.0,
            agent_ok: true,
        });
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counters a test sets by hand.
    struct FakeCounters {
        links: Vec<LinkReading>,
        node_reads: u32,
    }

    impl CounterSource for FakeCounters {
        fn provenance(&self) -> Provenance {
            Provenance::Ebpf
        }
        fn read_links(&mut self) -> Vec<LinkReading> {
            self.links.clone()
        }
        fn read_node(&mut self) -> NodeResources {
            self.node_reads += 1;
            NodeResources { cpu: 0.25, softirq: 0.01, mem: 0.5 }
        }
    }

    fn reading(tx: u64, rx: u64, up: bool) -> LinkReading {
        LinkReading {
            counters: LinkCounters { tx_packets: tx, rx_packets: rx, tx_bytes: tx * 100, ..Default::default() },
            oper_up: up,
        }
    }

    fn two_links() -> Collector {
        let link = |p: &str, i: &str| CollectedLink { peer: p.into(), iface: i.into() };
        Collector::new("n1", vec![link("n0", "veth0"), link("n2", "veth1")], 5)
    }

    #[test]
    fn the_first_tick_sets_the_base_and_reports_zero() {
        let mut c = two_links();
        let mut src = FakeCounters { links: vec![reading(1000, 900, true), reading(5, 5, true)], node_reads: 0 };
        let b = c.tick(100, &mut src, &[]);
        assert_eq!(b.links.len(), 2);
        assert!(b.links.iter().all(|l| l.tx_packets == 0 && l.rx_packets == 0), "{b:?}");
        assert_eq!(b.nodes.len(), 1);
        assert_eq!(b.links[1].peer, "n2");
        assert_eq!(b.links[0].provenance, Provenance::Ebpf);
    }

    #[test]
    fn later_ticks_report_deltas_and_carry_the_probes() {
        let mut c = two_links();
        let mut src = FakeCounters { links: vec![reading(1000, 900, true), reading(5, 5, true)], node_reads: 0 };
        c.tick(100, &mut src, &[]);
        src.links = vec![reading(1050, 930, true), reading(5, 5, false)];
        let probes = [ProbeStats { sent: 10, lost: 3, rtt_sum_us: 700.0, rtt_max_us: 200.0 }, ProbeStats::default()];
        let b = c.tick(200, &mut src, &probes);
        let (a, z) = (&b.links[0], &b.links[1]);
        assert_eq!((a.tx_packets, a.rx_packets, a.tx_bytes), (50, 30, 5000));
        assert_eq!((a.probes_sent, a.probes_lost, a.rtt_avg_us, a.rtt_max_us), (10, 3, 100.0, 200.0));
        assert!(a.oper_up && !z.oper_up);
        assert_eq!((z.tx_packets, z.probes_sent), (0, 0));
        assert_eq!(a.ts, 200);
    }

    #[test]
    fn a_counter_that_goes_backwards_counts_zero() {
        let mut c = two_links();
        let mut src = FakeCounters { links: vec![reading(1000, 900, true), reading(5, 5, true)], node_reads: 0 };
        c.tick(100, &mut src, &[]);
        src.links[0] = reading(10, 10, true);
        let b = c.tick(200, &mut src, &[]);
        assert_eq!((b.links[0].tx_packets, b.links[0].rx_packets), (0, 0));
        src.links[0] = reading(15, 12, true);
        let b = c.tick(300, &mut src, &[]);
        assert_eq!((b.links[0].tx_packets, b.links[0].rx_packets), (5, 2), "the new base is the reset value");
    }

    #[test]
    fn node_resources_are_read_on_their_cadence_and_repeated_between() {
        let mut c = two_links();
        let mut src = FakeCounters { links: vec![], node_reads: 0 };
        let batches: Vec<_> = (0..11).map(|t| c.tick(t, &mut src, &[])).collect();
        assert_eq!(src.node_reads, 3, "ticks 0, 5 and 10");
        assert!(batches.iter().all(|b| b.nodes[0].cpu == 0.25 && b.nodes[0].mem == 0.5));
        assert!(batches.iter().all(|b| b.links.iter().all(|l| !l.oper_up)), "a link with no reading is down");
    }
}
