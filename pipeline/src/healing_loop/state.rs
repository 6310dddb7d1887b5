//! The healing loop's durable state: everything its next decision depends on, written
//! into the job's checkpoint and read back on restart (see `crate::checkpoint`).
//!
//! Written from borrowed fields (a checkpoint of a 10,000-node mesh copies nothing it
//! need not) and read into owned ones; the two structs list the same fields in the same
//! order, which is what keeps them one format.

use super::HealingLoop;
use crate::health::HealthLedger;
use crate::incidents::IncidentBook;
use crate::planner::PlannerMemory;
use crate::rca::Localizer;
use crate::verify::{LossHistory, RepairCheck};
use crate::window::Windows;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use x0_sql::CommandRow;
use x0_training::RobustDetector;

#[derive(Serialize)]
struct Borrowed<'a> {
    windows: &'a Windows,
    detector: &'a RobustDetector,
    localizer: &'a Localizer,
    book: &'a IncidentBook,
    planner: PlannerMemory,
    seen: &'a HashSet<String>,
    commands: &'a BTreeMap<String, CommandRow>,
    generation: u64,
    issued: u64,
    loss: &'a LossHistory,
    checks: &'a BTreeMap<String, RepairCheck>,
    health: &'a HealthLedger,
}

#[derive(Deserialize)]
struct Owned {
    windows: Windows,
    detector: RobustDetector,
    localizer: Localizer,
    book: IncidentBook,
    planner: PlannerMemory,
    seen: HashSet<String>,
    commands: BTreeMap<String, CommandRow>,
    generation: u64,
    issued: u64,
    loss: LossHistory,
    checks: BTreeMap<String, RepairCheck>,
    health: HealthLedger,
}

/// Why a saved state could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("healing-loop state: {0}")]
pub struct StateError(String);

impl HealingLoop {
    /// Writes the loop's state (CBOR) to `w`.
    pub fn save_state(&self, w: impl std::io::Write) -> Result<(), StateError> {
        let state = Borrowed {
            windows: &self.windows,
            detector: &self.detector,
            localizer: &self.localizer,
            book: &self.book,
            planner: self.planner.memory(),
            seen: &self.seen,
            commands: &self.commands,
            generation: self.generation,
            issued: self.issued,
            loss: &self.loss,
            checks: &self.checks,
            health: &self.health,
        };
        ciborium::into_writer(&state, w).map_err(|e| StateError(e.to_string()))
    }

    /// Takes up the state [`save_state`](Self::save_state) wrote, keeping this loop's
    /// configuration (thresholds, clearing policy, model) where the two differ: a job
    /// restarted with a new configuration decides by it from its first window.
    pub fn restore_state(&mut self, r: impl std::io::Read) -> Result<(), StateError> {
        let s: Owned = ciborium::from_reader(r).map_err(|e| StateError(e.to_string()))?;
        self.windows = s.windows;
        self.detector = s.detector;
        self.detector.reconfigure(self.config.detector.clone());
        self.localizer = s.localizer;
        let (policy, version) = (self.book.policy(), self.book.model_version().to_string());
        self.book = s.book;
        self.book.set_policy(policy);
        self.book.set_model_version(&version);
        self.planner.restore(s.planner);
        self.seen = s.seen;
        self.commands = s.commands;
        self.generation = s.generation;
        self.issued = s.issued;
        self.loss = s.loss;
        self.checks = s.checks;
        let rule = self.health.rule();
        self.health = s.health;
        self.health.set_rule(rule);
        Ok(())
    }
}
