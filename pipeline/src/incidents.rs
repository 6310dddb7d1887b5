//! The incident lifecycle: opened → diagnosed → mitigating → verifying → resolved or
//! failed, driven by each window's diagnoses and by the actuators' results.

use crate::rca::Diagnosis;
use std::collections::BTreeMap;

mod attribution;
mod handoff;
#[cfg(test)]
use attribution::FIRST_SIGN_WINDOWS;
pub(crate) use handoff::BookSlice;
use x0_schema::{ActionRecord, CommandResult, Element, Incident, IncidentState, Outcome, ResultStatus};

/// What a window or a result did to the book.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Transition {
    /// Confirmed and diagnosed: time to plan.
    Diagnosed(String),
    /// Confirmed, not acted upon, and its diagnosis changed: decide again.
    Rediagnosed(String),
    /// Its element has been shown healthy long enough: time to withdraw routes and resolve.
    Cleared(String),
    /// Its fault came back after it resolved: the same incident is open again; plan.
    Reopened(String),
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Tracked {
    incident: Incident,
    streak: u32,
    confirmed: bool,
    healthy_windows: u32,
    acted: bool,
    /// Its repair was rolled back: not acted on again while it lasts.
    rolled_back: bool,
    /// Times its fault came back (reopened, or relapsed after a long quiet spell):
    /// each doubles the windows it must stay healthy before it clears.
    recurrences: u32,
    /// The explanation already says why it is quiet but not cleared.
    noted_unproven: bool,
    /// Where its current episode began: the first anomalous window, or the window
    /// that reopened it (what a repair's "before" is measured from).
    episode_start: i64,
    /// Commands re-issued after reaching their node expired: how often each one's
    /// action has been (keyed by the newest command id).
    #[serde(default)]
    reissued: std::collections::HashMap<String, u32>,
    #[serde(skip)]
    index: ActionIndex,
}

/// Every incident this job knows, keyed by id, plus candidates not yet confirmed.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct IncidentBook {
    confirm_windows: u32,
    clear: ClearPolicy,
    model_version: String,
    tracked: BTreeMap<String, Tracked>,
    /// Which incident each command belongs to (results find theirs at once).
    by_command: std::collections::HashMap<String, String>,
    next_id: u64,
    id_prefix: String,
}

/// The first command of the incident's current plan its actuator refused, failed or
/// rolled back, as a reason.
fn refused(inc: &Incident) -> Option<String> {
    inc.actions.iter().find_map(refusal)
}

/// Why `a` counts as refused, if it does.
fn refusal(a: &ActionRecord) -> Option<String> {
    match a.status {
        Some(s @ (ResultStatus::Failed | ResultStatus::Rejected | ResultStatus::RolledBack)) => Some(format!(
            "command {} to {} was {}: {}",
            a.command_id,
            a.target,
            s.as_str(),
            a.reason.as_deref().unwrap_or("no reason given")
        )),
        _ => None,
    }
}

/// What a result needs to know about an incident's commands without walking them: a
/// plan on a mesh of thousands is tens of thousands of commands, each answered once,
/// and a walk per answer made the job quadratic in the plan. Appends are indexed on
/// the next use (actions are only ever appended or replaced in place); rebuilt after a
/// restore.
#[derive(Debug, Clone, Default)]
struct ActionIndex {
    /// Where each command is in `incident.actions`.
    at: std::collections::HashMap<String, usize>,
    /// Actions indexed so far (a prefix of `incident.actions`).
    indexed: usize,
    /// Of those, the ones not answered yet.
    unanswered: usize,
    /// The first refusal among them.
    refusal: Option<String>,
}

impl ActionIndex {
    fn sync(&mut self, actions: &[ActionRecord]) {
        for (i, a) in actions.iter().enumerate().skip(self.indexed) {
            self.at.insert(a.command_id.clone(), i);
            self.unanswered += usize::from(a.status.is_none());
            if self.refusal.is_none() {
                self.refusal = refusal(a);
            }
        }
        self.indexed = actions.len();
    }
}

/// When incidents clear and reopen.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(crate) struct ClearPolicy {
    /// Windows an element must be healthy before its incident clears, the first time.
    pub windows: u32,
    /// The cap on that as it doubles with each recurrence.
    pub max_windows: u32,
    /// A fault back within this long of its incident resolving reopens it.
    pub reopen_within_ns: i64,
}

impl ClearPolicy {
    /// Windows an incident must be healthy before it clears after `recurrences` returns
    /// of its fault: the first clearing's, doubled each time, up to the cap.
    fn required_windows(&self, recurrences: u32) -> u32 {
        let doubled = u64::from(self.windows) << recurrences.min(16);
        doubled.min(u64::from(self.max_windows)) as u32
    }
}

/// Adds a window's symptoms to an incident, keeping a bounded, recent list.
fn keep_recent_symptoms(incident: &mut Incident, symptoms: Vec<x0_schema::Symptom>) {
    incident.symptoms.extend(symptoms);
    let excess = incident.symptoms.len().saturating_sub(64);
    incident.symptoms.drain(..excess);
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
    /// When its incidents clear and reopen.
    pub(crate) fn policy(&self) -> ClearPolicy {
        self.clear
    }

    /// Clears and reopens by `policy` from now on.
    pub(crate) fn set_policy(&mut self, policy: ClearPolicy) {
        self.clear = policy;
    }

    /// The detector version new incidents record.
    pub(crate) fn model_version(&self) -> &str {
        &self.model_version
    }

    pub(crate) fn set_model_version(&mut self, version: &str) {
        self.model_version = version.to_string();
    }

    pub(crate) fn new(confirm_windows: u32, clear: ClearPolicy, model_version: &str, id_prefix: &str) -> Self {
        IncidentBook {
            confirm_windows,
            clear: ClearPolicy {
                windows: clear.windows.max(1),
                max_windows: clear.max_windows.max(clear.windows).max(1),
                ..clear
            },
            model_version: model_version.into(),
            tracked: BTreeMap::new(),
            by_command: std::collections::HashMap::new(),
            next_id: 0,
            id_prefix: id_prefix.into(),
        }
    }

    /// Feeds one window's diagnoses. `now_ns` is stream time at the decision.
    #[cfg(test)]
    pub(crate) fn observe(&mut self, diagnoses: Vec<Diagnosis>, window_start: i64, now_ns: i64) -> Vec<Transition> {
        self.observe_with(diagnoses, window_start, now_ns, &mut |_| None, &|_| Ok(()))
    }

    /// [`observe`](Self::observe), with `recall` asked about each candidate that is not
    /// yet confirmed: a reason from it (a known incident) confirms the candidate now;
    /// and `proven` asked whether a quiet incident's element is shown healthy (`Err`:
    /// why not): an incident clears only on that evidence, never on quiet alone.
    pub(crate) fn observe_with(
        &mut self,
        diagnoses: Vec<Diagnosis>,
        window_start: i64,
        now_ns: i64,
        recall: &mut dyn FnMut(&Incident) -> Option<String>,
        proven: &dyn Fn(&Element) -> Result<(), String>,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        let mut touched = Vec::new();
        for d in diagnoses {
            self.absorb_link_candidates(&d);
            if let Some(id) = self.crash_holding(&d.cause.element) {
                // A crashed node's links are avoided with it; what they show while its
                // incident is open (the node coming back, its agent's first windows
                // after the outage) is the crash's, and keeps it from clearing.
                let t = self.tracked.get_mut(&id).expect("just found");
                t.healthy_windows = 0;
                keep_recent_symptoms(&mut t.incident, d.symptoms);
                touched.push(id);
                continue;
            }
            let id = match self.open_for(&d.cause.element).or_else(|| self.first_sign_of_crash(&d, &mut out)) {
                Some(id) => id,
                None => match self.resolved_lately(&d.cause.element, now_ns) {
                    Some(id) => {
                        out.extend(self.reopen(&id, d, window_start, now_ns));
                        touched.push(id);
                        continue;
                    }
                    None => self.open(&d, window_start, now_ns),
                },
            };
            let clear = self.clear;
            let t = self.tracked.get_mut(&id).expect("just found or inserted");
            let required = clear.required_windows(t.recurrences);
            t.streak += 1;
            // Symptoms back after the incident had nearly cleared: the element flaps;
            // damp it as a recurrence.
            if t.confirmed && t.healthy_windows >= required.div_ceil(2) {
                t.recurrences += 1;
                let quiet = t.healthy_windows;
                push_line(
                    &mut t.incident.explanation,
                    &format!("symptoms back after {quiet} quiet windows: the element flaps; hold-down doubled"),
                );
            }
            t.healthy_windows = 0;
            keep_recent_symptoms(&mut t.incident, d.symptoms);
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
        let clear = self.clear;
        for (id, t) in &mut self.tracked {
            if touched.contains(id) || t.incident.state.is_final() {
                continue;
            }
            if !t.confirmed {
                drop.push(id.clone());
                continue;
            }
            t.healthy_windows += 1;
            if t.healthy_windows < clear.required_windows(t.recurrences) {
                continue;
            }
            let element = t.incident.root_cause.as_ref().map(|rc| rc.element.clone());
            match element.map_or(Ok(()), |e| proven(&e)) {
                Ok(()) => out.push(Transition::Cleared(id.clone())),
                Err(why) if !t.noted_unproven => {
                    t.noted_unproven = true;
                    push_line(&mut t.incident.explanation, &format!("quiet, but not cleared: {why}"));
                }
                Err(_) => {}
            }
        }
        for id in drop {
            self.tracked.remove(&id);
        }
        out
    }

    /// The fault of a resolved incident is back: the same incident opens again, with
    /// its hold-down doubled. At once, as a recalled incident is: the element's fault
    /// was proven a moment ago, and its symptoms are back.
    fn reopen(&mut self, id: &str, d: Diagnosis, window_start: i64, now_ns: i64) -> Option<Transition> {
        let t = self.tracked.get_mut(id)?;
        t.episode_start = window_start;
        let resolved = t.incident.resolved_at.take().unwrap_or(now_ns);
        t.recurrences += 1;
        t.streak = 1;
        t.healthy_windows = 0;
        t.acted = false;
        t.noted_unproven = false;
        let inc = &mut t.incident;
        inc.state = IncidentState::Diagnosed;
        inc.outcome = Outcome::Open;
        inc.root_cause = Some(d.cause);
        keep_recent_symptoms(inc, d.symptoms);
        inc.reopened_at.push(now_ns);
        let line = format!(
            "reopened: the fault came back {:.1} s after the incident resolved (recurrence {}); its hold-down doubles",
            (now_ns - resolved) as f64 / 1e9,
            t.recurrences
        );
        push_line(&mut inc.explanation, &line);
        if t.rolled_back {
            inc.outcome = Outcome::Failed;
            push_line(&mut inc.explanation, "its repair was rolled back before (it did not help): not repeating it");
        }
        Some(Transition::Reopened(id.to_string()))
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
            reopened_at: vec![],
        };
        let tracked = Tracked {
            incident,
            streak: 0,
            confirmed: false,
            healthy_windows: 0,
            acted: false,
            rolled_back: false,
            recurrences: 0,
            noted_unproven: false,
            episode_start: window_start,
            reissued: Default::default(),
            index: ActionIndex::default(),
        };
        self.tracked.insert(id.clone(), tracked);
        id
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Incident> {
        self.tracked.get(id).filter(|t| t.confirmed).map(|t| &t.incident)
    }

    /// Records the plan's commands; the incident is mitigating until they are acked.
    pub(crate) fn record_actions(&mut self, id: &str, actions: Vec<ActionRecord>, explanation: &str) {
        self.index(id, &actions);
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

    /// Remembers which incident `actions` belong to.
    fn index(&mut self, id: &str, actions: &[ActionRecord]) {
        for a in actions {
            self.by_command.insert(a.command_id.clone(), id.to_string());
        }
    }

    /// Applies an actuator's result; returns the incident it belonged to, and whether
    /// the incident's state changed (all of its plan applied).
    pub(crate) fn on_result(&mut self, r: &CommandResult) -> Option<(String, bool)> {
        let id = self.by_command.get(&r.command_id)?.clone();
        let t = self.tracked.get_mut(&id)?;
        t.index.sync(&t.incident.actions);
        let a = &mut t.incident.actions[*t.index.at.get(&r.command_id)?];
        t.index.unanswered -= usize::from(a.status.is_none());
        a.status = Some(r.status);
        a.reason = (!r.reason.is_empty()).then(|| r.reason.clone());
        a.acked_at = Some(r.applied_at);
        if t.index.refusal.is_none() {
            t.index.refusal = refusal(a);
        }
        let inc = &mut t.incident;
        // A refused command leaves the incident mitigating: the job rolls the plan back.
        if inc.state == IncidentState::Mitigating && t.index.unanswered == 0 && t.index.refusal.is_none() {
            let last = inc.actions.iter().filter_map(|a| a.acked_at).max().unwrap_or(r.applied_at);
            inc.mitigated_at = Some(last);
            inc.mttr_ms = Some(ms(last - inc.opened_at));
            inc.state = IncidentState::Verifying;
            inc.outcome = Outcome::Mitigated;
            return Some((id, true));
        }
        Some((id, false))
    }

    /// Whether command `old` of `id`'s plan, which its node refused as expired, may be
    /// re-issued: it is in the plan and its action was re-issued fewer than `max`
    /// times (else the expiry stands as a refusal).
    pub(crate) fn may_reissue(&mut self, id: &str, old: &str, max: u32) -> bool {
        let Some(t) = self.tracked.get_mut(id) else { return false };
        t.index.sync(&t.incident.actions);
        t.index.at.contains_key(old) && t.reissued.get(old).copied().unwrap_or(0) < max
    }

    /// Puts `record` (the same action re-issued) in place of command `old` of `id`'s
    /// plan; [`may_reissue`](Self::may_reissue) said it may be.
    pub(crate) fn reissue(&mut self, id: &str, old: &str, why: &str, record: ActionRecord, max: u32) {
        let Some(t) = self.tracked.get_mut(id) else { return };
        let Some(&at) = t.index.at.get(old) else { return };
        let tries = t.reissued.remove(old).unwrap_or(0);
        let a = &mut t.incident.actions[at];
        let new = record.command_id.clone();
        if t.reissued.is_empty() && tries == 0 {
            push_line(
                &mut t.incident.explanation,
                &format!(
                    "command {old} to {} reached its node expired ({}); the same action was re-issued as {new} (an expiry is re-issued up to {max} times before it counts as a refusal)",
                    a.target, why
                ),
            );
        }
        // Unanswered before (its expiry was not recorded) and after: the count holds.
        *a = record;
        t.index.at.remove(old);
        t.index.at.insert(new.clone(), at);
        t.reissued.insert(new.clone(), tries + 1);
        self.by_command.insert(new, id.to_string());
    }

    /// Why the incident's plan must be rolled back now: a command of it was refused,
    /// failed or rolled back by its actuator (a plan applied in part can loop traffic).
    pub(crate) fn refused_command(&self, id: &str) -> Option<String> {
        let t = self.tracked.get(id).filter(|t| t.acted && !t.rolled_back && !t.incident.state.is_final())?;
        if t.index.indexed == t.incident.actions.len() {
            t.index.refusal.clone()
        } else {
            refused(&t.incident)
        }
    }

    /// Whether every command of the incident's plan was applied (it is being verified).
    pub(crate) fn applied(&self, id: &str) -> bool {
        self.tracked.get(id).is_some_and(|t| t.incident.state == IncidentState::Verifying)
    }

    /// The repair did not help or was refused in part: its routes are being withdrawn
    /// (`withdrawals`). The incident stays open while its symptoms last, is not acted on
    /// again, and ends failed.
    pub(crate) fn roll_back(&mut self, id: &str, withdrawals: Vec<ActionRecord>, why: &str) {
        self.index(id, &withdrawals);
        let Some(t) = self.tracked.get_mut(id) else { return };
        t.rolled_back = true;
        t.acted = false;
        t.incident.state = IncidentState::Diagnosed;
        t.incident.outcome = Outcome::Failed;
        t.incident.actions.extend(withdrawals);
        push_line(&mut t.incident.explanation, why);
    }

    /// Where the incident's current episode began (its onset, or its last reopening).
    pub(crate) fn episode_start(&self, id: &str) -> Option<i64> {
        self.tracked.get(id).map(|t| t.episode_start)
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
        self.index(id, &withdrawals);
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

    /// Closes every unfinished incident with `why` (its job stops without handing it
    /// over); returns how many.
    pub(crate) fn close_all(&mut self, why: &str) -> usize {
        let mut closed = 0;
        for t in self.tracked.values_mut().filter(|t| t.confirmed && !t.incident.state.is_final()) {
            t.incident.state = IncidentState::Closed;
            t.incident.explanation.push('\n');
            t.incident.explanation.push_str(why);
            closed += 1;
        }
        closed
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
        let tracked = &self.tracked;
        self.by_command.retain(|_, id| tracked.contains_key(id));
        before - self.tracked.len()
    }

    /// The elements of the confirmed incidents still open.
    pub(crate) fn open_elements(&self) -> Vec<Element> {
        self.open_states().into_iter().map(|(e, _)| e).collect()
    }

    /// The root-cause elements of the open incidents, with their states.
    pub(crate) fn open_states(&self) -> Vec<(Element, IncidentState)> {
        self.tracked
            .values()
            .filter(|t| t.confirmed && !t.incident.state.is_final())
            .filter_map(|t| t.incident.root_cause.as_ref().map(|rc| (rc.element.clone(), t.incident.state)))
            .collect()
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
    use x0_schema::{RootCause, RootCauseKind, Symptom};

    fn policy(windows: u32) -> ClearPolicy {
        ClearPolicy { windows, max_windows: 8 * windows, reopen_within_ns: 1_000 }
    }

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
            uncalibrated: false,
            symptoms: vec![],
        }
    }

    fn crash(node: &str, links: &[(&str, &str)]) -> Diagnosis {
        let symptom =
            |element: Element| Symptom { element, feature: "x".into(), value: 1.0, score: 9.0, window_start: 0 };
        Diagnosis {
            cause: RootCause {
                kind: RootCauseKind::NodeCrash,
                element: Element::node(node),
                confidence: 0.93,
                ambiguity: vec![],
                evidence: vec![],
                reporters: vec!["n1".into(), "n7".into()],
            },
            hard: true,
            uncalibrated: false,
            symptoms: links.iter().map(|(a, b)| symptom(Element::link(a, b))).collect(),
        }
    }

    /// Regression (kernel lab, grid crash): the crashing node's own agent reported
    /// carrier lost on one link just before it fell silent; the link-down (both ends,
    /// acted on at once) and the crash stood as two incidents, and the crash's, which
    /// planned nothing, kept its fault when it cleared.
    #[test]
    fn a_crash_right_after_carrier_loss_on_its_link_takes_over_that_incident() {
        let mut book = IncidentBook::new(2, policy(3), "m", "t");
        let [Transition::Diagnosed(id)] = &book.observe(vec![down(("n2", "n3"))], 0, 1)[..] else { panic!() };
        let id = id.clone();
        book.record_actions(&id, vec![action("c1")], "plan");
        let t = book.observe(vec![crash("n3", &[("n2", "n3"), ("n3", "n7")])], 1, 2);
        assert!(matches!(&t[..], [Transition::Rediagnosed(x)] if *x == id), "{t:?}");
        let all = book.incidents();
        assert_eq!(all.len(), 1, "{all:?}");
        let rc = all[0].root_cause.as_ref().unwrap();
        assert_eq!((rc.kind, &rc.element), (RootCauseKind::NodeCrash, &Element::node("n3")));
        assert!(all[0].explanation.contains("first sign of node n3"), "{}", all[0].explanation);
        // A link that was down long before the node crashed is a fault of its own.
        let mut book = IncidentBook::new(2, policy(3), "m", "t");
        book.observe(vec![down(("n2", "n3"))], 0, 1);
        for w in 1..=FIRST_SIGN_WINDOWS as i64 {
            book.observe(vec![down(("n2", "n3"))], w, w + 1);
        }
        book.observe(vec![crash("n3", &[("n2", "n3")])], 9, 10);
        assert_eq!(book.incidents().len(), 2);
    }

    /// Regression (kernel lab, ring crash): when the crashed node came back, its
    /// agent's first window reported its probes on two links all lost (and so did the
    /// neighbours'), which opened two link-loss incidents beside the open crash.
    #[test]
    fn a_crashed_nodes_links_speak_for_its_incident_until_it_clears() {
        let mut book = IncidentBook::new(2, policy(3), "m", "t");
        let [Transition::Diagnosed(id)] = &book.observe(vec![crash("n0", &[("n0", "n1")])], 0, 1)[..] else { panic!() };
        let id = id.clone();
        for w in 1..6 {
            assert!(book.observe(vec![loss(("n0", "n1")), loss(("n11", "n0"))], w, w + 1).is_empty());
        }
        assert_eq!(book.incidents().len(), 1, "the links' symptoms are the crash's");
        // and they keep it open: it clears only after the policy's quiet windows.
        assert!(book.observe(vec![], 6, 7).is_empty() && book.observe(vec![], 7, 8).is_empty());
        assert!(matches!(&book.observe(vec![], 8, 9)[..], [Transition::Cleared(x)] if *x == id));
        // Once it is resolved, a link fault there is a fault of its own.
        book.resolve(&id, 9, vec![], "cleared");
        book.observe(vec![loss(("n0", "n1"))], 20_000, 20_001);
        book.observe(vec![loss(("n0", "n1"))], 20_001, 20_002);
        assert_eq!(book.incidents().len(), 2);
    }

    #[test]
    fn hard_evidence_opens_at_once_and_clears_after_healthy_windows() {
        let mut book = IncidentBook::new(2, policy(3), "m", "t");
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
            uncalibrated: false,
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
        let mut book = IncidentBook::new(1, policy(2), "m", "t");
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
        let mut book = IncidentBook::new(2, policy(3), "m", "t");
        // Without recall a soft symptom waits for its second window.
        assert!(book.observe(vec![loss(("a", "b"))], 0, 1).is_empty());
        assert!(matches!(&book.observe(vec![loss(("a", "b"))], 1, 2)[..], [Transition::Diagnosed(_)]));
        // With a knowledge base that knows it: the first window.
        let mut asked = 0;
        let mut recall = |i: &Incident| {
            asked += 1;
            (i.root_cause.as_ref()?.element == Element::link("c", "d")).then(|| "known incident".to_string())
        };
        let t = book.observe_with(vec![loss(("c", "d")), loss(("e", "f"))], 2, 3, &mut recall, &|_| Ok(()));
        assert_eq!(asked, 2, "both unconfirmed candidates are asked about");
        let [Transition::Diagnosed(id)] = &t[..] else { panic!("{t:?}") };
        let incident = book.get(id).expect("confirmed");
        assert_eq!(incident.root_cause.as_ref().map(|rc| rc.element.clone()), Some(Element::link("c", "d")));
        assert!(incident.explanation.contains("known incident"));
    }

    #[test]
    fn quiet_is_not_healthy_an_unproven_element_stays_open() {
        let mut book = IncidentBook::new(1, policy(2), "m", "t");
        let [Transition::Diagnosed(id)] = &book.observe(vec![loss(("a", "b"))], 0, 1)[..] else { panic!() };
        let unproven = |_: &Element| Err("a still loses 9.0% of its probes to b".to_string());
        for w in 1..10 {
            assert!(book.observe_with(vec![], w, w, &mut |_| None, &unproven).is_empty(), "window {w}");
        }
        let incident = book.get(id).unwrap();
        assert!(!incident.state.is_final());
        assert_eq!(incident.explanation.matches("quiet, but not cleared: a still loses 9.0%").count(), 1);
        let t = book.observe_with(vec![], 10, 10, &mut |_| None, &|_| Ok(()));
        assert!(matches!(&t[..], [Transition::Cleared(c)] if c == id), "{t:?}");
    }

    #[test]
    fn a_returning_fault_reopens_its_incident_and_doubles_its_hold_down() {
        let mut book =
            IncidentBook::new(1, ClearPolicy { windows: 2, max_windows: 6, reopen_within_ns: 100 }, "m", "t");
        let [Transition::Diagnosed(id)] = &book.observe(vec![loss(("a", "b"))], 0, 1)[..] else { panic!() };
        let id = id.clone();
        book.observe(vec![], 1, 2);
        let [Transition::Cleared(_)] = &book.observe(vec![], 2, 3)[..] else { panic!() };
        book.resolve(&id, 3, vec![], "cleared");
        // Back 5 ns later: the same incident, not a new one.
        let t = book.observe(vec![loss(("a", "b"))], 4, 8);
        assert!(matches!(&t[..], [Transition::Reopened(r)] if *r == id), "{t:?}");
        let incident = book.get(&id).unwrap();
        assert_eq!((incident.state, incident.reopened_at.clone()), (IncidentState::Diagnosed, vec![8]));
        assert!(incident.explanation.contains("reopened: the fault came back"), "{}", incident.explanation);
        assert_eq!(book.incidents().len(), 1);
        // Its hold-down doubled: 4 healthy windows now, not 2.
        for w in 5..8 {
            assert!(book.observe(vec![], w, w + 5).is_empty(), "window {w}");
        }
        let [Transition::Cleared(_)] = &book.observe(vec![], 8, 13)[..] else { panic!() };
        book.resolve(&id, 13, vec![], "cleared");
        // Long after the reopening horizon: a new incident.
        let t = book.observe(vec![loss(("a", "b"))], 9, 1_000);
        assert!(matches!(&t[..], [Transition::Diagnosed(n)] if *n != id), "{t:?}");
    }

    #[test]
    fn settled_past_days_leave_memory_open_days_stay() {
        let mut book = IncidentBook::new(1, policy(1), "m", "t");
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
