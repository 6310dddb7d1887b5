//! The scenario file: a mesh, its probe traffic and the faults to inject. Shared by
//! the simulator, the demo, the lab and the evaluation.

use crate::RegionsSpec;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// A scenario: a mesh, the traffic across it, and the faults injected into it. One file
/// drives the simulator, the demo, the kernel lab and evaluation alike.
pub struct Scenario {
    /// Names the scenario in summaries and history.
    pub name: String,
    #[serde(with = "humantime_serde")]
    /// How long the scenario runs.
    pub duration: Duration,
    #[serde(with = "humantime_serde", default = "default_interval")]
    /// How often every node reports telemetry.
    pub telemetry_interval: Duration,
    /// The mesh.
    pub topology: TopologySpec,
    #[serde(default)]
    /// The probe flows that measure outage and restoration.
    pub traffic: TrafficSpec,
    #[serde(default, rename = "fault")]
    /// The faults, in any order.
    pub faults: Vec<Fault>,
}

fn default_interval() -> Duration {
    Duration::from_millis(100)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
/// How a generated mesh is laid out.
pub enum Shape {
    /// A square-ish grid, each node linked to its up to four neighbours.
    Grid,
    /// One ring.
    Ring,
    /// Rings of rings: small rings joined by a core ring.
    RingOfRings,
    /// Nodes placed at random in the unit square, linked within a radius (kept connected).
    RandomGeometric,
    /// The links listed in the file.
    Explicit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// The `[topology]` section.
pub struct TopologySpec {
    /// The layout.
    pub shape: Shape,
    /// Number of nodes (generated shapes).
    #[serde(default)]
    pub nodes: usize,
    #[serde(default)]
    /// Seed of the generated layout and of `auto` fault targets.
    pub seed: u64,
    /// Links of an explicit topology, as node-name pairs.
    #[serde(default)]
    pub links: Vec<[String; 2]>,
    /// Regions for several job instances (see [`crate::Regions`]): a count, cut
    /// automatically, or the nodes of each; 1 (the default): not split.
    #[serde(default, skip_serializing_if = "RegionsSpec::is_single")]
    pub regions: RegionsSpec,
}

/// Which node pairs carry probe flows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TrafficPairs {
    /// This many random node pairs.
    Count(usize),
    /// The literal string "all": every ordered pair.
    All(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// The `[traffic]` section.
pub struct TrafficSpec {
    /// Which node pairs carry a probe flow.
    pub pairs: TrafficPairs,
    /// Packets per second of each flow.
    pub rate_pps: u32,
}

impl Default for TrafficSpec {
    fn default() -> Self {
        TrafficSpec { pairs: TrafficPairs::Count(24), rate_pps: 50 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
/// What a fault does.
pub enum FaultKind {
    /// Both ends of a link lose carrier.
    LinkDown,
    /// A share of a link's packets is dropped (`loss`).
    LinkLoss,
    /// A link's packets are delayed (`delay`).
    LinkDelay,
    /// A link goes down and up every half `period`.
    LinkFlap,
    /// A node stops: every link of it down, its agent silent.
    NodeCrash,
    /// A node's CPU is saturated; what it forwards slows.
    NodeOverload,
    /// A node (or one of its link ends) reports loss that is not there.
    ByzantineReporter,
    /// The node's agent stops reporting (restart, upgrade, lost its broker) while the
    /// node keeps forwarding: telemetry disappears, the network does not. Nothing
    /// should be rerouted.
    AgentDown,
}

impl FaultKind {
    /// The name used in scenario files and summaries, e.g. `link-loss`.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::LinkDown => "link-down",
            FaultKind::LinkLoss => "link-loss",
            FaultKind::LinkDelay => "link-delay",
            FaultKind::LinkFlap => "link-flap",
            FaultKind::NodeCrash => "node-crash",
            FaultKind::NodeOverload => "node-overload",
            FaultKind::ByzantineReporter => "byzantine-reporter",
            FaultKind::AgentDown => "agent-down",
        }
    }

    /// Whether the fault's target is a link (else a node).
    pub fn targets_link(self) -> bool {
        matches!(self, FaultKind::LinkDown | FaultKind::LinkLoss | FaultKind::LinkDelay | FaultKind::LinkFlap)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// Which way a link fault acts.
pub enum Direction {
    #[default]
    /// Both directions.
    Both,
    /// a → b only.
    Forward,
    /// b → a only.
    Reverse,
}

/// A fault target as written: `"auto"`, a link `"a-b"` or a node `"a"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultTarget {
    /// Chosen from the seed among the elements carrying the most probe flows.
    Auto,
    /// The link between two named nodes.
    Link(String, String),
    /// A named node.
    Node(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// One `[[fault]]`.
pub struct Fault {
    #[serde(with = "humantime_serde")]
    /// When it starts, from the scenario's start.
    pub at: Duration,
    /// What it does.
    pub kind: FaultKind,
    #[serde(default = "auto")]
    /// `a-b` (a link), `a` (a node) or `auto`.
    pub target: String,
    /// link-loss: probability in 0..1 that a packet is lost.
    #[serde(default)]
    pub loss: Option<f64>,
    /// link-delay: added one-way delay.
    #[serde(default, with = "humantime_serde")]
    pub delay: Option<Duration>,
    /// link-flap: a full down+up cycle.
    #[serde(default, with = "humantime_serde")]
    pub period: Option<Duration>,
    #[serde(default)]
    /// Which way a link fault acts.
    pub direction: Direction,
    /// Omitted: until the end of the scenario.
    #[serde(default, with = "humantime_serde")]
    pub duration: Option<Duration>,
}

fn auto() -> String {
    "auto".into()
}

impl Fault {
    /// The target as written, parsed by the fault's kind. A byzantine reporter's target
    /// is the lying node, however many of its link ends it lies about.
    pub fn parsed_target(&self) -> FaultTarget {
        if self.target == "auto" {
            return FaultTarget::Auto;
        }
        if self.kind == FaultKind::ByzantineReporter {
            let first = self.target.split(',').next().unwrap_or_default();
            let liar = first.split_once('-').map_or(first, |(a, _)| a);
            return FaultTarget::Node(liar.trim().to_string());
        }
        match (self.kind.targets_link(), self.target.split_once('-')) {
            (true, Some((a, b))) => FaultTarget::Link(a.into(), b.into()),
            _ => FaultTarget::Node(self.target.clone()),
        }
    }

    /// The peers a byzantine reporter lies about, from a target of link ends
    /// (`a-b`, or `a-b,a-c`: `a` lies about its links to `b` and `c` only); empty: it lies
    /// about all of its links (a target that is just the node).
    pub fn lies_about(&self) -> Vec<String> {
        if self.kind != FaultKind::ByzantineReporter {
            return vec![];
        }
        self.target.split(',').filter_map(|end| end.split_once('-').map(|(_, b)| b.trim().to_string())).collect()
    }

    /// When the fault stops, if it does.
    pub fn end(&self) -> Option<Duration> {
        self.duration.map(|d| self.at + d)
    }
}

/// Why a scenario file is unusable. All problems are collected, not just the first.
#[derive(Debug, Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    /// The file could not be read.
    Io {
        /// The file.
        path: String,
        #[source]
        /// What the operating system said.
        source: std::io::Error,
    },
    #[error("scenario is not valid TOML for the scenario format: {0}")]
    /// The file is not a scenario (TOML or field types).
    Parse(String),
    #[error("scenario has {} problem(s):\n  - {}", .0.len(), .0.join("\n  - "))]
    /// Values that parse but do not make sense, every one of them.
    Invalid(Vec<String>),
}

impl Scenario {
    /// Parses and checks a scenario from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// The scenario as a scenario file's TOML (what [`from_toml_str`](Self::from_toml_str) reads back).
    pub fn to_toml(&self) -> Result<String, ScenarioError> {
        toml::to_string(self).map_err(|e| ScenarioError::Parse(e.to_string()))
    }

    /// Reads, parses and checks a scenario file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Io { path: path.display().to_string(), source })?;
        Self::from_toml_str(&text)
    }

    /// Checks everything that does not need the generated topology.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let mut problems = Vec::new();
        if self.telemetry_interval.is_zero() {
            problems.push("telemetry_interval must be positive".to_string());
        }
        if self.duration < self.telemetry_interval {
            problems.push("duration is shorter than one telemetry interval".to_string());
        }
        match self.topology.shape {
            Shape::Explicit if self.topology.links.is_empty() => {
                problems.push("explicit topology without links".into())
            }
            Shape::Explicit => {
                for [a, b] in &self.topology.links {
                    if a.contains('-') || b.contains('-') || a.is_empty() || b.is_empty() || a == b {
                        problems.push(format!(
                            "bad explicit link [{a:?}, {b:?}]: names must be distinct, non-empty, without '-'"
                        ));
                    }
                }
            }
            _ if self.topology.nodes < 3 => {
                problems.push(format!("{} nodes is too few (at least 3)", self.topology.nodes))
            }
            _ => {}
        }
        if let TrafficPairs::All(s) = &self.traffic.pairs {
            if s != "all" {
                problems.push(format!("traffic.pairs must be a number or \"all\", not {s:?}"));
            }
        }
        for (i, f) in self.faults.iter().enumerate() {
            if f.at >= self.duration {
                problems.push(format!("fault {i} starts at {:?}, after the scenario ends", f.at));
            }
            if f.kind == FaultKind::ByzantineReporter && f.target.contains('-') {
                let liars: std::collections::BTreeSet<&str> =
                    f.target.split(',').map(|end| end.split_once('-').map_or(end, |(a, _)| a).trim()).collect();
                if liars.len() != 1 || f.target.split(',').any(|end| !end.contains('-')) {
                    problems.push(format!(
                        "fault {i}: a byzantine reporter's target is a node, or its link ends `a-b,a-c` (one liar), not {:?}",
                        f.target
                    ));
                }
            }
            match f.kind {
                FaultKind::LinkLoss | FaultKind::ByzantineReporter => match f.loss {
                    Some(p) if (0.0..=1.0).contains(&p) => {}
                    Some(p) => problems.push(format!("fault {i}: loss {p} is not in 0..1")),
                    None if f.kind == FaultKind::LinkLoss => {
                        problems.push(format!("fault {i}: link-loss needs `loss`"))
                    }
                    None => {}
                },
                FaultKind::LinkDelay if f.delay.is_none() => {
                    problems.push(format!("fault {i}: link-delay needs `delay`"))
                }
                FaultKind::LinkFlap if f.period.is_none_or(|p| p.is_zero()) => {
                    problems.push(format!("fault {i}: link-flap needs a positive `period`"))
                }
                _ => {}
            }
            if f.kind.targets_link() && f.target != "auto" && !f.target.contains('-') {
                problems.push(format!(
                    "fault {i}: {} needs a link target \"a-b\", got {:?}",
                    f.kind.as_str(),
                    f.target
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ScenarioError::Invalid(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_design_example() {
        let s = Scenario::from_toml_str(
            r#"
            name = "grid16-gray-loss"
            duration = "120s"
            telemetry_interval = "100ms"
            [topology]
            shape = "grid"
            nodes = 16
            seed = 7
            [traffic]
            pairs = 24
            rate_pps = 50
            [[fault]]
            at = "30s"
            kind = "link-loss"
            target = "n5-n6"
            loss = 0.3
            direction = "both"
            duration = "60s"
            "#,
        )
        .unwrap();
        assert_eq!(s.faults[0].parsed_target(), FaultTarget::Link("n5".into(), "n6".into()));
        assert_eq!(s.faults[0].end(), Some(Duration::from_secs(90)));
        assert_eq!(s.traffic.pairs, TrafficPairs::Count(24));
    }

    #[test]
    fn reports_every_problem_at_once() {
        let err = Scenario::from_toml_str(
            r#"
            name = "bad"
            duration = "10s"
            [topology]
            shape = "grid"
            nodes = 2
            [[fault]]
            at = "20s"
            kind = "link-loss"
            target = "n1"
            "#,
        )
        .unwrap_err();
        let ScenarioError::Invalid(problems) = err else { panic!("{err}") };
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Scenario::from_toml_str("name='x'\nduration='1s'\ncolour='red'\n[topology]\nshape='ring'\nnodes=3")
            .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
