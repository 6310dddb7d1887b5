//! The incident record: one detected problem, from first symptom to outcome.

use crate::{Action, Element, ResultStatus};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
/// Where an incident is in its life.
pub enum IncidentState {
    /// A symptom was seen; not yet confirmed.
    Opened,
    /// Confirmed, with a root cause.
    Diagnosed,
    /// Commands sent, results awaited.
    Mitigating,
    /// Every command applied; the repair is being verified against the traffic.
    Verifying,
    /// The element is healthy again and our routes are handed back.
    Resolved,
    /// The repair was rolled back or refused.
    Failed,
    /// Its job stopped without handing it over (it keeps no checkpoint); the outcome
    /// says how far it got.
    Closed,
}

impl IncidentState {
    /// The state's name in history tables.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Opened => "opened",
            IncidentState::Diagnosed => "diagnosed",
            IncidentState::Mitigating => "mitigating",
            IncidentState::Verifying => "verifying",
            IncidentState::Resolved => "resolved",
            IncidentState::Failed => "failed",
            IncidentState::Closed => "closed",
        }
    }

    /// Whether the incident is over (resolved, failed, or closed with its job).
    pub fn is_final(self) -> bool {
        matches!(self, IncidentState::Resolved | IncidentState::Failed | IncidentState::Closed)
    }
}

/// One anomalous element in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Symptom {
    /// The link or node the symptom is on.
    pub element: Element,
    /// The feature that stood out.
    pub feature: String,
    /// The feature's value in that window.
    pub value: f64,
    /// Robust z-score against the element's own baseline.
    pub score: f64,
    /// Window start, ns since epoch.
    pub window_start: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
/// What the root cause is.
pub enum RootCauseKind {
    /// Carrier lost.
    LinkDown,
    /// Packets lost on a link.
    LinkLoss,
    /// Round-trip time risen on a link.
    LinkDelay,
    /// A node stopped: every neighbour lost it.
    NodeCrash,
    /// A node's CPU saturated, slowing what it forwards.
    NodeOverload,
    /// A node reports problems its neighbours do not corroborate.
    SuspectReporter,
}

impl RootCauseKind {
    /// The kind's name in history tables, e.g. `link-loss`.
    pub fn as_str(self) -> &'static str {
        match self {
            RootCauseKind::LinkDown => "link-down",
            RootCauseKind::LinkLoss => "link-loss",
            RootCauseKind::LinkDelay => "link-delay",
            RootCauseKind::NodeCrash => "node-crash",
            RootCauseKind::NodeOverload => "node-overload",
            RootCauseKind::SuspectReporter => "suspect-reporter",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// What the job blames and why.
pub struct RootCause {
    /// What is wrong.
    pub kind: RootCauseKind,
    /// Where.
    pub element: Element,
    /// 0..1; never 1.0 for a single uncorroborated symptom.
    pub confidence: f64,
    /// Other candidates the evidence could not rule out.
    pub ambiguity: Vec<Element>,
    /// Human-readable evidence lines, most important first.
    pub evidence: Vec<String>,
    /// The nodes whose own observations support it: the independent sources behind the
    /// claim. One reporter's word is never acted on (a node's own overload excepted: it
    /// can only move traffic away from itself). Absent in records written before it.
    #[serde(default)]
    pub reporters: Vec<String>,
}

/// A command sent for the incident and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// The command's id (its idempotency key).
    pub command_id: String,
    /// The node it was sent to.
    pub target: String,
    /// What it asked.
    pub action: Action,
    /// When it was issued (ns since the epoch).
    pub issued_at: i64,
    /// What the actuator answered; None until it did.
    pub status: Option<ResultStatus>,
    /// The actuator's reason, for anything but applied.
    pub reason: Option<String>,
    /// When the answer arrived (ns since the epoch).
    pub acked_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
/// How an incident ended (or that it has not).
pub enum Outcome {
    /// Routes moved off the fault and the symptoms stopped.
    Mitigated,
    /// The fault cleared and our routes were withdrawn.
    Recovered,
    /// Diagnosed but no action was taken (guardrail, suspect reporter, no alternative path).
    NoAction,
    /// Commands failed or the symptoms persisted.
    Failed,
    /// Still open when the job stopped.
    Open,
}

impl Outcome {
    /// The outcome's name in history tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Mitigated => "mitigated",
            Outcome::Recovered => "recovered",
            Outcome::NoAction => "no_action",
            Outcome::Failed => "failed",
            Outcome::Open => "open",
        }
    }
}

/// Timestamps are ns since epoch in event time (the telemetry's clock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    #[serde(default = "crate::telemetry::schema_version")]
    /// Version of this record's layout.
    pub schema_version: u16,
    /// Stable id, also the Kafka key on `x0.incidents`.
    pub incident_id: String,
    /// Start of the first anomalous window: our best estimate of onset.
    pub opened_at: i64,
    /// When the detector decided (close of the window that confirmed it).
    pub detected_at: i64,
    /// When the root cause was named.
    pub diagnosed_at: Option<i64>,
    /// When every command of the repair was applied.
    pub mitigated_at: Option<i64>,
    /// When it ended.
    pub resolved_at: Option<i64>,
    /// Where it is in its life.
    pub state: IncidentState,
    /// The most recent symptoms (bounded).
    pub symptoms: Vec<Symptom>,
    /// What the job blames, with its confidence and evidence.
    pub root_cause: Option<RootCause>,
    /// The commands sent for it and their results.
    pub actions: Vec<ActionRecord>,
    /// How it ended.
    pub outcome: Outcome,
    /// detected_at - opened_at.
    pub mttd_ms: Option<i64>,
    /// mitigated_at - opened_at.
    pub mttr_ms: Option<i64>,
    /// The detector that found it (`<model version>+robust-mad-v1`).
    pub model_version: String,
    /// Why this cause, why this plan, which alternatives.
    pub explanation: String,
    /// When the fault came back after the incident had resolved, each time it reopened
    /// this incident instead of opening a new one (ns since the epoch).
    #[serde(default)]
    pub reopened_at: Vec<i64>,
}

impl Incident {
    /// The single actions its commands carried (a batch counts its routes).
    pub fn action_count(&self) -> usize {
        self.actions.iter().map(|a| a.action.parts().len()).sum()
    }

    /// When it was detected, then when it reopened, if it did: each moment a fault
    /// announced itself through this incident (ns since the epoch).
    pub fn detections(&self) -> impl Iterator<Item = i64> + '_ {
        std::iter::once(self.detected_at).chain(self.reopened_at.iter().copied())
    }

    /// The record as JSON (what `x0.incidents` carries).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("incidents always serialise")
    }
}
