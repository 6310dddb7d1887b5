//! Ground truth: which probe-flow packets the faults cost, and every route change.

use std::collections::HashMap;
use x0_schema::Element;

/// Why a packet was lost or impaired, when it was not random background loss.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Cause {
    /// A faulted element dropped or delayed it.
    At(Element),
    /// Routing dropped it: no route, or a forwarding loop.
    Routing,
}

/// One change of a node's route to a destination (override set or withdrawn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedRouteChange {
    /// ms since the scenario started.
    pub at_ms: i64,
    /// The node whose route changed.
    pub node: String,
    /// The destination.
    pub destination: String,
    /// The effective next hop before and after the change (None: no route).
    pub from: Option<String>,
    /// The next hop after the change (None: no route).
    pub next_hop: Option<String>,
}

/// What the simulator knows that the pipeline must not: the fate of every packet.
#[derive(Debug, Default, Clone)]
pub struct GroundTruth {
    pub(crate) impaired: HashMap<Cause, Vec<u64>>,
    /// Probe packets sent.
    pub packets_sent: u64,
    /// Probe packets delivered.
    pub packets_delivered: u64,
    /// Packets lost to background noise, not to a fault.
    pub packets_lost_noise: u64,
    /// Every route change, in order.
    pub route_changes: Vec<ObservedRouteChange>,
    pub(crate) interval_ms: i64,
}

impl GroundTruth {
    pub(crate) fn record(&mut self, cause: Cause, tick: u64) {
        let ticks = self.impaired.entry(cause).or_default();
        if ticks.last() != Some(&tick) {
            ticks.push(tick);
        }
    }

    /// When traffic stopped suffering from a fault on `element` active during
    /// `[from_ms, until_ms)`: the end of the last tick in that span in which a packet
    /// was lost or impaired at the element or by routing, provided at least
    /// `quiet_ms` of clean traffic followed before `until_ms`. `None` when the fault
    /// never touched traffic or traffic never recovered while it lasted.
    pub fn restored_at_ms(&self, element: &Element, from_ms: i64, until_ms: i64, quiet_ms: i64) -> Option<i64> {
        let (last_at, last_routing) = self.last_impaired_ms(element, from_ms, until_ms);
        let last = last_at?.max(last_routing.unwrap_or(0));
        let restored = last + self.interval_ms.max(1);
        (restored + quiet_ms <= until_ms).then_some(restored)
    }

    /// The start of the last tick in `[from_ms, until_ms)` in which a packet was lost
    /// or impaired at `element`, and the last in which routing lost one (no route, a
    /// loop) anywhere: why traffic was or was not restored.
    pub fn last_impaired_ms(&self, element: &Element, from_ms: i64, until_ms: i64) -> (Option<i64>, Option<i64>) {
        let dt = self.interval_ms.max(1);
        let last = |cause: &Cause| {
            let ticks = self.impaired.get(cause)?;
            ticks.iter().map(|&t| t as i64 * dt).filter(|&ms| ms >= from_ms && ms < until_ms).max()
        };
        (last(&Cause::At(element.clone())), last(&Cause::Routing))
    }

    /// Route changes that put a (node, destination) back on the next hop it left less
    /// than `window_ms` earlier (A → B → A): the route flapped.
    pub fn route_flaps(&self, window_ms: i64) -> usize {
        self.flap_times(window_ms).len()
    }

    /// When each flap of [`route_flaps`](Self::route_flaps) happened, ms since the start.
    pub fn flap_times(&self, window_ms: i64) -> Vec<i64> {
        self.flaps(window_ms).into_iter().map(|(_, back)| back.at_ms).collect()
    }

    /// Each flap as the change away and the change back.
    pub fn flaps(&self, window_ms: i64) -> Vec<(&ObservedRouteChange, &ObservedRouteChange)> {
        let mut last: HashMap<(&str, &str), &ObservedRouteChange> = HashMap::new();
        let mut flaps = Vec::new();
        for c in &self.route_changes {
            let key = (c.node.as_str(), c.destination.as_str());
            if let Some(prev) = last.insert(key, c) {
                if c.at_ms - prev.at_ms < window_ms && c.next_hop == prev.from {
                    flaps.push((prev, c));
                }
            }
        }
        flaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(at_ms: i64, from: &str, to: &str) -> ObservedRouteChange {
        ObservedRouteChange {
            at_ms,
            node: "a".into(),
            destination: "d".into(),
            from: Some(from.into()),
            next_hop: Some(to.into()),
        }
    }

    #[test]
    fn a_flap_is_a_quick_return_not_a_second_reroute() {
        let mut t =
            GroundTruth { route_changes: vec![change(0, "x", "y"), change(3_000, "y", "z")], ..Default::default() };
        assert_eq!(t.route_flaps(10_000), 0, "x → y → z is two reroutes");
        t.route_changes.push(change(5_000, "z", "y"));
        assert_eq!(t.route_flaps(10_000), 1, "y → z → y within 10 s");
        t.route_changes.push(change(30_000, "y", "z"));
        assert_eq!(t.route_flaps(10_000), 1, "a return after the window is not a flap");
    }
}
