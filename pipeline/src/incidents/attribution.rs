//! Which incident a diagnosis speaks for: the open one on its element, one resolved
//! lately (it reopens), or, so that a fault has one incident, a crash's: a crash
//! absorbs its links' unconfirmed candidates, takes over the link-down its node's own
//! agent reported just before it fell silent, and speaks for its links while open.

use super::{push_line, IncidentBook, Transition};
use crate::rca::Diagnosis;
use x0_schema::{Element, RootCauseKind};

/// How recent a link-down must be for a crash of one of its ends to take it over.
pub(super) const FIRST_SIGN_WINDOWS: u32 = 3;

impl IncidentBook {
    pub(super) fn open_for(&self, element: &Element) -> Option<String> {
        self.tracked
            .iter()
            .find(|(_, t)| {
                !t.incident.state.is_final() && t.incident.root_cause.as_ref().is_some_and(|rc| &rc.element == element)
            })
            .map(|(id, _)| id.clone())
    }

    /// The newest incident about `element` that resolved within the reopening horizon.
    pub(super) fn resolved_lately(&self, element: &Element, now_ns: i64) -> Option<String> {
        self.tracked
            .iter()
            .filter(|(_, t)| {
                t.incident.state.is_final()
                    && t.incident.root_cause.as_ref().is_some_and(|rc| &rc.element == element)
                    && t.incident.resolved_at.is_some_and(|r| now_ns - r <= self.clear.reopen_within_ns)
            })
            .max_by_key(|(_, t)| t.incident.resolved_at)
            .map(|(id, _)| id.clone())
    }

    /// A node diagnosis absorbs unconfirmed candidates on the links whose symptoms it
    /// explains (not a link it left out as slow or lossy for its own reason).
    pub(super) fn absorb_link_candidates(&mut self, d: &Diagnosis) {
        let Element::Node { id } = &d.cause.element else { return };
        self.tracked.retain(|_, t| {
            let absorbed = !t.confirmed
                && t.incident.root_cause.as_ref().is_some_and(|rc| {
                    matches!(rc.element, Element::Link { .. })
                        && rc.element.touches(id)
                        && d.symptoms.iter().any(|s| s.element == rc.element)
                });
            !absorbed
        });
    }

    /// The open, confirmed crash incident of an end of `element`, a link.
    pub(super) fn crash_holding(&self, element: &Element) -> Option<String> {
        let Element::Link { a, b } = element else { return None };
        self.tracked
            .iter()
            .find(|(_, t)| {
                t.confirmed
                    && !t.incident.state.is_final()
                    && t.incident.root_cause.as_ref().is_some_and(|rc| {
                        rc.kind == RootCauseKind::NodeCrash
                            && matches!(&rc.element, Element::Node { id } if id == a || id == b)
                    })
            })
            .map(|(id, _)| id.clone())
    }

    /// A crash whose node lost carrier on a link in the windows just before it fell
    /// silent (its own agent saw it go, as well as the neighbour) takes over that link's
    /// incident: one incident for the crash, re-diagnosed, not a link-down beside it.
    /// The link's routes stay, now in the crash's name, and the crash plans the rest.
    /// Only a link-down seen in the last window and at most [`FIRST_SIGN_WINDOWS`] old:
    /// a link that was down long before is a fault of its own.
    pub(super) fn first_sign_of_crash(&mut self, d: &Diagnosis, out: &mut Vec<Transition>) -> Option<String> {
        let Element::Node { id: node } = &d.cause.element else { return None };
        if d.cause.kind != RootCauseKind::NodeCrash {
            return None;
        }
        let (id, t) = self
            .tracked
            .iter_mut()
            .filter(|(_, t)| {
                t.confirmed
                    && !t.incident.state.is_final()
                    && t.healthy_windows == 0
                    && t.streak <= FIRST_SIGN_WINDOWS
                    && t.incident.root_cause.as_ref().is_some_and(|rc| {
                        rc.kind == RootCauseKind::LinkDown
                            && rc.element.touches(node)
                            && d.symptoms.iter().any(|s| s.element == rc.element)
                    })
            })
            .min_by_key(|(id, t)| (t.incident.opened_at, (*id).clone()))?;
        let link = t.incident.root_cause.as_ref().map(|rc| rc.element.to_string()).unwrap_or_default();
        push_line(
            &mut t.incident.explanation,
            &format!("rediagnosed: carrier lost on {link} was the first sign of node {node} going down"),
        );
        // Before acting, the usual path re-diagnoses it; after, its cause is fixed
        // there, so it changes here.
        if t.acted {
            t.incident.root_cause = Some(d.cause.clone());
            out.push(Transition::Rediagnosed(id.clone()));
        }
        Some(id.clone())
    }
}
