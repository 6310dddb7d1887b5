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

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
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

fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for b in batches {
        let cols: Vec<ArrayFormatter> =
            b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
        for r in 0..b.num_rows() {
            // Floats rounded to 4 places: the expected results pin the arithmetic, not
            // the last bits of an aggregation's summation order.
            rows.push(
                cols.iter()
                    .map(|c| {
                        let v = c.value(r).to_string();
                        match v.parse::<f64>() {
                            Ok(x) if v.contains('.') => format!("{:.4}", x),
                            _ => v,
                        }
                    })
                    .collect(),
            );
        }
    }
    rows
}

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
        Ok(DBOutput::Rows { types: vec![DefaultColumnType::Any; width], rows: rows(&batches) })
    }

    async fn shutdown(&mut self) {}
}

fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> Vec<T> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
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
    let links: Vec<LinkSample> = fixture("window_links.jsonl");
    let nodes: Vec<NodeSample> = fixture("window_nodes.jsonl");
    let (lp, np) = (dir.path().join("link_samples.parquet"), dir.path().join("node_samples.parquet"));
    write_parquet(&lp, &link_batch(&links));
    write_parquet(&np, &node_batch(&nodes));
    let (lp, np) = (lp.to_str().unwrap().to_string(), np.to_str().unwrap().to_string());
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt/features.slt");
    let mut runner = sqllogictest::Runner::new(move || {
        let (lp, np) = (lp.clone(), np.clone());
        async move {
            let ctx = SessionContext::new();
            ctx.register_parquet("link_samples", &lp, ParquetReadOptions::default()).await?;
            ctx.register_parquet("node_samples", &np, ParquetReadOptions::default()).await?;
            Ok(Window(ctx))
        }
    });
    if std::env::var("X0_SLT_COMPLETE").as_deref() == Ok("1") {
        runner
            .update_test_file(
                &file,
                " ",
                sqllogictest::default_validator,
                sqllogictest::default_normalizer,
                sqllogictest::default_column_validator,
            )
            .await
            .unwrap();
    } else {
        runner.run_file_async(&file).await.unwrap_or_else(|e| panic!("{}", e.display(false)));
    }
}
