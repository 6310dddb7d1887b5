//! The generated stress family: meshes and faults nobody hand-picked.
//!
//! Each run draws, from its own seed, a mesh of 50–300 nodes in one of the generated
//! shapes and one fault case. The cases cycle so that every family of the issue that
//! asked for them appears in every ten runs: one-way loss, two-way loss, delay, a
//! flapping link, an agent that goes silent beside a lossy link, liars on one, two or
//! all of their links, and two or three faults overlapping. Targets are drawn among
//! the elements that carry probe flows (a fault nobody routes through proves nothing)
//! and, for real faults, whose loss leaves the mesh connected (else there is no repair
//! to judge).

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use x0_schema::{
    Direction, Element, Fault, FaultKind, Scenario, Shape, Topology, TopologySpec, TrafficPairs, TrafficSpec,
};

/// The fault cases, in the order runs cycle through them.
pub const CASES: [&str; 10] = [
    "one-way-loss",
    "two-way-loss",
    "delay",
    "flap",
    "agent-down-beside-loss",
    "liar-1-link",
    "liar-2-links",
    "liar-all-links",
    "two-overlapping",
    "three-overlapping",
];

const SHAPES: [Shape; 4] = [Shape::Grid, Shape::Ring, Shape::RingOfRings, Shape::RandomGeometric];

/// When faults start and how long they last: room before them for baselines, and
/// after them to see routes handed back.
const FAULT_AT: Duration = Duration::from_secs(15);
const RUN: Duration = Duration::from_secs(75);

/// `runs` scenarios drawn from `seed`; run `i` is case `CASES[i % 10]`.
pub fn family(seed: u64, runs: usize) -> Result<Vec<Scenario>> {
    (0..runs).map(|i| one(seed, i)).collect()
}

fn one(seed: u64, i: usize) -> Result<Scenario> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(i as u64));
    let case = CASES[i % CASES.len()];
    let shape = SHAPES[(i / CASES.len() + i) % SHAPES.len()];
    let nodes = rng.gen_range(50..=300);
    // TOML integers are signed 64-bit: keep seeds a file can hold.
    let spec =
        TopologySpec { shape, nodes, seed: rng.gen_range(0..1 << 31), links: vec![], regions: Default::default() };
    let topo = Topology::generate(&spec)?;
    let traffic = TrafficSpec { pairs: TrafficPairs::Count((nodes / 2).clamp(40, 120)), rate_pps: 50 };
    let mut scenario = Scenario {
        name: format!("stress-{i:03}-{case}-{}-{nodes}", shape_name(shape)),
        duration: RUN,
        telemetry_interval: Duration::from_millis(100),
        topology: spec,
        traffic,
        faults: vec![],
    };
    let loaded = Loaded::of(&topo, &scenario);
    let mut draw = Draw { rng: &mut rng, topo: &topo, loaded: &loaded, taken: BTreeSet::new() };
    scenario.faults = draw.case(case)?;
    scenario.validate()?;
    Ok(scenario)
}

fn shape_name(shape: Shape) -> &'static str {
    match shape {
        Shape::Grid => "grid",
        Shape::Ring => "ring",
        Shape::RingOfRings => "ring-of-rings",
        Shape::RandomGeometric => "rgg",
        Shape::Explicit => "explicit",
    }
}

/// Elements by the baseline probe flows crossing them, busiest first.
struct Loaded {
    links: Vec<(usize, usize)>,
    nodes: Vec<usize>,
}

impl Loaded {
    fn of(topo: &Topology, scenario: &Scenario) -> Self {
        let mut links: HashMap<(usize, usize), usize> = HashMap::new();
        let mut nodes: HashMap<usize, usize> = HashMap::new();
        for (s, d) in topo.flows(scenario) {
            let Some(path) = topo.baseline_path(s, d) else { continue };
            for w in path.windows(2) {
                *links.entry((w[0].min(w[1]), w[0].max(w[1]))).or_default() += 1;
            }
            for &v in &path[1..path.len() - 1] {
                *nodes.entry(v).or_default() += 1;
            }
        }
        Loaded { links: by_load(links), nodes: by_load(nodes) }
    }
}

/// The keys, busiest first (ties by key, so the order is deterministic).
fn by_load<K: Ord + Copy>(load: HashMap<K, usize>) -> Vec<K> {
    let mut v: Vec<(K, usize)> = load.into_iter().collect();
    v.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    v.into_iter().map(|(k, _)| k).collect()
}

struct Draw<'a> {
    rng: &'a mut ChaCha8Rng,
    topo: &'a Topology,
    loaded: &'a Loaded,
    /// Nodes already part of a fault: the next one is drawn away from them.
    taken: BTreeSet<usize>,
}

impl Draw<'_> {
    fn case(&mut self, case: &str) -> Result<Vec<Fault>> {
        let at = FAULT_AT + Duration::from_millis(self.rng.gen_range(0..5_000));
        let lasting = Duration::from_secs(self.rng.gen_range(30..=45));
        Ok(match case {
            "one-way-loss" => {
                let direction = if self.rng.gen() { Direction::Forward } else { Direction::Reverse };
                vec![Fault { direction, ..self.loss(at, lasting)? }]
            }
            "two-way-loss" => vec![self.loss(at, lasting)?],
            "delay" => vec![self.delay(at, lasting)?],
            "flap" => {
                let (a, b) = self.link(true)?;
                let period = Duration::from_secs(self.rng.gen_range(2..=20));
                vec![Fault {
                    period: Some(period),
                    ..self.fault(FaultKind::LinkFlap, self.link_name(a, b), at, lasting)
                }]
            }
            "agent-down-beside-loss" => {
                let loss = self.loss(at, lasting)?;
                let (a, b) = loss.target.split_once('-').expect("a link target");
                let silent = if self.rng.gen() { a } else { b }.to_string();
                let quiet_at = at.saturating_sub(Duration::from_secs(self.rng.gen_range(0..=5)));
                vec![loss.clone(), self.fault(FaultKind::AgentDown, silent, quiet_at, lasting + Duration::from_secs(5))]
            }
            "liar-1-link" => vec![self.liar(Some(1), at, lasting)?],
            "liar-2-links" => vec![self.liar(Some(2), at, lasting)?],
            "liar-all-links" => vec![self.liar(None, at, lasting)?],
            "two-overlapping" => self.overlapping(2, at, lasting)?,
            "three-overlapping" => self.overlapping(3, at, lasting)?,
            other => bail!("unknown stress case {other}"),
        })
    }

    fn fault(&self, kind: FaultKind, target: String, at: Duration, lasting: Duration) -> Fault {
        Fault {
            at,
            kind,
            target,
            loss: None,
            delay: None,
            period: None,
            direction: Direction::Both,
            duration: Some(lasting),
        }
    }

    fn link_name(&self, a: usize, b: usize) -> String {
        format!("{}-{}", self.topo.name(a), self.topo.name(b))
    }

    /// A busy link away from the faults drawn so far; `repairable`: one whose loss
    /// leaves the mesh connected.
    fn link(&mut self, repairable: bool) -> Result<(usize, usize)> {
        let free: Vec<(usize, usize)> = self
            .loaded
            .links
            .iter()
            .copied()
            .filter(|&(a, b)| self.far(a) && self.far(b))
            .filter(|&(a, b)| !repairable || self.topo.connected_without(&self.topo.link_element(a, b)))
            .take(8)
            .collect();
        let &(a, b) = free.choose(self.rng).ok_or_else(|| anyhow::anyhow!("no free busy link left"))?;
        self.taken.extend([a, b]);
        // Either end may be written first (it names the forward direction).
        Ok(if self.rng.gen() { (a, b) } else { (b, a) })
    }

    /// A busy transit node away from the faults drawn so far whose crash leaves the
    /// mesh connected.
    fn node(&mut self) -> Result<usize> {
        let free: Vec<usize> = self
            .loaded
            .nodes
            .iter()
            .copied()
            .filter(|&n| self.far(n))
            .filter(|&n| self.topo.connected_without(&Element::node(self.topo.name(n))))
            .take(8)
            .collect();
        let &n = free.choose(self.rng).ok_or_else(|| anyhow::anyhow!("no free busy node left"))?;
        self.taken.insert(n);
        Ok(n)
    }

    /// Whether `n` is at least two hops from every node of an earlier fault.
    fn far(&self, n: usize) -> bool {
        !self.taken.contains(&n) && !self.topo.neighbours(n).iter().any(|m| self.taken.contains(m))
    }

    fn loss(&mut self, at: Duration, lasting: Duration) -> Result<Fault> {
        let (a, b) = self.link(true)?;
        let loss = (self.rng.gen_range(0.05..=0.5f64) * 100.0).round() / 100.0;
        Ok(Fault { loss: Some(loss), ..self.fault(FaultKind::LinkLoss, self.link_name(a, b), at, lasting) })
    }

    fn delay(&mut self, at: Duration, lasting: Duration) -> Result<Fault> {
        let (a, b) = self.link(true)?;
        let delay = Duration::from_millis(self.rng.gen_range(20..=200));
        Ok(Fault { delay: Some(delay), ..self.fault(FaultKind::LinkDelay, self.link_name(a, b), at, lasting) })
    }

    /// A node that lies about `links` of its links (None: all of them).
    fn liar(&mut self, links: Option<usize>, at: Duration, lasting: Duration) -> Result<Fault> {
        let node = self.node()?;
        let name = self.topo.name(node).to_string();
        let mut peers: Vec<usize> = self.topo.neighbours(node).to_vec();
        peers.shuffle(self.rng);
        let target = match links {
            None => name.clone(),
            Some(k) => {
                peers.iter().take(k).map(|&p| format!("{name}-{}", self.topo.name(p))).collect::<Vec<_>>().join(",")
            }
        };
        let loss = (self.rng.gen_range(0.3..=0.9f64) * 100.0).round() / 100.0;
        Ok(Fault { loss: Some(loss), ..self.fault(FaultKind::ByzantineReporter, target, at, lasting) })
    }

    /// `k` real faults of mixed kinds, each starting within 8 s of the first and
    /// lasting long enough that all of them overlap.
    fn overlapping(&mut self, k: usize, at: Duration, lasting: Duration) -> Result<Vec<Fault>> {
        let mut out = Vec::new();
        for j in 0..k {
            let start = at + Duration::from_millis(self.rng.gen_range(0..8_000) * j as u64);
            let last = lasting.saturating_sub(start - at).max(Duration::from_secs(20));
            let f = match self.rng.gen_range(0..5) {
                0 => {
                    let (a, b) = self.link(true)?;
                    self.fault(FaultKind::LinkDown, self.link_name(a, b), start, last)
                }
                1 => Fault { direction: Direction::Forward, ..self.loss(start, last)? },
                2 => self.loss(start, last)?,
                3 => self.delay(start, last)?,
                _ => {
                    let n = self.node()?;
                    self.fault(FaultKind::NodeCrash, self.topo.name(n).to_string(), start, last)
                }
            };
            out.push(f);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_family_is_deterministic_valid_and_covers_every_case_and_shape() {
        let a = family(7, 20).unwrap();
        let b = family(7, 20).unwrap();
        assert_eq!(a, b, "one seed, one family");
        for s in &a {
            assert!((50..=300).contains(&s.topology.nodes), "{}", s.name);
            let topo = Topology::generate(&s.topology).unwrap();
            topo.resolve_faults(s).unwrap_or_else(|e| panic!("{}: {e}", s.name));
        }
        for case in CASES {
            assert!(a.iter().any(|s| s.name.contains(case)), "{case} missing");
        }
        for shape in SHAPES {
            assert!(a.iter().any(|s| s.topology.shape == shape), "{shape:?} missing");
        }
        let liar_links = |s: &Scenario| s.faults[0].lies_about().len();
        assert_eq!(a.iter().filter(|s| s.name.contains("liar-1-link")).map(liar_links).max(), Some(1));
        assert_eq!(a.iter().filter(|s| s.name.contains("liar-2-links")).map(liar_links).max(), Some(2));
    }
}
