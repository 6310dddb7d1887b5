//! Calibrated root-cause confidences.
//!
//! Localisation scores its hypotheses by how much independent evidence backs them (two
//! corroborating ends score higher than one claimant). Those scores rank well but are
//! not probabilities. A calibration maps each root-cause kind's score to how often such
//! a hypothesis was right on training scenarios: isotonic regression (pool adjacent
//! violators, so a higher score never maps lower) with add-one smoothing, so no
//! hypothesis is ever certain, a lone symptom least of all. `eval rca --fit-calibration`
//! fits it; the default in `models/default/rca-calibration.json` is embedded in the
//! binary and reproducible with the command in BENCHMARKS.md.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The calibration shipped in the binary.
pub const BUILTIN_CALIBRATION: &str = include_str!("../../models/default/rca-calibration.json");

/// Training hypotheses a step needs before it may lift a score: a step fitted on fewer
/// can lower a score, never raise it (three lucky one-sided claims said 0.8 for every
/// link-loss score up to 0.7).
pub(crate) const MIN_STEP_SAMPLES: usize = 10;

/// One step of a kind's map: scores up to `upto` map to `p`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The step covers evidence scores up to this.
    pub upto: f64,
    /// The confidence those scores map to.
    pub p: f64,
    /// Training hypotheses behind this step.
    pub n: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
/// Evidence score to confidence, per root-cause kind: isotonic steps fitted on
/// evaluation runs (`eval rca --fit-calibration`).
pub struct Calibration {
    /// What it was fitted on, for the record.
    pub fitted_on: String,
    /// The steps of each kind, by score.
    pub kinds: BTreeMap<String, Vec<Step>>,
}

impl Calibration {
    /// `rca.calibration`: "builtin", a JSON file, or "" for raw scores.
    pub fn configured(setting: &str) -> Result<Option<Self>, String> {
        let text = match setting {
            "" => return Ok(None),
            "builtin" => BUILTIN_CALIBRATION.to_string(),
            path => std::fs::read_to_string(Path::new(path)).map_err(|e| format!("rca.calibration {path}: {e}"))?,
        };
        serde_json::from_str(&text).map(Some).map_err(|e| format!("rca.calibration {setting}: {e}"))
    }

    /// The calibrated confidence of a `kind` hypothesis scored `raw`; kinds never seen
    /// in training keep their score, and a step fitted on fewer than
    /// ten hypotheses may lower it, never lift it. Above the highest score seen in training there is
    /// no evidence about how often it is right: stronger evidence keeps at least its own
    /// score (a witnessed crash must not inherit the odds of an unwitnessed one).
    pub fn apply(&self, kind: &str, raw: f64) -> f64 {
        let Some(steps) = self.kinds.get(kind).filter(|s| !s.is_empty()) else { return raw };
        match steps.iter().position(|s| raw <= s.upto) {
            // Too few samples to lift: at most the score itself, but never below the
            // well-sampled step beneath (a higher score is at least as often right).
            Some(i) if steps[i].n < MIN_STEP_SAMPLES => {
                let below = if i > 0 { steps[i - 1].p } else { 0.0 };
                steps[i].p.min(raw.max(below))
            }
            Some(i) => steps[i].p,
            None => steps[steps.len() - 1].p.max(raw),
        }
    }

    /// Fits a calibration from (kind, raw score, was right) triples.
    pub fn fit(points: &[(String, f64, bool)], fitted_on: &str) -> Self {
        let mut per_kind: BTreeMap<String, Vec<(f64, bool)>> = BTreeMap::new();
        for (k, raw, right) in points {
            per_kind.entry(k.clone()).or_default().push((*raw, *right));
        }
        let kinds = per_kind.into_iter().map(|(k, mut v)| {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            (k, isotonic(&v))
        });
        Calibration { fitted_on: fitted_on.into(), kinds: kinds.collect() }
    }
}

/// Pool adjacent violators over points sorted by score; equal scores form one block.
/// Each block's probability is (right + 1) / (n + 2).
fn isotonic(sorted: &[(f64, bool)]) -> Vec<Step> {
    // (upper score, right, n)
    let mut blocks: Vec<(f64, usize, usize)> = Vec::new();
    for &(raw, right) in sorted {
        match blocks.last_mut() {
            Some(b) if b.0 == raw => {
                b.1 += usize::from(right);
                b.2 += 1;
            }
            _ => blocks.push((raw, usize::from(right), 1)),
        }
        while blocks.len() >= 2 {
            let (x, y) = (blocks[blocks.len() - 2], blocks[blocks.len() - 1]);
            if (x.1 as f64 / x.2 as f64) <= (y.1 as f64 / y.2 as f64) {
                break;
            }
            blocks.pop();
            let last = blocks.last_mut().expect("two blocks");
            *last = (y.0, x.1 + y.1, x.2 + y.2);
        }
    }
    // Smoothing pulls small blocks towards 1/2, which can undo the order PAV made (11 of
    // 11 → 0.92, then 1 of 1 → 0.67); a running maximum restores it.
    let mut floor = 0.0f64;
    blocks
        .into_iter()
        .map(|(upto, right, n)| {
            floor = floor.max((right as f64 + 1.0) / (n as f64 + 2.0));
            Step { upto, p: floor, n }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[(f64, bool)]) -> Vec<(String, f64, bool)> {
        v.iter().map(|&(r, ok)| ("link-loss".to_string(), r, ok)).collect()
    }

    #[test]
    fn fitted_map_is_monotone_smoothed_and_never_certain() {
        // Score 0.5 right 1 in 4, 0.7 right 0 in 2 (a violation: pooled with 0.5),
        // 0.9 right 10 in 10.
        let mut v = vec![(0.5, true), (0.5, false), (0.5, false), (0.5, false), (0.7, false), (0.7, false)];
        v.extend((0..10).map(|_| (0.9, true)));
        let c = Calibration::fit(&pts(&v), "test");
        let steps = &c.kinds["link-loss"];
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert!((c.apply("link-loss", 0.5) - 2.0 / 8.0).abs() < 1e-12);
        assert_eq!(c.apply("link-loss", 0.5), c.apply("link-loss", 0.7));
        assert!((c.apply("link-loss", 0.9) - 11.0 / 12.0).abs() < 1e-12);
        assert_eq!(c.apply("link-loss", 0.95), 0.95, "above the largest score seen: its own score");
        assert!(c.apply("link-loss", 0.88) > 0.9, "within the top step: its probability");
        assert_eq!(c.apply("node-crash", 0.42), 0.42, "unseen kinds keep their score");
        // Smoothing must not break the order: 11 of 11 right, then 1 of 1.
        let mut v: Vec<(f64, bool)> = (0..11).map(|_| (0.65, true)).collect();
        v.push((0.85, true));
        let c = Calibration::fit(&pts(&v), "test");
        assert!(c.apply("link-loss", 0.85) >= c.apply("link-loss", 0.65));
    }

    #[test]
    fn a_step_fitted_on_few_samples_never_lifts_a_score() {
        // Three one-sided claims at 0.5, all right: 0.8 after smoothing, on 3 samples.
        let mut v = vec![(0.5, true), (0.5, true), (0.5, true)];
        v.extend((0..12).map(|_| (0.9, true)));
        let c = Calibration::fit(&pts(&v), "test");
        assert_eq!(c.kinds["link-loss"][0].n, 3);
        assert_eq!(c.apply("link-loss", 0.5), 0.5, "not lifted to 0.8 on three samples");
        assert!(c.apply("link-loss", 0.9) > 0.9, "twelve samples may lift");
        // The shipped calibration: no one-sided link-loss claim (0.5-0.7) is lifted.
        let builtin = Calibration::configured("builtin").unwrap().unwrap();
        for raw in [0.5, 0.55, 0.6, 0.7] {
            assert!(builtin.apply("link-loss", raw) <= raw, "{raw}");
        }
    }

    #[test]
    fn the_builtin_calibration_parses() {
        let c = Calibration::configured("builtin").expect("parses").expect("present");
        assert!(!c.kinds.is_empty());
        assert!(c.kinds.values().flatten().all(|s| s.p > 0.0 && s.p < 1.0));
    }
}
