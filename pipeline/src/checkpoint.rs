//! The stream job's checkpoint: its identity, the input offsets it covers and the
//! healing loop's state, in one file replaced atomically at window boundaries.
//!
//! The protocol (Flink's and Arroyo's, at the scale of one process): outputs of the
//! windows closed so far are published and acknowledged by the broker; then the state
//! and the offsets of every input message it has taken in are written; only then are
//! those offsets committed to the consumer groups. A job killed at any point restarts
//! from the last checkpoint, skips input it already holds, and replays the rest. A
//! decision replayed is the same decision with the same command ids, which actuators
//! answer as duplicates.

use crate::healing_loop::{HealingLoop, StateError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::PathBuf;
use std::time::Instant;
use x0_schema::Topology;

/// Bumped when the layout changes; an older checkpoint is refused with a reason.
pub const CHECKPOINT_FORMAT: u32 = 1;
const FILE: &str = "job.ckpt";

/// Next offset to read, per topic and partition.
pub type Offsets = BTreeMap<String, BTreeMap<i32, i64>>;

/// What a checkpoint says about itself, ahead of the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// [`CHECKPOINT_FORMAT`] when written.
    pub format: u32,
    /// The job's identity: its history files, incident ids and results group.
    pub job_id: String,
    /// Digest of the inventory it was taken over: node ids index the state.
    pub inventory: String,
    /// Input covered: every message before these offsets is in the state.
    pub offsets: Offsets,
    /// Wall clock when written (ns since the epoch).
    pub written_at_ns: i64,
}

/// Why a checkpoint could not be written or taken up.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing the file.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a checkpoint this job can take up.
    #[error("checkpoint {path}: {reason}; move it away to start afresh (the job's open incidents are then forgotten)")]
    Unusable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// What one checkpoint cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckpointCost {
    /// Bytes written.
    pub bytes: u64,
    /// Time to serialise and write it durably, ms.
    pub ms: f64,
}

/// A directory holding one job's checkpoint.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    /// The checkpoint kept in `dir` (created on the first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CheckpointStore { dir: dir.into() }
    }

    /// The checkpoint file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    fn io(&self, source: std::io::Error) -> CheckpointError {
        CheckpointError::Io { path: self.path(), source }
    }

    fn unusable(&self, reason: impl Into<String>) -> CheckpointError {
        CheckpointError::Unusable { path: self.path(), reason: reason.into() }
    }

    /// The checkpoint's header, if there is one.
    pub fn meta(&self) -> Result<Option<CheckpointMeta>, CheckpointError> {
        let Some(mut r) = self.open()? else { return Ok(None) };
        self.read_meta(&mut r).map(Some)
    }

    /// The checkpoint file for reading, or None when there is none.
    fn open(&self) -> Result<Option<BufReader<std::fs::File>>, CheckpointError> {
        match std::fs::File::open(self.path()) {
            Ok(f) => Ok(Some(BufReader::new(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    fn read_meta(&self, r: &mut impl std::io::Read) -> Result<CheckpointMeta, CheckpointError> {
        let meta: CheckpointMeta = ciborium::from_reader(r).map_err(|e| self.unusable(e.to_string()))?;
        if meta.format != CHECKPOINT_FORMAT {
            return Err(self.unusable(format!("format {} (this job reads {CHECKPOINT_FORMAT})", meta.format)));
        }
        Ok(meta)
    }

    /// Restores `core` from the checkpoint taken over `topology`; returns its header,
    /// or None when there is no checkpoint.
    pub fn restore(
        &self,
        core: &mut HealingLoop,
        topology: &Topology,
    ) -> Result<Option<CheckpointMeta>, CheckpointError> {
        let Some(mut r) = self.open()? else { return Ok(None) };
        let meta = self.read_meta(&mut r)?;
        let inventory = inventory_digest(topology);
        if meta.inventory != inventory {
            return Err(self
                .unusable(format!("taken over another inventory (digest {}, this one {inventory})", meta.inventory)));
        }
        core.restore_state(&mut r).map_err(|e: StateError| self.unusable(e.to_string()))?;
        Ok(Some(meta))
    }

    /// Writes `core`'s state with `meta`, atomically: a crash leaves the previous
    /// checkpoint or this one, never a torn file.
    pub fn write(&self, meta: &CheckpointMeta, core: &HealingLoop) -> Result<CheckpointCost, CheckpointError> {
        let started = Instant::now();
        let bytes = x0_schema::replace_file_durably(&self.path(), |w| {
            ciborium::into_writer(meta, &mut *w).map_err(|e| std::io::Error::other(e.to_string()))?;
            core.save_state(w).map_err(std::io::Error::other)
        })
        .map_err(|e| self.io(e))?;
        Ok(CheckpointCost { bytes, ms: started.elapsed().as_secs_f64() * 1e3 })
    }
}

/// A digest of the inventory's node names and links, in order (the state indexes
/// nodes by position).
pub fn inventory_digest(topology: &Topology) -> String {
    let names = topology.names().iter().flat_map(|n| n.bytes().chain([0]));
    let links = topology
        .links()
        .iter()
        .flat_map(|&(a, b)| (a as u64).to_le_bytes().into_iter().chain((b as u64).to_le_bytes()));
    format!("{:016x}", crate::digest::fnv1a(names.chain(links)))
}
