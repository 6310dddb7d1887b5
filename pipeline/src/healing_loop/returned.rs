//! The healing loop and a crashed node that reports again while its incident is
//! open: its own routes are repaired, no route crosses it (see
//! `Planner::node_returned`).

use super::HealingLoop;
use super::Publication;
use crate::detect::reporting;
use crate::features::WindowFeatures;
use x0_schema::RootCauseKind;

impl HealingLoop {
    /// A crashed node reporting again while its incident is open gets its own routes
    /// (and the routes toward it) repaired around the faults still open, in its
    /// incident's name (see `Planner::node_returned`); one that falls silent again is
    /// sent nothing more.
    pub(super) fn plan_for_returned_nodes(&mut self, f: &WindowFeatures, now: i64, out: &mut Vec<Publication>) {
        let crashed = self.planner.crashed();
        if crashed.is_empty() {
            return;
        }
        let reporting = reporting(f);
        for (id, node, back) in crashed {
            // An overloaded node is routed around too, but never stopped reporting.
            let crash = self.book.get(&id).and_then(|i| i.root_cause.as_ref()).map(|rc| rc.kind);
            if crash != Some(RootCauseKind::NodeCrash) {
                continue;
            }
            match (reporting.contains(node.as_str()), back) {
                (true, false) if !self.book.rolled_back(&id) => {
                    let plan = self.planner.node_returned(&id, &node, now);
                    let why = plan.explanation.join("; ");
                    let actions = self.issue(&id, plan, now, out);
                    if actions.is_empty() {
                        self.book.note(&id, &why);
                    } else {
                        self.book.record_actions(&id, actions, &why);
                    }
                    self.generation += 1;
                    out.extend(self.book.get(&id).cloned().map(Publication::Incident));
                }
                (false, true) => self.planner.node_silent_again(&node),
                _ => {}
            }
        }
    }
}
