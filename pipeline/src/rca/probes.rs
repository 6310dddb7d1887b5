//! Each link end's own probes over the remembered windows, pooled: whether together
//! they lost more than a healthy link loses, by a binomial test.
//!
//! Window by window, a few probes say little: at 30% loss, five probes all come back
//! one window in six, and a rule on single windows waits for an unlucky streak to end.
//! Pooled, twenty probes with four lost are already more than a healthy link explains.
//! The tail sum is ours (a few lines) rather than a statistics crate's, which would
//! bring a linear-algebra dependency for one function.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// Probe loss a healthy link may show: a probe now and then lost to a timeout or a
/// full queue. The pooled test asks whether an end lost more than this.
pub(crate) const HEALTHY_LOSS: f64 = 0.02;
/// How unlikely the pooled losses must be on a healthy link before they count as the
/// end's own evidence of loss.
pub(crate) const SIGNIFICANCE: f64 = 0.005;

/// Probes sent and lost by one link end, per remembered window.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ProbeRecord {
    ends: HashMap<(String, String), VecDeque<(u32, u32)>>,
}

impl ProbeRecord {
    /// Adds one window of `node`'s probes towards `peer`, keeping the last `memory`.
    pub(crate) fn remember(&mut self, node: &str, peer: &str, sent: f64, lost: f64, memory: usize) {
        let q = self.ends.entry((node.to_string(), peer.to_string())).or_default();
        if q.len() == memory {
            q.pop_front();
        }
        // Counts arrive as f64 from the feature SQL; they are whole probes.
        let sent = sent.max(0.0).round() as u32;
        q.push_back((sent, (lost.max(0.0).round() as u32).min(sent)));
    }

    /// (sent, lost) by `node` towards `peer` over the remembered windows.
    pub(crate) fn pooled(&self, node: &str, peer: &str) -> (u32, u32) {
        self.ends
            .get(&(node.to_string(), peer.to_string()))
            .map_or((0, 0), |q| q.iter().fold((0, 0), |(s, l), (ws, wl)| (s + ws, l + wl)))
    }

    /// Whether `node`'s pooled probes towards `peer` lost more than a healthy link would.
    pub(crate) fn lossy(&self, node: &str, peer: &str) -> bool {
        let (sent, lost) = self.pooled(node, peer);
        lost > 0 && at_least(lost, sent, HEALTHY_LOSS) <= SIGNIFICANCE
    }
}

/// P(X ≥ k) for X ~ Binomial(n, p), summed in log space (n may be thousands).
pub(crate) fn at_least(k: u32, n: u32, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    // ln C(n, k) p^k q^(n-k), from k upwards: each term is the last times
    // (n - i + 1) / i * p / q.
    let mut ln_term = ln_choose(n, k) + f64::from(k) * lp + f64::from(n - k) * lq;
    let mut sum = 0.0;
    for i in k..=n {
        if i > k {
            ln_term += f64::from(n - i + 1).ln() - f64::from(i).ln() + lp - lq;
        }
        let term = ln_term.exp();
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum.min(1.0)
}

fn ln_choose(n: u32, k: u32) -> f64 {
    let k = k.min(n - k);
    (0..k).map(|i| f64::from(n - i).ln() - f64::from(i + 1).ln()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_matches_hand_computed_values() {
        // P(X >= 1 | 30, 0.02) = 1 - 0.98^30.
        assert!((at_least(1, 30, 0.02) - (1.0 - 0.98f64.powi(30))).abs() < 1e-12);
        // P(X >= 2 | 3, 0.5) = (3 + 1) / 8.
        assert!((at_least(2, 3, 0.5) - 0.5).abs() < 1e-12);
        assert_eq!((at_least(0, 5, 0.3), at_least(6, 5, 0.3)), (1.0, 0.0));
        assert!(at_least(300, 10_000, 0.02) < 1e-3 && at_least(300, 10_000, 0.02) > 0.0);
    }

    #[test]
    fn four_lost_of_twenty_is_loss_and_one_of_thirty_is_not() {
        let mut r = ProbeRecord::default();
        for lost in [1.0, 0.0, 2.0, 1.0] {
            r.remember("a", "b", 5.0, lost, 6);
        }
        assert_eq!(r.pooled("a", "b"), (20, 4));
        assert!(r.lossy("a", "b"), "a healthy link loses 4 of 20 with p {:.4}", at_least(4, 20, HEALTHY_LOSS));
        for _ in 0..6 {
            r.remember("b", "a", 5.0, 0.0, 6);
        }
        r.remember("b", "a", 5.0, 1.0, 6);
        assert_eq!(r.pooled("b", "a"), (30, 1), "six windows remembered");
        assert!(!r.lossy("b", "a") && !r.lossy("x", "y"));
    }
}
