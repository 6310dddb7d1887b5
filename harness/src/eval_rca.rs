//! `eval rca --scenarios DIR`: how well root-cause analysis names the injected faults.
//!
//! Each scenario runs in the simulated mesh (once per seed) straight into the stream
//! job's core, with no healing, so every fault stays for its whole duration. For each
//! fault, the job's first incident about it (as `lab run` matches them) is looked up,
//! and the candidates localisation ranked in the window that confirmed it are scored:
//!
//! - AC@k: the right cause (element and kind family) among the first k candidates;
//!   Avg@5 the mean of AC@1..AC@5 (the RCA literature's usual summary). Reported for
//!   runs with a single fault (the goal's terms), and apart for the faults of runs
//!   with several, ranked "filtered" (as link prediction is scored): the run's other
//!   faults are taken out of the list first, since naming one real fault before
//!   another is not a mistake;
//! - for runs with several faults, precision and recall of the set of elements the
//!   job's incidents blamed, against the set of faults;
//! - expected calibration error (10 equal-width bins) of every incident's confidence
//!   against whether its cause was right: false alarms count too.
//!
//! A fault with no incident counts as wrong at every k.

use crate::datasets::{scenario_files, seeded_runs, START_NS};
use anyhow::Result;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use x0_lab::{blames, cause_family, fault_family, near, SimMesh, SimOptions};
use x0_pipeline::{Config, FeatureEngine, HealingLoop, JobStats, WindowDiagnoses, BUILTIN_FEATURES_SQL};
use x0_schema::{Element, FaultKind, Incident, RootCause, Scenario};

const K: usize = 5;
const BINS: usize = 10;

/// One fault's result.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRank {
    /// The run (`scenario#seed`).
    pub run: String,
    /// The fault kind.
    pub kind: String,
    /// The fault's element.
    pub target: String,
    /// 1-based position of the right cause among the ranked candidates.
    pub rank: Option<usize>,
    /// Whether the run had other faults at the same time.
    pub simultaneous: bool,
    /// The rank with the run's other faults taken out of the list first.
    pub filtered_rank: Option<usize>,
    /// The first-ranked candidate.
    pub top: Option<String>,
    /// Its confidence.
    pub confidence: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
/// Root-cause accuracy over one kind's faults.
pub struct KindScore {
    /// Faults scored.
    pub faults: usize,
    /// Share with the right cause ranked first.
    pub ac1: f64,
    /// Share with it among the first three.
    pub ac3: f64,
    /// Mean of AC@1 … AC@5.
    pub avg5: f64,
    /// Faults with no incident at all.
    pub missed: usize,
}

/// Agents that stopped reporting while their nodes kept forwarding.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentDownScore {
    /// Agent-down faults scored.
    pub faults: usize,
    /// Faults where some incident blamed the silent node or its links.
    pub blamed: usize,
    /// ... with a confidence at or above `planner.min_confidence` (it would reroute).
    pub actionable: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
/// One bin of the reliability diagram.
pub struct CalibrationBin {
    /// Lowest confidence in the bin.
    pub lower: f64,
    /// Highest confidence in the bin.
    pub upper: f64,
    /// Incidents in it.
    pub count: usize,
    /// Their mean confidence.
    pub mean_confidence: f64,
    /// Share of them that named a real fault.
    pub accuracy: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
/// What `eval rca` reports.
pub struct RcaReport {
    /// Runs evaluated.
    pub runs: usize,
    /// Faults of runs with a single fault.
    pub per_kind: BTreeMap<String, KindScore>,
    /// Faults of runs with several, by filtered rank.
    pub per_kind_simultaneous: BTreeMap<String, KindScore>,
    /// Agents that went silent while their nodes kept forwarding.
    pub agent_down: AgentDownScore,
    /// Link faults left out because a crashed end node hid them (see `masked`).
    pub masked: usize,
    /// Over runs with two or more simultaneous faults.
    pub multi_fault_runs: usize,
    /// Share of blamed elements that were faulty.
    pub blamed_precision: f64,
    /// Share of faulty elements that were blamed.
    pub blamed_recall: f64,
    /// Incidents over every run.
    pub incidents: usize,
    /// Expected calibration error of their confidences.
    pub ece: f64,
    /// The reliability diagram's bins.
    pub calibration: Vec<CalibrationBin>,
    /// Every fault's result.
    pub faults: Vec<FaultRank>,
}

struct Placed {
    kind: FaultKind,
    element: Element,
    from_ns: i64,
    until_ns: i64,
}

/// A link fault on a link whose end node has crashed meanwhile cannot be observed:
/// nothing crosses the link, and the crash is the whole story.
fn masked(f: &Placed, all: &[Placed]) -> bool {
    f.kind.targets_link()
        && all.iter().any(|g| {
            g.kind == FaultKind::NodeCrash
                && matches!(&g.element, Element::Node { id } if f.element.touches(id))
                && g.from_ns < f.until_ns
                && f.from_ns < g.until_ns
        })
}

impl Placed {
    /// Whether an incident detected at `ns` can be about this fault: from 1 s before it
    /// (the window it lands in) until 5 s after it ends (as `lab run` scores).
    fn around(&self, ns: i64) -> bool {
        ns >= self.from_ns - 1_000_000_000 && ns <= self.until_ns + 5_000_000_000
    }
}

fn is_right(rc: &RootCause, f: &Placed) -> bool {
    blames(rc.kind, &rc.element, f.kind, &f.element)
}

/// Candidates of one decision window about one fault, best first: each hypothesis near
/// the fault by confidence, each followed by the alternatives it could not rule out.
fn ranked(window: &WindowDiagnoses, target: &Element) -> Vec<RootCause> {
    let mut causes: Vec<&RootCause> = window.causes.iter().filter(|c| near(&c.element, target)).collect();
    causes.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let mut out: Vec<RootCause> = Vec::new();
    for c in causes {
        out.push(c.clone());
        for alt in &c.ambiguity {
            // An alternative keeps the hypothesis's kind family: a link for a link, a node for a node.
            let kind = match (alt, &c.element) {
                (Element::Node { .. }, Element::Link { .. }) => x0_schema::RootCauseKind::NodeOverload,
                (Element::Link { .. }, Element::Node { .. }) => x0_schema::RootCauseKind::LinkLoss,
                _ => c.kind,
            };
            out.push(RootCause {
                kind,
                element: alt.clone(),
                confidence: 0.0,
                ambiguity: vec![],
                evidence: vec![],
                reporters: vec![],
            });
        }
    }
    let mut seen = BTreeSet::new();
    out.retain(|c| seen.insert(c.element.clone()));
    out
}

async fn run_one(config: &Config, scenario: &Scenario) -> Result<(Vec<Placed>, Vec<Incident>, Vec<WindowDiagnoses>)> {
    let mut mesh = SimMesh::new(scenario, SimOptions { start_ns: START_NS, ..Default::default() })?;
    let topo = mesh.topology().clone();
    let placed = scenario
        .faults
        .iter()
        .zip(mesh.fault_elements())
        .map(|(f, element)| Placed {
            kind: f.kind,
            element,
            from_ns: START_NS + f.at.as_nanos() as i64,
            until_ns: START_NS + f.duration.map_or(scenario.duration, |d| f.at + d).as_nanos() as i64,
        })
        .collect();
    let features = FeatureEngine::new(BUILTIN_FEATURES_SQL).await?;
    let mut core = HealingLoop::new(
        config.clone(),
        topo,
        features,
        x0_schema::generate_signing_key(),
        Arc::new(JobStats::default()),
        "eval",
    );
    core.discard_features();
    core.record_diagnoses();
    while !mesh.finished() {
        let now = mesh.now_ns();
        for (_, batch) in mesh.step() {
            core.admit(0, batch, now).map_err(|r| anyhow::anyhow!("telemetry refused: {}", r.reason))?;
        }
        core.close_ready().await?;
    }
    Ok((placed, core.incidents(), core.take_diagnoses()))
}

/// Runs every scenario of `dir` `seeds` times and scores root-cause analysis. Also
/// returns every incident's (cause kind, confidence, was right), what a calibration is
/// fitted on.
pub async fn eval_rca(
    config: &Config,
    dirs: &[PathBuf],
    seeds: u64,
    mut progress: impl FnMut(&str),
) -> Result<(RcaReport, Vec<(String, f64, bool)>)> {
    let mut config = config.clone();
    // Simulated event time is not the wall clock.
    config.window.max_event_age = std::time::Duration::from_secs(100 * 365 * 86_400);
    let mut report = RcaReport::default();
    let mut confidences: Vec<(String, f64, bool)> = Vec::new();
    let (mut blamed_right, mut blamed_all, mut truth_found, mut truth_all) = (0usize, 0usize, 0usize, 0usize);
    let mut files = Vec::new();
    for dir in dirs {
        files.extend(scenario_files(dir)?);
    }
    for file in files {
        let base = Scenario::from_file(&file)?;
        for (scenario, run) in seeded_runs(&base, seeds) {
            progress(&run);
            let (placed, incidents, windows) = run_one(&config, &scenario).await?;
            report.runs += 1;
            for f in placed.iter().filter(|f| f.kind == FaultKind::AgentDown) {
                // Nothing is broken: any cause blamed on or next to the silent node is wrong.
                report.agent_down.faults += 1;
                let blamed: Vec<&RootCause> = incidents
                    .iter()
                    .filter(|i| i.detected_at >= f.from_ns && i.detected_at <= f.until_ns + 5_000_000_000)
                    .filter_map(|i| i.root_cause.as_ref())
                    .filter(|rc| near(&rc.element, &f.element))
                    .collect();
                report.agent_down.blamed += usize::from(!blamed.is_empty());
                report.agent_down.actionable +=
                    usize::from(blamed.iter().any(|rc| rc.confidence >= config.planner.min_confidence));
            }
            for f in placed.iter().filter(|f| f.kind != FaultKind::AgentDown) {
                if masked(f, &placed) {
                    report.masked += 1;
                    continue;
                }
                let incident = incidents
                    .iter()
                    .filter(|i| {
                        f.around(i.detected_at)
                            && (i.root_cause.as_ref().is_some_and(|rc| near(&rc.element, &f.element))
                                || i.symptoms.iter().any(|s| near(&s.element, &f.element)))
                    })
                    // The incident that names this fault when there is one (a neighbouring
                    // fault's incident is not this fault's diagnosis), else the earliest.
                    .min_by_key(|i| (!i.root_cause.as_ref().is_some_and(|rc| is_right(rc, f)), i.detected_at));
                // The window that confirmed it (several can close at one stream time).
                let candidates = incident
                    .and_then(|i| {
                        let rc = i.root_cause.as_ref()?;
                        windows
                            .iter()
                            .find(|w| w.decided_at == i.detected_at && w.causes.iter().any(|c| c.element == rc.element))
                    })
                    .map(|w| ranked(w, &f.element))
                    .unwrap_or_default();
                let rank = candidates.iter().position(|c| is_right(c, f)).map(|p| p + 1);
                let others: Vec<&Placed> = placed.iter().filter(|g| !std::ptr::eq(*g, f)).collect();
                let filtered_rank = candidates
                    .iter()
                    .filter(|c| is_right(c, f) || !others.iter().any(|g| is_right(c, g)))
                    .position(|c| is_right(c, f))
                    .map(|p| p + 1);
                let top = candidates.first();
                report.faults.push(FaultRank {
                    run: run.clone(),
                    kind: f.kind.as_str().into(),
                    target: f.element.to_string(),
                    rank,
                    simultaneous: placed.len() >= 2,
                    filtered_rank,
                    top: top.map(|c| format!("{} {}", c.kind.as_str(), c.element)),
                    confidence: top.map(|c| c.confidence),
                });
            }
            // Calibration: every incident's confidence against whether it named a fault.
            for i in &incidents {
                let Some(rc) = &i.root_cause else { continue };
                let right = placed.iter().any(|f| is_right(rc, f) && f.around(i.detected_at));
                confidences.push((rc.kind.as_str().to_string(), rc.confidence, right));
            }
            if placed.len() >= 2 {
                report.multi_fault_runs += 1;
                let blamed: BTreeSet<(&str, Element)> = incidents
                    .iter()
                    .filter_map(|i| i.root_cause.as_ref())
                    .map(|rc| (cause_family(rc.kind), rc.element.clone()))
                    .collect();
                blamed_all += blamed.len();
                blamed_right += blamed
                    .iter()
                    .filter(|(fam, e)| placed.iter().any(|f| e == &f.element && fault_family(f.kind) == *fam))
                    .count();
                let observable: Vec<&Placed> =
                    placed.iter().filter(|f| f.kind != FaultKind::AgentDown && !masked(f, &placed)).collect();
                truth_all += observable.len();
                truth_found += observable
                    .iter()
                    .filter(|f| blamed.iter().any(|(fam, e)| e == &f.element && fault_family(f.kind) == *fam))
                    .count();
            }
        }
    }
    report.per_kind = per_kind(report.faults.iter().filter(|f| !f.simultaneous).map(|f| (f, f.rank)));
    report.per_kind_simultaneous =
        per_kind(report.faults.iter().filter(|f| f.simultaneous).map(|f| (f, f.filtered_rank)));
    report.blamed_precision = ratio(blamed_right, blamed_all);
    report.blamed_recall = ratio(truth_found, truth_all);
    report.incidents = confidences.len();
    let scored: Vec<(f64, bool)> = confidences.iter().map(|(_, c, r)| (*c, *r)).collect();
    (report.ece, report.calibration) = calibration(&scored);
    Ok((report, confidences))
}

/// AC@1, AC@3 and Avg@5 per fault type of (fault, rank) pairs.
fn per_kind<'a>(faults: impl Iterator<Item = (&'a FaultRank, Option<usize>)>) -> BTreeMap<String, KindScore> {
    let mut by_kind: BTreeMap<String, Vec<(Option<usize>, bool)>> = BTreeMap::new();
    for (f, rank) in faults {
        by_kind.entry(f.kind.clone()).or_default().push((rank, f.top.is_none()));
    }
    by_kind
        .into_iter()
        .map(|(kind, ranks)| {
            let n = ranks.len() as f64;
            let at = |k: usize| ranks.iter().filter(|(r, _)| r.is_some_and(|r| r <= k)).count() as f64 / n;
            let score = KindScore {
                faults: ranks.len(),
                ac1: at(1),
                ac3: at(3),
                avg5: (1..=K).map(at).sum::<f64>() / K as f64,
                missed: ranks.iter().filter(|(_, missed)| *missed).count(),
            };
            (kind, score)
        })
        .collect()
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// Expected calibration error over equal-width bins, and the bins.
pub fn calibration(points: &[(f64, bool)]) -> (f64, Vec<CalibrationBin>) {
    let mut bins: Vec<CalibrationBin> = (0..BINS)
        .map(|b| CalibrationBin {
            lower: b as f64 / BINS as f64,
            upper: (b + 1) as f64 / BINS as f64,
            ..Default::default()
        })
        .collect();
    for &(c, right) in points {
        let b = ((c * BINS as f64) as usize).min(BINS - 1);
        bins[b].count += 1;
        bins[b].mean_confidence += c;
        bins[b].accuracy += f64::from(u8::from(right));
    }
    let total = points.len().max(1) as f64;
    let mut ece = 0.0;
    for b in &mut bins {
        if b.count > 0 {
            b.mean_confidence /= b.count as f64;
            b.accuracy /= b.count as f64;
            ece += b.count as f64 / total * (b.mean_confidence - b.accuracy).abs();
        }
    }
    (ece, bins)
}

/// The report as a table.
pub fn table(r: &RcaReport) -> String {
    let mut out = format!("root-cause analysis over {} runs\n", r.runs);
    for (title, scores) in [
        ("single faults", &r.per_kind),
        ("faults of runs with several (filtered rank: the run's other faults taken out)", &r.per_kind_simultaneous),
    ] {
        out.push_str(&format!("{title}\n"));
        out.push_str(&format!(
            "{:<20} {:>6} {:>6} {:>6} {:>6} {:>7}\n",
            "fault type", "faults", "AC@1", "AC@3", "Avg@5", "missed"
        ));
        for (kind, s) in scores {
            out.push_str(&format!(
                "{:<20} {:>6} {:>6.3} {:>6.3} {:>6.3} {:>7}\n",
                kind, s.faults, s.ac1, s.ac3, s.avg5, s.missed
            ));
        }
    }
    if r.masked > 0 {
        out.push_str(&format!(
            "{} link fault(s) left out: an end node had crashed, nothing could cross them\n",
            r.masked
        ));
    }
    if r.agent_down.faults > 0 {
        out.push_str(&format!(
            "agent down, node fine ({} faults): blamed in {}, confident enough to reroute in {}\n",
            r.agent_down.faults, r.agent_down.blamed, r.agent_down.actionable
        ));
    }
    out.push_str(&format!(
        "multiple faults ({} runs): blamed-set precision {:.3}, recall {:.3}\n",
        r.multi_fault_runs, r.blamed_precision, r.blamed_recall
    ));
    out.push_str(&format!("calibration over {} incidents: ECE {:.3}\n", r.incidents, r.ece));
    for b in r.calibration.iter().filter(|b| b.count > 0) {
        out.push_str(&format!(
            "  confidence {:.1}-{:.1}: {:>4} incidents, mean confidence {:.3}, right {:.3}\n",
            b.lower, b.upper, b.count, b.mean_confidence, b.accuracy
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::calibration;

    #[test]
    fn calibration_error_is_the_weighted_gap_between_confidence_and_accuracy() {
        // 0.9 confident, right 9 times in 10: calibrated.
        let good: Vec<(f64, bool)> = (0..10).map(|i| (0.9, i < 9)).collect();
        assert!(calibration(&good).0 < 1e-9);
        // 0.95 confident, right half the time: off by 0.45.
        let bad: Vec<(f64, bool)> = (0..10).map(|i| (0.95, i < 5)).collect();
        assert!((calibration(&bad).0 - 0.45).abs() < 1e-9);
    }
}
