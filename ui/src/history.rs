//! The history view's figures: the saved DataFusion queries over the job's history
//! files, the same SQL `x0tta6bl4 sql --saved NAME` runs (no second query language).

use serde_json::{json, Value};
use std::path::Path;
use x0_sql::{format_batches, saved_query, HistoryEngine, OutputFormat, SqlError};

/// The saved queries the view shows, in order.
const SHOWN: [&str; 4] = ["mttr-over-time", "mttr-by-root-cause", "flapping-links", "incidents-per-day"];

/// Each shown query's description, SQL and rows (JSON objects), read fresh from the
/// history files.
pub(crate) async fn report(data_dir: &Path) -> Result<Value, SqlError> {
    let engine = HistoryEngine::open(&data_dir.to_string_lossy()).await?;
    let mut out = serde_json::Map::new();
    for name in SHOWN {
        let q = saved_query(name).expect("the shown queries are saved queries");
        let batches = engine.query(q.sql).await?;
        let rows: Value = serde_json::from_str(&format_batches(&batches, OutputFormat::Json)?).unwrap_or(json!([]));
        out.insert(name.to_string(), json!({"description": q.description, "sql": q.sql, "rows": rows}));
    }
    Ok(json!({"data_dir": data_dir.display().to_string(), "queries": out}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_empty_history_gives_empty_tables_not_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v = report(dir.path()).await.expect("report");
        for name in SHOWN {
            assert_eq!(v["queries"][name]["rows"], json!([]), "{name}");
        }
    }
}
