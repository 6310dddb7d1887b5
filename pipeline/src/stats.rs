//! The job's own counters, shared with whoever displays or exports them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;
use x0_schema::ResultStatus;

#[derive(Debug, Default)]
/// The job's counters, shared with whoever watches it.
pub struct JobStats {
    /// Telemetry messages consumed.
    pub messages: AtomicU64,
    /// Samples admitted.
    pub samples: AtomicU64,
    /// Samples that arrived after their window closed.
    pub late_rows: AtomicU64,
    /// Windows closed.
    pub windows_closed: AtomicU64,
    /// Incidents opened.
    pub incidents: AtomicU64,
    /// Commands sent.
    pub commands_sent: AtomicU64,
    /// Results that said applied.
    pub results_applied: AtomicU64,
    /// Results that said anything else.
    pub results_other: AtomicU64,
    /// Results delivered again after they were taken (ignored).
    pub duplicate_results: AtomicU64,
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
        self.checkpoint_bytes.store(bytes, Relaxed);
        self.checkpoint_us.store((ms * 1e3) as u64, Relaxed);
    }

    /// Counts one dead-lettered message under `label`.
    pub fn dead_lettered(&self, label: &'static str) {
        *self.dlq.lock().unwrap_or_else(|p| p.into_inner()).entry(label).or_default() += 1;
    }

    /// Dead-lettered messages by reason label.
    pub fn dlq(&self) -> BTreeMap<&'static str, u64> {
        self.dlq.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Messages dead-lettered, all reasons.
    pub fn dlq_total(&self) -> u64 {
        self.dlq().values().sum()
    }

    /// Counts a closed window and how long its decision took.
    pub fn window_closed(&self, took: Duration) {
        self.windows_closed.fetch_add(1, Relaxed);
        self.decision_us.lock().unwrap_or_else(|p| p.into_inner()).push(took.as_micros() as u64);
    }

    /// Window-close-to-decision latencies so far, µs.
    pub fn decision_latencies_us(&self) -> Vec<u64> {
        self.decision_us.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
        if status == ResultStatus::Applied { &self.results_applied } else { &self.results_other }.fetch_add(1, Relaxed);
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
            "dead_lettered": self.dlq(),
            "windows_closed": g(&self.windows_closed),
            "incidents": g(&self.incidents),
            "commands_sent": g(&self.commands_sent),
            "results_applied": g(&self.results_applied),
            "results_other": g(&self.results_other),
            "duplicate_results": g(&self.duplicate_results),
            "repairs_rolled_back": g(&self.repairs_rolled_back),
            "checkpoints": g(&self.checkpoints),
            "checkpoint_bytes": g(&self.checkpoint_bytes),
            "checkpoint_us": g(&self.checkpoint_us),
        })
    }
}
