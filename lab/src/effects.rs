//! What the scenario's faults do to the mesh at one instant.

use std::collections::{HashMap, HashSet};
use std::time::Duration;
use x0_schema::{Direction, Element, Fault, FaultKind, FaultTarget, NodeId, Topology};

/// A fault with its target resolved to node ids. `a → b` is the forward direction.
#[derive(Debug, Clone)]
pub(crate) struct PlacedFault {
    pub fault: Fault,
    pub element: Element,
    pub a: NodeId,
    pub b: Option<NodeId>,
    /// A byzantine reporter's peers it lies about (empty: all its links).
    pub lies_about: Vec<NodeId>,
}

impl PlacedFault {
    pub(crate) fn place(topo: &Topology, fault: &Fault, element: &Element) -> Self {
        let id = |n: &str| topo.id(n).expect("resolved faults name known nodes");
        let (a, b) = match (fault.parsed_target(), element) {
            (FaultTarget::Link(x, y), _) => (id(&x), Some(id(&y))),
            (_, Element::Link { a, b }) => (id(a), Some(id(b))),
            (_, Element::Node { id: n }) => (id(n), None),
        };
        let lies_about = fault.lies_about().iter().map(|p| id(p)).collect();
        PlacedFault { fault: fault.clone(), element: element.clone(), a, b, lies_about }
    }

    pub(crate) fn active_at(&self, t: Duration) -> bool {
        t >= self.fault.at && self.fault.end().is_none_or(|end| t < end)
    }
}

/// Fault effects in force at one instant.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Undirected links without carrier, as (low, high).
    pub down: HashSet<(NodeId, NodeId)>,
    /// Extra loss probability per directed link.
    pub loss: HashMap<(NodeId, NodeId), f64>,
    /// Extra one-way delay (µs) per directed link.
    pub delay: HashMap<(NodeId, NodeId), f64>,
    pub crashed: HashSet<NodeId>,
    /// Nodes that forward but do not report.
    pub mute: HashSet<NodeId>,
    pub overloaded: HashSet<NodeId>,
    /// Nodes that report loss that is not there: the loss they claim, and the peers they
    /// lie about (empty: all).
    pub liars: HashMap<NodeId, (f64, Vec<NodeId>)>,
}

impl Effects {
    pub(crate) fn at(faults: &[PlacedFault], t: Duration) -> Self {
        let mut e = Effects::default();
        for f in faults.iter().filter(|f| f.active_at(t)) {
            let (a, b) = (f.a, f.b);
            let directed = |dir: Direction| -> Vec<(NodeId, NodeId)> {
                let b = b.expect("link faults have two ends");
                match dir {
                    Direction::Both => vec![(a, b), (b, a)],
                    Direction::Forward => vec![(a, b)],
                    Direction::Reverse => vec![(b, a)],
                }
            };
            match f.fault.kind {
                FaultKind::LinkDown => {
                    let b = b.expect("link");
                    e.down.insert((a.min(b), a.max(b)));
                }
                FaultKind::LinkFlap => {
                    let b = b.expect("link");
                    let period = f.fault.period.expect("validated").as_nanos();
                    let phase = (t - f.fault.at).as_nanos() % period;
                    if phase < period / 2 {
                        e.down.insert((a.min(b), a.max(b)));
                    }
                }
                FaultKind::LinkLoss => {
                    for d in directed(f.fault.direction) {
                        e.loss.insert(d, f.fault.loss.unwrap_or(0.0));
                    }
                }
                FaultKind::LinkDelay => {
                    for d in directed(f.fault.direction) {
                        e.delay.insert(d, f.fault.delay.unwrap_or_default().as_micros() as f64);
                    }
                }
                FaultKind::NodeCrash => {
                    e.crashed.insert(a);
                }
                FaultKind::NodeOverload => {
                    e.overloaded.insert(a);
                }
                FaultKind::ByzantineReporter => {
                    e.liars.insert(a, (f.fault.loss.unwrap_or(0.5), f.lies_about.clone()));
                }
                FaultKind::AgentDown => {
                    e.mute.insert(a);
                }
            }
        }
        e
    }

    /// The loss `node` falsely claims on its link to `peer`, if it lies about it.
    pub(crate) fn lie(&self, node: NodeId, peer: NodeId) -> Option<f64> {
        let (loss, peers) = self.liars.get(&node)?;
        (peers.is_empty() || peers.contains(&peer)).then_some(*loss)
    }

    pub(crate) fn carrier(&self, a: NodeId, b: NodeId) -> bool {
        !self.down.contains(&(a.min(b), a.max(b)))
    }
}
