//! The simulated mesh: routing tables, packet forwarding, faults, telemetry.

use crate::effects::{Effects, PlacedFault};
use crate::truth::{Cause, GroundTruth, ObservedRouteChange};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use x0_schema::{
    Element, LinkSample, NodeId, NodeSample, Provenance, RouteEntry, Scenario, TelemetryBatch, Topology, TopologyError,
    SCHEMA_VERSION,
};

/// Knobs of the simulation that are not part of the scenario.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Random loss on every link, independent of faults.
    pub background_loss: f64,
    /// Active link probes each node sends each neighbour per telemetry interval.
    pub link_probes_per_interval: u32,
    /// Extra loss of transit packets at an overloaded node.
    pub overload_loss: f64,
    /// Event time of the scenario's start, ns since epoch.
    pub start_ns: i64,
    /// The actuators handle every command message twice (a broker redelivering), to
    /// prove a duplicate is answered, never applied again.
    pub deliver_commands_twice: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            background_loss: 0.0005,
            link_probes_per_interval: 1,
            overload_loss: 0.08,
            start_ns: 0,
            deliver_commands_twice: false,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct LinkCounters {
    tx: u64,
    rx: u64,
    drops: u64,
    probes_sent: u64,
    probes_lost: u64,
    rtt_sum_us: f64,
    rtt_max_us: f64,
    rtt_n: u64,
}

#[derive(Debug, Clone, Copy)]
struct Route {
    primary: NodeId,
    backup: Option<NodeId>,
}

#[derive(Debug, Clone)]
struct Flow {
    src: NodeId,
    dst: NodeId,
    credit: f64,
}

const PACKET_BYTES: u64 = 200;

/// A deterministic simulated mesh; see the crate docs.
#[derive(Debug)]
pub struct SimMesh {
    topo: Topology,
    scenario: Scenario,
    options: SimOptions,
    faults: Vec<PlacedFault>,
    rng: ChaCha8Rng,
    tick: u64,
    interval: Duration,
    rate_pps: f64,
    flows: Vec<Flow>,
    baseline: HashMap<NodeId, Vec<Option<NodeId>>>,
    overrides: Vec<BTreeMap<NodeId, Route>>,
    drained: HashSet<(NodeId, NodeId)>,
    counters: Vec<BTreeMap<NodeId, LinkCounters>>,
    link_delay_us: HashMap<(NodeId, NodeId), f64>,
    truth: GroundTruth,
}

impl SimMesh {
    /// A mesh for `scenario`: its topology, traffic and faults.
    pub fn new(scenario: &Scenario, options: SimOptions) -> Result<Self, TopologyError> {
        let topo = Topology::generate(&scenario.topology)?;
        let elements = topo.resolve_faults(scenario)?;
        let faults = scenario.faults.iter().zip(&elements).map(|(f, e)| PlacedFault::place(&topo, f, e)).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(scenario.topology.seed);
        let link_delay_us = topo.links().iter().map(|&l| (l, rng.gen_range(500.0..3000.0))).collect();
        let flows = topo.flows(scenario).into_iter().map(|(src, dst)| Flow { src, dst, credit: 0.0 }).collect();
        let n = topo.len();
        let counters =
            (0..n).map(|i| topo.neighbours(i).iter().map(|&p| (p, LinkCounters::default())).collect()).collect();
        Ok(SimMesh {
            interval: scenario.telemetry_interval,
            rate_pps: f64::from(scenario.traffic.rate_pps),
            truth: GroundTruth { interval_ms: scenario.telemetry_interval.as_millis() as i64, ..Default::default() },
            scenario: scenario.clone(),
            topo,
            options,
            faults,
            rng,
            tick: 0,
            flows,
            baseline: HashMap::new(),
            overrides: vec![BTreeMap::new(); n],
            drained: HashSet::new(),
            counters,
            link_delay_us,
        })
    }

    /// The mesh's topology.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Routes in force that differ from the baseline (a controller's overrides), over
    /// every node.
    pub fn overrides_in_force(&self) -> usize {
        self.overrides.iter().map(BTreeMap::len).sum()
    }

    /// How it was set up.
    pub fn options(&self) -> &SimOptions {
        &self.options
    }

    /// The scenario it runs.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The element each scenario fault was placed on, in scenario order.
    pub fn fault_elements(&self) -> Vec<Element> {
        self.faults.iter().map(|f| f.element.clone()).collect()
    }

    /// What really happened to every probe packet and route.
    pub fn truth(&self) -> &GroundTruth {
        &self.truth
    }

    /// Simulated time elapsed.
    pub fn elapsed(&self) -> Duration {
        self.interval * self.tick as u32
    }

    /// Event time now, ns since epoch.
    pub fn now_ns(&self) -> i64 {
        self.options.start_ns + self.elapsed().as_nanos() as i64
    }

    /// Whether the scenario's duration has passed.
    pub fn finished(&self) -> bool {
        self.elapsed() >= self.scenario.duration
    }

    /// Advances one telemetry interval and returns what each live node reports.
    pub fn step(&mut self) -> Vec<(String, TelemetryBatch)> {
        let t = self.elapsed();
        let effects = Effects::at(&self.faults, t);
        self.forward_flows(&effects);
        self.probe_links(&effects);
        self.tick += 1;
        self.collect(&effects)
    }

    fn baseline_next(&mut self, at: NodeId, dst: NodeId) -> Option<NodeId> {
        let topo = &self.topo;
        self.baseline.entry(dst).or_insert_with(|| topo.baseline_next_hops(dst))[at]
    }

    /// The next hop the node's table gives, with kernel-style failover: a route whose
    /// primary has no carrier (or is drained) uses its backup.
    fn next_hop(&mut self, at: NodeId, dst: NodeId, effects: &Effects) -> Option<NodeId> {
        let usable = |n: NodeId, s: &Self| effects.carrier(at, n) && !s.drained.contains(&(at, n));
        match self.overrides[at].get(&dst).copied() {
            Some(Route { primary, backup }) => {
                if usable(primary, self) {
                    Some(primary)
                } else {
                    backup.filter(|&b| usable(b, self)).or(Some(primary))
                }
            }
            None => self.baseline_next(at, dst),
        }
    }

    fn forward_flows(&mut self, effects: &Effects) {
        let dt = self.interval.as_secs_f64();
        for f in 0..self.flows.len() {
            let flow = &mut self.flows[f];
            flow.credit += self.rate_pps * dt;
            let packets = flow.credit.floor() as u64;
            flow.credit -= packets as f64;
            let (src, dst) = (flow.src, flow.dst);
            for _ in 0..packets {
                self.truth.packets_sent += 1;
                self.send_packet(src, dst, effects);
            }
        }
    }

    fn send_packet(&mut self, src: NodeId, dst: NodeId, effects: &Effects) {
        let tick = self.tick;
        let endpoint = |n: NodeId| n == src || n == dst;
        let mut at = src;
        // A loop-free path visits each node at most once: more hops than nodes is a
        // forwarding loop (a fixed cap would call a detour around a long ring a loop).
        for _ in 0..=self.topo.len() {
            if effects.crashed.contains(&at) {
                if !endpoint(at) {
                    self.truth.record(Cause::At(Element::node(self.topo.name(at))), tick);
                }
                return;
            }
            if at == dst {
                self.truth.packets_delivered += 1;
                return;
            }
            let Some(next) = self.next_hop(at, dst, effects) else {
                self.truth.record(Cause::Routing, tick);
                return;
            };
            let link = self.topo.link_element(at, next);
            if !effects.carrier(at, next) {
                self.counter(at, next).drops += 1;
                self.truth.record(Cause::At(link), tick);
                return;
            }
            self.counter(at, next).tx += 1;
            if self.rng.gen::<f64>() < self.options.background_loss {
                self.truth.packets_lost_noise += 1;
                return;
            }
            if let Some(&p) = effects.loss.get(&(at, next)) {
                if self.rng.gen::<f64>() < p {
                    self.truth.record(Cause::At(link), tick);
                    return;
                }
            }
            if effects.delay.contains_key(&(at, next)) {
                self.truth.record(Cause::At(link), tick);
            }
            self.counter(next, at).rx += 1;
            if effects.overloaded.contains(&next) && next != dst {
                let node = Element::node(self.topo.name(next));
                self.truth.record(Cause::At(node), tick);
                if self.rng.gen::<f64>() < self.options.overload_loss {
                    self.counter(next, at).drops += 1;
                    return;
                }
            }
            at = next;
        }
        self.truth.record(Cause::Routing, tick);
    }

    fn counter(&mut self, node: NodeId, peer: NodeId) -> &mut LinkCounters {
        self.counters[node].get_mut(&peer).expect("counters exist for every link end")
    }

    /// Each node probes each neighbour; a probe needs both directions and a live peer.
    fn probe_links(&mut self, effects: &Effects) {
        let per = self.options.link_probes_per_interval;
        for &(a, b) in self.topo.links().to_vec().iter() {
            for (x, y) in [(a, b), (b, a)] {
                if effects.crashed.contains(&x) {
                    continue;
                }
                let base = self.link_delay_us[&(a, b)];
                for _ in 0..per {
                    let lost = !effects.carrier(x, y)
                        || effects.crashed.contains(&y)
                        || self.lost_one_way(x, y, effects)
                        || self.lost_one_way(y, x, effects)
                        || (effects.overloaded.contains(&y) && self.rng.gen::<f64>() < self.options.overload_loss);
                    let c = self.counter(x, y);
                    c.probes_sent += 1;
                    if lost {
                        c.probes_lost += 1;
                        continue;
                    }
                    let extra = effects.delay.get(&(x, y)).copied().unwrap_or(0.0)
                        + effects.delay.get(&(y, x)).copied().unwrap_or(0.0);
                    let overload = if effects.overloaded.contains(&y) { 20_000.0 } else { 0.0 };
                    let jitter = self.rng.gen_range(0.0..200.0);
                    let rtt = 2.0 * base + extra + overload + jitter;
                    let c = self.counter(x, y);
                    c.rtt_sum_us += rtt;
                    c.rtt_n += 1;
                    c.rtt_max_us = c.rtt_max_us.max(rtt);
                }
            }
        }
    }

    fn lost_one_way(&mut self, x: NodeId, y: NodeId, effects: &Effects) -> bool {
        let p = self.options.background_loss + effects.loss.get(&(x, y)).copied().unwrap_or(0.0);
        self.rng.gen::<f64>() < p
    }

    /// Turns this interval's counters into samples (and resets them). Crashed nodes
    /// and nodes whose agent is down say nothing; lying nodes inflate the loss they report.
    fn collect(&mut self, effects: &Effects) -> Vec<(String, TelemetryBatch)> {
        let ts = self.now_ns();
        let mut out = Vec::with_capacity(self.topo.len());
        for node in 0..self.topo.len() {
            let counters = std::mem::take(&mut self.counters[node]);
            self.counters[node] = counters.keys().map(|&p| (p, LinkCounters::default())).collect();
            if effects.crashed.contains(&node) || effects.mute.contains(&node) {
                continue;
            }
            let name = self.topo.name(node).to_string();
            let links = counters
                .into_iter()
                .map(|(peer, mut c)| {
                    if let Some(p) = effects.lie(node, peer) {
                        c.probes_lost = c.probes_lost.max((c.probes_sent as f64 * p).round() as u64);
                        c.rx = (c.rx as f64 * (1.0 - p)) as u64;
                    }
                    LinkSample {
                        ts,
                        node: name.clone(),
                        peer: self.topo.name(peer).to_string(),
                        iface: format!("eth-{}", self.topo.name(peer)),
                        schema_version: SCHEMA_VERSION,
                        provenance: Provenance::Sim,
                        oper_up: effects.carrier(node, peer),
                        tx_packets: c.tx,
                        rx_packets: c.rx,
                        tx_bytes: c.tx * PACKET_BYTES,
                        rx_bytes: c.rx * PACKET_BYTES,
                        drops: c.drops,
                        errors: 0,
                        tcp_retransmits: 0,
                        probes_sent: c.probes_sent,
                        probes_lost: c.probes_lost,
                        rtt_avg_us: if c.rtt_n > 0 { c.rtt_sum_us / c.rtt_n as f64 } else { 0.0 },
                        rtt_max_us: c.rtt_max_us,
                    }
                })
                .collect();
            let busy = effects.overloaded.contains(&node);
            let noise = self.rng.gen_range(-0.04..0.04);
            let sample = NodeSample {
                ts,
                node: name.clone(),
                schema_version: SCHEMA_VERSION,
                provenance: Provenance::Sim,
                cpu: if busy { 0.97 } else { 0.2 + noise },
                mem: 0.45 + noise / 2.0,
                softirq: if busy { 0.45 } else { 0.02 + noise.abs() / 4.0 },
                queue_pressure: if busy { 0.9 } else { 0.05 },
                agent_ok: true,
            };
            out.push((name, TelemetryBatch { links, nodes: vec![sample] }));
        }
        out
    }

    // ---- the routing table, as the simulated actuator target sees it ----

    pub(crate) fn node_id(&self, name: &str) -> Option<NodeId> {
        self.topo.id(name)
    }

    pub(crate) fn set_route(&mut self, node: NodeId, dst: NodeId, primary: NodeId, backup: Option<NodeId>) {
        let before = self.table_next(node, dst);
        self.overrides[node].insert(dst, Route { primary, backup });
        self.log_change(node, dst, before);
    }

    pub(crate) fn withdraw_route(&mut self, node: NodeId, dst: NodeId) {
        let before = self.table_next(node, dst);
        if self.overrides[node].remove(&dst).is_some() {
            self.log_change(node, dst, before);
        }
    }

    /// The next hop the node's table holds for `dst` (ignoring carrier state).
    fn table_next(&mut self, node: NodeId, dst: NodeId) -> Option<NodeId> {
        match self.overrides[node].get(&dst) {
            Some(r) => Some(r.primary),
            None => self.baseline_next(node, dst),
        }
    }

    pub(crate) fn set_drained(&mut self, node: NodeId, peer: NodeId, drained: bool) {
        if drained {
            self.drained.insert((node, peer));
        } else {
            self.drained.remove(&(node, peer));
        }
    }

    /// Logs a route change if the table's next hop actually moved.
    fn log_change(&mut self, node: NodeId, dst: NodeId, before: Option<NodeId>) {
        let after = self.table_next(node, dst);
        if after == before {
            return;
        }
        let name = |n: Option<NodeId>, t: &Topology| n.map(|n| t.name(n).to_string());
        let change = ObservedRouteChange {
            at_ms: self.elapsed().as_millis() as i64,
            node: self.topo.name(node).to_string(),
            destination: self.topo.name(dst).to_string(),
            from: name(before, &self.topo),
            next_hop: name(after, &self.topo),
        };
        self.truth.route_changes.push(change);
    }

    pub(crate) fn routes_of(&self, node: NodeId) -> Vec<RouteEntry> {
        self.overrides[node]
            .iter()
            .map(|(&dst, r)| RouteEntry {
                destination: self.topo.name(dst).to_string(),
                next_hop: self.topo.name(r.primary).to_string(),
                backup: r.backup.map(|b| self.topo.name(b).to_string()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(fault: &str) -> Scenario {
        Scenario::from_toml_str(&format!(
            "name='t'\nduration='10s'\ntelemetry_interval='100ms'\n[topology]\nshape='grid'\nnodes=16\nseed=7\n[traffic]\npairs=24\nrate_pps=50\n{fault}"
        ))
        .unwrap()
    }

    #[test]
    fn deterministic_for_a_seed() {
        let s = scenario("[[fault]]\nat='2s'\nkind='link-loss'\ntarget='auto'\nloss=0.3");
        let run = || {
            let mut m = SimMesh::new(&s, SimOptions::default()).unwrap();
            let mut out = Vec::new();
            while !m.finished() {
                out.push(m.step());
            }
            (out, m.truth().packets_delivered)
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn every_live_node_reports_every_link_end() {
        let mut m = SimMesh::new(&scenario(""), SimOptions::default()).unwrap();
        let out = m.step();
        assert_eq!(out.len(), 16);
        assert_eq!(out.iter().map(|(_, b)| b.links.len()).sum::<usize>(), 2 * 24);
        assert!(out.iter().all(|(_, b)| b.validate().is_ok()));
    }

    #[test]
    fn a_hard_link_failure_blackholes_until_rerouted() {
        let s = scenario("[[fault]]\nat='1s'\nkind='link-down'\ntarget='auto'");
        let mut m = SimMesh::new(&s, SimOptions { background_loss: 0.0, ..Default::default() }).unwrap();
        while !m.finished() {
            m.step();
        }
        let e = m.fault_elements()[0].clone();
        assert!(m.truth().packets_delivered < m.truth().packets_sent);
        assert_eq!(m.truth().restored_at_ms(&e, 1000, 10_000, 500), None, "nothing rerouted, nothing restored");
    }

    #[test]
    fn a_backup_next_hop_fails_over_on_carrier_loss() {
        let s = scenario("[[fault]]\nat='1s'\nkind='link-down'\ntarget='n5-n6'");
        let mut m = SimMesh::new(&s, SimOptions { background_loss: 0.0, ..Default::default() }).unwrap();
        // n5 → n7 normally goes n5-n6-n7; give it a backup via n1 before the fault.
        let (n5, n6, n1, n7) = (5, 6, 1, 7);
        m.set_route(n5, n7, n6, Some(n1));
        let effects = Effects::at(&m.faults, Duration::from_secs(2));
        assert_eq!(m.next_hop(n5, n7, &effects), Some(n1));
    }
}
