//! The saved queries (`sql/queries/*.sql`) against a small incident history, with their
//! expected results held in data: `sql/tests/slt/saved/*.slt`, sqllogictest files (the format
//! DataFusion keeps its own SQL behaviour in). In them, `SAVED name` runs a saved query.
//!
//! The history is built the production way: the JSON fixtures in `sql/tests/fixtures`
//! written as date-partitioned Parquet by this crate's own writer, read by
//! `HistoryEngine`. `X0_SLT_COMPLETE=1 cargo test -p x0-sql --test saved_queries`
//! rewrites the expected results (review the diff).
#![allow(clippy::unwrap_used)]

mod common;

use arrow::datatypes::DataType;
use sqllogictest::{DBOutput, DefaultColumnType};
use std::path::{Path, PathBuf};
use x0_schema::Incident;
use x0_sql::{commands_batch, incidents_batch, saved_query, write_partitioned, CommandRow, HistoryEngine, SqlError};

/// The history engine as sqllogictest's database.
struct History(HistoryEngine);

fn column_type(t: &DataType) -> DefaultColumnType {
    match t {
        t if t.is_integer() => DefaultColumnType::Integer,
        t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => DefaultColumnType::FloatingPoint,
        _ => DefaultColumnType::Text,
    }
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for History {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        let sql = match sql.trim().strip_prefix("SAVED ") {
            Some(name) => saved_query(name.trim()).unwrap_or_else(|| panic!("no saved query {name}")).sql.to_string(),
            None => sql.to_string(),
        };
        let batches = self.0.query(&sql).await?;
        let types = match batches.first() {
            Some(b) => b.schema().fields().iter().map(|f| column_type(f.data_type())).collect(),
            None => vec![],
        };
        Ok(DBOutput::Rows { types, rows: common::rows(&batches, false) })
    }

    async fn shutdown(&mut self) {}
}

/// The fixtures as a history directory: one Parquet file per table and day.
fn history() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let day = |ns: i64| ns - ns.rem_euclid(86_400_000_000_000);
    let incidents: Vec<Incident> = common::fixture("incidents.jsonl");
    let mut days: Vec<i64> = incidents.iter().map(|i| day(i.opened_at)).collect();
    days.dedup();
    for d in days {
        let those: Vec<Incident> = incidents.iter().filter(|i| day(i.opened_at) == d).cloned().collect();
        write_partitioned(dir.path(), "incidents", d, "fixture", &incidents_batch(&those)).unwrap();
    }
    // The first half as files written before route batches were (no `routes` column).
    let commands: Vec<CommandRow> = common::fixture("commands.jsonl");
    let (old, new) = commands.split_at(commands.len() / 2);
    let old = commands_batch(old);
    let before_batches = old.project(&(0..old.num_columns() - 1).collect::<Vec<_>>()).unwrap();
    write_partitioned(dir.path(), "commands", commands[0].issued_at, "before-batches", &before_batches).unwrap();
    write_partitioned(dir.path(), "commands", commands[0].issued_at, "fixture", &commands_batch(new)).unwrap();
    dir
}

/// Commands recorded before route batches read on, with no route count.
#[tokio::test]
async fn commands_written_before_route_batches_still_read() {
    let dir = history();
    let engine = HistoryEngine::open(dir.path().to_str().unwrap()).await.unwrap();
    let batches = engine.query("SELECT count(*), count(routes), sum(routes) FROM commands").await.unwrap();
    let rows = common::rows(&batches, false);
    let all: usize = common::fixture::<CommandRow>("commands.jsonl").len();
    let new = all - all / 2;
    assert_eq!(
        rows,
        vec![vec![all.to_string(), new.to_string(), new.to_string()]],
        "every fixture command changes one route"
    );
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt/saved");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|x| x == "slt"));
    files.sort();
    files
}

#[tokio::test]
async fn saved_queries_give_their_recorded_results() {
    let dir = history();
    let location = dir.path().to_str().unwrap().to_string();
    let files = slt_files();
    assert!(!files.is_empty());
    for file in files {
        let location = location.clone();
        let runner = sqllogictest::Runner::new(move || {
            let location = location.clone();
            async move { HistoryEngine::open(&location).await.map(History) }
        });
        common::run_or_complete(runner, &file).await;
    }
}

#[test]
fn every_saved_query_has_an_slt_case() {
    let all: String = slt_files().iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
    for q in x0_sql::saved_queries() {
        assert!(all.contains(&format!("SAVED {}\n", q.name)), "no .slt case runs saved query {}", q.name);
    }
}
