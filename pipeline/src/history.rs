//! Writing the incident history: snapshots of incidents and commands, appended feature
//! rows, all as day-partitioned Parquet under the data directory.

use crate::features::with_window_columns;
use arrow::array::RecordBatch;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use x0_schema::Incident;
use x0_sql::{commands_batch, incidents_batch, partition_dir, write_partitioned, CommandRow, SnapshotWriter};
use x0_training::{DatasetWriter, LabelledWindow};

/// The history's directory of model inputs: one dataset directory (`nodes.parquet`,
/// `links.parquet`, the format `simulate --out` writes) per flush, under
/// `date=YYYY-MM-DD` partitions. `train --history` labels them from the incidents.
pub const MODEL_INPUTS: &str = "model_inputs";

fn day(ns: i64) -> i64 {
    ns.div_euclid(86_400_000_000_000)
}

#[derive(Debug)]
pub(crate) struct History {
    root: PathBuf,
    job_id: String,
    incidents: SnapshotWriter,
    commands: SnapshotWriter,
    feature_files: u64,
    /// This process's tag in appended file names: a job restarted under the same id
    /// must not overwrite the files its previous process appended.
    session: String,
}

impl History {
    pub(crate) fn new(root: &Path, job_id: &str) -> Self {
        History {
            root: root.to_path_buf(),
            job_id: job_id.into(),
            incidents: SnapshotWriter::new(root, "incidents", job_id),
            commands: SnapshotWriter::new(root, "commands", job_id),
            feature_files: 0,
            session: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
        }
    }

    pub(crate) fn job_id(&self) -> &str {
        &self.job_id
    }

    /// Replaces this job's snapshot of incidents (per day of `opened_at`) and commands.
    pub(crate) fn snapshot(&self, incidents: &[Incident], commands: &[CommandRow]) -> std::io::Result<()> {
        let mut by_day: BTreeMap<i64, Vec<Incident>> = BTreeMap::new();
        for i in incidents {
            by_day.entry(day(i.opened_at)).or_default().push(i.clone());
        }
        for rows in by_day.values() {
            self.incidents.write(rows[0].opened_at, &incidents_batch(rows))?;
        }
        let mut by_day: BTreeMap<i64, Vec<CommandRow>> = BTreeMap::new();
        for c in commands {
            by_day.entry(day(c.issued_at)).or_default().push(c.clone());
        }
        for rows in by_day.values() {
            self.commands.write(rows[0].issued_at, &commands_batch(rows))?;
        }
        Ok(())
    }

    /// Appends the windows' model inputs as one new dataset directory per day touched,
    /// written under a temporary name and renamed when complete.
    pub(crate) fn append_model_inputs(&mut self, windows: Vec<LabelledWindow>) -> std::io::Result<()> {
        let mut by_day: BTreeMap<i64, Vec<LabelledWindow>> = BTreeMap::new();
        for w in windows {
            by_day.entry(day(w.start_ns)).or_default().push(w);
        }
        for (d, windows) in by_day {
            self.feature_files += 1;
            let part = partition_dir(&self.root, MODEL_INPUTS, d * 86_400_000_000_000);
            let name = format!("part-{}-{}-{:06}", self.job_id, self.session, self.feature_files);
            let tmp = part.join(format!("{name}.tmp"));
            let mut writer = DatasetWriter::create(&tmp).map_err(std::io::Error::other)?;
            for w in &windows {
                writer.write(w).map_err(std::io::Error::other)?;
            }
            writer.finish().map_err(std::io::Error::other)?;
            std::fs::rename(&tmp, part.join(name))?;
        }
        Ok(())
    }

    /// Appends feature rows as one new file per day touched.
    pub(crate) fn append_features(&mut self, rows: Vec<(i64, i64, RecordBatch)>) -> std::io::Result<()> {
        let mut by_day: BTreeMap<i64, Vec<RecordBatch>> = BTreeMap::new();
        for (start, end, b) in rows {
            if b.num_rows() > 0 {
                by_day
                    .entry(day(start))
                    .or_default()
                    .push(with_window_columns(&b, start, end).map_err(std::io::Error::other)?);
            }
        }
        for (d, batches) in by_day {
            let schema = batches[0].schema();
            let all = arrow::compute::concat_batches(&schema, &batches).map_err(std::io::Error::other)?;
            self.feature_files += 1;
            let name = format!("part-{}-{}-{:06}", self.job_id, self.session, self.feature_files);
            write_partitioned(&self.root, "features", d * 86_400_000_000_000, &name, &all)?;
        }
        Ok(())
    }
}
