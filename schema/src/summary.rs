//! The run summary written by `demo`, `lab run` and `eval` (`--summary-json`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// One injected fault and what the loop made of it.
pub struct FaultOutcome {
    /// The fault's index in the scenario.
    pub id: usize,
    /// The fault kind, e.g. `link-loss`.
    pub kind: String,
    /// The element the fault was injected on, e.g. `n5-n6` or `n3`.
    pub target: String,
    /// When it was injected (ms from the scenario's start).
    pub injected_at_ms: i64,
    /// When an incident about it was confirmed; None: never.
    pub detected_at_ms: Option<i64>,
    /// What the pipeline blamed, e.g. `link n5-n6`.
    pub root_cause: Option<String>,
    /// Whether that root cause named the fault's element and kind.
    pub root_cause_correct: bool,
    /// The confidence the pipeline gave it.
    pub confidence: Option<f64>,
    /// Commands sent for it.
    pub actions: usize,
    /// From the probe traffic itself, never from the pipeline's records.
    pub traffic_restored_at_ms: Option<i64>,
    /// Detection delay (ms).
    pub mttd_ms: Option<i64>,
    /// Injection to restored traffic (ms).
    pub mttr_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
/// Percentiles of a set of durations (ms).
pub struct Percentiles {
    /// The median.
    pub p50: i64,
    /// The 95th percentile.
    pub p95: i64,
    /// The largest.
    pub max: i64,
}

impl Percentiles {
    /// Nearest-rank percentiles; all zero for no values.
    pub fn of(values: &[i64]) -> Self {
        if values.is_empty() {
            return Percentiles::default();
        }
        let mut v = values.to_vec();
        v.sort_unstable();
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Percentiles { p50: rank(0.5), p95: rank(0.95), max: v[v.len() - 1] }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
/// Root-cause accuracy over a run's faults.
pub struct RcaAccuracy {
    /// Share of faults whose top-ranked cause was right.
    pub ac1: f64,
    /// Share of faults whose right cause was among the top three.
    pub ac3: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// What `demo`, `lab run` and `eval` write with `--summary-json`.
pub struct RunSummary {
    /// The scenario's name.
    pub scenario: String,
    /// `sim` or `lab`.
    pub mode: String,
    /// The topology seed.
    pub seed: u64,
    /// Each injected fault.
    pub faults: Vec<FaultOutcome>,
    /// Incidents that matched no injected fault.
    pub false_incidents: usize,
    /// Detection delays over the detected faults.
    pub mttd_ms: Percentiles,
    /// Restoration times over the restored faults.
    pub mttr_ms: Percentiles,
    /// Root-cause accuracy.
    pub rca: RcaAccuracy,
    /// Route changes the repairs made.
    pub routes_changed: usize,
    /// Times a (node, destination) route changed back to a next hop it had left
    /// within the same run while its fault was still active.
    pub route_flaps: usize,
}

#[cfg(test)]
mod tests {
    use super::Percentiles;

    #[test]
    fn nearest_rank_percentiles() {
        let p = Percentiles::of(&[5, 1, 3, 2, 4, 6, 7, 8, 9, 10]);
        assert_eq!((p.p50, p.p95, p.max), (5, 10, 10));
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
        assert_eq!(Percentiles::of(&[42]).p95, 42);
    }
}
