//! The kernel as a [`CounterSource`]: the eBPF probes' per-interface counters when
//! they are loaded, else the kernel's own interface counters (rtnetlink); carrier and
//! interface errors always from rtnetlink; node resources from procfs.

use crate::collector::{CounterSource, LinkCounters, LinkReading, NodeResources};
use crate::interfaces::{InterfaceReader, InterfaceStats};
use crate::node_resources::ProcResources;
use crate::probes::{KernelProbes, ProbeSnapshot};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use x0_schema::Provenance;

/// How often the links are dumped when nothing announced a change (eBPF counters).
const LINK_DUMP_PERIOD: Duration = Duration::from_secs(1);

/// One link of the node as the kernel knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelLink {
    /// The neighbour's node id.
    pub peer: String,
    /// Our interface towards it.
    pub ifindex: u32,
    /// The neighbour's address on the link.
    pub peer_addr: Ipv4Addr,
}

/// Reads a node's counters from the running kernel (the calling thread's namespace).
#[derive(Debug)]
pub struct KernelCounters {
    links: Vec<KernelLink>,
    /// Node id of every address we may see a TCP retransmit towards.
    nodes_by_addr: BTreeMap<Ipv4Addr, String>,
    /// Destination node → the neighbour its route leaves through.
    next_hops: BTreeMap<String, String>,
    probes: Option<KernelProbes>,
    interfaces: InterfaceReader,
    /// The last link dump. With the eBPF counters it is needed only for carrier
    /// (re-read when the kernel announces a link change) and the rare interface errors
    /// (re-read every second), not ten dumps a second of a state that rarely changes.
    /// Without eBPF its counters are the telemetry, read every sample.
    kernel: Vec<InterfaceStats>,
    dump_due: bool,
    next_dump: Instant,
    resources: ProcResources,
}

impl KernelCounters {
    /// A source for `links`; `destinations` maps every mesh node to its address (for
    /// charging TCP retransmits to the link their destination is routed over).
    pub fn new(
        links: Vec<KernelLink>,
        destinations: impl IntoIterator<Item = (String, Ipv4Addr)>,
        probes: Option<KernelProbes>,
        interfaces: InterfaceReader,
    ) -> Self {
        let nodes_by_addr = destinations
            .into_iter()
            .map(|(n, a)| (a, n))
            .chain(links.iter().map(|l| (l.peer_addr, l.peer.clone())))
            .collect();
        KernelCounters {
            links,
            nodes_by_addr,
            next_hops: BTreeMap::new(),
            probes,
            interfaces,
            kernel: Vec::new(),
            dump_due: true,
            next_dump: Instant::now(),
            resources: ProcResources::default(),
        }
    }

    /// The kernel announced a link change: the next reading dumps the links.
    pub fn links_changed(&mut self) {
        self.dump_due = true;
    }

    /// The routes now installed, as (destination, next hop) node pairs.
    pub fn set_next_hops(&mut self, routes: impl IntoIterator<Item = (String, String)>) {
        self.next_hops = routes.into_iter().collect();
    }

    fn next_hop<'a>(&'a self, dst: &'a str) -> Option<&'a str> {
        if self.links.iter().any(|l| l.peer == dst) {
            return Some(dst);
        }
        self.next_hops.get(dst).map(String::as_str)
    }

    fn retransmits_by_hop(&self, snap: &ProbeSnapshot) -> BTreeMap<&str, u64> {
        let mut by_hop = BTreeMap::new();
        for (addr, count) in &snap.retransmits {
            if let Some(hop) = self.nodes_by_addr.get(addr).and_then(|d| self.next_hop(d)) {
                *by_hop.entry(hop).or_default() += count;
            }
        }
        by_hop
    }
}

impl CounterSource for KernelCounters {
    fn provenance(&self) -> Provenance {
        if self.probes.is_some() {
            Provenance::Ebpf
        } else {
            Provenance::Procfs
        }
    }

    fn read_links(&mut self) -> Vec<LinkReading> {
        let now = Instant::now();
        if self.probes.is_none() || self.dump_due || now >= self.next_dump {
            self.dump_due = false;
            self.next_dump = now + LINK_DUMP_PERIOD;
            self.kernel = self.interfaces.read().unwrap_or_default();
        }
        let snap = self.probes.as_ref().and_then(|p| p.snapshot().ok());
        let retrans = snap.as_ref().map(|s| self.retransmits_by_hop(s)).unwrap_or_default();
        self.links
            .iter()
            .map(|l| {
                let k = self.kernel.iter().find(|k| k.ifindex == l.ifindex).cloned().unwrap_or_default();
                let errors = k.rx_errors + k.tx_errors;
                let counters = match &snap {
                    Some(s) => {
                        let c = s.interfaces.get(&l.ifindex).copied().unwrap_or_default();
                        LinkCounters {
                            tx_packets: c.tx_packets,
                            rx_packets: c.rx_packets,
                            tx_bytes: c.tx_bytes,
                            rx_bytes: c.rx_bytes,
                            drops: s.drops_on(l.ifindex),
                            errors,
                            retransmits: retrans.get(l.peer.as_str()).copied().unwrap_or(0),
                        }
                    }
                    None => LinkCounters {
                        tx_packets: k.tx_packets,
                        rx_packets: k.rx_packets,
                        tx_bytes: k.tx_bytes,
                        rx_bytes: k.rx_bytes,
                        drops: k.rx_dropped + k.tx_dropped,
                        errors,
                        retransmits: 0,
                    },
                };
                LinkReading { counters, oper_up: k.carrier }
            })
            .collect()
    }

    fn read_node(&mut self) -> NodeResources {
        self.resources.sample()
    }
}
