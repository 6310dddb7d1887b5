//! The contracts between the parts of x0tta6bl4.
//!
//! Everything that crosses a process boundary is defined here and nowhere else:
//!
//! - **telemetry** ([`LinkSample`], [`NodeSample`]) flows from collectors (or the
//!   simulator, or any third party) to the stream job on `x0.telemetry`, encoded as an
//!   Arrow IPC stream ([`encode_arrow`]) or JSON lines ([`encode_json_lines`]);
//!   [`decode_telemetry`] turns either back into samples or a typed [`DecodeError`];
//! - **healing commands** ([`HealingCommand`]) flow from the stream job to the actuators
//!   on `x0.commands`, ed25519-signed over their canonical bytes, and come back as a
//!   [`CommandResult`] on `x0.command-results`;
//! - **incidents** ([`Incident`]) are what the stream job records and publishes;
//! - **scenarios** ([`Scenario`]) describe a mesh, its traffic and its faults; the
//!   [`Topology`] they generate is shared by the simulator, the stream job and the lab;
//! - **run summaries** ([`RunSummary`]) are what `demo`, `lab run` and `eval` report.
//!
//! ```
//! use x0_schema::{Scenario, Topology};
//! let scenario = Scenario::from_toml_str(r#"
//!     name = "tiny"
//!     duration = "10s"
//!     telemetry_interval = "100ms"
//!     [topology]
//!     shape = "ring"
//!     nodes = 4
//! "#).unwrap();
//! let topology = Topology::generate(&scenario.topology).unwrap();
//! assert_eq!(topology.links().len(), 4);
//! ```

mod arrow_codec;
mod binary_codec;
mod clock;
mod command;
mod config_layers;
mod decode;
mod durable_file;
mod element;
mod incident;
mod json_codec;
mod key_files;
mod message_auth;
mod regions;
mod result;
mod scenario;
mod summary;
mod telemetry;
mod topics;
mod topology;

pub use arrow_codec::{encode_arrow, link_batch, link_schema, node_batch, node_schema};
pub use binary_codec::{encode_binary, BINARY_VERSION};
pub use clock::wall_clock_ns;
pub use command::{
    generate_signing_key, Action, CommandError, HealingCommand, SigningKey, VerifyingKey, MAX_BATCH_ROUTES,
};
pub use config_layers::{ConfigErrors, ConfigLayers};
pub use decode::{decode_telemetry, encode_telemetry, ContentType, DecodeError};
pub use durable_file::replace_file_durably;
/// The release and a fingerprint of this crate's sources (its contracts), as binaries
/// report it in `--version`: an agent and a job with the same one speak the same
/// commands. `x0tta6bl4 lab run` checks the agent binary it is given by it.
pub const CONTRACT_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (contracts ", env!("X0_CONTRACT_ID"), ")");

pub use element::Element;
pub use incident::{ActionRecord, Incident, IncidentState, Outcome, RootCause, RootCauseKind, Symptom};
pub use json_codec::encode_json_lines;
pub use key_files::{
    generate_fleet_secret, generate_key_files, read_fleet_secret, read_message_key, read_signing_key,
    read_verifying_key, write_message_key, KeyFileError,
};
pub use message_auth::{FleetSecret, MessageKey, MAC_HEADER, PRODUCER_HEADER};
pub use regions::{farthest_node, hop_counts, voronoi_cells, Regions, RegionsSpec, HALO_HOPS};
pub use result::{CommandResult, ResultStatus, RouteEntry};
pub use scenario::{
    Direction, Fault, FaultKind, FaultTarget, Scenario, ScenarioError, Shape, TopologySpec, TrafficPairs, TrafficSpec,
};
pub use summary::{FaultOutcome, Percentiles, RcaAccuracy, RunSummary};
pub use telemetry::{LinkSample, NodeSample, Provenance, TelemetryBatch, SCHEMA_VERSION};
pub use topics::{
    Topics, CONTENT_TYPE_ARROW, CONTENT_TYPE_BINARY, CONTENT_TYPE_HEADER, CONTENT_TYPE_JSON, REASON_HEADER,
};
pub use topology::{NodeId, Topology, TopologyError};
