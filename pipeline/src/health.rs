//! Clearing on evidence: is an element shown healthy, not merely quiet?
//!
//! A link the job rerouted around carries no traffic, so its counters look clean
//! whether or not it is still broken, and the detector stops flagging it. Clearing on
//! that silence hands the routes back to a link that still loses packets, the loss
//! returns, and the routes flap. So an incident's element is judged on what keeps
//! measuring it after the reroute: both ends' link probes, pooled over the clearing
//! windows (a 5% gray loss hides in one window's five probes, not in a hundred), and
//! the counters of whatever traffic still crosses it. A crashed node is judged on all
//! of its links, which its neighbours keep probing.
//!
//! Only the links of open incidents are kept, each for the clearing horizon, so the
//! memory follows the incidents, not the mesh.

use crate::features::WindowFeatures;
use std::collections::{HashMap, HashSet, VecDeque};
use x0_schema::{Element, Topology};

/// One link end's measurements in one window.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
struct EndWindow {
    probes_sent: f64,
    probes_lost: f64,
    tx_packets: f64,
    lost_packets: f64,
}

/// Thresholds (from `rca.clear_*`).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(crate) struct ClearRule {
    /// Windows of evidence pooled.
    pub windows: usize,
    /// Probes each end must have sent over them.
    pub min_probes: f64,
    /// The most probe loss either end may see over them.
    pub max_probe_loss: f64,
}

/// Recent probe and counter evidence of the links under watch.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct HealthLedger {
    rule: ClearRule,
    /// Per directed link end (node, peer), newest window last.
    ends: HashMap<(String, String), VecDeque<EndWindow>>,
}

impl HealthLedger {
    pub(crate) fn new(rule: ClearRule) -> Self {
        HealthLedger { rule, ends: HashMap::new() }
    }

    /// Its thresholds.
    pub(crate) fn rule(&self) -> ClearRule {
        self.rule
    }

    /// Judges by `rule` from now on.
    pub(crate) fn set_rule(&mut self, rule: ClearRule) {
        self.rule = rule;
    }

    /// Keeps evidence for exactly the links of `elements` (a node: all of its links).
    pub(crate) fn watch_only(&mut self, elements: &[Element], topo: &Topology) {
        let mut keep: Vec<(String, String)> = Vec::new();
        for e in elements {
            for (a, b) in link_ends(e, topo) {
                keep.push((a.clone(), b.clone()));
                keep.push((b, a));
            }
        }
        self.ends.retain(|k, _| keep.contains(k));
        for k in keep {
            self.ends.entry(k).or_default();
        }
    }

    /// Records one window for the watched link ends; an end that did not report gets
    /// an empty window (it proves nothing).
    pub(crate) fn push(&mut self, f: &WindowFeatures) {
        if self.ends.is_empty() {
            return;
        }
        // This window's rows of the watched ends, found without copying a name per row
        // (every link end of the mesh passes here).
        let seen: HashMap<(&str, &str), EndWindow> = {
            let watched: HashSet<(&str, &str)> = self.ends.keys().map(|(n, p)| (n.as_str(), p.as_str())).collect();
            f.links
                .iter()
                .filter(|l| watched.contains(&(l.node.as_str(), l.peer.as_str())))
                .map(|l| {
                    let end = EndWindow {
                        probes_sent: l.probes_sent,
                        probes_lost: l.probe_loss.unwrap_or(0.0) * l.probes_sent,
                        tx_packets: l.tx_packets,
                        lost_packets: l.lost_packets.unwrap_or(0.0),
                    };
                    ((l.node.as_str(), l.peer.as_str()), end)
                })
                .collect()
        };
        let windows = self.rule.windows.max(1);
        for ((node, peer), history) in &mut self.ends {
            history.push_back(seen.get(&(node.as_str(), peer.as_str())).copied().unwrap_or_default());
            while history.len() > windows {
                history.pop_front();
            }
        }
    }

    /// `Ok` when the element is shown healthy over the horizon; else why not.
    pub(crate) fn proven_healthy(&self, element: &Element, topo: &Topology) -> Result<(), String> {
        for (a, b) in link_ends(element, topo) {
            for (node, peer) in [(&a, &b), (&b, &a)] {
                self.end_healthy(node, peer)?;
            }
        }
        Ok(())
    }

    fn end_healthy(&self, node: &str, peer: &str) -> Result<(), String> {
        let Some(history) = self.ends.get(&(node.to_string(), peer.to_string())) else {
            return Err(format!("{node}-{peer} is not being watched"));
        };
        let sum = history.iter().fold(EndWindow::default(), |s, w| EndWindow {
            probes_sent: s.probes_sent + w.probes_sent,
            probes_lost: s.probes_lost + w.probes_lost,
            tx_packets: s.tx_packets + w.tx_packets,
            lost_packets: s.lost_packets + w.lost_packets,
        });
        let r = &self.rule;
        if history.len() < r.windows || sum.probes_sent < r.min_probes {
            return Err(format!(
                "{node} has sent {:.0} probes to {peer} over the last {} windows, not the {:.0} that prove the link healthy",
                sum.probes_sent,
                history.len(),
                r.min_probes
            ));
        }
        let probe_loss = sum.probes_lost / sum.probes_sent;
        if probe_loss > r.max_probe_loss {
            return Err(format!(
                "{node} still loses {:.1}% of its probes to {peer} (at most {:.1}% counts as healthy)",
                100.0 * probe_loss,
                100.0 * r.max_probe_loss
            ));
        }
        // Traffic that still crosses the link must cross it intact; too little traffic
        // proves nothing either way, and the probes have spoken.
        if sum.tx_packets >= 100.0 && sum.lost_packets / sum.tx_packets > r.max_probe_loss.max(0.02) {
            return Err(format!(
                "{:.1}% of the traffic {node} sent to {peer} is still lost",
                100.0 * sum.lost_packets / sum.tx_packets
            ));
        }
        Ok(())
    }
}

/// The links an element's health is judged on: a link, or every link of a node.
fn link_ends(element: &Element, topo: &Topology) -> Vec<(String, String)> {
    match element {
        Element::Link { a, b } => vec![(a.clone(), b.clone())],
        Element::Node { id } => topo
            .id(id)
            .map(|n| topo.neighbours(n).iter().map(|&p| (id.clone(), topo.name(p).to_string())).collect())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::LinkEndFeatures;

    fn window(probes: f64, loss_ab: f64, loss_ba: f64, tx: f64) -> WindowFeatures {
        let end = |node: &str, peer: &str, loss: f64| LinkEndFeatures {
            node: node.into(),
            peer: peer.into(),
            samples: 5.0,
            tx_packets: tx,
            rx_packets: None,
            lost_packets: Some(0.0),
            loss_ratio: Some(0.0),
            probes_sent: probes,
            probe_loss: Some(loss),
            rtt_avg_us: Some(1000.0),
            down_fraction: 0.0,
            peer_samples: 5.0,
        };
        WindowFeatures {
            start: 0,
            end: 1,
            links: vec![end("a", "b", loss_ab), end("b", "a", loss_ba)],
            nodes: vec![],
            link_batches: vec![],
        }
    }

    fn ledger() -> (HealthLedger, Topology, Element) {
        let topo = Topology::from_links(vec!["a".into(), "b".into(), "c".into()], [(0, 1), (1, 2), (0, 2)]);
        let mut l = HealthLedger::new(ClearRule { windows: 20, min_probes: 40.0, max_probe_loss: 0.01 });
        let link = Element::link("a", "b");
        l.watch_only(std::slice::from_ref(&link), &topo);
        (l, topo, link)
    }

    #[test]
    fn a_quiet_link_with_gray_loss_is_not_proven_healthy_one_clean_horizon_is() {
        let (mut l, topo, link) = ledger();
        // One-way 20% loss, seen in one window out of five: each window alone looks
        // clean most of the time, the pooled probes do not.
        for i in 0..20 {
            l.push(&window(5.0, if i % 5 == 0 { 0.8 } else { 0.0 }, 0.0, 0.0));
        }
        let why = l.proven_healthy(&link, &topo).unwrap_err();
        assert!(why.contains("still loses 16.0%"), "{why}");
        for _ in 0..20 {
            l.push(&window(5.0, 0.0, 0.0, 0.0));
        }
        assert_eq!(l.proven_healthy(&link, &topo), Ok(()));
    }

    #[test]
    fn an_end_that_does_not_report_proves_nothing() {
        let (mut l, topo, link) = ledger();
        for _ in 0..20 {
            let mut w = window(5.0, 0.0, 0.0, 0.0);
            w.links.retain(|e| e.node == "a");
            l.push(&w);
        }
        let why = l.proven_healthy(&link, &topo).unwrap_err();
        assert!(why.contains("b has sent 0 probes to a"), "{why}");
    }

    #[test]
    fn a_node_is_judged_on_all_of_its_links() {
        let (mut l, topo, _) = ledger();
        let node = Element::node("a");
        l.watch_only(std::slice::from_ref(&node), &topo);
        for _ in 0..20 {
            l.push(&window(5.0, 0.0, 0.0, 0.0));
        }
        let why = l.proven_healthy(&node, &topo).unwrap_err();
        assert!(why.contains("a has sent 0 probes to c"), "{why}");
    }
}
