//! From a window's features to the graph model's input, and the offline path that
//! turns simulated telemetry into labelled datasets with the very same windows,
//! feature SQL, conversion and statistical detector the stream job runs.

use crate::detect::{detect, note_reporters, Anomaly};
use crate::features::{FeatureEngine, FeatureError, LinkEndFeatures, WindowFeatures};
use crate::window::Windows;
use crate::Config;
use std::collections::{HashMap, HashSet};
use x0_schema::{Element, TelemetryBatch, Topology};
use x0_training::{GraphWindow, Label, LabelledWindow, LinkEndInput, NodeInput, RobustDetector};

/// The model's view of one window: nodes in inventory order, links in topology order.
pub fn graph_window(f: &WindowFeatures, topo: &Topology) -> GraphWindow {
    let nodes: HashMap<&str, NodeInput> = f
        .nodes
        .iter()
        .map(|n| {
            let input = NodeInput { cpu: n.cpu, mem: n.mem, softirq: n.softirq, queue_pressure: n.queue_pressure };
            (n.node.as_str(), input)
        })
        .collect();
    let ends: HashMap<(&str, &str), &LinkEndFeatures> =
        f.links.iter().map(|l| ((l.node.as_str(), l.peer.as_str()), l)).collect();
    let input = |l: &LinkEndFeatures| LinkEndInput {
        down_fraction: l.down_fraction,
        loss_ratio: l.loss_ratio,
        probe_loss: l.probe_loss,
        rtt_avg_us: l.rtt_avg_us,
        tx_packets: l.tx_packets,
        peer_present: l.peer_samples > 0.0,
    };
    let mut g = GraphWindow {
        node_x: topo.names().iter().map(|n| NodeInput::vector(nodes.get(n.as_str()))).collect(),
        ..Default::default()
    };
    for &(a, b) in topo.links() {
        let (an, bn) = (topo.name(a), topo.name(b));
        let end = |x: &str, y: &str| LinkEndInput::vector(ends.get(&(x, y)).map(|l| input(l)).as_ref());
        g.push_link(a as u32, b as u32, end(an, bn), end(bn, an));
    }
    g
}

/// One closed window, ready to label: the model input and the statistical detector's
/// verdict per node and per link (topology order).
#[derive(Debug, Clone)]
pub struct FeaturizedWindow {
    /// The window's start (ns since the epoch).
    pub start: i64,
    /// Its end.
    pub end: i64,
    /// The window as the graph model's input.
    pub graph: GraphWindow,
    /// Per node, whether the statistical detector flagged it.
    pub robust_nodes: Vec<bool>,
    /// Per link, whether the statistical detector flagged it.
    pub robust_links: Vec<bool>,
}

impl FeaturizedWindow {
    /// The window's model input and which elements the statistical detector flagged.
    pub fn new(f: &WindowFeatures, topo: &Topology, anomalies: &[Anomaly]) -> Self {
        let flagged: HashSet<&Element> = anomalies.iter().map(|a| &a.element).collect();
        FeaturizedWindow {
            start: f.start,
            end: f.end,
            graph: graph_window(f, topo),
            robust_nodes: topo.names().iter().map(|n| flagged.contains(&Element::node(n))).collect(),
            robust_links: topo
                .links()
                .iter()
                .map(|&(a, b)| flagged.contains(&Element::link(topo.name(a), topo.name(b))))
                .collect(),
        }
    }

    /// As a training window with no fault labelled yet (every element healthy, full
    /// weight): the incident history's labels are applied when a model trains on it.
    pub fn unlabelled(self, run: &str, node_names: &[String]) -> LabelledWindow {
        let label = |&robust_flag: &bool| Label { weight: 1.0, robust_flag, ..Default::default() };
        LabelledWindow {
            run: run.to_string(),
            window: self.start.div_euclid((self.end - self.start).max(1)),
            start_ns: self.start,
            node_names: node_names.to_vec(),
            nodes: self.robust_nodes.iter().map(label).collect(),
            links: self.robust_links.iter().map(label).collect(),
            graph: self.graph,
        }
    }
}

/// Windows, features and the statistical detector, driven offline (no Kafka): what
/// `simulate --out` runs over simulated telemetry.
pub struct OfflineFeaturizer {
    windows: Windows,
    features: FeatureEngine,
    detector: RobustDetector,
    topo: Topology,
    seen: HashSet<String>,
}

impl OfflineFeaturizer {
    /// A featurizer for `topo` with the given feature SQL.
    pub async fn new(config: &Config, topo: Topology, feature_sql: &str) -> Result<Self, FeatureError> {
        Ok(OfflineFeaturizer {
            windows: Windows::configured(&config.window),
            features: FeatureEngine::new(feature_sql).await?,
            detector: RobustDetector::new(config.detector.clone()),
            topo,
            seen: HashSet::new(),
        })
    }

    /// Adds one batch's samples.
    pub fn insert(&mut self, batch: TelemetryBatch) {
        note_reporters(&mut self.seen, &batch);
        self.windows.insert(0, batch.links, batch.nodes, 0);
    }

    /// Every window the watermark passed (`all`: every open window, at the end).
    pub async fn close(&mut self, all: bool) -> Result<Vec<FeaturizedWindow>, FeatureError> {
        let closed = if all { self.windows.close_all() } else { self.windows.close_ready() };
        let mut out = Vec::with_capacity(closed.len());
        for w in closed {
            let f = self.features.compute(&w).await?;
            let (anomalies, _) = detect(&mut self.detector, &f, self.topo.names(), &self.seen);
            out.push(FeaturizedWindow::new(&f, &self.topo, &anomalies));
        }
        Ok(out)
    }
}
