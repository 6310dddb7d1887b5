//! The x0tta6bl4 node agent: what runs on every node of the mesh.
//!
//! It has two halves ([`run_agent`]):
//!
//! 1. **Kafka**, in the namespace the agent starts in: telemetry batches out on
//!    `x0.telemetry`, healing commands in from `x0.commands` (only those keyed by this
//!    node), results out on `x0.command-results`.
//! 2. **The data plane**, a thread that owns everything touching the node's network:
//!    every telemetry interval `x0_ingest::Collector` turns the kernel's counters
//!    (eBPF, else the interface counters) and the active link probes into one batch;
//!    each command is verified and applied to the kernel's routing table by
//!    `x0_actuator::Actuator` over netlink.
//!
//! [`AgentConfig`] is read from the same file as the stream job's configuration (the
//! `[kafka]`, `[keys]` and `[agent]` sections); [`AgentArgs`] is the command line of
//! `x0-agent` and of `x0tta6bl4 agent`.

mod allocator;
mod cli;
mod config;
mod data_plane;
mod metrics;
mod node_agent;

pub use cli::{agent_main, agent_runtime, AgentArgs};
pub use config::{AgentConfig, AgentSettings, Encoding, DEFAULT_TOML};
pub use node_agent::{run_agent, AgentOptions, AgentReport};
