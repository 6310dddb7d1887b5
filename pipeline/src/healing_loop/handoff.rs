//! The healing loop's side of a region changing hands (see `crate::handoff`): what it
//! publishes for the regions it owns, what it takes up when given one, and what it
//! forgets when one is taken from it.

use super::{HealingLoop, Publication};
use crate::handoff::{RegionHandoff, HANDOFF_FORMAT};
use std::collections::BTreeSet;
use x0_schema::Element;
use x0_sql::CommandRow;

/// What taking a region over took up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Takeover {
    /// Incidents now carried on here, by id.
    pub incidents: Vec<String>,
    /// Incidents left out: already here, or their element already has one here.
    pub left_out: Vec<String>,
    /// Routes installed in their names, now withdrawn from here when they clear.
    pub routes: usize,
    /// Of the handoff's routes, those another incident here already holds.
    pub clashes: usize,
}

impl HealingLoop {
    /// The region that owns `element`.
    fn region_of(&self, element: &Element) -> Option<u32> {
        self.topo.regions().owner(&self.topo, element)
    }

    /// `region`'s open work as this loop holds it now.
    pub fn region_handoff(&self, region: u32) -> RegionHandoff {
        let book = self.book.hand_off(|e| self.region_of(e) == Some(region));
        let ids: BTreeSet<&str> = book.ids().collect();
        RegionHandoff {
            format: HANDOFF_FORMAT,
            region,
            from: self.book.id_prefix().to_string(),
            inventory: self.ownership.as_ref().map(|o| o.inventory().to_string()).unwrap_or_default(),
            written_at_ns: x0_schema::wall_clock_ns(),
            planner: self.planner.hand_off(&ids),
            checks: self
                .checks
                .iter()
                .filter(|(id, _)| ids.contains(id.as_str()))
                .map(|(id, c)| (id.clone(), c.clone()))
                .collect(),
            book,
        }
    }

    /// Notes the owned regions whose incidents `out` moves: their handoffs are due.
    pub(super) fn note_moved(&mut self, out: &[Publication]) {
        let Some(ownership) = &self.ownership else { return };
        let moved = out
            .iter()
            .filter_map(|p| match p {
                Publication::Incident(i) => i.root_cause.as_ref(),
                _ => None,
            })
            .filter_map(|rc| self.region_of(&rc.element))
            .filter(|&r| ownership.owns_region(r))
            .collect::<Vec<u32>>();
        self.handoff_due.extend(moved);
    }

    /// The handoffs due (nothing on a mesh not split among instances): one per owned
    /// region whose incidents moved since, for `x0.handoff`. Built apart from the
    /// window's decision (the commands go out first; a handoff of a repair of 100,000
    /// routes is megabytes).
    pub fn take_handoffs(&mut self) -> Vec<Publication> {
        let due = std::mem::take(&mut self.handoff_due);
        let Some(ownership) = &self.ownership else { return vec![] };
        let owned: Vec<u32> = due.into_iter().filter(|&r| ownership.owns_region(r)).collect();
        owned.into_iter().map(|r| Publication::Handoff(Box::new(self.region_handoff(r)))).collect()
    }

    /// Notes that incident `id`'s region needs its handoff published again, at the
    /// next window (a result changed it; not once per result).
    pub(super) fn handoff_is_due(&mut self, id: &str) {
        if self.ownership.is_none() {
            return;
        }
        let region = self.book.get(id).and_then(|i| i.root_cause.as_ref()).and_then(|rc| self.region_of(&rc.element));
        self.handoff_stale.extend(region);
    }

    /// Takes up a region's open work from its handoff, once the region is this loop's:
    /// its incidents carry on under their ids, their routes are withdrawn from here when
    /// their faults clear. Refused (None, with the reason logged) when the region is not
    /// owned here or the handoff was written over another inventory.
    pub fn take_over(&mut self, h: RegionHandoff) -> Option<Takeover> {
        let ownership = self.ownership.as_ref()?;
        if !ownership.owns_region(h.region) {
            tracing::warn!(region = h.region, "handoff of a region this instance does not own: ignored");
            return None;
        }
        if h.inventory != ownership.inventory() {
            tracing::warn!(region = h.region, from = %h.from, "handoff written over another inventory: ignored");
            return None;
        }
        // What this loop holds under the handoff's ids (its checkpoint's copy, from
        // before it last held the region) gives way to the handoff's, the newer.
        let held: Vec<String> = h.book.ids().filter(|id| self.book.get(id).is_some()).map(str::to_string).collect();
        self.forget(&held);
        let (taken, left_out) = self.book.take_over(h.book);
        let ids: BTreeSet<&str> = taken.iter().map(String::as_str).collect();
        let (routes, clashes) = self.planner.take_over(h.planner, &ids);
        // The commands, from the incidents' own records (the handoff carries each once).
        let ttl = self.config.planner.command_ttl.as_nanos() as i64;
        for id in &taken {
            for a in self.book.get(id).map(|i| i.actions.as_slice()).unwrap_or_default() {
                self.commands.entry(a.command_id.clone()).or_insert_with(|| CommandRow {
                    command_id: a.command_id.clone(),
                    incident_id: id.clone(),
                    target: a.target.clone(),
                    action: a.action.clone(),
                    issued_at: a.issued_at,
                    expires_at: a.issued_at + ttl,
                    status: a.status,
                    reason: a.reason.clone(),
                    acked_at: a.acked_at,
                });
            }
        }
        for (id, check) in h.checks.into_iter().filter(|(id, _)| ids.contains(id.as_str())) {
            self.checks.insert(id, check);
        }
        for id in &taken {
            self.book.note(id, &format!("carried on by {} (region {} changed hands)", self.book.id_prefix(), h.region));
        }
        self.generation += 1;
        Some(Takeover { incidents: taken, left_out, routes, clashes })
    }

    /// Takes another instance's handoff of a region it owns as that instance's current
    /// work: this loop's repairs avoid its faults and take its routes for where traffic
    /// goes, and are made again at the next window if they changed. Ignored for a
    /// region owned here (its handoff is taken over, not watched) or over another
    /// inventory.
    pub fn observe_foreign(&mut self, h: RegionHandoff) {
        let Some(ownership) = &self.ownership else { return };
        if ownership.owns_region(h.region) || h.inventory != ownership.inventory() {
            return;
        }
        if self.planner.observe_foreign(h.region, h.planner) {
            self.reconcile_due = true;
        }
    }

    /// After another instance's work changed: the routes crossing this loop's faults
    /// are repaired again where they need it, in the name of the first open incident
    /// that holds a fault.
    pub(super) fn reconcile(&mut self, now: i64, out: &mut Vec<Publication>) {
        if !std::mem::take(&mut self.reconcile_due) {
            return;
        }
        let holder = self
            .planner
            .fault_incidents()
            .into_iter()
            .find(|id| self.book.get(id).is_some_and(|i| !i.state.is_final()) && !self.book.rolled_back(id));
        let Some(id) = holder else { return };
        let plan = self.planner.reconcile(&id, now);
        if plan.changes.is_empty() {
            return;
        }
        let why = plan.explanation.join("; ");
        let actions = self.issue(&id, plan, now, out);
        self.book.record_actions(&id, actions, &why);
        self.generation += 1;
        out.extend(self.book.get(&id).cloned().map(Publication::Incident));
    }

    /// Forgets the open work of regions not owned here (their owner carries it on
    /// from their handoffs). Returns the incident ids let go.
    pub(super) fn let_go(&mut self, not_owned: &[u32]) -> Vec<String> {
        if not_owned.is_empty() {
            return vec![];
        }
        let ids = self.book.open_in(|e| self.region_of(e).is_some_and(|r| not_owned.contains(&r)));
        self.forget(&ids);
        ids
    }

    /// Forgets the incidents `ids`, their routes, commands and checks.
    fn forget(&mut self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let set: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        self.book.forget(&set);
        self.planner.let_go(&set);
        self.commands.retain(|_, c| !set.contains(c.incident_id.as_str()));
        self.checks.retain(|id, _| !set.contains(id.as_str()));
        self.generation += 1;
    }
}
