//! The robust statistical detector.

use crate::RobustBaseline;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Recorded on every incident this detector scores.
pub const MODEL_VERSION: &str = "robust-mad-v1";

/// A feature the detector scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Feature {
    /// Packets the sender transmitted that the receiver did not count (both ends' counters).
    LossRatio,
    /// Active probes that got no answer.
    ProbeLoss,
    /// Mean probe round-trip time, µs.
    Rtt,
    /// CPU busy fraction.
    Cpu,
}

impl Feature {
    /// The feature's name in history tables.
    pub fn name(self) -> &'static str {
        match self {
            Feature::LossRatio => "loss_ratio",
            Feature::ProbeLoss => "probe_loss",
            Feature::Rtt => "rtt_avg_us",
            Feature::Cpu => "cpu",
        }
    }
}

/// Thresholds of the detector; defaults live in `config/default.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Robust z-score above which a value is anomalous.
    pub z_threshold: f64,
    /// Healthy windows kept per element and feature.
    pub baseline_windows: usize,
    /// Absolute floors: a value must also pass these.
    pub min_loss_ratio: f64,
    /// At least this many packets lost in the window.
    pub min_lost_packets: f64,
    /// At least this share of probes lost.
    pub min_probe_loss: f64,
    /// At least this many probes sent in the window.
    pub min_probes: f64,
    /// Round-trip time at least this much above the baseline (µs).
    pub min_rtt_increase_us: f64,
    /// CPU busy share at least this.
    pub min_cpu: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            z_threshold: 6.0,
            baseline_windows: 120,
            min_loss_ratio: 0.03,
            min_lost_packets: 4.0,
            min_probe_loss: 0.3,
            min_probes: 3.0,
            min_rtt_increase_us: 5_000.0,
            min_cpu: 0.9,
        }
    }
}

/// Per element and feature baselines plus the scoring rule.
#[derive(Debug, Serialize, Deserialize)]
pub struct RobustDetector {
    config: DetectorConfig,
    baselines: HashMap<(String, Feature), RobustBaseline>,
}

impl RobustDetector {
    /// A detector with empty baselines.
    pub fn new(config: DetectorConfig) -> Self {
        RobustDetector { config, baselines: HashMap::new() }
    }

    /// Scores by `config` from now on, keeping the baselines learned so far (a job
    /// restored from its checkpoint with new thresholds).
    pub fn reconfigure(&mut self, config: DetectorConfig) {
        self.config = config;
    }

    /// Its thresholds.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Scores one value of one element's feature. `support` is how much evidence is
    /// behind it (packets sent for loss, probes sent for probe loss; ignored
    /// otherwise). Returns the robust z-score when anomalous. Healthy values feed the
    /// baseline; anomalous ones never do, so a long fault cannot become "normal".
    pub fn score(&mut self, element: &str, feature: Feature, value: f64, support: f64) -> Option<f64> {
        let c = &self.config;
        let baseline = self
            .baselines
            .entry((element.to_string(), feature))
            .or_insert_with(|| RobustBaseline::new(c.baseline_windows));
        let (floor_ok, scale_floor) = match feature {
            Feature::LossRatio => (value >= c.min_loss_ratio && value * support >= c.min_lost_packets, 0.005),
            Feature::ProbeLoss => (value >= c.min_probe_loss && support >= c.min_probes, 0.05),
            Feature::Rtt => {
                let med = baseline.median_mad().map_or(value, |(m, _)| m);
                (baseline.len() >= 5 && value - med >= c.min_rtt_increase_us, 500.0)
            }
            Feature::Cpu => (value >= c.min_cpu, 0.02),
        };
        let z = baseline.z(value, scale_floor);
        if floor_ok && z >= c.z_threshold {
            Some(z)
        } else {
            baseline.learn(value);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lost_packet_on_a_quiet_link_is_not_an_anomaly() {
        let mut d = RobustDetector::new(DetectorConfig::default());
        assert_eq!(d.score("a>b", Feature::LossRatio, 0.5, 2.0), None);
    }

    #[test]
    fn sustained_loss_stays_anomalous() {
        let mut d = RobustDetector::new(DetectorConfig::default());
        for _ in 0..30 {
            d.score("a>b", Feature::LossRatio, 0.0, 400.0);
        }
        for _ in 0..200 {
            assert!(d.score("a>b", Feature::LossRatio, 0.3, 400.0).is_some());
        }
    }

    #[test]
    fn rtt_needs_a_baseline_and_a_real_increase() {
        let mut d = RobustDetector::new(DetectorConfig::default());
        assert_eq!(d.score("a>b", Feature::Rtt, 50_000.0, 0.0), None, "cold start: no baseline yet");
        for _ in 0..10 {
            d.score("a>b", Feature::Rtt, 2_000.0, 0.0);
        }
        assert_eq!(d.score("a>b", Feature::Rtt, 3_000.0, 0.0), None);
        assert!(d.score("a>b", Feature::Rtt, 45_000.0, 0.0).is_some());
    }
}
