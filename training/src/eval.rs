//! Detection quality on labelled windows: event-level precision, recall and F1, the
//! per-window false-positive rate and PR-AUC, per fault type, for any detector that
//! flags elements per window (the graph model at a threshold, the statistical
//! detector, a fixed rule set).
//!
//! Definitions (also in the report):
//! - an *alarm* is a run of consecutive windows in which one element is flagged; it is
//!   true when one of its windows has that element faulty, ignored when all of its
//!   windows are "do not care" for the element (weight 0: a fault's partial first or
//!   last window, a neighbour of a faulty element), false otherwise;
//! - an *event* is a run of consecutive windows in which one element is faulty; it is
//!   detected when the element is flagged in one of them;
//! - a *quiet window* has no faulty and no "do not care" element; the per-window
//!   false-positive rate is the share of quiet windows with any flag;
//! - fault types group *runs* (a scenario with one seed) by the kinds of fault they
//!   inject, so that each type's precision counts the false alarms raised in its runs.

use crate::dataset::{Label, LabelledWindow};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One detector's verdicts: per window (dataset order), a score per node and per link.
#[derive(Debug, Clone, Default)]
pub struct Scores {
    /// Per window, a score per node.
    pub nodes: Vec<Vec<f32>>,
    /// Per window, a score per link.
    pub links: Vec<Vec<f32>>,
}

impl Scores {
    /// The statistical detector's recorded flags, as 0/1 scores.
    pub fn robust(windows: &[LabelledWindow]) -> Self {
        let flags = |ls: &[Label]| ls.iter().map(|l| f32::from(u8::from(l.robust_flag))).collect();
        Scores {
            nodes: windows.iter().map(|w| flags(&w.nodes)).collect(),
            links: windows.iter().map(|w| flags(&w.links)).collect(),
        }
    }

    /// The fixed rule set: CPU above 90%, loss above 5% or mean RTT above 200 ms at
    /// either end of a link. Loss is the counters' (every packet) where both ends
    /// reported, else the probes'.
    pub fn rules(windows: &[LabelledWindow]) -> Self {
        let rtt_limit = (1.0f32 + 200.0).ln();
        let loss = |x: &[f32; crate::EDGE_FEATURES]| if x[3] > 0.5 { x[2] } else { x[4] };
        let end_bad = |x: &[f32; crate::EDGE_FEATURES]| loss(x) > 0.05 || x[6] > rtt_limit;
        Scores {
            nodes: windows
                .iter()
                .map(|w| w.graph.node_x.iter().map(|x| f32::from(u8::from(x[1] > 0.9))).collect())
                .collect(),
            links: windows
                .iter()
                .map(|w| {
                    (0..w.graph.links())
                        .map(|k| {
                            f32::from(u8::from(end_bad(&w.graph.edge_x[2 * k]) || end_bad(&w.graph.edge_x[2 * k + 1])))
                        })
                        .collect()
                })
                .collect(),
        }
    }
}

/// Quality of one detector on one group of runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Runs evaluated.
    pub runs: usize,
    /// Faults (events) in them.
    pub events: usize,
    /// Events detected.
    pub detected: usize,
    /// Alarms on a faulty element.
    pub alarms_true: usize,
    /// Alarms on a healthy one.
    pub alarms_false: usize,
    /// True alarms over all alarms.
    pub precision: f64,
    /// Detected events over all events.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Windows without any fault.
    pub quiet_windows: usize,
    /// Of those, windows with an alarm.
    pub false_positive_windows: usize,
    /// Share of quiet windows with any false flag.
    pub window_fpr: f64,
    /// Average precision over element-windows (weight > 0) ranked by score.
    pub pr_auc: f64,
    /// Mean windows from an event's first window to its first flag (detected events).
    pub mean_detection_windows: f64,
    /// The precision–recall curve as (recall, precision), at most 512 points (plots).
    #[serde(skip)]
    pub curve: Vec<(f64, f64)>,
}

#[derive(Default)]
struct Tally {
    runs: std::collections::BTreeSet<String>,
    events: usize,
    detected: usize,
    delay_sum: usize,
    alarms_true: usize,
    alarms_false: usize,
    quiet: usize,
    fp_windows: usize,
    ranked: Vec<(f32, bool)>,
}

impl Tally {
    fn finish(mut self) -> Quality {
        let (pr_auc, curve) = precision_recall(&mut self.ranked);
        let p = ratio(self.alarms_true, self.alarms_true + self.alarms_false);
        let r = ratio(self.detected, self.events);
        Quality {
            runs: self.runs.len(),
            events: self.events,
            detected: self.detected,
            alarms_true: self.alarms_true,
            alarms_false: self.alarms_false,
            precision: p,
            recall: r,
            f1: if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 },
            quiet_windows: self.quiet,
            false_positive_windows: self.fp_windows,
            window_fpr: ratio(self.fp_windows, self.quiet),
            pr_auc,
            mean_detection_windows: if self.detected > 0 { self.delay_sum as f64 / self.detected as f64 } else { 0.0 },
            curve: thin(curve, 512),
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Average precision (area under the precision–recall curve, step-wise); tied scores
/// are taken together.
pub fn average_precision(ranked: &mut [(f32, bool)]) -> f64 {
    precision_recall(ranked).0
}

/// The points of the precision–recall curve (for the plot), highest score first.
pub fn pr_curve(ranked: &mut [(f32, bool)]) -> Vec<(f64, f64)> {
    precision_recall(ranked).1
}

/// Average precision and the curve's (recall, precision) points, from one sort and one
/// walk down the ranking; tied scores are one step.
fn precision_recall(ranked: &mut [(f32, bool)]) -> (f64, Vec<(f64, f64)>) {
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let positives = ranked.iter().filter(|r| r.1).count();
    let (mut tp, mut seen, mut ap, mut i, mut curve) = (0usize, 0usize, 0f64, 0usize, Vec::new());
    while i < ranked.len() {
        let mut j = i;
        let mut tp_here = 0;
        while j < ranked.len() && ranked[j].0 == ranked[i].0 {
            tp_here += usize::from(ranked[j].1);
            j += 1;
        }
        tp += tp_here;
        seen += j - i;
        if positives > 0 {
            ap += (tp_here as f64 / positives as f64) * (tp as f64 / seen as f64);
        }
        curve.push((tp as f64 / positives.max(1) as f64, tp as f64 / seen as f64));
        i = j;
    }
    (ap, curve)
}

/// Every `len / max`-th point of `points`, and the last.
fn thin(points: Vec<(f64, f64)>, max: usize) -> Vec<(f64, f64)> {
    let step = points.len().div_ceil(max.max(1)).max(1);
    let last = points.last().copied();
    let mut out: Vec<_> = points.into_iter().step_by(step).collect();
    if out.last().copied() != last {
        out.extend(last);
    }
    out
}

/// The fault types of each run: the kinds labelled anywhere in it ("none" if none).
fn run_types(windows: &[LabelledWindow]) -> BTreeMap<String, String> {
    let mut kinds: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for w in windows {
        let e = kinds.entry(w.run.clone()).or_default();
        e.extend(w.nodes.iter().chain(&w.links).filter_map(|l| l.kind.clone()));
    }
    kinds
        .into_iter()
        .map(|(run, k)| {
            let t = if k.is_empty() { "none".to_string() } else { k.into_iter().collect::<Vec<_>>().join("+") };
            (run, t)
        })
        .collect()
}

/// Applies `f` to the tally of fault type `ty` and to the overall one.
fn each(tallies: &mut BTreeMap<String, Tally>, ty: &str, mut f: impl FnMut(&mut Tally)) {
    f(tallies.entry(ty.to_string()).or_default());
    f(tallies.entry("all".to_string()).or_default());
}

/// Scores `scores` at `threshold` against the labels: overall and per fault type.
pub fn evaluate(windows: &[LabelledWindow], scores: &Scores, threshold: f32) -> BTreeMap<String, Quality> {
    let types = run_types(windows);
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    // Per (run, element): the open alarm (has a true window, has a counted window) and
    // the open event (start window, detected at).
    type Open = BTreeMap<(String, bool, usize), (bool, bool)>;
    type Ev = BTreeMap<(String, bool, usize), (i64, Option<i64>)>;
    let (mut alarms, mut events): (Open, Ev) = (BTreeMap::new(), BTreeMap::new());
    let mut last_window: BTreeMap<String, i64> = BTreeMap::new();
    let close_alarm = |t: &mut Tally, (has_true, counted): (bool, bool)| {
        if has_true {
            t.alarms_true += 1;
        } else if counted {
            t.alarms_false += 1;
        }
    };
    let close_event = |t: &mut Tally, (start, at): (i64, Option<i64>)| {
        t.events += 1;
        if let Some(at) = at {
            t.detected += 1;
            t.delay_sum += (at - start) as usize;
        }
    };
    for (wi, w) in windows.iter().enumerate() {
        let ty = types.get(&w.run).cloned().unwrap_or_default();
        // A new run (or a gap) closes everything open in the previous one.
        if last_window.get(&w.run).is_none_or(|&l| l + 1 != w.window) {
            for (key, a) in std::mem::take(&mut alarms) {
                each(&mut tallies, &types[&key.0], |tl| {
                    close_alarm(tl, a);
                });
            }
            for (key, e) in std::mem::take(&mut events) {
                each(&mut tallies, &types[&key.0], |tl| {
                    close_event(tl, e);
                });
            }
        }
        last_window.insert(w.run.clone(), w.window);
        let mut quiet = true;
        let mut any_false_flag = false;
        each(&mut tallies, &ty, |tl| {
            tl.runs.insert(w.run.clone());
        });
        for (is_node, labels, sc) in [(true, &w.nodes, &scores.nodes[wi]), (false, &w.links, &scores.links[wi])] {
            for (i, (l, &s)) in labels.iter().zip(sc.iter()).enumerate() {
                let key = (w.run.clone(), is_node, i);
                let flagged = s >= threshold;
                quiet &= !l.faulty && l.weight > 0.0;
                any_false_flag |= flagged && !l.faulty && l.weight > 0.0;
                if l.weight > 0.0 {
                    each(&mut tallies, &ty, |tl| {
                        tl.ranked.push((s, l.faulty));
                    });
                }
                if flagged {
                    let a = alarms.entry(key.clone()).or_insert((false, false));
                    a.0 |= l.faulty;
                    a.1 |= l.weight > 0.0;
                } else if let Some(a) = alarms.remove(&key) {
                    each(&mut tallies, &ty, |tl| {
                        close_alarm(tl, a);
                    });
                }
                if l.faulty {
                    let e = events.entry(key).or_insert((w.window, None));
                    if flagged && e.1.is_none() {
                        e.1 = Some(w.window);
                    }
                } else if l.weight > 0.0 {
                    if let Some(e) = events.remove(&key) {
                        each(&mut tallies, &ty, |tl| {
                            close_event(tl, e);
                        });
                    }
                }
            }
        }
        if quiet {
            each(&mut tallies, &ty, |tl| {
                tl.quiet += 1;
                tl.fp_windows += usize::from(any_false_flag);
            });
        }
    }
    for (key, a) in alarms {
        each(&mut tallies, &types[&key.0], |tl| {
            close_alarm(tl, a);
        });
    }
    for (key, e) in events {
        each(&mut tallies, &types[&key.0], |tl| {
            close_event(tl, e);
        });
    }
    tallies.into_iter().map(|(k, t)| (k, t.finish())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphWindow;

    fn window(run: &str, i: i64, faulty: bool, flag: bool) -> (LabelledWindow, f32) {
        let mut g = GraphWindow { node_x: vec![[1.0; crate::NODE_FEATURES]; 2], ..Default::default() };
        g.push_link(0, 1, [0.0; crate::EDGE_FEATURES], [0.0; crate::EDGE_FEATURES]);
        let l = Label { faulty, weight: 1.0, kind: faulty.then(|| "link-loss".into()), robust_flag: false };
        let w = LabelledWindow {
            run: run.into(),
            window: i,
            node_names: vec!["a".into(), "b".into()],
            graph: g,
            nodes: vec![Label { weight: 1.0, ..Default::default() }; 2],
            links: vec![l],
            ..Default::default()
        };
        (w, f32::from(u8::from(flag)))
    }

    #[test]
    fn events_alarms_and_quiet_windows_are_counted_as_documented() {
        // Run r: quiet, false flag, quiet, fault (missed), fault (flagged), quiet.
        let plan = [(false, false), (false, true), (false, false), (true, false), (true, true), (false, false)];
        let (mut ws, mut sc) = (Vec::new(), Scores::default());
        for (i, (f, flag)) in plan.iter().enumerate() {
            let (w, s) = window("r", i as i64, *f, *flag);
            ws.push(w);
            sc.nodes.push(vec![0.0, 0.0]);
            sc.links.push(vec![s]);
        }
        let q = &evaluate(&ws, &sc, 0.5)["link-loss"];
        assert_eq!((q.events, q.detected, q.alarms_true, q.alarms_false), (1, 1, 1, 1));
        assert_eq!((q.quiet_windows, q.false_positive_windows), (4, 1));
        assert!((q.f1 - 2.0 * 0.5 / 1.5).abs() < 1e-9);
        assert_eq!(q.mean_detection_windows, 1.0);
    }

    #[test]
    fn average_precision_of_a_perfect_and_a_useless_ranking() {
        assert_eq!(average_precision(&mut [(0.9, true), (0.8, true), (0.1, false)]), 1.0);
        let ap = average_precision(&mut [(0.5, true), (0.5, false), (0.5, false), (0.5, false)]);
        assert!((ap - 0.25).abs() < 1e-9);
    }
}
