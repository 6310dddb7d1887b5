//! Judging a closed-loop run by what the network went through, not by what the job
//! says about itself: incidents per fault, route flaps while a fault lasts, route
//! changes no real fault asked for, and whether traffic across a repairable fault was
//! restored while it lasted (from the probe packets' fate).

use super::closed_loop::ClosedRun;
use serde::Serialize;
use x0_schema::{Action, Element, FaultKind, Incident, Scenario, Topology};

/// Clean traffic needed after the last impaired packet before a fault counts as
/// restored (the simulator's scorer uses the same).
const QUIET_MS: i64 = 1_000;
/// A route that returns to the next hop it left within this long flapped.
const FLAP_WINDOW_MS: i64 = 10_000;
/// Incidents detected this long before a fault or after its end still belong to it.
const SLACK_MS: i64 = 5_000;

/// One fault of a run, judged.
#[derive(Debug, Clone, Serialize)]
pub struct FaultVerdict {
    /// The fault's kind (`link-loss`, …); one-way loss is `link-loss/one-way`.
    pub kind: String,
    /// Whether it breaks something (a liar or a silent agent breaks nothing).
    pub real: bool,
    /// Its element.
    pub target: String,
    /// Incidents about it (a reopened incident counts once).
    pub incidents: usize,
    /// Of those, with the right element and kind family.
    pub named: usize,
    /// Whether a reroute can restore it: a real fault that leaves the mesh connected
    /// and that hurt probe traffic at all (one nobody's flows crossed has nothing to
    /// restore).
    pub repairable: bool,
    /// When traffic across it was restored, ms after injection (None: not while it lasted).
    pub restored_after_ms: Option<i64>,
    /// The last moment, ms after injection, a packet suffered at the element while the
    /// fault lasted, and the last a packet was lost to routing anywhere (no route, a
    /// loop): what kept traffic from counting as restored.
    pub last_impaired_after_ms: (Option<i64>, Option<i64>),
}

/// One run, judged.
#[derive(Debug, Clone, Serialize)]
pub struct RunVerdict {
    /// The scenario's name.
    pub run: String,
    /// The generated case.
    pub case: String,
    /// Nodes in the mesh.
    pub nodes: usize,
    /// Each fault.
    pub faults: Vec<FaultVerdict>,
    /// Route flaps (A → B → A within 10 s) while some fault lasted.
    pub flaps_during_faults: usize,
    /// Of those, forced by a later fault: the route went back when the first plan of an
    /// incident detected after it had moved (another fault) took it off its detour.
    pub flaps_forced_by_later_fault: usize,
    /// Route flaps over the whole run.
    pub flaps: usize,
    /// The first few flaps while a fault lasted, in words.
    pub flap_examples: Vec<String>,
    /// Route changes in the mesh's tables.
    pub route_changes: usize,
    /// Commands sent.
    pub commands: usize,
    /// Route-moving commands (replace, drain) of incidents that blamed no real fault.
    pub harmful_commands: usize,
    /// Of those, for incidents about a liar's or a silent agent's node or links.
    pub commands_on_liars_or_silence: usize,
    /// Incidents about nothing that was injected.
    pub false_incidents: usize,
}

/// Whether a fault kind breaks something (a liar or a silent agent breaks nothing).
fn real(kind: FaultKind) -> bool {
    !matches!(kind, FaultKind::ByzantineReporter | FaultKind::AgentDown)
}

/// Whether an incident's cause is about the fault's element: the element itself, or
/// for a node, one of its links.
fn about(incident: &Incident, element: &Element) -> bool {
    incident.root_cause.as_ref().is_some_and(|rc| match element {
        Element::Node { id } => rc.element.touches(id),
        Element::Link { .. } => &rc.element == element,
    })
}

/// How many route or link changes of an action move traffic (a withdrawal only hands
/// it back; a batch counts its routes).
fn moves_traffic(a: &Action) -> usize {
    a.parts().iter().filter(|a| matches!(a, Action::RouteReplace { .. } | Action::LinkDrain { .. })).count()
}

/// Judges `run` of `scenario`, run as case `case`.
pub fn judge(scenario: &Scenario, case: &str, topo: &Topology, run: &ClosedRun) -> RunVerdict {
    let end_ms = scenario.duration.as_millis() as i64;
    let span = |f: &x0_schema::Fault| {
        let at = f.at.as_millis() as i64;
        (at, f.end().map_or(end_ms, |e| e.as_millis() as i64).min(end_ms))
    };
    // A fault is repairable when the mesh stays connected without every real fault's
    // element at once (two faults on a ring cut it in two: no reroute restores that).
    let real_elements: Vec<Element> =
        scenario.faults.iter().zip(&run.elements).filter(|(f, _)| real(f.kind)).map(|(_, e)| e.clone()).collect();
    let cut = !topo.connected_without_all(&real_elements);
    let to_ms = |ns: i64| (ns - crate::datasets::START_NS) / 1_000_000;
    let faults = scenario
        .faults
        .iter()
        .zip(&run.elements)
        .map(|(f, e)| {
            let (at, until) = span(f);
            let mine: Vec<&Incident> = run
                .incidents
                .iter()
                // From its detection, or a reopening (the same incident, counted once).
                .filter(|i| {
                    about(i, e) && i.detections().any(|t| (at - SLACK_MS..=until + SLACK_MS).contains(&to_ms(t)))
                })
                .collect();
            let named = mine
                .iter()
                .filter(|i| i.root_cause.as_ref().is_some_and(|rc| x0_lab::blames(rc.kind, &rc.element, f.kind, e)))
                .count();
            let last_impaired = run.truth.last_impaired_ms(e, at, until);
            let repairable = real(f.kind) && !cut && last_impaired.0.is_some();
            let restored = repairable.then(|| run.truth.restored_at_ms(e, at, until, QUIET_MS)).flatten();
            let one_way = f.kind == FaultKind::LinkLoss && f.direction != x0_schema::Direction::Both;
            FaultVerdict {
                kind: format!("{}{}", f.kind.as_str(), if one_way { "/one-way" } else { "" }),
                real: real(f.kind),
                target: e.to_string(),
                incidents: mine.len(),
                named,
                repairable,
                restored_after_ms: restored.map(|r| r - at),
                last_impaired_after_ms: (last_impaired.0.map(|t| t - at), last_impaired.1.map(|t| t - at)),
            }
        })
        .collect();
    let pretend_elements: Vec<&Element> =
        scenario.faults.iter().zip(&run.elements).filter(|(f, _)| !real(f.kind)).map(|(_, e)| e).collect();
    let (mut harmful, mut on_pretence, mut false_incidents) = (0, 0, 0);
    for i in &run.incidents {
        let justified = real_elements.iter().any(|e| about(i, e));
        let pretence =
            pretend_elements.iter().any(|e| i.root_cause.as_ref().is_some_and(|rc| x0_lab::near(&rc.element, e)));
        if !justified {
            let moving: usize = i.actions.iter().map(|a| moves_traffic(&a.action)).sum();
            harmful += moving;
            on_pretence += if pretence { moving } else { 0 };
        }
        let mentioned = run.elements.iter().any(|e| {
            i.root_cause.as_ref().is_some_and(|rc| x0_lab::near(&rc.element, e))
                || i.symptoms.iter().any(|s| x0_lab::near(&s.element, e))
        });
        false_incidents += usize::from(!mentioned);
    }
    let spans: Vec<(i64, i64)> = scenario.faults.iter().filter(|f| real(f.kind)).map(span).collect();
    let flaps = run.truth.flaps(FLAP_WINDOW_MS);
    // A flap is forced by a later fault when the route went back at the first plan of
    // an incident detected after it had moved, about another element than the
    // incidents whose commands moved it (the same element again is the flap damping
    // exists to stop, however many incidents it took).
    let actions_at = |i: &Incident, t: i64| i.actions.iter().any(|a| (to_ms(a.issued_at) - t).abs() <= 500);
    let forced = |away: i64, back: i64| {
        run.incidents.iter().any(|later| {
            let Some(first) = later.actions.first() else { return false };
            let planned = to_ms(first.issued_at);
            let element = later.root_cause.as_ref().map(|rc| &rc.element);
            to_ms(later.detected_at) > away
                && planned <= back
                && back <= planned + 1_000
                && !run
                    .incidents
                    .iter()
                    .any(|i| i.root_cause.as_ref().map(|rc| &rc.element) == element && actions_at(i, away))
        })
    };
    let during = |t: i64| spans.iter().any(|&(a, b)| t >= a && t < b);
    let hop = |h: &Option<String>| h.clone().unwrap_or_else(|| "none".into());
    let flap_examples = flaps
        .iter()
        .filter(|(away, back)| during(back.at_ms) && !forced(away.at_ms, back.at_ms))
        .take(3)
        .map(|(away, back)| {
            format!(
                "{} to {}: {} -> {} at {} ms, back at {} ms",
                away.node,
                away.destination,
                hop(&away.from),
                hop(&away.next_hop),
                away.at_ms,
                back.at_ms
            )
        })
        .collect();
    RunVerdict {
        run: scenario.name.clone(),
        case: case.to_string(),
        nodes: topo.len(),
        faults,
        flaps_during_faults: flaps.iter().filter(|(_, back)| during(back.at_ms)).count(),
        flaps_forced_by_later_fault: flaps
            .iter()
            .filter(|(away, back)| during(back.at_ms) && forced(away.at_ms, back.at_ms))
            .count(),
        flaps: flaps.len(),
        flap_examples,
        route_changes: run.truth.route_changes.len(),
        commands: run.commands,
        harmful_commands: harmful,
        commands_on_liars_or_silence: on_pretence,
        false_incidents,
    }
}
