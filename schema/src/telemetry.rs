//! Telemetry samples: what a node measured about itself and about each of its links.

use serde::{Deserialize, Serialize};

/// Version of the telemetry payload layout. Decoders reject any other version.
pub const SCHEMA_VERSION: u16 = 1;

/// Serde default for payloads written before they carried a version.
pub(crate) fn schema_version() -> u16 {
    SCHEMA_VERSION
}

/// Where a sample was measured; the same pipeline accepts all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provenance {
    /// Kernel probes (TC counters, tracepoints).
    Ebpf,
    /// The kernel's own interface counters, when probes cannot load.
    Procfs,
    /// Active link probes only.
    Probe,
    /// The simulated mesh.
    Sim,
    /// A third-party producer.
    External,
}

impl Provenance {
    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::Ebpf => "ebpf",
            Provenance::Procfs => "procfs",
            Provenance::Probe => "probe",
            Provenance::Sim => "sim",
            Provenance::External => "external",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ebpf" => Provenance::Ebpf,
            "procfs" => Provenance::Procfs,
            "probe" => Provenance::Probe,
            "sim" => Provenance::Sim,
            "external" => Provenance::External,
            _ => return None,
        })
    }
}

/// One node's view of one link over one sampling interval. Counters are deltas over
/// the interval, so a window's value is their sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSample {
    /// Event time: nanoseconds since the Unix epoch, at the end of the interval.
    pub ts: i64,
    /// The reporting node.
    pub node: String,
    /// The neighbour at the other end of the link.
    pub peer: String,
    /// The local interface name.
    pub iface: String,
    /// Version of the sample's layout.
    pub schema_version: u16,
    /// Where the counters came from.
    pub provenance: Provenance,
    /// Whether the interface had carrier (operationally up) at the end of the interval.
    pub oper_up: bool,
    /// Packets sent on the link in the interval.
    pub tx_packets: u64,
    /// Packets received on the link in the interval.
    pub rx_packets: u64,
    /// Bytes sent in the interval.
    pub tx_bytes: u64,
    /// Bytes received in the interval.
    pub rx_bytes: u64,
    /// Packets dropped on this interface (all reasons).
    pub drops: u64,
    /// Interface errors in the interval.
    pub errors: u64,
    /// TCP retransmits of connections routed over the link, in the interval.
    pub tcp_retransmits: u64,
    /// Active probes sent to the peer, and how many got no answer.
    pub probes_sent: u64,
    /// Of those probes, how many were not answered in time.
    pub probes_lost: u64,
    /// Round-trip time of answered probes, microseconds; NaN-free, 0 when none answered.
    pub rtt_avg_us: f64,
    /// The slowest probe answer (µs).
    pub rtt_max_us: f64,
}

/// One node's view of itself over one sampling interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSample {
    /// End of the interval, ns since the epoch (event time, set on the node).
    pub ts: i64,
    /// The reporting node.
    pub node: String,
    /// Version of the sample's layout.
    pub schema_version: u16,
    /// Where the figures came from.
    pub provenance: Provenance,
    /// CPU busy fraction, 0..=1.
    pub cpu: f64,
    /// Memory used fraction, 0..=1.
    pub mem: f64,
    /// Share of CPU time spent in softirq (network receive pressure), 0..=1.
    pub softirq: f64,
    /// Transmit queue occupancy, 0..=1.
    pub queue_pressure: f64,
    /// Whether the agent's own health checks passed.
    pub agent_ok: bool,
}

/// The samples of one Kafka message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetryBatch {
    /// One sample per (node, peer) link end.
    pub links: Vec<LinkSample>,
    /// One sample per node.
    pub nodes: Vec<NodeSample>,
}

impl TelemetryBatch {
    /// Whether the batch holds no sample.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty() && self.nodes.is_empty()
    }

    /// How many samples it holds.
    pub fn len(&self) -> usize {
        self.links.len() + self.nodes.len()
    }

    /// Checks values a decoder cannot: finite, in range, right version. The first
    /// problem found is returned; the message is rejected whole so nothing half-applies.
    pub fn validate(&self) -> Result<(), crate::DecodeError> {
        use crate::DecodeError::{BadValue, SchemaVersion};
        for s in &self.links {
            if s.schema_version != SCHEMA_VERSION {
                return Err(SchemaVersion { found: s.schema_version, supported: SCHEMA_VERSION });
            }
            if s.node.is_empty() || s.peer.is_empty() {
                return Err(BadValue { field: "node/peer", reason: "empty node id".into() });
            }
            if s.node == s.peer {
                return Err(BadValue { field: "peer", reason: format!("link from {} to itself", s.node) });
            }
            for (field, v) in [("rtt_avg_us", s.rtt_avg_us), ("rtt_max_us", s.rtt_max_us)] {
                if !v.is_finite() || v < 0.0 {
                    return Err(BadValue { field, reason: format!("{v} is not a finite non-negative number") });
                }
            }
            if s.probes_lost > s.probes_sent {
                return Err(BadValue {
                    field: "probes_lost",
                    reason: format!("{} lost of {} sent", s.probes_lost, s.probes_sent),
                });
            }
        }
        for s in &self.nodes {
            if s.schema_version != SCHEMA_VERSION {
                return Err(SchemaVersion { found: s.schema_version, supported: SCHEMA_VERSION });
            }
            if s.node.is_empty() {
                return Err(BadValue { field: "node", reason: "empty node id".into() });
            }
            for (field, v) in
                [("cpu", s.cpu), ("mem", s.mem), ("softirq", s.softirq), ("queue_pressure", s.queue_pressure)]
            {
                if !v.is_finite() || !(0.0..=1.0).contains(&v) {
                    return Err(BadValue { field, reason: format!("{v} is not a fraction in 0..=1") });
                }
            }
        }
        Ok(())
    }
}
