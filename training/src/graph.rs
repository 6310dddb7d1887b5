//! One window of the mesh as the graph model sees it: a feature vector per node and
//! per link end, with the fixed transforms that turn raw window features into model
//! inputs. The stream job and the dataset writer both build [`GraphWindow`]s through
//! these types, so training and inference normalise identically.

use serde::{Deserialize, Serialize};

/// Inputs per node: reported this window, CPU, memory, softirq, queue pressure.
pub const NODE_FEATURES: usize = 5;
/// Inputs per link end: reported, carrier down fraction, counter loss (and whether it
/// was measurable), probe loss (and whether probes ran), log RTT, log packets, peer reported.
pub const EDGE_FEATURES: usize = 9;

/// Names of the node inputs, in vector order (reports, Parquet columns).
pub const NODE_FEATURE_NAMES: [&str; NODE_FEATURES] = ["present", "cpu", "mem", "softirq", "queue_pressure"];
/// Names of the link-end inputs, in vector order.
pub const EDGE_FEATURE_NAMES: [&str; EDGE_FEATURES] = [
    "present",
    "down_fraction",
    "loss_ratio",
    "loss_known",
    "probe_loss",
    "probe_known",
    "log_rtt_ms",
    "log_tx_packets",
    "peer_present",
];

/// What one node reported in one window (`None`: nothing arrived).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeInput {
    /// CPU busy share.
    pub cpu: f64,
    /// Memory in use.
    pub mem: f64,
    /// Softirq share.
    pub softirq: f64,
    /// Queue pressure.
    pub queue_pressure: f64,
}

/// One link end's (node → peer) window features.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkEndInput {
    /// Share of the window the link was down.
    pub down_fraction: f64,
    /// Packets sent that the peer did not count; `None` when not comparable.
    pub loss_ratio: Option<f64>,
    /// Active probes unanswered; `None` when none were sent.
    pub probe_loss: Option<f64>,
    /// Mean round-trip time (µs), None without answered probes.
    pub rtt_avg_us: Option<f64>,
    /// Packets sent.
    pub tx_packets: f64,
    /// The peer reported the same intervals (its counters were comparable).
    pub peer_present: bool,
}

fn clamp01(v: f64) -> f32 {
    if v.is_finite() {
        v.clamp(0.0, 1.0) as f32
    } else {
        0.0
    }
}

fn log1p(v: f64) -> f32 {
    if v.is_finite() && v > 0.0 {
        v.ln_1p() as f32
    } else {
        0.0
    }
}

impl NodeInput {
    /// The model's input vector; `None` (a silent node) is all zeros but `present`.
    pub fn vector(input: Option<&NodeInput>) -> [f32; NODE_FEATURES] {
        match input {
            None => [0.0; NODE_FEATURES],
            Some(n) => [1.0, clamp01(n.cpu), clamp01(n.mem), clamp01(n.softirq), clamp01(n.queue_pressure)],
        }
    }
}

impl LinkEndInput {
    /// The model's input vector; `None` (the node did not report this end) is all zeros.
    pub fn vector(input: Option<&LinkEndInput>) -> [f32; EDGE_FEATURES] {
        let Some(l) = input else { return [0.0; EDGE_FEATURES] };
        let known = |v: Option<f64>| (clamp01(v.unwrap_or(0.0)), f32::from(u8::from(v.is_some_and(f64::is_finite))));
        let (loss, loss_known) = known(l.loss_ratio);
        let (probe, probe_known) = known(l.probe_loss);
        [
            1.0,
            clamp01(l.down_fraction),
            loss,
            loss_known,
            probe,
            probe_known,
            log1p(l.rtt_avg_us.unwrap_or(0.0) / 1000.0),
            log1p(l.tx_packets) / 10.0,
            f32::from(u8::from(l.peer_present)),
        ]
    }
}

/// A window's graph: nodes `0..n`, every link as two directed ends (`src → dst`, the
/// end measured at `src`), `reverse[e]` the other end of the same link.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraphWindow {
    /// Per node, its input features.
    pub node_x: Vec<[f32; NODE_FEATURES]>,
    /// Per directed link end, the source node.
    pub src: Vec<u32>,
    /// Per directed link end, the destination node.
    pub dst: Vec<u32>,
    /// Per directed link end, its input features.
    pub edge_x: Vec<[f32; EDGE_FEATURES]>,
}

impl GraphWindow {
    /// How many nodes.
    pub fn nodes(&self) -> usize {
        self.node_x.len()
    }

    /// Directed ends; link `k` is ends `2k` (a → b) and `2k + 1` (b → a).
    pub fn ends(&self) -> usize {
        self.src.len()
    }

    /// How many links (half the directed ends).
    pub fn links(&self) -> usize {
        self.src.len() / 2
    }

    /// Appends a link `a – b` with both ends' inputs (`ab` measured at `a`).
    pub fn push_link(&mut self, a: u32, b: u32, ab: [f32; EDGE_FEATURES], ba: [f32; EDGE_FEATURES]) {
        self.src.extend([a, b]);
        self.dst.extend([b, a]);
        self.edge_x.extend([ab, ba]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_elements_and_unknown_measurements_are_marked_not_guessed() {
        assert_eq!(NodeInput::vector(None), [0.0; NODE_FEATURES]);
        let n = NodeInput { cpu: 1.7, mem: 0.5, ..Default::default() };
        assert_eq!(NodeInput::vector(Some(&n))[..3], [1.0, 1.0, 0.5]);
        let l = LinkEndInput { loss_ratio: None, probe_loss: Some(0.5), tx_packets: 100.0, ..Default::default() };
        let v = LinkEndInput::vector(Some(&l));
        assert_eq!((v[2], v[3], v[4], v[5]), (0.0, 0.0, 0.5, 1.0));
        assert!(v[7] > 0.4 && v[7] < 0.5);
        let nan = LinkEndInput { loss_ratio: Some(f64::NAN), ..Default::default() };
        assert_eq!(LinkEndInput::vector(Some(&nan))[2..4], [0.0, 0.0]);
    }
}
