//! Event-time tumbling windows with a watermark and allowed lateness.
//!
//! Each source (a Kafka partition) has its own newest event time; the watermark is the
//! oldest of those, minus the allowed lateness (bounded out-of-orderness per source, as
//! in Flink and Arroyo). One partition racing ahead while the job catches up on a
//! backlog therefore cannot close windows the others still have rows for. A source
//! more than `idle_ns` behind the newest is idle and stops holding the watermark back. A window `[start, start + size)` closes
//! once the watermark reaches its end; a row for an already closed window is late: it
//! is counted, never silently dropped and never re-opens a window. A sample's `ts` is
//! the end of the interval it measured, so it belongs to the window holding `ts - 1ns`.

use std::collections::{BTreeMap, HashMap};
use x0_schema::{LinkSample, NodeSample};

/// The rows of one window.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WindowRows {
    /// Link samples of the window.
    pub links: Vec<LinkSample>,
    /// Node samples of the window.
    pub nodes: Vec<NodeSample>,
}

/// A window the watermark has passed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedWindow {
    /// The window's start (ns since the epoch).
    pub start: i64,
    /// Its end.
    pub end: i64,
    /// Its samples.
    pub rows: WindowRows,
}

/// Open windows and the watermark.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Windows {
    size: i64,
    lateness: i64,
    idle: i64,
    /// Newest event time per source.
    sources: HashMap<i32, i64>,
    max_ts: Option<i64>,
    /// Every window ending at or before this has closed.
    closed_until: i64,
    open: BTreeMap<i64, WindowRows>,
    late_rows: u64,
}

impl Windows {
    /// Tumbling windows of `size_ns`, closing `lateness_ns` behind the watermark; a
    /// source `idle_ns` behind the newest event time no longer holds the watermark back.
    pub fn new(size_ns: i64, lateness_ns: i64, idle_ns: i64) -> Self {
        Windows {
            size: size_ns.max(1),
            lateness: lateness_ns.max(0),
            idle: idle_ns.max(0),
            sources: HashMap::new(),
            max_ts: None,
            closed_until: i64::MIN,
            open: BTreeMap::new(),
            late_rows: 0,
        }
    }

    /// Windows as `[window]` in the configuration sets them.
    pub fn configured(w: &crate::WindowConfig) -> Self {
        Self::new(
            w.size.as_nanos() as i64,
            w.allowed_lateness.as_nanos() as i64,
            w.idle_source_timeout.as_nanos() as i64,
        )
    }

    /// The window length.
    pub fn size_ns(&self) -> i64 {
        self.size
    }

    /// The current watermark, if any row has been seen: the oldest newest-event-time
    /// among the sources that are not idle, minus the allowed lateness.
    pub fn watermark(&self) -> Option<i64> {
        let newest = self.max_ts?;
        let horizon = newest.saturating_sub(self.idle);
        let oldest = self.sources.values().copied().filter(|&t| t >= horizon).min().unwrap_or(newest);
        Some(oldest.saturating_sub(self.lateness))
    }

    /// Newest event time seen from any source.
    pub fn newest(&self) -> Option<i64> {
        self.max_ts
    }

    /// Rows that arrived for windows already closed.
    pub fn late_rows(&self) -> u64 {
        self.late_rows
    }

    /// Windows not yet closed.
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    fn start_of(&self, ts: i64) -> i64 {
        (ts - 1).div_euclid(self.size) * self.size
    }

    /// Whether a row at `ts` would be late.
    pub fn is_late(&self, ts: i64) -> bool {
        self.start_of(ts) + self.size <= self.closed_until
    }

    /// Adds rows from `source`; returns how many were late (counted, not added).
    pub fn insert(&mut self, source: i32, links: Vec<LinkSample>, nodes: Vec<NodeSample>) -> u64 {
        let before = self.late_rows;
        if let Some(newest) = links.iter().map(|s| s.ts).chain(nodes.iter().map(|s| s.ts)).max() {
            let entry = self.sources.entry(source).or_insert(newest);
            *entry = (*entry).max(newest);
        }
        for s in links {
            if let Some(w) = self.slot(s.ts) {
                w.links.push(s);
            }
        }
        for s in nodes {
            if let Some(w) = self.slot(s.ts) {
                w.nodes.push(s);
            }
        }
        self.late_rows - before
    }

    fn slot(&mut self, ts: i64) -> Option<&mut WindowRows> {
        if self.is_late(ts) {
            self.late_rows += 1;
            return None;
        }
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
        let start = self.start_of(ts);
        Some(self.open.entry(start).or_default())
    }

    /// Closes every window the watermark has passed, oldest first.
    pub fn close_ready(&mut self) -> Vec<ClosedWindow> {
        let Some(wm) = self.watermark() else { return vec![] };
        self.close_until(wm)
    }

    /// Closes everything (end of input).
    pub fn close_all(&mut self) -> Vec<ClosedWindow> {
        self.close_until(i64::MAX)
    }

    fn close_until(&mut self, wm: i64) -> Vec<ClosedWindow> {
        let mut out = Vec::new();
        while let Some((&start, _)) = self.open.first_key_value() {
            let end = start.saturating_add(self.size);
            if end > wm {
                break;
            }
            let rows = self.open.remove(&start).expect("key just seen");
            self.closed_until = self.closed_until.max(end);
            out.push(ClosedWindow { start, end, rows });
        }
        // Windows with no rows still advance the boundary, so late rows stay late.
        let boundary = wm.div_euclid(self.size).saturating_mul(self.size);
        if wm != i64::MAX {
            self.closed_until = self.closed_until.max(boundary);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use x0_schema::{NodeSample, Provenance, SCHEMA_VERSION};

    fn node(ts: i64) -> NodeSample {
        NodeSample {
            ts,
            node: "n".into(),
            schema_version: SCHEMA_VERSION,
            provenance: Provenance::Sim,
            cpu: 0.1,
            mem: 0.1,
            softirq: 0.0,
            queue_pressure: 0.0,
            agent_ok: true,
        }
    }

    #[test]
    fn closes_when_the_watermark_passes_the_end() {
        let mut w = Windows::new(100, 20, 1_000);
        w.insert(0, vec![], vec![node(50), node(100)]);
        assert!(w.close_ready().is_empty(), "watermark 80 < end 100");
        w.insert(0, vec![], vec![node(121)]);
        let closed = w.close_ready();
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].start, closed[0].end, closed[0].rows.nodes.len()), (0, 100, 2));
    }

    #[test]
    fn late_rows_are_counted_not_added() {
        let mut w = Windows::new(100, 0, 1_000);
        w.insert(0, vec![], vec![node(50), node(301)]);
        assert_eq!(w.close_ready().len(), 1, "[0,100) closes, [300,400) stays open");
        // [0,100) closed; [100,200) never had rows but the watermark passed it.
        assert_eq!(w.insert(0, vec![], vec![node(60), node(150), node(350)]), 2);
        assert_eq!(w.late_rows(), 2);
        assert_eq!(w.open_windows(), 1);
    }

    /// Regression: while catching up on a backlog one partition raced seconds ahead,
    /// the global watermark closed windows the other partitions still had rows for,
    /// and half-filled windows read as packet loss.
    #[test]
    fn a_source_racing_ahead_does_not_close_windows_for_the_others() {
        let mut w = Windows::new(100, 0, 1_000);
        w.insert(1, vec![], vec![node(50)]);
        w.insert(2, vec![], vec![node(60)]);
        w.insert(1, vec![], vec![node(500)]);
        assert!(w.close_ready().is_empty(), "source 2 is still at 60");
        assert_eq!(w.insert(2, vec![], vec![node(90)]), 0, "not late");
        w.insert(2, vec![], vec![node(350)]);
        assert_eq!(w.close_ready().len(), 1, "[0,100) closes once both passed it");
    }

    #[test]
    fn an_idle_source_stops_holding_the_watermark() {
        let mut w = Windows::new(100, 0, 1_000);
        w.insert(1, vec![], vec![node(50)]);
        w.insert(2, vec![], vec![node(60)]);
        w.insert(1, vec![], vec![node(2_000)]);
        assert!(!w.close_ready().is_empty(), "source 2 is 1.9 s behind: idle");
    }

    proptest! {
        /// Against a simple model: every row lands in exactly one window that contains
        /// it, or is counted late exactly when its window had already closed.
        #[test]
        fn every_row_is_windowed_once_or_counted_late(ts in proptest::collection::vec(1i64..5_000, 1..200), size in 1i64..700, lateness in 0i64..500) {
            let mut w = Windows::new(size, lateness, i64::MAX);
            let mut closed = Vec::new();
            let mut late = 0;
            for &t in &ts {
                let was_late = w.is_late(t);
                let counted = w.insert(0, vec![], vec![node(t)]);
                prop_assert_eq!(counted == 1, was_late);
                late += counted;
                for c in w.close_ready() {
                    prop_assert!(c.end <= w.watermark().unwrap());
                    closed.push(c);
                }
            }
            closed.extend(w.close_all());
            let windowed: usize = closed.iter().map(|c| c.rows.nodes.len()).sum();
            prop_assert_eq!(windowed as u64 + late, ts.len() as u64);
            for c in &closed {
                prop_assert_eq!(c.end - c.start, size);
                for s in &c.rows.nodes {
                    prop_assert!(s.ts > c.start && s.ts - 1 < c.end);
                }
            }
            let mut starts: Vec<_> = closed.iter().map(|c| c.start).collect();
            starts.dedup();
            prop_assert_eq!(starts.len(), closed.len(), "a window closed twice");
        }
    }
}
