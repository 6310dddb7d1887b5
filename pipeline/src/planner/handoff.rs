//! A region's repairs moving to the instance that takes the region over (see
//! `crate::handoff`): the faults its incidents route around and the routes installed
//! in their names, so the new holder withdraws them when the faults clear.
//!
//! Not carried: link costs (the new holder measures its own from the region's
//! telemetry) and the per-route flap guard's history (it starts afresh).

use super::{Installed, Planner};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use x0_schema::{Element, NodeId};

/// The planner's part of a region's handoff.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct PlannerSlice {
    faults: Vec<(String, Element)>,
    installed: Vec<((NodeId, NodeId), Installed)>,
}

impl PlannerSlice {
    /// Routes it carries.
    pub(crate) fn routes(&self) -> usize {
        self.installed.len()
    }
}

impl Planner {
    /// What the planner holds for `incidents`.
    pub(crate) fn hand_off(&self, incidents: &BTreeSet<&str>) -> PlannerSlice {
        PlannerSlice {
            faults: self
                .faults
                .iter()
                .filter(|(id, _)| incidents.contains(id.as_str()))
                .map(|(id, e)| (id.clone(), e.clone()))
                .collect(),
            installed: self
                .installed
                .iter()
                .filter(|(_, r)| incidents.contains(r.incident.as_str()))
                .map(|(k, r)| (*k, r.clone()))
                .collect(),
        }
    }

    /// Takes up what another instance held for the incidents in `taken`. A route this
    /// planner already installed for its own incident stays its own (the newer word on
    /// that node); returns how many of the slice's routes were left so.
    pub(crate) fn take_over(&mut self, slice: PlannerSlice, taken: &BTreeSet<&str>) -> usize {
        let mut clashes = 0;
        for (id, e) in slice.faults.into_iter().filter(|(id, _)| taken.contains(id.as_str())) {
            self.faults.insert(id, e);
        }
        for (k, r) in slice.installed.into_iter().filter(|(_, r)| taken.contains(r.incident.as_str())) {
            match self.installed.entry(k) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(r);
                }
                std::collections::btree_map::Entry::Occupied(_) => clashes += 1,
            }
        }
        clashes
    }

    /// Forgets the faults and routes of `incidents`, now another instance's.
    pub(crate) fn let_go(&mut self, incidents: &BTreeSet<&str>) {
        self.faults.retain(|id, _| !incidents.contains(id.as_str()));
        self.installed.retain(|_, r| !incidents.contains(r.incident.as_str()));
    }
}
