//! Scoring a run: the pipeline's incidents against the simulator's ground truth.

use crate::GroundTruth;
use x0_schema::{
    Element, FaultKind, FaultOutcome, Incident, Percentiles, RcaAccuracy, RootCauseKind, RunSummary, Scenario,
};

/// Clean traffic required after the last impaired packet before a fault counts as
/// restored (so a lucky quiet tick during gray loss is not called recovery).
const QUIET_MS: i64 = 1000;
/// Two route changes of one (node, destination) closer than this are a flap.
/// A route that changes and changes back within this long flapped.
pub const FLAP_WINDOW_MS: i64 = 10_000;

fn ms(ns: i64, start_ns: i64) -> i64 {
    (ns - start_ns) / 1_000_000
}

/// The family of a root-cause kind: what a blame has to get right about a fault.
pub fn cause_family(kind: RootCauseKind) -> &'static str {
    match kind {
        RootCauseKind::SuspectReporter => "reporter",
        RootCauseKind::NodeCrash | RootCauseKind::NodeOverload => "node",
        RootCauseKind::LinkDown | RootCauseKind::LinkLoss | RootCauseKind::LinkDelay => "link",
    }
}

/// The cause family that names a fault kind; an agent that stopped reporting has none
/// (nothing is broken, no cause is the right one).
pub fn fault_family(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::ByzantineReporter => "reporter",
        FaultKind::AgentDown => "none",
        FaultKind::NodeCrash | FaultKind::NodeOverload => "node",
        FaultKind::LinkDown | FaultKind::LinkLoss | FaultKind::LinkDelay | FaultKind::LinkFlap => "link",
    }
}

/// Whether a root cause names the injected fault: the right element, and a cause kind
/// of the right family (a liar is blamed as a suspect reporter, not a broken link).
pub fn blames(kind: RootCauseKind, element: &Element, fault: FaultKind, target: &Element) -> bool {
    cause_family(kind) == fault_family(fault) && element == target
}

/// Whether `e` is the fault's element or next to it (a link sharing a node with it, a
/// node on it, a link of it).
pub fn near(e: &Element, target: &Element) -> bool {
    e == target
        || match (e, target) {
            (Element::Link { a, b }, t) | (t, Element::Link { a, b }) => t.touches(a) || t.touches(b),
            _ => false,
        }
}

/// Whether an incident is about the fault at all: it blames or mentions the element
/// or something touching it.
fn related(incident: &Incident, target: &Element) -> bool {
    incident.root_cause.as_ref().is_some_and(|rc| near(&rc.element, target))
        || incident.symptoms.iter().any(|s| near(&s.element, target))
}

/// Builds the run summary. `incidents` are in event time with `start_ns` as the
/// scenario's t = 0; `elements` are the faults' resolved targets in scenario order.
pub fn score_run(
    scenario: &Scenario,
    elements: &[Element],
    truth: &GroundTruth,
    incidents: &[Incident],
    start_ns: i64,
    mode: &str,
) -> RunSummary {
    let run_end_ms = scenario.duration.as_millis() as i64;
    let mut matched = vec![false; incidents.len()];
    let mut faults = Vec::new();
    for (id, (fault, element)) in scenario.faults.iter().zip(elements).enumerate() {
        let injected = fault.at.as_millis() as i64;
        let until = fault.end().map_or(run_end_ms, |e| e.as_millis() as i64).min(run_end_ms);
        let window_end = until + 5_000;
        // An incident matches at its detection, or at a reopening when the fault came
        // back on an element whose incident had resolved.
        let detected_within =
            |i: &Incident| i.detections().map(|t| ms(t, start_ns)).find(|&t| t >= injected - 1_000 && t <= window_end);
        let candidate = incidents
            .iter()
            .enumerate()
            .filter_map(|(k, i)| Some((k, i, detected_within(i)?)))
            .filter(|(_, i, _)| related(i, element))
            .min_by_key(|(_, i, t)| {
                let right = i.root_cause.as_ref().is_some_and(|rc| blames(rc.kind, &rc.element, fault.kind, element));
                (!right, *t)
            });
        let outcome = match candidate {
            Some((k, inc, detected)) => {
                matched[k] = true;
                let rc = inc.root_cause.as_ref();
                FaultOutcome {
                    id,
                    kind: fault.kind.as_str().into(),
                    target: target_string(element),
                    injected_at_ms: injected,
                    detected_at_ms: Some(detected),
                    root_cause: rc.map(|r| r.element.to_string()),
                    root_cause_correct: rc.is_some_and(|r| blames(r.kind, &r.element, fault.kind, element)),
                    confidence: rc.map(|r| r.confidence),
                    actions: inc.action_count(),
                    traffic_restored_at_ms: None,
                    mttd_ms: Some((detected - injected).max(0)),
                    mttr_ms: None,
                }
            }
            None => FaultOutcome {
                id,
                kind: fault.kind.as_str().into(),
                target: target_string(element),
                injected_at_ms: injected,
                detected_at_ms: None,
                root_cause: None,
                root_cause_correct: false,
                confidence: None,
                actions: 0,
                traffic_restored_at_ms: None,
                mttd_ms: None,
                mttr_ms: None,
            },
        };
        let restored = truth.restored_at_ms(element, injected, until, QUIET_MS);
        faults.push(FaultOutcome {
            traffic_restored_at_ms: restored,
            mttr_ms: restored.map(|r| r - injected),
            ..outcome
        });
    }
    // Incidents about an element some matched incident already covers (a second
    // incident for the same fault) are duplicates, not false alarms.
    let false_incidents =
        incidents.iter().zip(&matched).filter(|(inc, m)| !**m && !elements.iter().any(|e| related(inc, e))).count();
    let collect = |f: fn(&FaultOutcome) -> Option<i64>| faults.iter().filter_map(f).collect::<Vec<_>>();
    let total = faults.len().max(1) as f64;
    let ac1 = faults.iter().filter(|f| f.root_cause_correct).count() as f64 / total;
    let ac3 = scenario
        .faults
        .iter()
        .zip(elements)
        .filter(|(fault, element)| {
            incidents.iter().any(|i| {
                i.root_cause.as_ref().is_some_and(|rc| {
                    blames(rc.kind, &rc.element, fault.kind, element)
                        || rc.ambiguity.iter().take(2).any(|e| e == *element)
                })
            })
        })
        .count() as f64
        / total;
    RunSummary {
        scenario: scenario.name.clone(),
        mode: mode.into(),
        seed: scenario.topology.seed,
        mttd_ms: Percentiles::of(&collect(|f| f.mttd_ms)),
        mttr_ms: Percentiles::of(&collect(|f| f.mttr_ms)),
        rca: if scenario.faults.is_empty() { RcaAccuracy { ac1: 1.0, ac3: 1.0 } } else { RcaAccuracy { ac1, ac3 } },
        routes_changed: truth.route_changes.len(),
        route_flaps: truth.route_flaps(FLAP_WINDOW_MS),
        faults,
        false_incidents,
    }
}

fn target_string(e: &Element) -> String {
    match e {
        Element::Link { a, b } => format!("{a}-{b}"),
        Element::Node { id } => id.clone(),
    }
}
