//! `sql/features.sql` (the feature SQL the stream job runs on every closed window) over
//! one fixture window, with its expected results held in `sql/tests/slt/features.slt`.
//! In that file `FEATURES name` runs the `-- name: name` query of features.sql.
//!
//! The window (`sql/tests/fixtures/window_{links,nodes}.jsonl`, telemetry samples as
//! the contract defines them) is written as Parquet with the telemetry's own Arrow
//! schemas and registered as `link_samples` and `node_samples`, the tables the feature
//! SQL reads. `X0_SLT_COMPLETE=1 cargo test --workspace --test feature_sql` rewrites
//! the expected results (review the diff).
#![allow(clippy::unwrap_used)]

mod common;

use arrow::array::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use sqllogictest::{DBOutput, DefaultColumnType};
use std::path::Path;
use x0_schema::{link_batch, node_batch, LinkSample, NodeSample};

const FEATURES_SQL: &str = include_str!("../features.sql");

/// The `-- name: name` block of features.sql (up to the next block).
fn named_query(name: &str) -> String {
    let marker = format!("-- name: {name}\n");
    let start = FEATURES_SQL.find(&marker).unwrap_or_else(|| panic!("features.sql has no {name}")) + marker.len();
    let rest = &FEATURES_SQL[start..];
    rest[..rest.find("-- name:").unwrap_or(rest.len())].trim().trim_end_matches(';').to_string()
}

struct Window(SessionContext);

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for Window {
    type Error = datafusion::error::DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Self::Error> {
        let sql = match sql.trim().strip_prefix("FEATURES ") {
            Some(name) => named_query(name.trim()),
            None => sql.to_string(),
        };
        let batches = self.0.sql(&sql).await?.collect().await?;
        let width = batches.first().map_or(0, |b| b.num_columns());
        Ok(DBOutput::Rows { types: vec![DefaultColumnType::Any; width], rows: common::rows(&batches, true) })
    }

    async fn shutdown(&mut self) {}
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

#[tokio::test]
async fn the_feature_sql_gives_its_recorded_features_on_a_fixture_window() {
    let dir = tempfile::tempdir().unwrap();
    let links: Vec<LinkSample> = common::fixture("window_links.jsonl");
    let nodes: Vec<NodeSample> = common::fixture("window_nodes.jsonl");
    let (lp, np) = (dir.path().join("link_samples.parquet"), dir.path().join("node_samples.parquet"));
    write_parquet(&lp, &link_batch(&links));
    write_parquet(&np, &node_batch(&nodes));
    let (lp, np) = (lp.to_str().unwrap().to_string(), np.to_str().unwrap().to_string());
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt/features.slt");
    let runner = sqllogictest::Runner::new(move || {
        let (lp, np) = (lp.clone(), np.clone());
        async move {
            let ctx = SessionContext::new();
            ctx.register_parquet("link_samples", &lp, ParquetReadOptions::default()).await?;
            ctx.register_parquet("node_samples", &np, ParquetReadOptions::default()).await?;
            Ok(Window(ctx))
        }
    });
    common::run_or_complete(runner, &file).await;
}
