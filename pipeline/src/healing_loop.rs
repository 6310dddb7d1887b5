//! The stream job's logic without Kafka: admit telemetry, close windows, compute
//! features, detect, localise, manage incidents, plan and sign commands, take results.
//! The Kafka loop (`job.rs`) and the benchmark both drive this.

mod handoff;
mod regions;
mod results;
mod returned;
mod state;

pub use handoff::Takeover;
pub use state::StateError;

use crate::calibration::Calibration;
use crate::config::Config;
use crate::detect::{detect, note_reporters, Signal};
use crate::features::{FeatureEngine, FeatureError, WindowFeatures};
use crate::graph_input::FeaturizedWindow;
use crate::health::{ClearRule, HealthLedger};
use crate::incidents::{ClearPolicy, IncidentBook, Transition};
use crate::live::{incident_look, Deciding, LiveView, Look};
use crate::model_slot::ModelSlot;
use crate::planner::{Plan, Planner};
use crate::rca::Localizer;
use crate::recall::KnowledgeRecall;
use crate::stats::JobStats;
use crate::trust::{Speaker, Trust};
use crate::verify::{LossHistory, RepairCheck, RepairVerdict, VerifyRule};
use crate::window::Windows;
use arrow::array::RecordBatch;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
use x0_schema::{
    Action, ActionRecord, Element, HealingCommand, Incident, IncidentState, RootCause, RootCauseKind, SigningKey,
    TelemetryBatch, Topology,
};
use x0_sql::CommandRow;
use x0_training::{GraphDetector, GraphWindow, LabelledWindow, RobustDetector, MODEL_VERSION};

/// Why a telemetry message was refused after decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The dead-letter reason's label (the counter's key).
    pub label: &'static str,
    /// The reason in words.
    pub reason: String,
}

/// What the healing loop wants published: a command to an actuator, or an incident's new state.
#[derive(Debug, Clone)]
pub enum Publication {
    /// A signed command for `x0.commands`.
    Command(HealingCommand),
    /// An incident's new state for `x0.incidents`.
    Incident(Incident),
    /// A region's open work for `x0.handoff` (a mesh split among instances only).
    Handoff(Box<crate::handoff::RegionHandoff>),
}

/// The stream job's decisions without Kafka: telemetry in, windows closed, features,
/// detection, root cause, incidents, plans and signed commands out, results in.
pub struct HealingLoop {
    config: Config,
    topo: Topology,
    windows: Windows,
    features: FeatureEngine,
    detector: RobustDetector,
    model: ModelSlot,
    localizer: Localizer,
    book: IncidentBook,
    planner: Planner,
    signer: SigningKey,
    stats: Arc<JobStats>,
    seen: HashSet<String>,
    /// Elements the statistical detector flagged in the last window: one it flags
    /// again passes the model's gate (see `decide`).
    flagged_before: HashSet<Element>,
    commands: BTreeMap<String, CommandRow>,
    feature_rows: Vec<(i64, i64, RecordBatch)>,
    /// Each window's model input, for the history (training from incidents).
    model_inputs: Vec<FeaturizedWindow>,
    keep_features: bool,
    /// Bumped whenever an incident or command changes, so history is written only then.
    generation: u64,
    /// Commands issued so far: the sequence number in the next command's id.
    issued: u64,
    /// Past incidents (the knowledge base), when one is configured.
    recall: Option<KnowledgeRecall>,
    /// Every window's root-cause hypotheses, when kept for evaluation (`eval rca`).
    diagnosis_log: Option<Vec<WindowDiagnoses>>,
    /// Evidence score to confidence (`rca.calibration`); None: raw scores.
    calibration: Option<Calibration>,
    /// Recent traffic loss per link, and the plans being verified against it.
    loss: LossHistory,
    checks: BTreeMap<String, RepairCheck>,
    /// Probe and counter evidence of the open incidents' elements (clearing on evidence).
    health: HealthLedger,
    /// The keys telemetry and results are checked against; None: nothing is checked.
    trust: Option<Trust>,
    /// Whoever watches the job as it runs (the web UI).
    live: Option<Arc<LiveView>>,
    /// The regions this instance owns, when the mesh is split among instances (see
    /// `regions`); None: it owns everything.
    ownership: Option<crate::ownership::Ownership>,
    /// The part of the mesh the model scores: what this instance sees when the mesh is
    /// split (see `regions`); None: the whole inventory.
    seen_mesh: Option<Topology>,
    /// Owned regions whose handoff is behind: an incident of theirs moved (published
    /// at the next [`take_handoffs`](Self::take_handoffs)), or a result changed one
    /// (`handoff_stale`: due at the next window, not once per result).
    handoff_due: std::collections::BTreeSet<u32>,
    handoff_stale: std::collections::BTreeSet<u32>,
    /// Another instance's faults or routes changed since the last window: the routes
    /// crossing this loop's faults are checked again (see `handoff`).
    reconcile_due: bool,
}

/// One window's root-cause hypotheses, as localisation produced them.
#[derive(Debug, Clone)]
pub struct WindowDiagnoses {
    /// The window's start.
    pub window_start: i64,
    /// Stream time of the decision: equals `detected_at` of incidents it confirmed.
    pub decided_at: i64,
    /// The hypotheses, most confident first.
    pub causes: Vec<RootCause>,
}

impl std::fmt::Debug for HealingLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealingLoop").field("nodes", &self.topo.len()).finish_non_exhaustive()
    }
}

impl HealingLoop {
    /// A loop over `topo` that signs with `signer`; incident ids start with `id_prefix`.
    pub fn new(
        config: Config,
        topo: Topology,
        features: FeatureEngine,
        signer: SigningKey,
        stats: Arc<JobStats>,
        id_prefix: &str,
    ) -> Self {
        // Config::load validated it; a hand-built invalid config runs on raw scores.
        let calibration = Calibration::configured(&config.rca.calibration).ok().flatten();
        let model = ModelSlot::new(&config.model.registry);
        let model_version = served_version(&model);
        stats.set_model_version(&model_version);
        HealingLoop {
            windows: Windows::configured(&config.window),
            detector: RobustDetector::new(config.detector.clone()),
            model,
            localizer: Localizer::new(),
            book: IncidentBook::new(config.rca.confirm_windows, clear_policy(&config), &model_version, id_prefix),
            health: HealthLedger::new(ClearRule {
                windows: clear_windows(&config) as usize,
                min_probes: config.rca.clear_min_probes,
                max_probe_loss: config.rca.clear_max_probe_loss,
            }),
            planner: Planner::new(topo.clone(), config.planner.clone()),
            config,
            topo,
            features,
            signer,
            stats,
            seen: HashSet::new(),
            flagged_before: HashSet::new(),
            commands: BTreeMap::new(),
            feature_rows: Vec::new(),
            model_inputs: Vec::new(),
            keep_features: true,
            generation: 0,
            issued: 0,
            recall: None,
            diagnosis_log: None,
            calibration,
            loss: LossHistory::default(),
            checks: BTreeMap::new(),
            trust: None,
            live: None,
            ownership: None,
            seen_mesh: None,
            handoff_due: Default::default(),
            handoff_stale: Default::default(),
            reconcile_due: false,
        }
    }

    /// Takes telemetry and results only from whom `trust` says may speak for a node.
    pub fn with_trust(mut self, trust: Trust) -> Self {
        self.trust = Some(trust);
        self
    }

    /// Checks a message's MAC (`x0-mac`) and producer (`x0-producer`) against the
    /// keys; whom it speaks for. Without keys configured, [`Speaker::Anyone`].
    pub fn authenticate(
        &mut self,
        message_key: Option<&[u8]>,
        producer: Option<&str>,
        mac: Option<&str>,
        payload: &[u8],
    ) -> Result<Speaker, Rejection> {
        match &mut self.trust {
            None => Ok(Speaker::Anyone),
            Some(t) => t.authenticate(message_key, producer, mac, payload),
        }
    }

    /// Checks that every sample of `batch` is one `speaker` may speak for.
    pub fn check_speaker(&self, speaker: &Speaker, batch: &TelemetryBatch) -> Result<(), Rejection> {
        match &self.trust {
            None => Ok(()),
            Some(t) => t.covers(speaker, batch),
        }
    }

    /// Feeds `live` (the web UI) with every window's look of the mesh while it is
    /// watched and every incident as it changes, starting with the ones held now.
    pub fn with_live(mut self, live: Arc<LiveView>) -> Self {
        self.publish_held(&live);
        self.live = Some(live);
        self
    }

    /// Sends every incident held to `live` (after a restore from a checkpoint).
    pub fn publish_held(&self, live: &LiveView) {
        for i in self.book.incidents() {
            live.incident_changed(&i);
        }
        live.routes_changed(self.planner.wanted());
    }

    /// Keeps every window's root-cause hypotheses for [`take_diagnoses`](Self::take_diagnoses).
    pub fn record_diagnoses(&mut self) {
        self.diagnosis_log.get_or_insert_with(Vec::new);
    }

    /// The hypotheses recorded since the last call.
    pub fn take_diagnoses(&mut self) -> Vec<WindowDiagnoses> {
        self.diagnosis_log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Remembers finished incidents in `kb` and recalls them when they recur.
    pub fn with_knowledge(mut self, kb: Box<dyn x0_knowledge::KnowledgeBase>) -> Self {
        self.recall = Some(KnowledgeRecall::new(kb, self.config.knowledge.clone()));
        self
    }

    /// Stop keeping feature rows and model inputs for the history (benchmarks).
    pub fn discard_features(&mut self) {
        self.keep_features = false;
    }

    /// The job's counters.
    pub fn stats(&self) -> &Arc<JobStats> {
        &self.stats
    }

    /// Stream time: the newest event time seen.
    pub fn stream_now(&self) -> Option<i64> {
        self.windows.newest()
    }

    /// Checks a decoded batch against the inventory and the clocks, then windows it.
    /// Returns the number of late rows, or why the whole message is refused.
    /// `source` is where the batch came from (the Kafka partition): each source has its
    /// own watermark.
    pub fn admit(&mut self, source: i32, batch: TelemetryBatch, wall_now_ns: i64) -> Result<u64, Rejection> {
        let w = &self.config.window;
        let skew = w.max_future_skew.as_nanos() as i64;
        let age = w.max_event_age.as_nanos() as i64;
        let horizon = wall_now_ns.max(self.windows.watermark().unwrap_or(i64::MIN)).saturating_add(skew);
        let oldest =
            wall_now_ns.saturating_sub(age).min(self.windows.watermark().unwrap_or(i64::MAX).saturating_sub(age));
        let reject = |label, reason| Err(Rejection { label, reason });
        for (ts, node, peer) in batch
            .links
            .iter()
            .map(|l| (l.ts, &l.node, Some(&l.peer)))
            .chain(batch.nodes.iter().map(|n| (n.ts, &n.node, None)))
        {
            let Some(a) = self.topo.id(node) else { return reject("unknown_node", format!("unknown node {node:?}")) };
            if let Some(peer) = peer {
                let Some(b) = self.topo.id(peer) else {
                    return reject("unknown_node", format!("unknown peer {peer:?} of {node}"));
                };
                if !self.topo.has_link(a, b) {
                    return reject("unknown_link", format!("{node} and {peer} share no link"));
                }
            }
            if ts > horizon {
                return reject(
                    "future",
                    format!("timestamp {ts} is more than {:?} ahead of stream time", w.max_future_skew),
                );
            }
            if ts < oldest {
                return reject("too_old", format!("timestamp {ts} is older than {:?}", w.max_event_age));
            }
        }
        note_reporters(&mut self.seen, &batch);
        let rows = batch.len() as u64;
        let late = self.windows.insert(source, batch.links, batch.nodes, wall_now_ns);
        self.stats.add_samples(rows - late, late);
        Ok(late)
    }

    /// Expects telemetry from `sources` (the partitions this job reads) from `wall_now_ns`:
    /// no window closes before each has delivered or gone idle.
    pub fn expect_sources(&mut self, sources: &[i32], wall_now_ns: i64) {
        self.windows.expect(sources, wall_now_ns);
    }

    /// Closes every window the watermark passed and decides on each.
    pub async fn close_ready(&mut self) -> Result<Vec<Publication>, FeatureError> {
        let ready = self.windows.close_ready();
        let mut out = Vec::new();
        for w in ready {
            let started = Instant::now();
            let features = self.features.compute(&w).await?;
            let decided = self.decide(&features);
            self.generation += u64::from(!decided.is_empty());
            self.tell_live(&decided);
            out.extend(decided);
            if self.keep_features {
                for b in &features.link_batches {
                    self.feature_rows.push((w.start, w.end, b.clone()));
                }
            }
            self.stats.window_closed(w.end, started.elapsed());
        }
        self.note_moved(&out);
        let stale = std::mem::take(&mut self.handoff_stale);
        self.handoff_due.extend(stale);
        Ok(out)
    }

    fn decide(&mut self, f: &WindowFeatures) -> Vec<Publication> {
        let now = self.stream_now().unwrap_or(f.end);
        if self.model.refresh().is_some() {
            let version = served_version(&self.model);
            self.book.set_model_version(&version);
            self.stats.set_model_version(&version);
            self.stats.model_swapped();
        }
        let (mut anomalies, views) = detect(&mut self.detector, f, self.topo.names(), &self.seen);
        let flagged_now: HashSet<Element> = anomalies.iter().map(|a| a.element.clone()).collect();
        let flagged_before = std::mem::replace(&mut self.flagged_before, flagged_now);
        // The model's input, built only when a model scores it or the history keeps it.
        let record = self.keep_features && self.config.model.record_inputs;
        let window =
            (record || self.model.current().is_some()).then(|| FeaturizedWindow::new(f, self.model_view(), &anomalies));
        if let (Some(model), Some(window)) = (self.model.current(), &window) {
            let flagged = model_flags(model, &window.graph, self.model_view());
            // The model decides which elements are anomalous; the statistical detector's
            // signals are the evidence root-cause analysis reasons with. Hard evidence
            // (carrier lost, a node gone silent) stands on its own.
            // So do the neighbours' probe losses towards a silent node: they are the
            // witnesses that tell a crash from an agent that stopped reporting, and the
            // model (which flags the node) need not flag every link to it.
            let silent: Vec<Element> =
                anomalies.iter().filter(|a| matches!(a.signal, Signal::Silent)).map(|a| a.element.clone()).collect();
            let witnesses_silent = |e: &Element| {
                matches!(e, Element::Link { .. })
                    && silent.iter().any(|n| matches!(n, Element::Node { id } if e.touches(id)))
            };
            // The model may overrule a one-window blip, not what the statistics see
            // window after window: in the kernel lab a one-way 30% loss (a 26% counter
            // gap in five windows running) went unflagged by the model for 2.5 s.
            anomalies.retain(|a| {
                matches!(a.signal, Signal::Carrier { .. } | Signal::Silent)
                    || flagged.contains(&a.element)
                    || witnesses_silent(&a.element)
                    || flagged_before.contains(&a.element)
            });
        }
        if let Some(window) = window.filter(|_| record) {
            self.model_inputs.push(window);
        }
        let mut diagnoses = self.localizer.localize(&anomalies, &views, f.start);
        // Another instance answers for what lies in its regions.
        diagnoses.retain(|d| self.owns(&d.cause.element));
        if let Some(cal) = &self.calibration {
            for d in &mut diagnoses {
                let raw = d.cause.confidence;
                let calibrated = cal.apply(d.cause.kind.as_str(), raw);
                // Calibration may lower one reporter's claim, never lift it, nor a claim
                // on evidence it was never fitted on.
                let lift = !one_reporters_word(&d.cause) && !d.uncalibrated;
                d.cause.confidence = if lift { calibrated } else { calibrated.min(raw) };
                d.cause.evidence.push(format!("evidence score {raw:.2}, calibrated to {:.2}", d.cause.confidence));
            }
        }
        if let Some(log) = &mut self.diagnosis_log {
            let causes = diagnoses.iter().map(|d| d.cause.clone()).collect();
            log.push(WindowDiagnoses { window_start: f.start, decided_at: now, causes });
        }
        self.planner.observe(f);
        // For the dashboard: the window's hypotheses, kept with any incident it (re)diagnoses.
        let hypotheses = self
            .live
            .as_ref()
            .filter(|_| !diagnoses.is_empty())
            .map(|_| Deciding { window_start: f.start, causes: diagnoses.iter().map(|d| d.cause.clone()).collect() });
        let mut out = Vec::new();
        if self.config.planner.verify_windows > 0 {
            self.loss.push(f);
            self.verify(now, &mut out);
        }
        self.health.watch_only(&self.book.open_elements(), &self.topo);
        self.health.push(f);
        let (known, stats, health, topo) = (&self.recall, &self.stats, &self.health, &self.topo);
        let mut recall = |i: &Incident| known.as_ref().and_then(|k| k.recall(i, stats));
        let proven = |e: &Element| health.proven_healthy(e, topo);
        for t in self.book.observe_with(diagnoses, f.start, now, &mut recall, &proven) {
            if let (
                Some(live),
                Some(h),
                Transition::Diagnosed(id) | Transition::Rediagnosed(id) | Transition::Reopened(id),
            ) = (&self.live, &hypotheses, &t)
            {
                live.deciding(id, h.clone());
            }
            match t {
                Transition::Diagnosed(id) => {
                    self.stats.incident_opened();
                    self.act_on_diagnosis(&id, now, &mut out);
                }
                Transition::Rediagnosed(id) | Transition::Reopened(id) => self.act_on_diagnosis(&id, now, &mut out),
                Transition::Cleared(id) => self.clear(&id, now, &mut out),
            }
        }
        self.plan_for_returned_nodes(f, now, &mut out);
        self.reconcile(now, &mut out);
        if let Some(live) = self.live.as_ref().filter(|l| l.watched()) {
            let open: Vec<(Element, Look)> =
                self.book.open_states().into_iter().map(|(e, s)| (e, incident_look(s))).collect();
            live.window(f, &self.topo, &anomalies, &open);
        }
        out
    }

    /// Tells the live feed about the incidents in `out`.
    fn tell_live(&self, out: &[Publication]) {
        if let Some(live) = &self.live {
            for p in out {
                if let Publication::Incident(i) = p {
                    live.incident_changed(i);
                }
            }
        }
    }

    fn act_on_diagnosis(&mut self, id: &str, now: i64, out: &mut Vec<Publication>) {
        if self.book.rolled_back(id) {
            return;
        }
        let Some(incident) = self.book.get(id) else { return };
        let rc = incident.root_cause.clone().expect("diagnosed incidents have a cause");
        let min = self.config.planner.min_confidence;
        let failed_before = || self.recall.as_ref().and_then(|k| k.failed_before(incident, &self.stats));
        if rc.kind == RootCauseKind::SuspectReporter {
            self.book.record_no_action(id, &format!("{} reports faults its neighbours do not corroborate: suspect reporter, no reroute on its word alone", rc.element));
        } else if one_reporters_word(&rc) {
            let who = rc
                .reporters
                .first()
                .map_or_else(|| "no node corroborates it".to_string(), |r| format!("only {r} observes it"));
            self.book.record_no_action(
                id,
                &format!("{who}: one reporter's word never crosses the action bar; watching, not acting"),
            );
        } else if rc.confidence < min {
            self.book.record_no_action(
                id,
                &format!(
                    "confidence {:.2} is below planner.min_confidence {min:.2}: watching, not acting",
                    rc.confidence
                ),
            );
        } else if let Some(why) = failed_before() {
            self.book.record_no_action(id, &why);
        } else {
            let plan = self.planner.plan_fault(id, &rc.element, now);
            let why = format!(
                "cause: {} {} (confidence {:.2}) because {}.\nplan: {}",
                rc.kind.as_str(),
                rc.element,
                rc.confidence,
                rc.evidence.join("; "),
                plan.explanation.join("; ")
            );
            let actions = self.issue(id, plan, now, out);
            if actions.is_empty() && self.book.acted(id) {
                // Rediagnosed after acting, and the routes already avoid the new cause.
                self.book.note(id, &why);
            } else if actions.is_empty() {
                self.book.record_no_action(id, &why);
            } else {
                self.book.record_actions(id, actions, &why);
                if self.config.planner.verify_windows > 0 {
                    let incident = self.book.get(id).expect("recorded above");
                    let links = lossy_links(incident);
                    // Since this episode began: a reopened incident's quiet spell before
                    // it reopened is no "before" for this repair.
                    let since = self.book.episode_start(id).unwrap_or(incident.opened_at);
                    let before = self.loss.mean_lost(&links, since);
                    self.checks.insert(id.to_string(), RepairCheck::new(links, before));
                }
            }
        }
        out.extend(self.book.get(id).cloned().map(Publication::Incident));
    }

    /// Judges the plans whose commands were all applied (see [`crate::verify`]); rolls
    /// back those that did not help.
    fn verify(&mut self, now: i64, out: &mut Vec<Publication>) {
        let rule = VerifyRule {
            windows: self.config.planner.verify_windows,
            min_lost: self.config.planner.verify_min_lost,
            min_improvement: self.config.planner.verify_min_improvement,
        };
        let ids: Vec<String> = self.checks.keys().cloned().collect();
        for id in ids {
            if !matches!(
                self.book.get(&id).map(|i| i.state),
                Some(IncidentState::Mitigating | IncidentState::Verifying)
            ) {
                // Resolved or rolled back before it could be judged.
                self.checks.remove(&id);
                continue;
            }
            let check = self.checks.get_mut(&id).expect("listed above");
            match check.observe(&self.loss, &rule) {
                RepairVerdict::Pending => {}
                RepairVerdict::Stands(line) => {
                    self.checks.remove(&id);
                    self.book.note(&id, &line);
                    self.generation += 1;
                    out.extend(self.book.get(&id).cloned().map(Publication::Incident));
                }
                RepairVerdict::RollBack(line) => self.roll_back(&id, &line, now, out),
            }
        }
    }

    /// Withdraws an incident's routes (its plan did not help, or was refused in part).
    fn roll_back(&mut self, id: &str, why: &str, now: i64, out: &mut Vec<Publication>) {
        self.checks.remove(id);
        let plan = self.planner.plan_clear(id, now);
        let why = format!("{why}; {}", plan.explanation.join("; "));
        let withdrawals = self.issue(id, plan, now, out);
        self.book.roll_back(id, withdrawals, &why);
        JobStats::bump(&self.stats.repairs_rolled_back);
        self.generation += 1;
        out.extend(self.book.get(id).cloned().map(Publication::Incident));
    }

    fn clear(&mut self, id: &str, now: i64, out: &mut Vec<Publication>) {
        // Not only when it acted: an incident whose plan changed nothing still holds its
        // fault in the planner (which would avoid the element for good), and may own
        // routes re-planned when another incident cleared.
        let (withdrawals, why) = if self.book.acted(id) || self.planner.holds(id) {
            let plan = self.planner.plan_clear(id, now);
            let why = plan.explanation.join("; ");
            (self.issue(id, plan, now, out), why)
        } else {
            (vec![], "symptoms cleared".to_string())
        };
        self.book.resolve(id, now, withdrawals, &why);
        if let (Some(recall), Some(incident)) = (&self.recall, self.book.get(id)) {
            recall.remember(incident, &self.stats);
        }
        out.extend(self.book.get(id).cloned().map(Publication::Incident));
    }

    /// Takes the plan: its actions move into the commands (a 100,000-route plan is
    /// 300,000 strings; a copy of them costs tens of ms of the decision).
    fn issue(&mut self, incident: &str, plan: Plan, now: i64, out: &mut Vec<Publication>) -> Vec<ActionRecord> {
        self.stats.planned(plan.cost);
        if let Some(live) = self.live.as_ref().filter(|_| !plan.changes.is_empty()) {
            live.routes_changed(self.planner.wanted());
        }
        // One command per node for its route changes (batches of at most
        // `MAX_BATCH_ROUTES`), in the order the plan gives the nodes.
        let mut per_node: Vec<(String, Vec<Action>)> = Vec::new();
        let mut slot: HashMap<String, usize> = HashMap::new();
        for c in plan.changes {
            let i = match slot.get(&c.target) {
                Some(&i) => i,
                None => {
                    slot.insert(c.target.clone(), per_node.len());
                    per_node.push((c.target, Vec::new()));
                    per_node.len() - 1
                }
            };
            per_node[i].1.push(c.action);
        }
        let mut records = Vec::new();
        for (target, changes) in per_node {
            for action in Action::batched(changes) {
                records.push(self.send_command(incident, &target, action, now, out));
            }
        }
        records
    }

    /// Signs and records one command of `incident`'s plan, issued `now` and valid for
    /// `planner.command_ttl`; returns its record for the incident.
    fn send_command(
        &mut self,
        incident: &str,
        target: &str,
        action: Action,
        now: i64,
        out: &mut Vec<Publication>,
    ) -> ActionRecord {
        let ttl = self.config.planner.command_ttl.as_nanos() as i64;
        self.issued += 1;
        let mut cmd = HealingCommand {
            schema_version: x0_schema::SCHEMA_VERSION,
            id: command_id(incident, self.issued, target, &action, now),
            incident_id: incident.to_string(),
            issued_at: now,
            expires_at: now + ttl,
            target: target.to_string(),
            action,
            signature: String::new(),
        };
        cmd.sign(&self.signer);
        self.commands.insert(
            cmd.id.clone(),
            CommandRow {
                command_id: cmd.id.clone(),
                incident_id: incident.to_string(),
                target: cmd.target.clone(),
                action: cmd.action.clone(),
                issued_at: now,
                expires_at: cmd.expires_at,
                status: None,
                reason: None,
                acked_at: None,
            },
        );
        self.stats.command_sent();
        let record = ActionRecord {
            command_id: cmd.id.clone(),
            target: cmd.target.clone(),
            action: cmd.action.clone(),
            issued_at: now,
            status: None,
            reason: None,
            acked_at: None,
        };
        out.push(Publication::Command(cmd));
        record
    }

    /// Closes every unfinished incident with `why`: the job stops and nothing will take
    /// them over. Its routes stay where they are on the nodes (fail static).
    pub fn close_all(&mut self, why: &str) {
        self.generation += self.book.close_all(why) as u64;
    }

    /// Changes to incidents or commands so far (compare to skip unchanged snapshots).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every incident it holds.
    pub fn incidents(&self) -> Vec<Incident> {
        self.book.incidents()
    }

    /// Every command it sent, with its result so far.
    pub fn command_rows(&self) -> Vec<CommandRow> {
        self.commands.values().cloned().collect()
    }

    /// Forgets incidents and commands of past days once they are settled (every
    /// incident of the day final, every command of the day acknowledged or expired).
    /// Call right after a successful snapshot.
    pub fn evict_settled(&mut self) {
        let Some(now) = self.stream_now() else { return };
        let today = now.div_euclid(crate::incidents::DAY_NS) * crate::incidents::DAY_NS;
        self.book.evict_settled_before(today);
        let day = |ns: i64| ns.div_euclid(crate::incidents::DAY_NS);
        let unsettled: HashSet<i64> = self
            .commands
            .values()
            .filter(|c| c.status.is_none() && c.expires_at > now)
            .map(|c| day(c.issued_at))
            .collect();
        self.commands.retain(|_, c| c.issued_at >= today || unsettled.contains(&day(c.issued_at)));
    }

    /// Model inputs of the windows closed since the last call, as unlabelled training
    /// windows of run `run`.
    pub fn take_model_inputs(&mut self, run: &str) -> Vec<LabelledWindow> {
        let inputs = std::mem::take(&mut self.model_inputs);
        let names = self.model_view().names();
        inputs.into_iter().map(|w| w.unlabelled(run, names)).collect()
    }

    /// Feature rows accumulated since the last call.
    pub fn take_feature_rows(&mut self) -> Vec<(i64, i64, RecordBatch)> {
        std::mem::take(&mut self.feature_rows)
    }

    /// Rows that arrived after their window closed.
    pub fn late_rows(&self) -> u64 {
        self.windows.late_rows()
    }
}

/// The links whose traffic an incident's repair should spare: its cause, if a link;
/// for a node, the node's links it saw symptoms on. Not every symptom link: a
/// neighbouring fault's loss must not count against this repair.
fn lossy_links(incident: &Incident) -> Vec<Element> {
    let Some(rc) = &incident.root_cause else { return vec![] };
    let mut links: Vec<Element> = match &rc.element {
        Element::Link { .. } => vec![rc.element.clone()],
        Element::Node { id } => incident
            .symptoms
            .iter()
            .map(|s| &s.element)
            .filter(|e| matches!(e, Element::Link { .. }) && e.touches(id))
            .cloned()
            .collect(),
    };
    links.sort();
    links.dedup();
    links
}

/// What incidents record as the detector that scored them.
fn served_version(model: &ModelSlot) -> String {
    match model.current() {
        Some(m) => format!("{}+{MODEL_VERSION}", m.version()),
        None => MODEL_VERSION.to_string(),
    }
}

/// The elements the graph model flags in this window.
fn model_flags(model: &GraphDetector, graph: &GraphWindow, topo: &Topology) -> HashSet<Element> {
    let scores = model.score(graph);
    let th = model.threshold();
    let nodes = topo.names().iter().zip(&scores.nodes).filter(|(_, &s)| s >= th).map(|(n, _)| Element::node(n));
    let links = topo
        .links()
        .iter()
        .zip(&scores.links)
        .filter(|(_, &s)| s >= th)
        .map(|(&(a, b), _)| Element::link(topo.name(a), topo.name(b)));
    nodes.chain(links).collect()
}

/// A command's id: its incident, the job's command sequence number, and a digest of
/// what it asks of whom and when. The same decision replayed from a checkpoint yields
/// the same id (an actuator answers it as a duplicate, never applies it twice); a
/// different decision that reuses a sequence number (a job that lost its checkpoint)
/// does not collide with the old command.
fn command_id(incident: &str, seq: u64, target: &str, action: &x0_schema::Action, issued_at: i64) -> String {
    let action = serde_json::to_vec(action).expect("actions always serialise");
    let h = crate::digest::fnv1a(target.bytes().chain([0]).chain(action).chain(issued_at.to_le_bytes()));
    format!("{incident}.c{seq}.{:08x}", h as u32)
}

/// Windows an element must stay healthy before its incident clears: the configured
/// count, and never less than the planner's hold-down.
fn clear_windows(config: &Config) -> u32 {
    config.rca.clear_windows.max(windows_in(config, config.planner.hold_down)).max(1)
}

fn windows_in(config: &Config, d: std::time::Duration) -> u32 {
    (d.as_nanos() / config.window.size.as_nanos().max(1)).min(u128::from(u32::MAX)) as u32
}

/// When incidents clear and reopen: the hold-down doubles per recurrence up to
/// `planner.max_hold_down`.
fn clear_policy(config: &Config) -> ClearPolicy {
    ClearPolicy {
        windows: clear_windows(config),
        max_windows: windows_in(config, config.planner.max_hold_down).max(clear_windows(config)),
        reopen_within_ns: config.rca.reopen_within.as_nanos().min(i64::MAX as u128) as i64,
    }
}

/// Whether a hypothesis rests on one node's observations alone. A node's own overload is
/// the exception: claiming it can only move traffic away from the claimant.
fn one_reporters_word(rc: &RootCause) -> bool {
    rc.kind != RootCauseKind::NodeOverload && rc.reporters.len() < 2
}
