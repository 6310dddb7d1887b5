//! The job as it runs, for whoever watches it (the web UI, `x0_ui`): each closed
//! window's look of the mesh, and every incident as it changes, on a broadcast
//! channel, with the latest of each kept for a newcomer.
//!
//! A window's frame is built only while someone subscribes: a job nobody watches pays
//! nothing for it but keeping its incidents' latest records.

use crate::detect::Anomaly;
use crate::features::WindowFeatures;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use x0_schema::{Element, Incident, IncidentState, NodeId, RootCause, Topology};

/// How an element looked in a window, least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Look {
    /// Nothing stood out.
    Healthy,
    /// The detector flagged it in this window.
    Anomalous,
    /// An open incident's element whose repair is in force: traffic goes around it.
    Rerouted,
    /// An open incident's element not (or not yet) routed around.
    Incident,
}

/// One link in one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LinkLook {
    /// Its state.
    pub look: Look,
    /// The worse end's loss (traffic counters, else probes), 0..1; None when neither end said.
    pub loss: Option<f32>,
    /// Mean probe round trip of the ends that measured one, in ms.
    pub rtt_ms: Option<f32>,
}

/// The mesh in one closed window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeshFrame {
    /// The window's start (ns since the epoch).
    pub window_start: i64,
    /// Its end.
    pub window_end: i64,
    /// One per inventory link, in [`Topology::links`] order.
    pub links: Vec<LinkLook>,
    /// One per node, by node id.
    pub nodes: Vec<Look>,
}

/// The root-cause hypotheses of the window that (re)diagnosed an incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deciding {
    /// That window's start.
    pub window_start: i64,
    /// Every hypothesis of the window, most confident first (calibrated confidence).
    pub causes: Vec<RootCause>,
}

/// An incident as the UI shows it: its record and the hypotheses it was chosen from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentView {
    /// The incident's latest record.
    pub incident: Incident,
    /// The deciding window's hypotheses; None for an incident restored from a checkpoint.
    pub deciding: Option<Deciding>,
}

/// A route the job wants on a node beyond its baseline: what its planner installed
/// and has not withdrawn. What the nodes' kernels should hold, for whoever compares.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct WantedRoute {
    /// The node whose table holds it.
    pub node: String,
    /// The destination node.
    pub destination: String,
    /// The neighbour it routes through.
    pub primary: String,
    /// The neighbour the kernel fails over to on carrier loss.
    pub backup: Option<String>,
    /// The incident whose plan installed it.
    pub incident: String,
}

/// Something that changed.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// A window closed.
    Window(Arc<MeshFrame>),
    /// An incident changed.
    Incident(Arc<IncidentView>),
}

/// Incidents kept for a newcomer; the oldest finished ones go first (the history
/// files keep every one).
const KEPT_INCIDENTS: usize = 500;

#[derive(Debug, Default)]
struct Kept {
    frame: Option<Arc<MeshFrame>>,
    incidents: BTreeMap<String, Arc<IncidentView>>,
    deciding: HashMap<String, Deciding>,
    routes: Arc<Vec<WantedRoute>>,
}

/// The job's live feed. Attach it with [`HealingLoop::with_live`](crate::HealingLoop::with_live).
#[derive(Debug)]
pub struct LiveView {
    tx: broadcast::Sender<LiveEvent>,
    kept: Mutex<Kept>,
    link_index: HashMap<(NodeId, NodeId), usize>,
    nodes: usize,
    /// Frames built, and the time the job's thread spent building them.
    frames: AtomicU64,
    build_ns: AtomicU64,
}

impl LiveView {
    /// A feed for a job over `topo`.
    pub fn new(topo: &Topology) -> Arc<Self> {
        // A slow watcher skips frames (it is told how many) rather than holding the job.
        let (tx, _) = broadcast::channel(64);
        let link_index = topo.links().iter().enumerate().map(|(i, &(a, b))| ((a.min(b), a.max(b)), i)).collect();
        Arc::new(LiveView {
            tx,
            kept: Mutex::new(Kept::default()),
            link_index,
            nodes: topo.len(),
            frames: AtomicU64::new(0),
            build_ns: AtomicU64::new(0),
        })
    }

    /// Every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }

    /// Whether anyone is subscribed (frames are built only then).
    pub fn watched(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Frames built so far and the time the job spent building them: what watching
    /// costs the job's own thread (serving them is the listener's).
    pub fn frame_cost(&self) -> (u64, Duration) {
        (self.frames.load(Relaxed), Duration::from_nanos(self.build_ns.load(Relaxed)))
    }

    /// The last window's frame, if one was built.
    pub fn latest_frame(&self) -> Option<Arc<MeshFrame>> {
        self.lock().frame.clone()
    }

    /// The incidents kept, oldest id first.
    pub fn incidents(&self) -> Vec<Arc<IncidentView>> {
        self.lock().incidents.values().cloned().collect()
    }

    /// One kept incident.
    pub fn incident(&self, id: &str) -> Option<Arc<IncidentView>> {
        self.lock().incidents.get(id).cloned()
    }

    /// The routes the job wants beyond the nodes' baselines now, by node and
    /// destination.
    pub fn wanted_routes(&self) -> Arc<Vec<WantedRoute>> {
        self.lock().routes.clone()
    }

    pub(crate) fn routes_changed(&self, routes: Vec<WantedRoute>) {
        self.lock().routes = Arc::new(routes);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn deciding(&self, id: &str, deciding: Deciding) {
        self.lock().deciding.insert(id.to_string(), deciding);
    }

    pub(crate) fn incident_changed(&self, incident: &Incident) {
        let view = {
            let mut kept = self.lock();
            let deciding = kept.deciding.get(&incident.incident_id).cloned();
            let view = Arc::new(IncidentView { incident: incident.clone(), deciding });
            kept.incidents.insert(incident.incident_id.clone(), view.clone());
            if kept.incidents.len() > KEPT_INCIDENTS {
                let oldest_final =
                    kept.incidents.iter().find(|(_, v)| v.incident.state.is_final()).map(|(id, _)| id.clone());
                if let Some(id) = oldest_final {
                    kept.incidents.remove(&id);
                    kept.deciding.remove(&id);
                }
            }
            view
        };
        let _ = self.tx.send(LiveEvent::Incident(view));
    }

    /// Builds and sends the frame of window `f`, if anyone watches.
    pub(crate) fn window(&self, f: &WindowFeatures, topo: &Topology, anomalies: &[Anomaly], open: &[(Element, Look)]) {
        if !self.watched() {
            return;
        }
        let started = Instant::now();
        let frame = Arc::new(self.frame(f, topo, anomalies, open));
        self.frames.fetch_add(1, Relaxed);
        self.build_ns.fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
        self.lock().frame = Some(frame.clone());
        let _ = self.tx.send(LiveEvent::Window(frame));
    }

    fn frame(&self, f: &WindowFeatures, topo: &Topology, anomalies: &[Anomaly], open: &[(Element, Look)]) -> MeshFrame {
        let mut links = vec![LinkLook { look: Look::Healthy, loss: None, rtt_ms: None }; self.link_index.len()];
        let mut nodes = vec![Look::Healthy; self.nodes];
        let mut rtt_sum = vec![(0.0f32, 0u8); links.len()];
        for l in &f.links {
            let Some(i) = self.link_of(topo, &l.node, &l.peer) else { continue };
            let look = &mut links[i];
            if let Some(loss) = l.loss_ratio.or(l.probe_loss) {
                look.loss = Some(look.loss.unwrap_or(0.0).max(loss as f32));
            }
            if let Some(rtt) = l.rtt_avg_us {
                rtt_sum[i].0 += rtt as f32 / 1000.0;
                rtt_sum[i].1 += 1;
            }
        }
        for (look, (sum, n)) in links.iter_mut().zip(rtt_sum) {
            look.rtt_ms = (n > 0).then(|| sum / f32::from(n));
        }
        let marks = anomalies.iter().map(|a| (&a.element, Look::Anomalous)).chain(open.iter().map(|(e, l)| (e, *l)));
        for (element, look) in marks {
            let slot = match element {
                Element::Link { a, b } => self.link_of(topo, a, b).map(|i| &mut links[i].look),
                Element::Node { id } => topo.id(id).map(|i| &mut nodes[i]),
            };
            if let Some(slot) = slot {
                *slot = (*slot).max(look);
            }
        }
        MeshFrame { window_start: f.start, window_end: f.end, links, nodes }
    }

    fn link_of(&self, topo: &Topology, a: &str, b: &str) -> Option<usize> {
        let (a, b) = (topo.id(a)?, topo.id(b)?);
        self.link_index.get(&(a.min(b), a.max(b))).copied()
    }
}

/// How an open incident's element looks: routed around once its repair is in force.
pub(crate) fn incident_look(state: IncidentState) -> Look {
    match state {
        IncidentState::Mitigating | IncidentState::Verifying => Look::Rerouted,
        _ => Look::Incident,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Signal;
    use crate::features::LinkEndFeatures;

    fn end(node: &str, peer: &str, loss: Option<f64>, rtt_us: Option<f64>) -> LinkEndFeatures {
        LinkEndFeatures {
            node: node.into(),
            peer: peer.into(),
            samples: 10.0,
            tx_packets: 100.0,
            rx_packets: None,
            lost_packets: None,
            loss_ratio: loss,
            probes_sent: 10.0,
            probe_loss: None,
            rtt_avg_us: rtt_us,
            down_fraction: 0.0,
            peer_samples: 10.0,
        }
    }

    #[test]
    fn a_frame_takes_the_worse_end_and_the_most_severe_mark() {
        let topo = Topology::from_links(vec!["a".into(), "b".into(), "c".into()], [(0, 1), (1, 2)]);
        let live = LiveView::new(&topo);
        let f = WindowFeatures {
            start: 0,
            end: 1_000_000_000,
            links: vec![
                end("a", "b", Some(0.1), Some(2000.0)),
                end("b", "a", Some(0.3), Some(4000.0)),
                end("b", "c", None, None),
            ],
            nodes: vec![],
            link_batches: vec![],
        };
        let anomalies = vec![Anomaly {
            element: Element::link("a", "b"),
            signal: Signal::Silent,
            feature: "loss_ratio",
            value: 0.3,
            score: 9.0,
        }];
        // Without a watcher nothing is built.
        live.window(&f, &topo, &anomalies, &[]);
        assert!(live.latest_frame().is_none());
        let mut rx = live.subscribe();
        live.window(&f, &topo, &anomalies, &[(Element::node("c"), Look::Rerouted)]);
        let LiveEvent::Window(frame) = rx.try_recv().expect("a frame") else { panic!("not a frame") };
        assert_eq!(frame.links[0], LinkLook { look: Look::Anomalous, loss: Some(0.3), rtt_ms: Some(3.0) });
        assert_eq!(frame.links[1], LinkLook { look: Look::Healthy, loss: None, rtt_ms: None });
        assert_eq!(frame.nodes, vec![Look::Healthy, Look::Healthy, Look::Rerouted]);
    }
}
