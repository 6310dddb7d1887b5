//! Kafka topic names and message headers.

use serde::{Deserialize, Serialize};

/// Header naming the payload encoding of a telemetry message.
pub const CONTENT_TYPE_HEADER: &str = "content-type";
/// Arrow IPC stream, the default telemetry encoding.
pub const CONTENT_TYPE_ARROW: &str = "application/vnd.apache.arrow.stream";
/// JSON lines, for third-party producers and `kcat`.
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// `content-type` of telemetry in the compact framing our own agents send.
pub const CONTENT_TYPE_BINARY: &str = "application/vnd.x0tta6bl4.telemetry.v1";
/// Header on a dead-lettered message saying why it was rejected.
pub const REASON_HEADER: &str = "x0-reject-reason";

/// Topic names; the defaults are the contract, every one can be renamed in config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    /// Telemetry batches, keyed by node.
    pub telemetry: String,
    /// Signed healing commands, keyed by target node.
    pub commands: String,
    /// Actuators' results, keyed by node.
    pub command_results: String,
    /// Incident state changes, keyed by incident id.
    pub incidents: String,
    /// Rejected messages with their reason.
    pub dlq: String,
    /// The open work of each region of a mesh split among job instances, keyed by
    /// region, for the instance that takes a region over (the stream job's changelog;
    /// compacted: only the latest per region matters).
    pub handoff: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            telemetry: "x0.telemetry".into(),
            commands: "x0.commands".into(),
            command_results: "x0.command-results".into(),
            incidents: "x0.incidents".into(),
            dlq: "x0.dlq".into(),
            handoff: "x0.handoff".into(),
        }
    }
}

impl Topics {
    /// Every topic, for creating them on a dev broker.
    pub fn all(&self) -> [&str; 6] {
        [&self.telemetry, &self.commands, &self.command_results, &self.incidents, &self.dlq, &self.handoff]
    }
}
