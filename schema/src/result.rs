//! What an actuator says back about one command.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    /// Applied and verified.
    Applied,
    /// Not applied: failed verification (signature, TTL, replay, action, target).
    Rejected,
    /// Accepted but the target could not apply it; nothing changed.
    Failed,
    /// Applied, did not verify, and was undone.
    RolledBack,
}

impl ResultStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultStatus::Applied => "applied",
            ResultStatus::Rejected => "rejected",
            ResultStatus::Failed => "failed",
            ResultStatus::RolledBack => "rolled_back",
        }
    }
}

/// One route as the node's table holds it after the command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    pub destination: String,
    pub next_hop: String,
    pub backup: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandResult {
    #[serde(default = "crate::telemetry::schema_version")]
    pub schema_version: u16,
    /// The command's id; empty when the command was too malformed to carry one.
    pub command_id: String,
    pub node: String,
    pub status: ResultStatus,
    /// Why, in words (empty when applied).
    pub reason: String,
    /// When the node finished handling it (ns since epoch).
    pub applied_at: i64,
    /// The routes we own on the node after the command.
    pub routes: Vec<RouteEntry>,
}

impl CommandResult {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("results always serialise")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
