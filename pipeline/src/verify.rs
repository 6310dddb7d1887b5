//! Did a repair help? Once every command of a plan is applied, the traffic lost on the
//! incident's links over the next windows is compared with what they lost before we
//! acted; a reroute that did not cut it is rolled back (the routes it moved are
//! withdrawn and the incident is not acted on again while it lasts).
//!
//! Why traffic loss: it is what a reroute is for, and both ends' counters measure it
//! (what one end sent against what the other received), whatever dropped it. A reroute
//! that took the traffic off a lossy link leaves only our link probes to lose there. A
//! repair that was applied yet changed nothing (the wrong element blamed, or routes that
//! do not steer the traffic) leaves the loss where it was. Faults that lose no traffic
//! (delay, overload) or whose links cannot be measured (a crashed end reports nothing)
//! are not judged: there is nothing to compare, and the repair stands.

use crate::features::WindowFeatures;
use std::collections::VecDeque;
use x0_schema::Element;

/// How many recent windows of per-link loss are kept to judge "before".
const HISTORY_WINDOWS: usize = 8;

/// Traffic lost per measured link end (as its link) over the last few windows, each
/// window's computed once for every check that reads it.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct LossHistory {
    windows: VecDeque<(i64, Vec<(Element, f64)>)>,
}

/// Packets lost on `links` in one window (both directions), or `None` when no end of
/// them was measured.
fn lost_on(ends: &[(Element, f64)], links: &[Element]) -> Option<f64> {
    ends.iter().filter(|(link, _)| links.contains(link)).map(|(_, lost)| *lost).reduce(|a, b| a + b)
}

impl LossHistory {
    pub(crate) fn push(&mut self, f: &WindowFeatures) {
        let ends =
            f.links.iter().filter_map(|l| l.lost_packets.map(|lost| (Element::link(&l.node, &l.peer), lost))).collect();
        self.windows.push_back((f.start, ends));
        while self.windows.len() > HISTORY_WINDOWS {
            self.windows.pop_front();
        }
    }

    /// Mean packets lost per window on `links` over the kept windows that started at or
    /// after `since`.
    pub(crate) fn mean_lost(&self, links: &[Element], since: i64) -> Option<f64> {
        let per_window: Vec<f64> = self
            .windows
            .iter()
            .filter(|(start, _)| *start >= since)
            .filter_map(|(_, ends)| lost_on(ends, links))
            .collect();
        (!per_window.is_empty()).then(|| per_window.iter().sum::<f64>() / per_window.len() as f64)
    }
}

/// What the check concluded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RepairVerdict {
    /// Still waiting for the commands' results or for windows after them.
    Pending,
    /// The repair stands; the line says why (helped, or nothing to judge).
    Stands(String),
    /// The repair did not help: roll it back.
    RollBack(String),
}

/// Judging thresholds (from `planner.verify_*`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct VerifyRule {
    /// Windows after the last command was applied to judge over; 0 disables the check.
    pub windows: u32,
    /// Below this many lost packets per window before acting there is nothing to judge.
    pub min_lost: f64,
    /// A repair that cut the loss by less than this share is rolled back.
    pub min_improvement: f64,
}

/// One plan under verification.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct RepairCheck {
    links: Vec<Element>,
    before: Option<f64>,
    /// Windows starting at or after this are "after" (set once every command applied).
    applied_at: Option<i64>,
    after: Vec<f64>,
}

impl RepairCheck {
    /// `links`: where the incident's traffic was lost; `before`: packets lost per
    /// window there until we acted.
    pub(crate) fn new(links: Vec<Element>, before: Option<f64>) -> Self {
        RepairCheck { links, before, applied_at: None, after: Vec::new() }
    }

    /// Every command of the plan was applied, the last at `at_ns`.
    pub(crate) fn applied(&mut self, at_ns: i64) {
        self.applied_at.get_or_insert(at_ns);
    }

    fn links_named(&self) -> String {
        self.links.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(", ")
    }

    /// Judges with the window `history` took last.
    pub(crate) fn observe(&mut self, history: &LossHistory, rule: &VerifyRule) -> RepairVerdict {
        let Some(applied_at) = self.applied_at else { return RepairVerdict::Pending };
        let before = match self.before {
            Some(b) if b >= rule.min_lost => b,
            Some(b) => {
                return RepairVerdict::Stands(format!(
                    "verify: not judged: {} lost {b:.1} packets per window before acting (under planner.verify_min_lost {:.1}), nothing to compare",
                    self.links_named(),
                    rule.min_lost
                ))
            }
            None => {
                return RepairVerdict::Stands(format!(
                    "verify: not judged: the traffic lost on {} could not be measured before acting (an end did not report)",
                    if self.links.is_empty() { "its links".to_string() } else { self.links_named() }
                ))
            }
        };
        let Some((start, ends)) = history.windows.back() else { return RepairVerdict::Pending };
        if *start < applied_at {
            return RepairVerdict::Pending;
        }
        match lost_on(ends, &self.links) {
            Some(lost) => self.after.push(lost),
            // The links went unmeasured (an end stopped reporting): wait for one that is.
            None => return RepairVerdict::Pending,
        }
        if (self.after.len() as u32) < rule.windows {
            return RepairVerdict::Pending;
        }
        let after = self.after.iter().sum::<f64>() / self.after.len() as f64;
        let cut = 1.0 - after / before;
        let line = format!(
            "traffic lost on {} went from {before:.1} to {after:.1} packets per window over the {} windows after the routes were applied ({:+.0}%)",
            self.links_named(),
            self.after.len(),
            -cut * 100.0
        );
        if cut >= rule.min_improvement {
            RepairVerdict::Stands(format!("verify: the repair helped: {line}"))
        } else {
            RepairVerdict::RollBack(format!(
                "verify: the repair did not help: {line}, less than planner.verify_min_improvement {:.0}%; rolled back (its routes withdrawn), not acted on again while it lasts",
                rule.min_improvement * 100.0
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::LinkEndFeatures;

    fn window(start: i64, lost_ab: f64, lost_ba: f64) -> WindowFeatures {
        let end = |node: &str, peer: &str, lost: f64| LinkEndFeatures {
            node: node.into(),
            peer: peer.into(),
            samples: 5.0,
            tx_packets: 100.0,
            rx_packets: None,
            lost_packets: Some(lost),
            loss_ratio: Some(lost / 100.0),
            probes_sent: 5.0,
            probe_loss: None,
            rtt_avg_us: None,
            down_fraction: 0.0,
            peer_samples: 5.0,
        };
        WindowFeatures {
            start,
            end: start + 500,
            links: vec![end("a", "b", lost_ab), end("b", "a", lost_ba), end("b", "c", 50.0)],
            nodes: vec![],
            link_batches: vec![],
        }
    }

    const RULE: VerifyRule = VerifyRule { windows: 2, min_lost: 5.0, min_improvement: 0.2 };

    fn check_after(before_windows: &[(f64, f64)], after_windows: &[(f64, f64)]) -> RepairVerdict {
        let mut history = LossHistory::default();
        for (i, &(ab, ba)) in before_windows.iter().enumerate() {
            history.push(&window(i as i64 * 500, ab, ba));
        }
        let link = vec![Element::link("a", "b")];
        let mut check = RepairCheck::new(link.clone(), history.mean_lost(&link, 0));
        let t0 = before_windows.len() as i64 * 500;
        history.push(&window(t0, 30.0, 30.0));
        assert_eq!(check.observe(&history, &RULE), RepairVerdict::Pending, "not applied yet");
        check.applied(t0 + 600);
        let mut verdict = RepairVerdict::Pending;
        for (i, &(ab, ba)) in after_windows.iter().enumerate() {
            history.push(&window(t0 + 1000 + i as i64 * 500, ab, ba));
            verdict = check.observe(&history, &RULE);
        }
        verdict
    }

    #[test]
    fn a_reroute_that_took_the_traffic_off_the_lossy_link_stands() {
        let v = check_after(&[(30.0, 10.0), (34.0, 6.0)], &[(1.0, 0.0), (2.0, 1.0)]);
        assert!(
            matches!(&v, RepairVerdict::Stands(l) if l.contains("helped") && l.contains("from 40.0 to 2.0")),
            "{v:?}"
        );
    }

    #[test]
    fn a_reroute_that_left_the_loss_where_it_was_is_rolled_back() {
        let v = check_after(&[(30.0, 10.0), (34.0, 6.0)], &[(30.0, 9.0), (36.0, 5.0)]);
        assert!(matches!(&v, RepairVerdict::RollBack(l) if l.contains("did not help")), "{v:?}");
    }

    #[test]
    fn it_waits_for_enough_windows_and_does_not_judge_faults_that_lose_nothing() {
        assert_eq!(check_after(&[(30.0, 10.0)], &[(1.0, 0.0)]), RepairVerdict::Pending);
        let v = check_after(&[(1.0, 0.0), (0.0, 2.0)], &[(1.0, 0.0), (0.0, 1.0)]);
        assert!(matches!(&v, RepairVerdict::Stands(l) if l.contains("not judged")), "{v:?}");
    }
}
