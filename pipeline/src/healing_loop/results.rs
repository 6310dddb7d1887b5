//! The healing loop and the actuators' answers: who may answer a command, what an
//! answer does to its incident (applied, refused and rolled back, expired and sent
//! again).

use super::{HealingLoop, Publication, Rejection};
use crate::stats::JobStats;
use x0_schema::{Action, CommandResult, ResultStatus};

/// Times one action of a plan is re-issued after reaching its node expired, before
/// the expiry counts as a refusal (and the plan is rolled back).
const REISSUES: u32 = 2;

impl HealingLoop {
    /// A command of a plan in progress that reached its node too late (the node
    /// refused it as expired: a backlog of commands, a slow consumer) is not a
    /// refusal of the repair: the same action goes out again under a new id and a
    /// fresh lifetime, at most [`REISSUES`] times per action. Returns None when `r` is
    /// not such a result, or the action has had its re-issues (then it is a refusal).
    fn reissue_expired(&mut self, r: &CommandResult) -> Option<Vec<Publication>> {
        if r.status != ResultStatus::Rejected || !r.reason.starts_with("expired") {
            return None;
        }
        let row = self.commands.get(&r.command_id)?;
        let (incident, target) = (row.incident_id.clone(), row.target.clone());
        // Only what the plan still wants: an expired route of a plan since withdrawn
        // stays expired (of a batch, the routes it still wants go again).
        let wanted: Vec<Action> =
            row.action.parts().iter().filter(|a| self.planner.still_wants(&target, a)).cloned().collect();
        let action = match wanted.len() {
            0 => return None,
            1 => wanted.into_iter().next().expect("one"),
            _ => Action::RouteBatch { routes: wanted },
        };
        if !self.book.may_reissue(&incident, &r.command_id, REISSUES) {
            return None;
        }
        let now = self.stream_now().unwrap_or(r.applied_at);
        let mut out = Vec::new();
        let record = self.send_command(&incident, &target, action, now, &mut out);
        self.book.reissue(&incident, &r.command_id, &r.reason, record, REISSUES);
        if let Some(row) = self.commands.get_mut(&r.command_id) {
            row.status = Some(r.status);
            row.reason = Some(r.reason.clone());
            row.acked_at = Some(r.applied_at);
        }
        self.stats.result_received(r.status);
        JobStats::bump(&self.stats.commands_reissued);
        self.generation += 1;
        Some(out)
    }

    /// Whether `r` may touch the command it names: a result must come from the node the
    /// command was sent to (`key`, the message's key when it came over Kafka, must name
    /// that node too). Anything else is refused with the label `unauthenticated`.
    /// With keys configured, the job first checks the result's MAC under that node's
    /// key ([`authenticate`](Self::authenticate)), so only the node itself can answer.
    pub fn check_result(&self, r: &CommandResult, key: Option<&[u8]>) -> Result<(), Rejection> {
        let refuse = |reason: String| Err(Rejection { label: "unauthenticated", reason });
        if let Some(key) = key.filter(|k| *k != r.node.as_bytes()) {
            return refuse(format!("result keyed {:?} claims to come from {}", String::from_utf8_lossy(key), r.node));
        }
        match self.commands.get(&r.command_id) {
            Some(row) if row.target != r.node => {
                refuse(format!("result for {} (sent to {}) claims to come from {}", r.command_id, row.target, r.node))
            }
            _ => Ok(()),
        }
    }

    /// Takes a command's result (one that fails [`check_result`](Self::check_result)
    /// changes nothing): updates its incident, rolls a refused plan back.
    pub fn on_result(&mut self, r: &CommandResult) -> Vec<Publication> {
        let out = self.take_result(r);
        self.note_moved(&out);
        out
    }

    fn take_result(&mut self, r: &CommandResult) -> Vec<Publication> {
        if self.check_result(r, None).is_err() {
            return vec![];
        }
        if !self.commands.contains_key(&r.command_id) {
            // Another instance's command (the mesh split among several), or one whose
            // incident settled and was evicted: not this loop's to take.
            return vec![];
        }
        if self.commands.get(&r.command_id).is_some_and(|row| row.status == Some(r.status)) {
            // A second delivery of a result already taken (the broker redelivering, a
            // replay after a restart): nothing new.
            JobStats::bump(&self.stats.duplicate_results);
            return vec![];
        }
        if let Some(out) = self.reissue_expired(r) {
            return out;
        }
        let row = self.commands.get_mut(&r.command_id);
        self.stats.result_received(r.status);
        self.generation += 1;
        if let Some(row) = row {
            row.status = Some(r.status);
            row.reason = (!r.reason.is_empty()).then(|| r.reason.clone());
            row.acked_at = Some(r.applied_at);
        }
        let Some((id, changed)) = self.book.on_result(r) else { return vec![] };
        self.handoff_is_due(&id);
        let mut out = Vec::new();
        if let Some(reason) = self.book.refused_command(&id) {
            let now = self.stream_now().unwrap_or(r.applied_at);
            self.roll_back(&id, &format!("{reason}: the plan, applied in part, is rolled back whole"), now, &mut out);
            self.tell_live(&out);
            return out;
        }
        if changed && self.book.applied(&id) {
            // Windows that start after this are the repair's to answer for: after the
            // newest telemetry the job has read and after the node's own time of
            // applying. A job behind its telemetry (a backlog, a loaded machine) has
            // not yet read windows its agents sent before the routes changed, and
            // those still show the fault. A node clock far ahead is capped at the
            // future-skew bound, so it cannot hold the check off for good.
            let skew = self.config.window.max_future_skew.as_nanos() as i64;
            let took_effect = match self.stream_now() {
                Some(now) => now.max(r.applied_at.min(now.saturating_add(skew))),
                None => r.applied_at,
            };
            if let Some(check) = self.checks.get_mut(&id) {
                check.applied(took_effect);
            }
        }
        // The incident is published when its state moves (its whole plan applied), not
        // once per result: a plan of thousands of routes would publish it thousands of
        // times. The history snapshot holds every result.
        if changed {
            out.extend(self.book.get(&id).cloned().map(Publication::Incident));
        }
        self.tell_live(&out);
        out
    }
}
