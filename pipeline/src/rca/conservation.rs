//! Flow conservation around a node that cannot speak for itself: its other
//! neighbours, witnesses for a link into it.
//!
//! A link to a silent node has one end that speaks, so a claim of loss on it is one
//! reporter's word. But what crosses the link into the silent node and goes on
//! through it reaches the node's other neighbours, and their receive counters are
//! theirs. When the link loses, they receive less from the silent node than they used
//! to while sending it as much as before. Traffic a router takes in must leave it:
//! the idea is WATCHERS' (Bradley et al., "Detecting disruptive routers", 1998),
//! which checks exactly this balance at each router with its neighbours' counters.
//!
//! The witness sees the direction into the silent node only (what it loses on the way
//! out towards the claimant never reaches a third counter), and only traffic that
//! transits: loss on traffic the silent node itself sinks is invisible to it. So it
//! corroborates some claims and contradicts none.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Smoothing of an end's usual packets per window (exponentially weighted mean and
/// variance).
const ALPHA: f64 = 0.25;
/// Quiet windows an end's mean needs before it is a baseline.
const WARM: u32 = 4;
/// Quiet windows in a row before a disturbed peer's span ends: a gray fault's symptoms
/// come and go, and the windows between them are the fault's too.
const HOLD: u32 = 4;
/// Standard deviations a count must stray before it is a witness's evidence (the test
/// is repeated every window a claim lasts, so a wide margin).
const SIGMAS: f64 = 4.0;
/// The least variance of a count per window: no counter is that steady.
const MIN_VARIANCE: f64 = 1.0;

/// A count per window: its usual value and spread over quiet windows.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
struct Usual {
    mean: f64,
    variance: f64,
}

impl Usual {
    fn add(&mut self, x: f64, first: bool) {
        if first {
            (self.mean, self.variance) = (x, 0.0);
            return;
        }
        let d = x - self.mean;
        self.mean += ALPHA * d;
        self.variance = (1.0 - ALPHA) * (self.variance + ALPHA * d * d);
    }
}

/// One link end's traffic with its peer, in packets per window.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct EndFlow {
    /// What this end usually sends its peer and receives from it, over windows in which
    /// nothing was wrong on the peer's links.
    tx: Usual,
    rx: Usual,
    quiet_windows: u32,
    /// Since the peer's links were last disturbed: quiet windows in a row.
    quiet_streak: u32,
    /// Since the peer's links were first disturbed (until a hold of quiet): windows,
    /// packets sent and received.
    span: u32,
    span_tx: f64,
    span_rx: f64,
    /// The window (by count) this end last reported, and whether its probes to the
    /// peer came back then.
    last: u64,
    reaches: bool,
}

/// The other neighbours' testimony about a link into a silent node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Witness {
    /// The neighbours whose receive counters fell short.
    pub nodes: Vec<String>,
    /// Packets they usually receive from the silent node over the span, and did.
    pub usual: f64,
    pub received: f64,
    pub windows: u32,
}

/// Each link end's usual traffic with its peer, keyed by peer, then by end.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct FlowBalance {
    by_peer: HashMap<String, BTreeMap<String, EndFlow>>,
    window: u64,
}

/// What chance may add to or take from a sum of counts whose variance is `variance`
/// and usual value `usual`: [`SIGMAS`] standard deviations, plus 1% for a mean that
/// drifts.
fn noise(variance: f64, usual: f64) -> f64 {
    SIGMAS * variance.sqrt() + 0.01 * usual
}

impl FlowBalance {
    /// Adds one window: each end's (node, peer, tx, rx, whether its probes to the peer
    /// came back) with its receive count known.
    /// `disturbed` holds the nodes with a symptom on some link this window: their
    /// neighbours' counts towards them go into the span, not the usual. `heard`: the
    /// nodes that reported. While a peer is silent its neighbours' counts are the only
    /// account of it, so its usual is kept from when it spoke, and a span that began
    /// lasts until it speaks again.
    pub(crate) fn observe<'a>(
        &mut self,
        ends: impl Iterator<Item = (&'a str, &'a str, f64, f64, bool)>,
        disturbed: &HashSet<&str>,
        heard: &HashSet<&str>,
    ) {
        self.window += 1;
        for (node, peer, tx, rx, reaches) in ends {
            // Looked up before inserting: a window's every link end passes here, and
            // owned keys for each would be two allocations per end per window.
            if !self.by_peer.get(peer).is_some_and(|ends| ends.contains_key(node)) {
                self.by_peer.entry(peer.to_string()).or_default().insert(node.to_string(), EndFlow::default());
            }
            let e = self.by_peer.get_mut(peer).and_then(|ends| ends.get_mut(node)).expect("inserted above");
            (e.last, e.reaches) = (self.window, reaches);
            e.quiet_streak = if disturbed.contains(peer) { 0 } else { e.quiet_streak.saturating_add(1) };
            let silent = !heard.contains(peer);
            if silent && e.span == 0 && e.quiet_streak > 0 {
                continue;
            }
            if e.quiet_streak == 0 || (e.span > 0 && (silent || e.quiet_streak < HOLD)) {
                e.span += 1;
                e.span_tx += tx;
                e.span_rx += rx;
                continue;
            }
            (e.span, e.span_tx, e.span_rx) = (0, 0.0, 0.0);
            let first = e.quiet_windows == 0;
            e.tx.add(tx, first);
            e.rx.add(rx, first);
            e.quiet_windows = e.quiet_windows.saturating_add(1);
        }
    }

    /// Whether `silent`'s other neighbours (all but `claimant`) that still reach it
    /// (their probes to it come back: it forwards, it has not crashed) receive from it
    /// significantly less than usual since its links were disturbed, while sending it
    /// as much as usual, by no more than `claimant` usually sends it: the loss
    /// `claimant` claims on its link into `silent`, seen downstream.
    pub(crate) fn witness(&self, silent: &str, claimant: &str) -> Option<Witness> {
        let ends = self.by_peer.get(silent)?;
        let current = |e: &&EndFlow| e.last == self.window && e.quiet_windows >= WARM && e.span > 0;
        let claimed = ends.get(claimant).filter(current)?;
        let others: Vec<(&String, &EndFlow)> =
            ends.iter().filter(|(n, e)| *n != claimant && current(e) && e.reaches).collect();
        // Over each end's span: the usual sum, its variance, and what was counted.
        let pooled = |usual: &dyn Fn(&EndFlow) -> Usual, counted: &dyn Fn(&EndFlow) -> f64| {
            others.iter().fold((0.0, 0.0, 0.0), |(m, v, c), (_, e)| {
                let (u, n) = (usual(e), f64::from(e.span));
                (m + u.mean * n, v + u.variance.max(MIN_VARIANCE) * n, c + counted(e))
            })
        };
        let (usual_rx, var_rx, rx) = pooled(&|e| e.rx, &|e| e.span_rx);
        let (usual_tx, var_tx, tx) = pooled(&|e| e.tx, &|e| e.span_tx);
        let short = usual_rx - rx;
        // More missing than the claimant's link ever carried in is some other change.
        let most = claimed.tx.mean * f64::from(claimed.span) + noise(var_rx, usual_rx);
        let steady_in = (tx - usual_tx).abs() <= noise(var_tx, usual_tx);
        if short <= noise(var_rx, usual_rx) || short > most || !steady_in {
            return None;
        }
        let nodes = others
            .iter()
            .filter(|(_, e)| e.span_rx < e.rx.mean * f64::from(e.span))
            .map(|(n, _)| n.to_string())
            .collect();
        let windows = others.iter().map(|(_, e)| e.span).max().unwrap_or(0);
        Some(Witness { nodes, usual: usual_rx, received: rx, windows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Window `i` around silent `s`: `x` sends it 100, `y` and `z` each send it
    /// `y_sends`/200 and receive 150 ± 10 from it, less `short` each (what a lossy link
    /// into `s` costs them). `heard`: the nodes that report (all, unless given).
    fn window_heard(b: &mut FlowBalance, i: usize, disturbed: bool, short: f64, y_sends: f64, heard: &[&str]) {
        let jitter = if i.is_multiple_of(2) { 10.0 } else { -10.0 };
        let rx = 150.0 + jitter - short;
        let ends =
            [("x", "s", 100.0, 50.0, false), ("y", "s", y_sends + jitter / 2.0, rx, true), ("z", "s", 200.0, rx, true)];
        let d: HashSet<&str> = if disturbed { ["s"].into() } else { HashSet::new() };
        b.observe(ends.into_iter(), &d, &heard.iter().copied().collect());
    }

    fn window(b: &mut FlowBalance, i: usize, disturbed: bool, short: f64, y_sends: f64) {
        window_heard(b, i, disturbed, short, y_sends, &["s", "x", "y", "z"]);
    }

    fn quiet() -> FlowBalance {
        let mut b = FlowBalance::default();
        (0..12).for_each(|i| window(&mut b, i, false, 0.0, 200.0));
        b
    }

    #[test]
    fn neighbours_receiving_less_through_a_silent_node_witness_its_lossy_link() {
        let mut b = quiet();
        assert_eq!(b.witness("s", "x"), None, "nothing disturbed yet");
        // x's link into s loses 30%: y and z get 15 fewer each a window.
        window(&mut b, 0, true, 15.0, 200.0);
        assert_eq!(b.witness("s", "x"), None, "one window's 30 of 300 is within the counts' spread");
        // The symptoms come and go: the quiet windows between them still count.
        for i in 1..8 {
            window(&mut b, i, i.is_multiple_of(3), 15.0, 200.0);
        }
        let w = b.witness("s", "x").expect("eight windows' 240 of 2,400 is not");
        assert_eq!((&w.nodes[..], w.windows), (&["y".to_string(), "z".to_string()][..], 8));
        assert!((w.usual - 2400.0).abs() < 20.0 && (w.usual - w.received - 240.0).abs() < 20.0, "{w:?}");
    }

    #[test]
    fn no_witness_when_nothing_is_missing_when_less_comes_in_or_when_more_is_missing_than_the_link_carries() {
        let disturbed = |b: &mut FlowBalance, short, y_sends| {
            (0..8).for_each(|i| window(b, i, true, short, y_sends));
            b.witness("s", "x")
        };
        // A liar's claim on a clean link: the neighbours receive what they always did.
        assert_eq!(disturbed(&mut quiet(), 0.0, 200.0), None);
        // Less out of s because less went in (y's traffic moved elsewhere).
        assert_eq!(disturbed(&mut quiet(), 15.0, 150.0), None);
        // 180 a window missing where x only ever sent 100: not x's link.
        assert_eq!(disturbed(&mut quiet(), 90.0, 200.0), None);
        // A crash: nothing comes out of s, and its neighbours' probes to it are lost.
        let mut b = quiet();
        for _ in 0..8 {
            let ends = [("x", "s", 100.0, 0.0, false), ("y", "s", 200.0, 0.0, false), ("z", "s", 200.0, 0.0, false)];
            b.observe(ends.into_iter(), &["s"].into(), &["x", "y", "z"].into());
        }
        assert_eq!(b.witness("s", "x"), None, "no witness that cannot reach s");
        // No baseline, no witness.
        assert_eq!(disturbed(&mut FlowBalance::default(), 15.0, 200.0), None);
        // And after a hold of quiet windows the span is over.
        let mut b = quiet();
        disturbed(&mut b, 15.0, 200.0).expect("witnessed");
        (0..HOLD as usize).for_each(|i| window(&mut b, i, false, 0.0, 200.0));
        assert_eq!(b.witness("s", "x"), None);
    }

    #[test]
    fn a_silent_nodes_usual_is_kept_from_when_it_spoke_and_its_span_lasts_until_it_speaks() {
        let mut b = quiet();
        let silent_window = |b: &mut FlowBalance, i: usize, disturbed: bool, short: f64| {
            window_heard(b, i, disturbed, short, 200.0, &["x", "y", "z"])
        };
        // Silent, and its link slowly lossy before anyone flags it: no usual learnt.
        (0..20).for_each(|i| silent_window(&mut b, i, false, 15.0));
        // Flagged now and then, with many quiet windows between: one span.
        for i in 0..12 {
            silent_window(&mut b, i, i.is_multiple_of(6), 15.0);
        }
        let w = b.witness("s", "x").expect("twelve windows short against the usual from before");
        assert_eq!(w.windows, 12, "{w:?}");
    }
}
