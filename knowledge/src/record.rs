//! How an incident is stored: a point id derived from the incident id, and a payload
//! with the fields a filter or a planner needs next to the whole incident.

use crate::KnowledgeError;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use x0_schema::{Incident, ResultStatus};

/// A stored incident with what a planner asks of it.
#[derive(Debug, Clone, PartialEq)]
pub struct PastIncident {
    /// The whole incident as it finished.
    pub incident: Incident,
}

impl PastIncident {
    /// Commands that failed or were rolled back.
    pub fn failed_actions(&self) -> usize {
        self.incident.actions.iter().filter(|a| a.status.is_some_and(|s| s != ResultStatus::Applied)).count()
    }

    /// Whether acting on it helped: routes moved and symptoms stopped, or it recovered
    /// after our routes, with no failed command.
    pub fn repaired(&self) -> bool {
        use x0_schema::Outcome::{Mitigated, Recovered};
        !self.incident.actions.is_empty()
            && self.incident.mitigated_at.is_some()
            && matches!(self.incident.outcome, Mitigated | Recovered)
            && self.failed_actions() == 0
    }

    /// Whether we acted and the repair was rolled back (it did not help, or an
    /// actuator refused part of it).
    pub fn rolled_back(&self) -> bool {
        !self.incident.actions.is_empty() && self.incident.outcome == x0_schema::Outcome::Failed
    }
}

/// Counts over the whole knowledge base.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KbStats {
    /// How many incidents are stored.
    pub incidents: usize,
    /// How many per root-cause kind.
    pub by_kind: BTreeMap<String, usize>,
    /// How many per outcome.
    pub by_outcome: BTreeMap<String, usize>,
    /// Incidents whose actions repaired them (see [`PastIncident::repaired`]).
    pub repaired: usize,
}

impl KbStats {
    pub(crate) fn add(&mut self, p: &PastIncident) {
        self.incidents += 1;
        let kind = p.incident.root_cause.as_ref().map_or("none", |rc| rc.kind.as_str());
        *self.by_kind.entry(kind.into()).or_default() += 1;
        *self.by_outcome.entry(p.incident.outcome.as_str().into()).or_default() += 1;
        self.repaired += usize::from(p.repaired());
    }
}

/// A stable 64-bit point id for an incident id (FNV-1a): the same incident always lands
/// on the same point.
pub fn point_id(incident_id: &str) -> u64 {
    incident_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The payload stored with an incident. `element` and `kind` are top-level so that a
/// filter can select on them.
pub(crate) fn payload(incident: &Incident) -> Map<String, Value> {
    let rc = incident.root_cause.as_ref();
    let value = json!({
        "incident_id": incident.incident_id,
        "element": rc.map(|r| r.element.to_string()),
        "kind": rc.map(|r| r.kind.as_str()),
        "outcome": incident.outcome.as_str(),
        "incident": incident,
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!("json! of an object literal is an object"),
    }
}

pub(crate) fn from_payload(id: String, payload: &Map<String, Value>) -> Result<PastIncident, KnowledgeError> {
    let incident = payload
        .get("incident")
        .ok_or_else(|| KnowledgeError::Corrupt { id: id.clone(), reason: "no `incident` in its payload".into() })?;
    let incident =
        serde_json::from_value(incident.clone()).map_err(|e| KnowledgeError::Corrupt { id, reason: e.to_string() })?;
    Ok(PastIncident { incident })
}
