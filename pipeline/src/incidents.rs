//! The incident lifecycle: opened → diagnosed → mitigating → verifying → resolved or
//! failed, driven by each window's diagnoses and by the actuators' results.

use crate::rca::Diagnosis;
use std::collections::BTreeMap;
use x0_schema::{ActionRecord, CommandResult, Element, Incident, IncidentState, Outcome, ResultStatus};

/// What a window or a result did to the book.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Transition {
    /// Confirmed and diagnosed: time to plan.
    Diagnosed(String),
    /// Confirmed, not acted upon, and its diagnosis changed: decide again.
    Rediagnosed(String),
    /// Its element has been healthy long enough: time to withdraw routes and resolve.
    Cleared(String),
}

#[derive(Debug)]
struct Tracked {
    incident: Incident,
    streak: u32,
    confirmed: bool,
    healthy_windows: u32,
    acted: bool,
    /// Its repair was rolled back: not acted on again while it lasts.
    rolled_back: bool,
}

/// Every incident this job knows, keyed by id, plus candidates not yet confirmed.
#[derive(Debug)]
pub(crate) struct IncidentBook {
    confirm_windows: u32,
    clear_windows: u32,
    model_version: String,
    tracked: BTreeMap<String, Tracked>,
    next_id: u64,
    id_prefix: String,
}

/// The first command of the incident's current plan its actuator refused, failed or
/// rolled back, as a reason.
fn refused(inc: &Incident) -> Option<String> {
    inc.actions.iter().find_map(|a| match a.status {
        Some(s @ (ResultStatus::Failed | ResultStatus::Rejected | ResultStatus::RolledBack)) => Some(format!(
            "command {} to {} was {}: {}",
            a.command_id,
            a.target,
            s.as_str(),
            a.reason.as_deref().unwrap_or("no reason given")
        )),
        _ => None,
    })
}

pub(crate) const DAY_NS: i64 = 86_400_000_000_000;

/// Appends a line to an incident's explanation.
fn push_line(explanation: &mut String, line: &str) {
    if !explanation.is_empty() {
        explanation.push('\n');
    }
    explanation.push_str(line);
}

fn ms(ns: i64) -> i64 {
    ns / 1_000_000
}

impl IncidentBook {
    /// Incidents opened from now on record this detector version.
    pub(crate) fn set_model_version(&mut self, version: &str) {
        self.model_version = version.to_string();
    }

    pub(crate) fn new(confirm_windows: u32, clear_windows: u32, model_version: &str, id_prefix: &str) -> Self {
        IncidentBook {
            confirm_windows,
            clear_windows,
            model_version: model_version.into(),
            tracked: BTreeMap::new(),
            next_id: 0,
            id_prefix: id_prefix.into(),
        }
    }

    fn open_for(&self, element: &Element) -> Option<String> {
        self.tracked
            .iter()
            .find(|(_, t)| {
                !t.incident.state.is_final() && t.incident.root_cause.as_ref().is_some_and(|rc| &rc.element == element)
            })
            .map(|(id, _)| id.clone())
    }

    /// Feeds one window's diagnoses. `now_ns` is stream time at the decision.
    #[cfg(test)]
    pub(crate) fn observe(&mut self, diagnoses: Vec<Diagnosis>, window_start: i64, now_ns: i64) -> Vec<Transition> {
        self.observe_with(diagnoses, window_start, now_ns, &mut |_| None)
    }

    /// [`observe`](Self::observe), with `recall` asked about each candidate that is not
    /// yet confirmed: a reason from it (a known incident) confirms the candidate now.
    pub(crate) fn observe_with(
        &mut self,
        diagnoses: Vec<Diagnosis>,
        window_start: i64,
        now_ns: i64,
        recall: &mut dyn FnMut(&Incident) -> Option<String>,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        let mut touched = Vec::new();
        for d in diagnoses {
            self.absorb_link_candidates(&d);
            let id = match self.open_for(&d.cause.element) {
                Some(id) => id,
                None => self.open(&d, window_start, now_ns),
            };
            let t = self.tracked.get_mut(&id).expect("just found or inserted");
            t.streak += 1;
            t.healthy_windows = 0;
            // Keep a bounded, recent symptom list.
            t.incident.symptoms.extend(d.symptoms);
            let excess = t.incident.symptoms.len().saturating_sub(64);
            t.incident.symptoms.drain(..excess);
            // The latest evidence speaks until we act: a stale, stronger diagnosis from
            // an earlier window must not confirm (or justify acting on) a weaker one.
            if !t.acted {
                let changed = t.incident.root_cause.as_ref().is_none_or(|rc| {
                    rc.kind != d.cause.kind
                        || rc.element != d.cause.element
                        || (rc.confidence - d.cause.confidence).abs() >= 0.05
                });
                t.incident.root_cause = Some(d.cause);
                if t.confirmed && changed {
                    out.push(Transition::Rediagnosed(id.clone()));
                }
            }
            let recalled =
                (!t.confirmed && !d.hard && t.streak < self.confirm_windows).then(|| recall(&t.incident)).flatten();
            let early = recalled.is_some();
            if let Some(why) = recalled {
                push_line(&mut t.incident.explanation, &why);
            }
            if !t.confirmed && (d.hard || early || t.streak >= self.confirm_windows) {
                t.confirmed = true;
                t.incident.detected_at = now_ns;
                t.incident.diagnosed_at = Some(now_ns);
                t.incident.state = IncidentState::Diagnosed;
                t.incident.mttd_ms = Some(ms(now_ns - t.incident.opened_at));
                out.push(Transition::Diagnosed(id.clone()));
            }
            touched.push(id);
        }
        let mut drop = Vec::new();
        for (id, t) in &mut self.tracked {
            if touched.contains(id) || t.incident.state.is_final() {
                continue;
            }
            if !t.confirmed {
                drop.push(id.clone());
                continue;
            }
            t.healthy_windows += 1;
            if t.healthy_windows == self.clear_windows {
                out.push(Transition::Cleared(id.clone()));
            }
        }
        for id in drop {
            self.tracked.remove(&id);
        }
        out
    }

    /// A node diagnosis absorbs unconfirmed candidates on the links whose symptoms it
    /// explains (not a link it left out as slow or lossy for its own reason).
    fn absorb_link_candidates(&mut self, d: &Diagnosis) {
        let Element::Node { id } = &d.cause.element else { return };
        self.tracked.retain(|_, t| {
            let absorbed = !t.confirmed
                && t.incident.root_cause.as_ref().is_some_and(|rc| {
                    matches!(rc.element, Element::Link { .. })
                        && rc.element.touches(id)
                        && d.symptoms.iter().any(|s| s.element == rc.element)
                });
            !absorbed
        });
    }

    /// Starts tracking a new candidate incident for `d`; returns its id.
    fn open(&mut self, d: &Diagnosis, window_start: i64, now_ns: i64) -> String {
        self.next_id += 1;
        let id = format!("{}-{:04}", self.id_prefix, self.next_id);
        let incident = Incident {
            schema_version: x0_schema::SCHEMA_VERSION,
            incident_id: id.clone(),
            opened_at: window_start,
            detected_at: now_ns,
            diagnosed_at: None,
            mitigated_at: None,
            resolved_at: None,
            state: IncidentState::Opened,
            symptoms: vec![],
            root_cause: Some(d.cause.clone()),
            actions: vec![],
            outcome: Outcome::Open,
            mttd_ms: None,
            mttr_ms: None,
            model_version: self.model_version.clone(),
            explanation: String::new(),
        };
        let tracked =
            Tracked { incident, streak: 0, confirmed: false, healthy_windows: 0, acted: false, rolled_back: false };
        self.tracked.insert(id.clone(), tracked);
        id
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Incident> {
        self.tracked.get(id).filter(|t| t.confirmed).map(|t| &t.incident)
    }

    /// Records the plan's commands; the incident is mitigating until they are acked.
    pub(crate) fn record_actions(&mut self, id: &str, actions: Vec<ActionRecord>, explanation: &str) {
        let Some(t) = self.tracked.get_mut(id) else { return };
        t.acted = t.acted || !actions.is_empty();
        if !actions.is_empty() {
            t.incident.state = IncidentState::Mitigating;
        }
        t.incident.actions.extend(actions);
        push_line(&mut t.incident.explanation, explanation);
    }

    /// Notes that no action will be taken (guardrail, suspect reporter, low confidence).
    pub(crate) fn record_no_action(&mut self, id: &str, why: &str) {
        let Some(t) = self.tracked.get_mut(id) else { return };
        t.incident.outcome = Outcome::NoAction;
        push_line(&mut t.incident.explanation, why);
    }

    /// Applies an actuator's result; returns the incident it belonged to if it changed.
    pub(crate) fn on_result(&mut self, r: &CommandResult) -> Option<String> {
        let (id, t) =
            self.tracked.iter_mut().find(|(_, t)| t.incident.actions.iter().any(|a| a.command_id == r.command_id))?;
        let a = t.incident.actions.iter_mut().find(|a| a.command_id == r.command_id).expect("found above");
        a.status = Some(r.status);
        a.reason = (!r.reason.is_empty()).then(|| r.reason.clone());
        a.acked_at = Some(r.applied_at);
        let inc = &mut t.incident;
        let all_acked = inc.actions.iter().all(|a| a.status.is_some());
        // A refused command leaves the incident mitigating: the job rolls the plan back.
        if inc.state == IncidentState::Mitigating && all_acked && refused(inc).is_none() {
            let last = inc.actions.iter().filter_map(|a| a.acked_at).max().unwrap_or(r.applied_at);
            inc.mitigated_at = Some(last);
            inc.mttr_ms = Some(ms(last - inc.opened_at));
            inc.state = IncidentState::Verifying;
            inc.outcome = Outcome::Mitigated;
        }
        Some(id.clone())
    }

    /// Why the incident's plan must be rolled back now: a command of it was refused,
    /// failed or rolled back by its actuator (a plan applied in part can loop traffic).
    pub(crate) fn refused_command(&self, id: &str) -> Option<String> {
        let t = self.tracked.get(id).filter(|t| t.acted && !t.rolled_back && !t.incident.state.is_final())?;
        refused(&t.incident)
    }

    /// Whether every command of the incident's plan was applied (it is being verified).
    pub(crate) fn applied(&self, id: &str) -> bool {
        self.tracked.get(id).is_some_and(|t| t.incident.state == IncidentState::Verifying)
    }

    /// The repair did not help or was refused in part: its routes are being withdrawn
    /// (`withdrawals`). The incident stays open while its symptoms last, is not acted on
    /// again, and ends failed.
    pub(crate) fn roll_back(&mut self, id: &str, withdrawals: Vec<ActionRecord>, why: &str) {
        let Some(t) = self.tracked.get_mut(id) else { return };
        t.rolled_back = true;
        t.acted = false;
        t.incident.state = IncidentState::Diagnosed;
        t.incident.outcome = Outcome::Failed;
        t.incident.actions.extend(withdrawals);
        push_line(&mut t.incident.explanation, why);
    }

    /// Whether the incident's repair was rolled back.
    pub(crate) fn rolled_back(&self, id: &str) -> bool {
        self.tracked.get(id).is_some_and(|t| t.rolled_back)
    }

    /// Adds a line to the incident's explanation.
    pub(crate) fn note(&mut self, id: &str, line: &str) {
        if let Some(t) = self.tracked.get_mut(id) {
            push_line(&mut t.incident.explanation, line);
        }
    }

    /// The element healed and routes were handed back.
    pub(crate) fn resolve(&mut self, id: &str, now_ns: i64, withdrawals: Vec<ActionRecord>, explanation: &str) {
        let Some(t) = self.tracked.get_mut(id) else { return };
        let inc = &mut t.incident;
        inc.resolved_at = Some(now_ns);
        if t.rolled_back {
            inc.state = IncidentState::Failed;
            inc.outcome = Outcome::Failed;
        } else {
            inc.state = IncidentState::Resolved;
            if inc.outcome != Outcome::NoAction {
                inc.outcome = if t.acted { Outcome::Recovered } else { Outcome::NoAction };
            }
        }
        inc.actions.extend(withdrawals);
        inc.explanation.push('\n');
        inc.explanation.push_str(explanation);
    }

    /// Whether the incident's fault was acted upon (has routes to withdraw).
    pub(crate) fn acted(&self, id: &str) -> bool {
        self.tracked.get(id).is_some_and(|t| t.acted)
    }

    /// Drops the incidents of days before `day_start_ns` whose incidents are all final.
    /// Only call after a snapshot that included them: their day's file is then never
    /// rewritten, because no incident of that day is left to write.
    pub(crate) fn evict_settled_before(&mut self, day_start_ns: i64) -> usize {
        let day = |ns: i64| ns.div_euclid(DAY_NS);
        let mut open_days = std::collections::BTreeSet::new();
        for t in self.tracked.values() {
            if !t.incident.state.is_final() {
                open_days.insert(day(t.incident.opened_at));
            }
        }
        let before = self.tracked.len();
        self.tracked.retain(|_, t| {
            let d = day(t.incident.opened_at);
            d >= day(day_start_ns) || open_days.contains(&d) || !t.confirmed && !t.incident.state.is_final()
        });
        before - self.tracked.len()
    }

    /// Every confirmed incident, oldest first.
    pub(crate) fn incidents(&self) -> Vec<Incident> {
        self.tracked.values().filter(|t| t.confirmed).map(|t| t.incident.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rca::Diagnosis;
    use x0_schema::{RootCause, RootCauseKind};

    fn down(link: (&str, &str)) -> Diagnosis {
        Diagnosis {
            cause: RootCause {
                kind: RootCauseKind::LinkDown,
                element: Element::link(link.0, link.1),
                confidence: 0.95,
                ambiguity: vec![],
                evidence: vec![],
                reporters: vec![],
            },
            hard: true,
            symptoms: vec![],
        }
    }

    #[test]
    fn hard_evidence_opens_at_once_and_clears_after_healthy_windows() {
        let mut book = IncidentBook::new(2, 3, "m", "t");
        let t = book.observe(vec![down(("a", "b"))], 0, 10);
        assert!(matches!(&t[..], [Transition::Diagnosed(_)]));
        for w in 1..3 {
            assert!(book.observe(vec![], w, 10 + w).is_empty());
        }
        assert!(matches!(&book.observe(vec![], 3, 13)[..], [Transition::Cleared(_)]));
    }

    fn loss(link: (&str, &str)) -> Diagnosis {
        Diagnosis {
            cause: RootCause {
                kind: RootCauseKind::LinkLoss,
                element: Element::link(link.0, link.1),
                confidence: 0.9,
                ambiguity: vec![],
                evidence: vec![],
                reporters: vec![],
            },
            hard: false,
            symptoms: vec![],
        }
    }

    fn action(id: &str) -> ActionRecord {
        ActionRecord {
            command_id: id.into(),
            target: "a".into(),
            action: x0_schema::Action::RouteWithdraw { destination: "b".into() },
            issued_at: 0,
            status: None,
            reason: None,
            acked_at: None,
        }
    }

    fn result(id: &str, status: ResultStatus) -> CommandResult {
        CommandResult {
            schema_version: 1,
            command_id: id.into(),
            node: "a".into(),
            status,
            reason: "no such route".into(),
            applied_at: 5,
            routes: vec![],
        }
    }

    #[test]
    fn a_refused_command_holds_the_incident_for_rollback_and_it_ends_failed_not_reopened() {
        let mut book = IncidentBook::new(1, 2, "m", "t");
        let [Transition::Diagnosed(id)] = &book.observe(vec![loss(("a", "b"))], 0, 1)[..] else { panic!() };
        let id = id.clone();
        book.record_actions(&id, vec![action("c1"), action("c2")], "plan");
        book.on_result(&result("c1", ResultStatus::Applied));
        assert_eq!(book.refused_command(&id), None);
        book.on_result(&result("c2", ResultStatus::Rejected));
        let why = book.refused_command(&id).expect("a refused command asks for rollback");
        assert!(why.contains("c2") && why.contains("no such route"), "{why}");
        assert!(!book.applied(&id), "never verifying with a command refused");
        book.roll_back(&id, vec![action("w1")], "rolled back");
        assert_eq!(book.refused_command(&id), None, "rolled back once");
        // The symptoms go on: the same incident, no new one, no new decision.
        let t = book.observe(vec![loss(("a", "b"))], 1, 2);
        assert!(t.iter().all(|t| matches!(t, Transition::Rediagnosed(i) if *i == id)), "{t:?}");
        assert!(book.rolled_back(&id));
        book.observe(vec![], 2, 3);
        let [Transition::Cleared(cleared)] = &book.observe(vec![], 3, 4)[..] else { panic!() };
        book.resolve(cleared, 4, vec![], "cleared");
        let incident = book.get(&id).expect("kept");
        assert_eq!((incident.state, incident.outcome), (IncidentState::Failed, Outcome::Failed));
        assert_eq!(book.incidents().len(), 1);
    }

    #[test]
    fn a_recalled_incident_is_confirmed_on_its_first_window() {
        let mut book = IncidentBook::new(2, 3, "m", "t");
        // Without recall a soft symptom waits for its second window.
        assert!(book.observe(vec![loss(("a", "b"))], 0, 1).is_empty());
        assert!(matches!(&book.observe(vec![loss(("a", "b"))], 1, 2)[..], [Transition::Diagnosed(_)]));
        // With a knowledge base that knows it: the first window.
        let mut asked = 0;
        let mut recall = |i: &Incident| {
            asked += 1;
            (i.root_cause.as_ref()?.element == Element::link("c", "d")).then(|| "known incident".to_string())
        };
        let t = book.observe_with(vec![loss(("c", "d")), loss(("e", "f"))], 2, 3, &mut recall);
        assert_eq!(asked, 2, "both unconfirmed candidates are asked about");
        let [Transition::Diagnosed(id)] = &t[..] else { panic!("{t:?}") };
        let incident = book.get(id).expect("confirmed");
        assert_eq!(incident.root_cause.as_ref().map(|rc| rc.element.clone()), Some(Element::link("c", "d")));
        assert!(incident.explanation.contains("known incident"));
    }

    #[test]
    fn settled_past_days_leave_memory_open_days_stay() {
        let mut book = IncidentBook::new(1, 1, "m", "t");
        book.observe(vec![down(("a", "b"))], 0, 1);
        book.observe(vec![down(("c", "d"))], 0, 1);
        let ids: Vec<String> = book.incidents().iter().map(|i| i.incident_id.clone()).collect();
        book.resolve(&ids[0], 2, vec![], "healed");
        assert_eq!(book.evict_settled_before(DAY_NS), 0, "one incident of day 0 is still open");
        book.resolve(&ids[1], 3, vec![], "healed");
        assert_eq!(book.evict_settled_before(0), 0, "day 0 is today");
        assert_eq!(book.evict_settled_before(DAY_NS), 2);
        assert!(book.incidents().is_empty());
    }
}
