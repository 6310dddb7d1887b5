//! The agent's Prometheus series and readiness. Per-link series carry the peer's
//! name: an agent has a handful of links, so the count stays small; the node's own
//! name is the scrape target's, not a label.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use x0_schema::{wall_clock_ns, CommandResult, Provenance, TelemetryBatch};

type Labels = Vec<(&'static str, String)>;

/// Everything the agent counts; cheap to clone (every metric is shared).
#[derive(Debug, Clone, Default)]
pub(crate) struct AgentMetrics {
    batches: Counter,
    samples: Counter,
    /// Telemetry batches the producer could not queue or the broker never took.
    pub(crate) dropped: Counter,
    /// Telemetry batches given up on while in flight: the broker may have them.
    pub(crate) uncertain: Counter,
    buffered: Gauge,
    /// Producers replaced after a fatal error (fenced by the broker, say).
    pub(crate) producer_restarts: Counter,
    probes_sent: Family<Labels, Counter>,
    probes_lost: Family<Labels, Counter>,
    rtt: Family<Labels, Gauge<f64, AtomicU64>>,
    commands: Family<Labels, Counter>,
    mode: Family<Labels, Gauge>,
    /// Whether the command topic's partitions are assigned.
    pub(crate) assigned: Arc<AtomicBool>,
    /// When the broker last acknowledged a message of ours (wall clock, ns).
    pub(crate) delivered_ns: Arc<AtomicI64>,
}

impl AgentMetrics {
    /// The agent's registry.
    pub(crate) fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("x0_agent");
        r.register("telemetry_batches", "Telemetry batches handed to the producer", self.batches.clone());
        r.register("samples", "Telemetry samples sent (link and node samples)", self.samples.clone());
        r.register(
            "telemetry_dropped",
            "Telemetry batches lost: producer queue full, or not delivered in time",
            self.dropped.clone(),
        );
        r.register(
            "telemetry_uncertain",
            "Telemetry batches given up on while in flight: the broker may have written them (not counted as dropped)",
            self.uncertain.clone(),
        );
        r.register("telemetry_buffered", "Messages waiting in the producer for the broker", self.buffered.clone());
        r.register(
            "producer_restarts",
            "Producers replaced after a fatal error (fenced by the broker after an outage)",
            self.producer_restarts.clone(),
        );
        r.register("probes_sent", "Active link probes sent, per neighbour", self.probes_sent.clone());
        r.register(
            "probes_lost",
            "Active link probes unanswered within the timeout, per neighbour",
            self.probes_lost.clone(),
        );
        r.register(
            "probe_rtt_seconds",
            "Mean probe round-trip time over the last interval, per neighbour",
            self.rtt.clone(),
        );
        r.register("commands", "Healing commands answered, by status and reason", self.commands.clone());
        r.register("probe_mode", "Where link counters come from (label mode: ebpf or procfs)", self.mode.clone());
        r
    }

    /// Notes where the counters come from.
    pub(crate) fn set_mode(&self, p: Provenance) {
        self.mode.get_or_create(&vec![("mode", p.as_str().to_string())]).set(1);
    }

    /// Counts a telemetry batch handed to the producer.
    pub(crate) fn telemetry(&self, batch: &TelemetryBatch) {
        self.batches.inc();
        self.samples.inc_by((batch.links.len() + batch.nodes.len()) as u64);
        for l in &batch.links {
            let peer = vec![("peer", l.peer.clone())];
            self.probes_sent.get_or_create(&peer).inc_by(l.probes_sent);
            self.probes_lost.get_or_create(&peer).inc_by(l.probes_lost);
            if l.probes_sent > l.probes_lost {
                self.rtt.get_or_create(&peer).set(l.rtt_avg_us / 1e6);
            }
        }
    }

    /// Counts a command's answer.
    pub(crate) fn command(&self, r: &CommandResult) {
        let labels =
            vec![("status", r.status.as_str().to_string()), ("reason", x0_actuator::reason_class(r).to_string())];
        self.commands.get_or_create(&labels).inc();
    }

    /// Notes the producer's queue depth.
    pub(crate) fn set_buffered(&self, n: usize) {
        self.buffered.set(n as i64);
    }

    /// Whether the agent is ready: its command partitions are assigned and the
    /// broker took a message of ours within `fresh`.
    pub(crate) fn readiness(&self, fresh: std::time::Duration) -> Result<(), Vec<String>> {
        let mut not = Vec::new();
        if !self.assigned.load(Relaxed) {
            not.push("command topic not assigned yet".to_string());
        }
        let at = self.delivered_ns.load(Relaxed);
        if at == 0 {
            not.push("no telemetry delivered yet".into());
        } else if wall_clock_ns() - at > fresh.as_nanos() as i64 {
            not.push(format!("no message delivered for more than {fresh:?}"));
        }
        if not.is_empty() {
            Ok(())
        } else {
            Err(not)
        }
    }
}
