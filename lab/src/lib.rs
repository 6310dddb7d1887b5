//! The meshes that scenarios run in.
//!
//! [`SimMesh`] is the simulated mesh: deterministic for a seed, it forwards probe-flow
//! packets hop by hop through each node's routing table, injects the scenario's faults,
//! emits telemetry exactly as node collectors would (per node, per link end, every
//! interval, in event time) and keeps the ground truth of which packets the faults
//! cost. Healing commands reach it through [`SimRouteTarget`], the simulated twin of a
//! node's kernel routing table, behind the actuator's [`x0_actuator::RouteTarget`].
//!
//! [`run_simulation`] drives a mesh in (scaled) real time against Kafka: telemetry out
//! on `x0.telemetry`, commands in from `x0.commands` through one [`x0_actuator::Actuator`]
//! per node, results out on `x0.command-results`. [`score_run`] turns the ground truth
//! and the incidents the pipeline recorded into the [`x0_schema::RunSummary`].

mod effects;
pub mod kernel;
mod mesh;
mod runner;
mod score;
mod target;
mod truth;

pub use mesh::{SimMesh, SimOptions};
pub use runner::{run_simulation, SimRunError, SimRunStats};
pub use score::{blames, cause_family, fault_family, near, score_run, FLAP_WINDOW_MS};
pub use target::SimRouteTarget;
pub use truth::{GroundTruth, ObservedRouteChange};
