//! Writing day-partitioned Parquet files, atomically (write to a temporary name, rename).

use arrow::array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::path::{Path, PathBuf};

/// The partition directory `<root>/<table>/date=YYYY-MM-DD` for an instant (ns since epoch).
pub fn partition_dir(root: &Path, table: &str, ns: i64) -> PathBuf {
    let day = chrono::DateTime::from_timestamp_nanos(ns).format("%Y-%m-%d");
    root.join(table).join(format!("date={day}"))
}

fn write_file(path: &Path, batch: &RecordBatch) -> std::io::Result<()> {
    let dir = path.parent().expect("partition files have a parent");
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp)?;
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(std::io::Error::other)?;
    writer.write(batch).map_err(std::io::Error::other)?;
    writer.close().map_err(std::io::Error::other)?;
    std::fs::rename(&tmp, path)
}

/// Appends `batch` as a new file `<name>.parquet` in the partition for `ns`.
pub fn write_partitioned(
    root: &Path,
    table: &str,
    ns: i64,
    name: &str,
    batch: &RecordBatch,
) -> std::io::Result<PathBuf> {
    let path = partition_dir(root, table, ns).join(format!("{name}.parquet"));
    write_file(&path, batch)?;
    Ok(path)
}

/// Keeps one file per (table, day) for this writer, replaced by each snapshot: the
/// latest state of every row this job knows, and never a torn file.
#[derive(Debug, Clone)]
pub struct SnapshotWriter {
    root: PathBuf,
    table: String,
    writer_id: String,
}

impl SnapshotWriter {
    /// A writer of `table` snapshots under `root`, its files named after `writer_id`.
    pub fn new(root: &Path, table: &str, writer_id: &str) -> Self {
        SnapshotWriter { root: root.to_path_buf(), table: table.into(), writer_id: writer_id.into() }
    }

    /// Writes `batch` (rows of the day of `ns`) replacing this writer's previous snapshot.
    pub fn write(&self, ns: i64, batch: &RecordBatch) -> std::io::Result<PathBuf> {
        write_partitioned(&self.root, &self.table, ns, &format!("part-{}", self.writer_id), batch)
    }
}
