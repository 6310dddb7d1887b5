//! From window features to anomalies: each one a signal about one element, scored by
//! the detector against that element's own baseline.

use crate::features::WindowFeatures;
use std::collections::HashSet;
use x0_schema::Element;
use x0_training::{Feature, RobustDetector};

/// What kind of evidence an anomaly is, and who asserts it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `reporter` saw its interface to the peer lose carrier.
    Carrier { reporter: String },
    /// Packets `from` sent that `to` did not receive (both ends' counters).
    CounterLoss { from: String, to: String },
    /// `reporter`'s active probes across the link went unanswered.
    ProbeLoss { reporter: String },
    /// `reporter`'s probe round-trip time rose.
    Rtt { reporter: String },
    /// The node stopped reporting while it used to.
    Silent,
    /// The node's CPU is saturated.
    Cpu,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub element: Element,
    pub signal: Signal,
    pub feature: &'static str,
    pub value: f64,
    pub score: f64,
}

/// A link end's own view of its link in one window (for corroboration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum View {
    /// Its probes were lost or its carrier dropped.
    Bad,
    /// Enough probes answered.
    Good,
    /// Enough probes sent, and some lost, but too few for an anomaly on their own.
    Lossy,
    Unknown,
}

/// One link end's view of its link in one window, with the probes behind it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EndView {
    pub node: String,
    pub peer: String,
    pub view: View,
    pub probes_sent: f64,
    pub probes_lost: f64,
    /// Packets the node sent the peer, and received from it (when the feature SQL
    /// returns it).
    pub tx_packets: f64,
    pub rx_packets: Option<f64>,
}

/// Adds the nodes behind a batch to `seen` (the nodes whose silence is news).
pub(crate) fn note_reporters(seen: &mut HashSet<String>, batch: &x0_schema::TelemetryBatch) {
    for n in batch.nodes.iter().map(|n| &n.node).chain(batch.links.iter().map(|l| &l.node)) {
        if !seen.contains(n) {
            seen.insert(n.clone());
        }
    }
}

/// The nodes a window holds any sample from.
pub(crate) fn reporting(f: &WindowFeatures) -> HashSet<&str> {
    f.nodes.iter().map(|n| n.node.as_str()).chain(f.links.iter().map(|l| l.node.as_str())).collect()
}

/// Scores one window. `known` is the inventory; `seen` the nodes that ever reported.
pub(crate) fn detect(
    detector: &mut RobustDetector,
    f: &WindowFeatures,
    known: &[String],
    seen: &HashSet<String>,
) -> (Vec<Anomaly>, Vec<EndView>) {
    let mut out = Vec::new();
    let mut views = Vec::new();
    let min_probes = detector.config().min_probes;
    for l in &f.links {
        let link = Element::link(&l.node, &l.peer);
        let key = format!("{}>{}", l.node, l.peer);
        let mut bad = false;
        if l.down_fraction > 0.0 {
            bad = true;
            out.push(Anomaly {
                element: link.clone(),
                signal: Signal::Carrier { reporter: l.node.clone() },
                feature: "down_fraction",
                value: l.down_fraction,
                score: 10.0 * l.down_fraction,
            });
        }
        if let Some(ratio) = l.loss_ratio {
            if let Some(z) = detector.score(&key, Feature::LossRatio, ratio, l.tx_packets) {
                out.push(Anomaly {
                    element: link.clone(),
                    signal: Signal::CounterLoss { from: l.node.clone(), to: l.peer.clone() },
                    feature: "loss_ratio",
                    value: ratio,
                    score: z,
                });
            }
        }
        if let Some(p) = l.probe_loss {
            if let Some(z) = detector.score(&key, Feature::ProbeLoss, p, l.probes_sent) {
                bad = true;
                out.push(Anomaly {
                    element: link.clone(),
                    signal: Signal::ProbeLoss { reporter: l.node.clone() },
                    feature: "probe_loss",
                    value: p,
                    score: z,
                });
            }
        }
        if let Some(rtt) = l.rtt_avg_us {
            if let Some(z) = detector.score(&key, Feature::Rtt, rtt, 0.0) {
                out.push(Anomaly {
                    element: link.clone(),
                    signal: Signal::Rtt { reporter: l.node.clone() },
                    feature: "rtt_avg_us",
                    value: rtt,
                    score: z,
                });
            }
        }
        let view = match l.probe_loss {
            _ if bad => View::Bad,
            Some(p) if l.probes_sent >= min_probes && p < 0.15 => View::Good,
            Some(_) if l.probes_sent >= min_probes => View::Lossy,
            _ => View::Unknown,
        };
        views.push(EndView {
            node: l.node.clone(),
            peer: l.peer.clone(),
            view,
            probes_sent: l.probes_sent,
            probes_lost: l.probe_loss.map_or(0.0, |p| p * l.probes_sent),
            tx_packets: l.tx_packets,
            rx_packets: l.rx_packets,
        });
    }
    for n in &f.nodes {
        if let Some(z) = detector.score(&n.node, Feature::Cpu, n.cpu, n.samples) {
            out.push(Anomaly {
                element: Element::node(&n.node),
                signal: Signal::Cpu,
                feature: "cpu",
                value: n.cpu,
                score: z,
            });
        }
    }
    // Silence is only news when most of the mesh is talking: a gap in the whole
    // stream is a telemetry problem, not a crash of every node (fail open).
    let reporting = reporting(f);
    let silent: Vec<&String> = known.iter().filter(|n| seen.contains(*n) && !reporting.contains(n.as_str())).collect();
    if silent.len() * 2 < known.len().max(1) {
        for n in silent {
            out.push(Anomaly {
                element: Element::node(n),
                signal: Signal::Silent,
                feature: "samples",
                value: 0.0,
                score: 10.0,
            });
        }
    }
    (out, views)
}
