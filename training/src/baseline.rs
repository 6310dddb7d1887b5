//! A rolling median/MAD baseline.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// The last `capacity` healthy values of one feature of one element.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RobustBaseline {
    values: VecDeque<f64>,
    capacity: usize,
}

impl RobustBaseline {
    /// An empty baseline keeping the last `capacity` healthy values.
    pub fn new(capacity: usize) -> Self {
        RobustBaseline { values: VecDeque::with_capacity(capacity), capacity: capacity.max(1) }
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether it holds none yet.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Adds a healthy value (the oldest goes once it is full).
    pub fn learn(&mut self, value: f64) {
        if self.values.len() == self.capacity {
            self.values.pop_front();
        }
        self.values.push_back(value);
    }

    /// Median and median absolute deviation, `None` while empty.
    pub fn median_mad(&self) -> Option<(f64, f64)> {
        if self.values.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self.values.iter().copied().collect();
        let med = median(&mut v);
        let mut dev: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
        Some((med, median(&mut dev)))
    }

    /// Robust z-score of `value`: distance from the median in units of
    /// 1.4826·MAD (the normal-consistent scale), never smaller than `scale_floor`.
    pub fn z(&self, value: f64, scale_floor: f64) -> f64 {
        let (med, mad) = self.median_mad().unwrap_or((0.0, 0.0));
        (value - med) / (1.4826 * mad).max(scale_floor)
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad_of_known_values() {
        let mut b = RobustBaseline::new(10);
        for x in [1.0, 2.0, 3.0, 4.0, 100.0] {
            b.learn(x);
        }
        assert_eq!(b.median_mad(), Some((3.0, 1.0)));
        assert!((b.z(4.4826, 0.1) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn keeps_only_the_last_values() {
        let mut b = RobustBaseline::new(3);
        for x in [9.0, 9.0, 9.0, 1.0, 1.0, 1.0] {
            b.learn(x);
        }
        assert_eq!(b.median_mad(), Some((1.0, 0.0)));
    }
}
