//! Assembly of the parts into the roles the `x0tta6bl4` binary runs: the one-command
//! demo (embedded broker + simulated mesh + stream job + actuators), the stream job
//! against a real cluster, and key files. Logic lives in the crates; this is wiring,
//! kept in a library so end-to-end tests drive exactly what users run.

pub mod agent;
pub mod agent_cli;
pub mod datasets;
pub mod demo;
pub mod eval_rca;
pub mod history_labels;
pub mod kb_cmd;
pub mod kernel_lab;
pub mod keys;
pub mod memory;
pub mod report;
pub mod train_cmd;

pub use kb_cmd::with_memory;
