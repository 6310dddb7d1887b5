//! The incident-history table schemas and conversions from the contract types.

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::Arc;
use x0_schema::{Action, Incident, ResultStatus};

fn ts(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), nullable)
}

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// Columns of the `incidents` table.
pub fn incidents_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        text("incident_id", false),
        ts("opened_at", false),
        ts("detected_at", false),
        ts("diagnosed_at", true),
        ts("mitigated_at", true),
        ts("resolved_at", true),
        text("state", false),
        text("root_cause_kind", true),
        text("root_cause_element", true),
        Field::new("root_cause_confidence", DataType::Float64, true),
        text("root_cause_ambiguity", true),
        text("root_cause_evidence", true),
        text("symptoms", false),
        text("actions", false),
        Field::new("actions_count", DataType::UInt32, false),
        Field::new("actions_failed", DataType::UInt32, false),
        text("outcome", false),
        Field::new("mttd_ms", DataType::Int64, true),
        Field::new("mttr_ms", DataType::Int64, true),
        text("model_version", false),
        text("explanation", false),
    ]))
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("contract types always serialise")
}

/// Incidents as one record batch of [`incidents_schema`].
pub fn incidents_batch(incidents: &[Incident]) -> RecordBatch {
    let s = |f: &dyn Fn(&Incident) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(incidents.iter().map(f)))
    };
    let so = |f: &dyn Fn(&Incident) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from_iter(incidents.iter().map(f)))
    };
    let t = |f: &dyn Fn(&Incident) -> Option<i64>| -> ArrayRef {
        Arc::new(TimestampNanosecondArray::from_iter(incidents.iter().map(f)).with_timezone("UTC"))
    };
    let failed = |i: &Incident| {
        i.actions
            .iter()
            .filter(|a| {
                matches!(a.status, Some(ResultStatus::Failed | ResultStatus::Rejected | ResultStatus::RolledBack))
            })
            .count() as u32
    };
    let cols: Vec<ArrayRef> = vec![
        s(&|i| i.incident_id.clone()),
        t(&|i| Some(i.opened_at)),
        t(&|i| Some(i.detected_at)),
        t(&|i| i.diagnosed_at),
        t(&|i| i.mitigated_at),
        t(&|i| i.resolved_at),
        s(&|i| i.state.as_str().into()),
        so(&|i| i.root_cause.as_ref().map(|r| r.kind.as_str().into())),
        so(&|i| i.root_cause.as_ref().map(|r| r.element.to_string())),
        Arc::new(Float64Array::from_iter(incidents.iter().map(|i| i.root_cause.as_ref().map(|r| r.confidence)))),
        so(&|i| i.root_cause.as_ref().map(|r| json(&r.ambiguity.iter().map(|e| e.to_string()).collect::<Vec<_>>()))),
        so(&|i| i.root_cause.as_ref().map(|r| json(&r.evidence))),
        s(&|i| json(&i.symptoms)),
        s(&|i| json(&i.actions)),
        Arc::new(UInt32Array::from_iter_values(incidents.iter().map(|i| i.actions.len() as u32))),
        Arc::new(UInt32Array::from_iter_values(incidents.iter().map(failed))),
        s(&|i| i.outcome.as_str().into()),
        Arc::new(Int64Array::from_iter(incidents.iter().map(|i| i.mttd_ms))),
        Arc::new(Int64Array::from_iter(incidents.iter().map(|i| i.mttr_ms))),
        s(&|i| i.model_version.clone()),
        s(&|i| i.explanation.clone()),
    ];
    RecordBatch::try_new(incidents_schema(), cols).expect("columns built to match incidents_schema")
}

/// One healing command with what became of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CommandRow {
    /// The command's id.
    pub command_id: String,
    /// The incident it acted for.
    pub incident_id: String,
    /// The node it was sent to.
    pub target: String,
    /// What it asked.
    pub action: Action,
    /// When it was issued (ns since the epoch).
    pub issued_at: i64,
    /// When it expires (ns since the epoch).
    pub expires_at: i64,
    /// What the actuator answered; None until it did.
    pub status: Option<ResultStatus>,
    /// The actuator's reason.
    pub reason: Option<String>,
    /// When the answer arrived (ns since the epoch).
    pub acked_at: Option<i64>,
}

/// Columns of the `commands` table.
pub fn commands_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        text("command_id", false),
        text("incident_id", false),
        text("target", false),
        text("action_kind", false),
        text("action", false),
        ts("issued_at", false),
        ts("expires_at", false),
        text("status", true),
        text("reason", true),
        ts("acked_at", true),
        // How many routes it changes (a batch's count; 0 for a drain). Null in files
        // written before route batches, where each command changed at most one.
        Field::new("routes", DataType::Int64, true),
    ]))
}

/// Commands as one record batch of [`commands_schema`].
pub fn commands_batch(rows: &[CommandRow]) -> RecordBatch {
    let s =
        |f: &dyn Fn(&CommandRow) -> String| -> ArrayRef { Arc::new(StringArray::from_iter_values(rows.iter().map(f))) };
    let t = |f: &dyn Fn(&CommandRow) -> Option<i64>| -> ArrayRef {
        Arc::new(TimestampNanosecondArray::from_iter(rows.iter().map(f)).with_timezone("UTC"))
    };
    let cols: Vec<ArrayRef> = vec![
        s(&|r| r.command_id.clone()),
        s(&|r| r.incident_id.clone()),
        s(&|r| r.target.clone()),
        s(&|r| r.action.kind().into()),
        s(&|r| json(&r.action)),
        t(&|r| Some(r.issued_at)),
        t(&|r| Some(r.expires_at)),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.status.map(|s| s.as_str())))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.reason.clone()))),
        t(&|r| r.acked_at),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.action.parts().iter().filter(|a| a.destination().is_some()).count() as i64),
        )),
    ];
    RecordBatch::try_new(commands_schema(), cols).expect("columns built to match commands_schema")
}

/// An operator's verdict on an incident (`x0tta6bl4 incident label`).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRow {
    /// The incident labelled.
    pub incident_id: String,
    /// `confirmed` or `false-positive`.
    pub verdict: String,
    /// The element the operator names as the real cause (confirmed incidents), as
    /// incidents write elements (`link a-b`, `node n`).
    pub cause: Option<String>,
    /// Free text.
    pub note: Option<String>,
    /// When (ns since the epoch).
    pub labelled_at: i64,
    /// Who labelled it.
    pub labelled_by: String,
}

/// Columns of the `labels` table (append-only; the latest label of an incident wins).
pub fn labels_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        text("incident_id", false),
        text("verdict", false),
        text("cause", true),
        text("note", true),
        ts("labelled_at", false),
        text("labelled_by", false),
    ]))
}

/// Labels as one record batch of [`labels_schema`].
pub fn labels_batch(rows: &[LabelRow]) -> RecordBatch {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.incident_id.as_str()))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.verdict.as_str()))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.cause.as_deref()))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.note.as_deref()))),
        Arc::new(TimestampNanosecondArray::from_iter_values(rows.iter().map(|r| r.labelled_at)).with_timezone("UTC")),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.labelled_by.as_str()))),
    ];
    RecordBatch::try_new(labels_schema(), cols).expect("columns built to match labels_schema")
}
