//! The SQL engine over a data directory.

use crate::{commands_schema, incidents_schema, labels_schema};
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTableUrl};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
/// Why a history query failed.
pub enum SqlError {
    /// The query is wrong (parse, plan, unknown column). The user's to fix.
    #[error("query failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    /// The data directory cannot be used.
    #[error("data dir {location}: {reason}")]
    DataDir {
        /// The data directory as given.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    #[error("cannot format output: {0}")]
    /// A result could not be formatted (internal).
    Format(#[from] arrow::error::ArrowError),
}

/// A DataFusion session with the `incidents`, `commands` and `features` tables of
/// one data directory registered.
pub struct HistoryEngine {
    ctx: SessionContext,
}

impl std::fmt::Debug for HistoryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryEngine").finish_non_exhaustive()
    }
}

/// The local directory of a data-directory location (a path or a `file://` URL).
pub fn local_root(location: &str) -> Result<PathBuf, SqlError> {
    if let Some(path) = location.strip_prefix("file://") {
        return Ok(PathBuf::from(path));
    }
    if location.contains("://") {
        return Err(SqlError::DataDir {
            location: location.into(),
            reason: "only local paths and file:// URLs are supported by this build".into(),
        });
    }
    Ok(PathBuf::from(location))
}

impl HistoryEngine {
    /// Opens the data directory; tables without files yet are empty, not missing.
    pub async fn open(location: &str) -> Result<Self, SqlError> {
        let root = local_root(location)?;
        let ctx = SessionContext::new();
        register(&ctx, &root, "incidents", Some(incidents_schema())).await?;
        register(&ctx, &root, "commands", Some(commands_schema())).await?;
        register(&ctx, &root, "features", None).await?;
        register(&ctx, &root, "labels", Some(labels_schema())).await?;
        Ok(HistoryEngine { ctx })
    }

    /// Runs one SQL statement and collects its result.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>, SqlError> {
        Ok(self.ctx.sql(sql).await?.collect().await?)
    }

    /// The underlying session, for callers that register more tables.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }
}

fn has_parquet(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            has_parquet(&p)
        } else {
            p.extension().is_some_and(|x| x == "parquet")
        }
    })
}

async fn register(ctx: &SessionContext, root: &Path, table: &str, schema: Option<SchemaRef>) -> Result<(), SqlError> {
    let dir = root.join(table);
    if !has_parquet(&dir) {
        let schema = schema.unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()));
        let empty = MemTable::try_new(schema, vec![vec![]])?;
        ctx.register_table(table, Arc::new(empty))?;
        return Ok(());
    }
    let dir_str = format!(
        "{}/",
        dir.canonicalize()
            .map_err(|e| SqlError::DataDir { location: dir.display().to_string(), reason: e.to_string() })?
            .display()
    );
    let url = ListingTableUrl::parse(&dir_str)?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![("date".to_string(), DataType::Utf8)]);
    let schema = match schema {
        Some(s) => s,
        None => options.infer_schema(&ctx.state(), &url).await?,
    };
    ctx.register_listing_table(table, &dir_str, options, Some(schema), None).await?;
    Ok(())
}
