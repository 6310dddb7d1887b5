//! What an actuator says back about one command.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
/// What became of a command.
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
    /// The status's name in history tables.
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
    /// Where the route leads.
    pub destination: String,
    /// The neighbour it goes through.
    pub next_hop: String,
    /// The neighbour the kernel fails over to on carrier loss.
    pub backup: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// An actuator's answer to one command, on `x0.command-results`.
pub struct CommandResult {
    #[serde(default = "crate::telemetry::schema_version")]
    /// Version of this record's layout.
    pub schema_version: u16,
    /// The command's id; empty when the command was too malformed to carry one.
    pub command_id: String,
    /// The node that answered.
    pub node: String,
    /// What became of the command.
    pub status: ResultStatus,
    /// Why, in words (empty when applied).
    pub reason: String,
    /// When the node finished handling it (ns since epoch).
    pub applied_at: i64,
    /// The routes we own on the node after the command, for what it touched: its
    /// destination's route (none when the node is back on its baseline for it), or
    /// every route of ours for a drain, restore, probe-rate or no-op command.
    pub routes: Vec<RouteEntry>,
}

impl CommandResult {
    /// The result as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("results always serialise")
    }

    /// Parses a result; anything else is an error (and is dead-lettered).
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
