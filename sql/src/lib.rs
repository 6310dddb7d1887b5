//! The incident history: Parquet tables written by the stream job and queried with
//! DataFusion SQL.
//!
//! Four tables live under a data directory (a local path or an object-store URL):
//!
//! | table | one row per | written |
//! |---|---|---|
//! | `incidents` | incident (its latest state) | snapshots while the job runs, final at shutdown |
//! | `commands` | healing command, with its result | likewise |
//! | `features` | link end per window | appended every flush |
//! | `labels` | operator verdict on an incident (`incident label`) | appended; the latest per incident wins |
//!
//! each partitioned by day (`<table>/date=YYYY-MM-DD/*.parquet`). Nested parts of an
//! incident (symptoms, actions, evidence) are JSON strings, so any Parquet reader sees
//! flat, documented columns (see `docs/ARCHITECTURE.md`).
//!
//! ```no_run
//! # async fn f() -> Result<(), x0_sql::SqlError> {
//! let engine = x0_sql::HistoryEngine::open("./x0-data").await?;
//! let batches = engine.query("SELECT count(*) FROM incidents").await?;
//! println!("{}", x0_sql::format_batches(&batches, x0_sql::OutputFormat::Table)?);
//! # Ok(()) }
//! ```

mod engine;
mod output;
mod saved;
mod tables;
mod writer;

pub use engine::{local_root, HistoryEngine, SqlError};
pub use output::{format_batches, OutputFormat};
pub use saved::{saved_queries, saved_query, SavedQuery};
pub use tables::{
    commands_batch, commands_schema, incidents_batch, incidents_schema, labels_batch, labels_schema, CommandRow,
    LabelRow,
};
pub use writer::{partition_dir, write_partitioned, SnapshotWriter};
