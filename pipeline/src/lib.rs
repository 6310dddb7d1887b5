//! The stream job: the Monitor–Analyze–Plan–Execute loop of x0tta6bl4.
//!
//! A [`StreamJob`] is set up once, the same way by `run`, `demo` and the lab. Data
//! enters as telemetry messages on `x0.telemetry` ([`StreamJob::run`]), or directly as
//! decoded batches ([`HealingLoop::admit`], which is what the benchmark drives):
//!
//! 1. **Monitor**: rows are checked against the inventory and the clocks (bad ones go
//!    to `x0.dlq` with a reason) and land in event-time tumbling [`Windows`]; a window
//!    closes when the watermark passes it, late rows are counted.
//! 2. Each closed window's features come from DataFusion running the editable
//!    `sql/features.sql` ([`FeatureEngine`]).
//! 3. **Analyze**: the robust detector (`x0_training`) scores each element against its
//!    own baseline; localisation turns the anomalies into root causes using both ends
//!    of every link, and marks reporters nobody corroborates.
//! 4. **Plan**: the planner reroutes only what crosses the fault: at the fault's edge
//!    where a neighbour's own route avoids it, over the cheapest healthy paths
//!    elsewhere, with a loop-free alternate as backup next hop.
//! 5. **Execute**: commands are signed and sent to `x0.commands`; results from
//!    `x0.command-results` move incidents along their lifecycle. Once applied, a
//!    repair is verified against the traffic its links lose, and rolled back when it
//!    did not help or an actuator refused part of it (`verify`). An incident clears
//!    only when its element is shown healthy by both ends' probes (`health`), never on
//!    quiet alone; a fault that returns reopens it and doubles its hold-down.
//! 6. **Knowledge**: incidents and commands are snapshotted to Parquet (SQL with
//!    `x0_sql`) and published on `x0.incidents`.

mod allocator;
mod calibration;
mod checkpoint;
mod config;
mod detect;
mod digest;
mod features;
mod graph_input;
mod handoff;
mod healing_loop;
mod health;
mod history;
mod incidents;
mod job;
mod live;
mod local_repair;
mod metrics;
mod model_slot;
mod ownership;
mod planner;
mod rca;
mod recall;
mod stats;
mod stream_job;
mod trust;
mod verify;
mod window;

pub use crate::healing_loop::{HealingLoop, Publication, Rejection, StateError, Takeover, WindowDiagnoses};
pub use allocator::keep_freed_memory;
pub use calibration::{Calibration, Step as CalibrationStep, BUILTIN_CALIBRATION};
pub use checkpoint::{
    inventory_digest, CheckpointCost, CheckpointError, CheckpointMeta, CheckpointStore, Offsets, CHECKPOINT_FORMAT,
};
pub use config::{
    CheckpointConfig, Config, FeaturesConfig, KeysConfig, ModelConfig, OpsConfig, PlannerConfig, RcaConfig,
    WindowConfig, DEFAULT_TOML,
};
pub use features::{FeatureEngine, FeatureError, WindowFeatures, BUILTIN_FEATURES_SQL};
pub use graph_input::{graph_window, FeaturizedWindow, OfflineFeaturizer};
pub use handoff::{handoff_partition, RegionHandoff, HANDOFF_FORMAT, HANDOFF_PART_BYTES, HANDOFF_PART_HEADER};
pub use history::MODEL_INPUTS;
pub use job::{run_job, Durability, JobError, JobReport};
pub use live::{Deciding, IncidentView, LinkLook, LiveEvent, LiveView, Look, MeshFrame, WantedRoute};
pub use metrics::{job_readiness, job_registry};
pub use recall::open_knowledge;
pub use stats::{JobStats, PlanCost, PLANS_KEPT};
pub use stream_job::StreamJob;
pub use trust::{Speaker, Trust, UNAUTHENTICATED};
pub use window::{ClosedWindow, WindowRows, Windows};
/// Every problem of a configuration (the layering and its errors live in `x0_schema`).
pub use x0_schema::ConfigErrors;
