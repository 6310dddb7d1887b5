//! Saved queries: `sql/queries/*.sql`, embedded at build time so the binary carries them.

/// A named, documented query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedQuery {
    /// Its name (`sql --saved NAME`).
    pub name: &'static str,
    /// The first comment line of the file.
    pub description: &'static str,
    /// The query.
    pub sql: &'static str,
}

macro_rules! saved {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../queries/", $name, ".sql")))),*]
    };
}

const FILES: &[(&str, &str)] = saved!(
    "mttr-by-root-cause",
    "mttr-over-time",
    "flapping-links",
    "failed-actions",
    "incidents-per-day",
    "command-latency"
);

/// Every saved query.
pub fn saved_queries() -> Vec<SavedQuery> {
    FILES
        .iter()
        .map(|(name, sql)| SavedQuery {
            name,
            description: sql.lines().next().unwrap_or("").trim_start_matches("--").trim(),
            sql,
        })
        .collect()
}

/// A saved query by name.
pub fn saved_query(name: &str) -> Option<SavedQuery> {
    saved_queries().into_iter().find(|q| q.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{commands_batch, incidents_batch, write_partitioned, CommandRow, HistoryEngine};
    use x0_schema::{Action, Element, Incident, IncidentState, Outcome, ResultStatus, RootCause, RootCauseKind};

    fn incident(id: &str, day_ns: i64) -> Incident {
        Incident {
            schema_version: x0_schema::SCHEMA_VERSION,
            incident_id: id.into(),
            opened_at: day_ns,
            detected_at: day_ns + 700_000_000,
            diagnosed_at: Some(day_ns + 700_000_000),
            mitigated_at: Some(day_ns + 900_000_000),
            resolved_at: None,
            state: IncidentState::Verifying,
            symptoms: vec![],
            root_cause: Some(RootCause {
                kind: RootCauseKind::LinkDown,
                element: Element::link("n1", "n2"),
                confidence: 0.95,
                ambiguity: vec![],
                evidence: vec!["carrier lost".into()],
                reporters: vec![],
            }),
            actions: vec![],
            outcome: Outcome::Mitigated,
            mttd_ms: Some(700),
            mttr_ms: Some(900),
            model_version: "test".into(),
            explanation: String::new(),
            reopened_at: vec![],
        }
    }

    /// Every saved query plans and runs against real history files.
    #[tokio::test]
    async fn every_saved_query_runs_on_a_history() {
        let dir = tempfile::tempdir().unwrap();
        let day = 1_795_000_000_000_000_000;
        write_partitioned(
            dir.path(),
            "incidents",
            day,
            "a",
            &incidents_batch(&[incident("i1", day), incident("i2", day)]),
        )
        .unwrap();
        let cmd = CommandRow {
            command_id: "c1".into(),
            incident_id: "i1".into(),
            target: "n1".into(),
            action: Action::RouteWithdraw { destination: "n9".into() },
            issued_at: day + 700_000_000,
            expires_at: day + 10_700_000_000,
            status: Some(ResultStatus::Failed),
            reason: Some("n9 unknown".into()),
            acked_at: Some(day + 712_000_000),
        };
        write_partitioned(dir.path(), "commands", day, "a", &commands_batch(&[cmd])).unwrap();
        let engine = HistoryEngine::open(dir.path().to_str().unwrap()).await.unwrap();
        for q in saved_queries() {
            let rows: usize = engine
                .query(q.sql)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", q.name))
                .iter()
                .map(|b| b.num_rows())
                .sum();
            assert!(rows > 0 || q.name == "flapping-links", "{} returned nothing", q.name);
        }
        let out = engine.query(saved_query("command-latency").unwrap().sql).await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&out).unwrap().to_string();
        assert!(text.contains("12.0"), "{text}");
    }

    #[tokio::test]
    async fn an_empty_data_dir_has_empty_tables() {
        let dir = tempfile::tempdir().unwrap();
        let engine = HistoryEngine::open(dir.path().to_str().unwrap()).await.unwrap();
        let out = engine.query("SELECT count(*) AS n FROM incidents").await.unwrap();
        assert_eq!(out[0].num_rows(), 1);
    }
}
