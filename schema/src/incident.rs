//! The incident record: one detected problem, from first symptom to outcome.

use crate::{Action, Element, ResultStatus};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Opened,
    Diagnosed,
    Mitigating,
    Verifying,
    Resolved,
    Failed,
}

impl IncidentState {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Opened => "opened",
            IncidentState::Diagnosed => "diagnosed",
            IncidentState::Mitigating => "mitigating",
            IncidentState::Verifying => "verifying",
            IncidentState::Resolved => "resolved",
            IncidentState::Failed => "failed",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, IncidentState::Resolved | IncidentState::Failed)
    }
}

/// One anomalous element in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Symptom {
    pub element: Element,
    /// The feature that stood out.
    pub feature: String,
    pub value: f64,
    /// Robust z-score against the element's own baseline.
    pub score: f64,
    /// Window start, ns since epoch.
    pub window_start: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootCauseKind {
    LinkDown,
    LinkLoss,
    LinkDelay,
    NodeCrash,
    NodeOverload,
    /// A node reports problems its neighbours do not corroborate.
    SuspectReporter,
}

impl RootCauseKind {
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
pub struct RootCause {
    pub kind: RootCauseKind,
    pub element: Element,
    /// 0..1; never 1.0 for a single uncorroborated symptom.
    pub confidence: f64,
    /// Other candidates the evidence could not rule out.
    pub ambiguity: Vec<Element>,
    /// Human-readable evidence lines, most important first.
    pub evidence: Vec<String>,
}

/// A command sent for the incident and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub command_id: String,
    pub target: String,
    pub action: Action,
    pub issued_at: i64,
    pub status: Option<ResultStatus>,
    pub reason: Option<String>,
    pub acked_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
    pub schema_version: u16,
    pub incident_id: String,
    /// Start of the first anomalous window: our best estimate of onset.
    pub opened_at: i64,
    /// When the detector decided (close of the window that confirmed it).
    pub detected_at: i64,
    pub diagnosed_at: Option<i64>,
    pub mitigated_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub state: IncidentState,
    pub symptoms: Vec<Symptom>,
    pub root_cause: Option<RootCause>,
    pub actions: Vec<ActionRecord>,
    pub outcome: Outcome,
    /// detected_at - opened_at.
    pub mttd_ms: Option<i64>,
    /// mitigated_at - opened_at.
    pub mttr_ms: Option<i64>,
    pub model_version: String,
    /// Why this cause, why this plan, which alternatives.
    pub explanation: String,
}

impl Incident {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("incidents always serialise")
    }
}
