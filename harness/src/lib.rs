//! What needs both the stream job and a mesh to run on: the parts of x0tta6bl4 that
//! exercise the whole loop and measure it.
//!
//! - [`demo`]: the one-command demo: embedded broker, simulated mesh with its
//!   actuators, the real stream job; scored against the simulator's ground truth.
//! - [`lab_run`]: `lab run`: a scenario on real kernels (namespaces, agents, netlink),
//!   faults injected per trial, recovery measured from probe packets.
//! - [`eval_rca`]: root-cause quality on held-out scenarios; [`stress`]: whether
//!   healing ever makes things worse, on a generated family of meshes and faults.
//! - [`datasets`]: labelled training windows from scenarios; [`history_labels`] and
//!   [`retrain`]: training from the incident history and operators' verdicts, and the
//!   comparison that decides whether a new model is promoted.
//! - [`kb_view`]: the knowledge base's read-only commands; [`report`]: the tables the
//!   commands print.
//!
//! Errors here are `anyhow`: these are the binary's verbs, and what they report goes
//! to an operator's terminal, not to a caller that branches on it.

pub mod datasets;
pub mod demo;
pub mod eval_rca;
pub mod history_labels;
pub mod kb_view;
pub mod lab_run;
pub mod report;
pub mod retrain;
pub mod stress;
