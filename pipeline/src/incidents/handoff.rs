//! The incidents of a region moving from one job instance to another with the region
//! (see `crate::handoff`): the open ones go whole, with their commands and streaks, so
//! the new holder carries each on under its id instead of opening it again.

use super::{IncidentBook, Tracked};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use x0_schema::Element;

/// The book's part of a region's handoff.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct BookSlice {
    tracked: Vec<(String, Tracked)>,
}

impl BookSlice {
    /// The incident ids it carries.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &str> {
        self.tracked.iter().map(|(id, _)| id.as_str())
    }

    /// How many incidents it carries.
    pub(crate) fn len(&self) -> usize {
        self.tracked.len()
    }
}

/// Whether `t` goes with its region: confirmed and not final. A candidate not yet
/// confirmed has done nothing and is found again from the telemetry; a final incident
/// stays in the history of the instance that settled it.
fn travels(t: &Tracked) -> bool {
    t.confirmed && !t.incident.state.is_final()
}

impl IncidentBook {
    /// What this book's incident ids start with (the job id).
    pub(crate) fn id_prefix(&self) -> &str {
        &self.id_prefix
    }

    /// The ids of the open incidents whose root cause `in_region` places in a region.
    pub(crate) fn open_in(&self, in_region: impl Fn(&Element) -> bool) -> Vec<String> {
        self.tracked
            .iter()
            .filter(|(_, t)| travels(t) && t.incident.root_cause.as_ref().is_some_and(|rc| in_region(&rc.element)))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The open incidents whose root cause `in_region` places in the region.
    pub(crate) fn hand_off(&self, in_region: impl Fn(&Element) -> bool) -> BookSlice {
        let tracked = self
            .open_in(in_region)
            .into_iter()
            .filter_map(|id| Some((id.clone(), self.tracked.get(&id)?.clone())))
            .collect();
        BookSlice { tracked }
    }

    /// Takes up another instance's incidents. One whose element already has an open
    /// incident here under another id is left out (this book's stands); call
    /// [`forget`](Self::forget) first for those held here under the same id (the
    /// handoff's copy is the newer). Returns the ids taken and the ids left out.
    pub(crate) fn take_over(&mut self, slice: BookSlice) -> (Vec<String>, Vec<String>) {
        let (mut taken, mut left) = (vec![], vec![]);
        for (id, t) in slice.tracked {
            let element = t.incident.root_cause.as_ref().map(|rc| rc.element.clone());
            if self.tracked.contains_key(&id) || element.is_some_and(|e| self.open_for(&e).is_some()) {
                left.push(id);
                continue;
            }
            for a in &t.incident.actions {
                self.by_command.insert(a.command_id.clone(), id.clone());
            }
            self.tracked.insert(id.clone(), t);
            taken.push(id);
        }
        (taken, left)
    }

    /// Forgets `ids` (incidents now another instance's, or about to be replaced).
    pub(crate) fn forget(&mut self, ids: &BTreeSet<&str>) {
        self.tracked.retain(|id, _| !ids.contains(id.as_str()));
        self.by_command.retain(|_, id| !ids.contains(id.as_str()));
    }
}
