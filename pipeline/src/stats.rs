//! The job's own counters, shared with whoever displays or exports them.

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;
use x0_schema::{Incident, ResultStatus};

/// How many plans' costs [`JobStats::plan_costs`] keeps.
pub const PLANS_KEPT: usize = 1000;

/// What planning one repair (or one withdrawal) cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PlanCost {
    /// Wall time to plan it.
    pub took: Duration,
    /// Route changes it commands.
    pub changes: usize,
    /// Routes repaired at the fault's edge.
    pub at_edge: usize,
    /// Destinations repaired over their whole shortest-path tree.
    pub whole_tree: usize,
    /// Bytes of hop distances it held (the planner's working memory beyond its state).
    pub hop_bytes: usize,
}

#[derive(Debug)]
/// The job's counters, shared with whoever watches it.
pub struct JobStats {
    /// Telemetry messages consumed.
    pub messages: AtomicU64,
    /// Samples admitted.
    pub samples: AtomicU64,
    /// Samples that arrived after their window closed.
    pub late_rows: AtomicU64,
    /// Telemetry messages the broker discarded before the job read them (offsets it
    /// skipped over: retention outran a job that fell behind).
    pub telemetry_discarded: AtomicU64,
    /// Windows closed.
    pub windows_closed: AtomicU64,
    /// Incidents opened.
    pub incidents: AtomicU64,
    /// Commands sent.
    pub commands_sent: AtomicU64,
    /// Results delivered again after they were taken (ignored).
    pub duplicate_results: AtomicU64,
    /// Commands re-issued because they reached their node expired.
    pub commands_reissued: AtomicU64,
    /// Region handoff messages published (a mesh split among instances; a handoff is
    /// one or more parts of at most 512 KB).
    pub handoffs: AtomicU64,
    /// Region handoff messages the broker would not take: that region's open work
    /// would not reach a successor.
    pub handoff_failures: AtomicU64,
    /// Regions taken over from another instance's handoff.
    pub takeovers: AtomicU64,
    /// Checkpoints written.
    pub checkpoints: AtomicU64,
    /// The last checkpoint's size, bytes.
    pub checkpoint_bytes: AtomicU64,
    /// The last checkpoint's cost, µs.
    pub checkpoint_us: AtomicU64,
    /// Times a newly promoted model came into service.
    pub model_swaps: AtomicU64,
    /// Finished incidents stored in the knowledge base.
    pub kb_remembered: AtomicU64,
    /// Incidents confirmed early because the knowledge base knew them.
    pub kb_recalls: AtomicU64,
    /// Knowledge-base calls that failed (the job goes on without its memory).
    pub kb_errors: AtomicU64,
    /// Repairs rolled back: they did not help, or an actuator refused part of them.
    pub repairs_rolled_back: AtomicU64,
    dlq: Mutex<BTreeMap<&'static str, u64>>,
    /// Per closed window: time from close to decision, µs.
    decision_us: Mutex<Vec<u64>>,
    /// The latest plans' costs (at most [`PLANS_KEPT`]).
    plans: Mutex<VecDeque<PlanCost>>,
    /// The same, as the histogram `/metrics` serves (seconds).
    pub(crate) decision_seconds: Histogram,
    /// Results by status.
    results_by_status: Mutex<BTreeMap<&'static str, u64>>,
    /// Consumer lag (messages) per (topic, partition) this instance holds, as last seen.
    lag: Mutex<BTreeMap<(String, i32), i64>>,
    /// The incidents the job holds, by (state, root-cause kind), as last snapshotted.
    incidents_held: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// The end (event time, ns) of the newest window closed.
    pub(crate) last_window_end_ns: AtomicI64,
    /// When the last checkpoint was written (wall clock, ns; 0: none yet).
    pub(crate) last_checkpoint_ns: AtomicI64,
    /// Whether this job checkpoints (then `/readyz` wants a fresh checkpoint).
    pub(crate) durable: AtomicBool,
    /// The model version in service ("" for the statistical detector alone).
    model_version: Mutex<String>,
}

impl Default for JobStats {
    fn default() -> Self {
        JobStats {
            messages: AtomicU64::default(),
            samples: AtomicU64::default(),
            late_rows: AtomicU64::default(),
            telemetry_discarded: AtomicU64::default(),
            windows_closed: AtomicU64::default(),
            incidents: AtomicU64::default(),
            commands_sent: AtomicU64::default(),
            duplicate_results: AtomicU64::default(),
            commands_reissued: AtomicU64::default(),
            handoffs: AtomicU64::default(),
            handoff_failures: AtomicU64::default(),
            takeovers: AtomicU64::default(),
            checkpoints: AtomicU64::default(),
            checkpoint_bytes: AtomicU64::default(),
            checkpoint_us: AtomicU64::default(),
            model_swaps: AtomicU64::default(),
            kb_remembered: AtomicU64::default(),
            kb_recalls: AtomicU64::default(),
            kb_errors: AtomicU64::default(),
            repairs_rolled_back: AtomicU64::default(),
            dlq: Mutex::default(),
            decision_us: Mutex::default(),
            plans: Mutex::default(),
            // 0.25 ms to about 4 s: a 16-node window decides in a few ms, a 10,000-node one
            // in hundreds.
            decision_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 15)),
            results_by_status: Mutex::default(),
            lag: Mutex::default(),
            incidents_held: Mutex::default(),
            last_window_end_ns: AtomicI64::default(),
            last_checkpoint_ns: AtomicI64::default(),
            durable: AtomicBool::default(),
            model_version: Mutex::default(),
        }
    }
}

/// Locks a mutex of plain counters (a panic elsewhere leaves them usable).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl JobStats {
    /// Counts admitted and late samples.
    pub fn add_samples(&self, rows: u64, late: u64) {
        self.messages.fetch_add(1, Relaxed);
        self.samples.fetch_add(rows, Relaxed);
        self.late_rows.fetch_add(late, Relaxed);
    }

    /// Records a checkpoint and what it cost.
    pub fn checkpointed(&self, bytes: u64, ms: f64) {
        self.checkpoints.fetch_add(1, Relaxed);
        self.last_checkpoint_ns.store(x0_schema::wall_clock_ns(), Relaxed);
        self.checkpoint_bytes.store(bytes, Relaxed);
        self.checkpoint_us.store((ms * 1e3) as u64, Relaxed);
    }

    /// Counts one dead-lettered message under `label`.
    pub fn dead_lettered(&self, label: &'static str) {
        *lock(&self.dlq).entry(label).or_default() += 1;
    }

    /// Dead-lettered messages by reason label.
    pub fn dlq(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.dlq).clone()
    }

    /// Messages dead-lettered, all reasons.
    pub fn dlq_total(&self) -> u64 {
        self.dlq().values().sum()
    }

    /// Counts a closed window (ending at `end_ns`, event time) and how long its
    /// decision took.
    pub fn window_closed(&self, end_ns: i64, took: Duration) {
        self.windows_closed.fetch_add(1, Relaxed);
        self.last_window_end_ns.fetch_max(end_ns, Relaxed);
        self.decision_seconds.observe(took.as_secs_f64());
        lock(&self.decision_us).push(took.as_micros() as u64);
    }

    /// Records what a plan cost.
    pub(crate) fn planned(&self, cost: PlanCost) {
        let mut plans = lock(&self.plans);
        if plans.len() == PLANS_KEPT {
            plans.pop_front();
        }
        plans.push_back(cost);
    }

    /// The latest plans' costs, oldest first.
    pub fn plan_costs(&self) -> Vec<PlanCost> {
        lock(&self.plans).iter().cloned().collect()
    }

    /// Window-close-to-decision latencies so far, µs.
    pub fn decision_latencies_us(&self) -> Vec<u64> {
        lock(&self.decision_us).clone()
    }

    /// Counts a model coming into service.
    pub fn model_swapped(&self) {
        self.model_swaps.fetch_add(1, Relaxed);
    }

    /// Counts an incident opened.
    pub fn incident_opened(&self) {
        self.incidents.fetch_add(1, Relaxed);
    }

    /// Counts a command sent.
    pub fn command_sent(&self) {
        self.commands_sent.fetch_add(1, Relaxed);
    }

    /// Counts a result by its status.
    pub fn result_received(&self, status: ResultStatus) {
        *lock(&self.results_by_status).entry(status.as_str()).or_default() += 1;
    }

    /// Results by status.
    pub fn results_by_status(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.results_by_status).clone()
    }

    /// Results that said applied.
    pub fn results_applied(&self) -> u64 {
        lock(&self.results_by_status).get(ResultStatus::Applied.as_str()).copied().unwrap_or(0)
    }

    /// Replaces the consumer lag per (topic, partition) this instance holds.
    pub fn set_lag(&self, lag: BTreeMap<(String, i32), i64>) {
        *lock(&self.lag) = lag;
    }

    /// Consumer lag per (topic, partition), as last seen.
    pub fn lag(&self) -> BTreeMap<(String, i32), i64> {
        lock(&self.lag).clone()
    }

    /// Counts the incidents held by state and root-cause kind (`unknown` before a
    /// diagnosis).
    pub fn set_incidents(&self, incidents: &[Incident]) {
        let mut held = BTreeMap::new();
        for i in incidents {
            let kind = i.root_cause.as_ref().map_or("unknown", |rc| rc.kind.as_str());
            *held.entry((i.state.as_str(), kind)).or_default() += 1;
        }
        *lock(&self.incidents_held) = held;
    }

    /// The incidents held by (state, root-cause kind).
    pub fn incidents_held(&self) -> BTreeMap<(&'static str, &'static str), u64> {
        lock(&self.incidents_held).clone()
    }

    /// Notes the model version in service.
    pub fn set_model_version(&self, version: &str) {
        version.clone_into(&mut lock(&self.model_version));
    }

    /// The model version in service ("" for none).
    pub fn model_version(&self) -> String {
        lock(&self.model_version).clone()
    }

    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    /// Every counter, as JSON (`run --stats-json`).
    pub fn to_json(&self) -> serde_json::Value {
        let g = Self::get;
        serde_json::json!({
            "messages": g(&self.messages),
            "samples": g(&self.samples),
            "late_rows": g(&self.late_rows),
            "telemetry_discarded": g(&self.telemetry_discarded),
            "dead_lettered": self.dlq(),
            "windows_closed": g(&self.windows_closed),
            "incidents": g(&self.incidents),
            "commands_sent": g(&self.commands_sent),
            "results_applied": self.results_applied(),
            "results_other": self.results_by_status().values().sum::<u64>() - self.results_applied(),
            "duplicate_results": g(&self.duplicate_results),
            "commands_reissued": g(&self.commands_reissued),
            "repairs_rolled_back": g(&self.repairs_rolled_back),
            "handoffs": g(&self.handoffs),
            "handoff_failures": g(&self.handoff_failures),
            "takeovers": g(&self.takeovers),
            "checkpoints": g(&self.checkpoints),
            "checkpoint_bytes": g(&self.checkpoint_bytes),
            "checkpoint_us": g(&self.checkpoint_us),
        })
    }
}
