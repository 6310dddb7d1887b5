//! The stream job's Prometheus series and its readiness, read from [`JobStats`] at
//! scrape time: the hot path only bumps atomics, and a scrape costs one pass over a
//! few small maps. No series has a per-node label, so the count of series stays
//! bounded at any mesh size (partitions, reasons, states and kinds are small sets).
//!
//! Every series is listed, with its meaning, in docs/ARCHITECTURE.md ("Operating").

use crate::config::OpsConfig;
use crate::stats::JobStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use x0_schema::wall_clock_ns;

/// The job's registry: every series of [`JobStats`].
pub fn job_registry(stats: Arc<JobStats>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(JobMetrics { stats }));
    registry
}

#[derive(Debug)]
struct JobMetrics {
    stats: Arc<JobStats>,
}

type Labels = Vec<(&'static str, String)>;

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

/// One series per label set (a family), all of `kind` (counter or gauge).
fn family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Labels, f64)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in rows {
        let series = m.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(v).encode(series)?,
            _ => ConstGauge::new(v).encode(series)?,
        }
    }
    Ok(())
}

impl Collector for JobMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let (s, g) = (&self.stats, JobStats::get);
        let e = &mut enc;
        counter(e, "x0_job_telemetry_messages", "Telemetry messages taken in", g(&s.messages))?;
        counter(e, "x0_job_samples", "Telemetry samples admitted", g(&s.samples))?;
        counter(
            e,
            "x0_job_late_rows",
            "Samples that arrived after their window closed (counted, not used)",
            g(&s.late_rows),
        )?;
        counter(
            e,
            "x0_job_telemetry_discarded",
            "Telemetry messages the broker discarded before the job read them (it fell behind retention)",
            g(&s.telemetry_discarded),
        )?;
        let dlq = s.dlq().into_iter().map(|(r, n)| (vec![("reason", r.to_string())], n as f64));
        family(
            e,
            "x0_job_dead_lettered",
            "Messages sent to the dead-letter topic, by reason",
            MetricType::Counter,
            dlq,
        )?;
        counter(e, "x0_job_windows_closed", "Event-time windows closed and decided on", g(&s.windows_closed))?;
        s.decision_seconds.encode(e.encode_descriptor(
            "x0_job_decision_seconds",
            "Time from a window's close to the job's decision on it",
            None,
            s.decision_seconds.metric_type(),
        )?)?;
        let lag = s.lag().into_iter().map(|((t, p), n)| (vec![("topic", t), ("partition", p.to_string())], n as f64));
        family(
            e,
            "x0_job_consumer_lag",
            "Messages not yet taken in, per partition this instance holds",
            MetricType::Gauge,
            lag,
        )?;
        let end = s.last_window_end_ns.load(Relaxed);
        if end > 0 {
            let behind = (wall_clock_ns() - end).max(0) as f64 / 1e9;
            gauge(e, "x0_job_event_time_lag_seconds", "Wall clock minus the end of the newest closed window", behind)?;
        }
        counter(e, "x0_job_incidents_opened", "Incidents opened", g(&s.incidents))?;
        let held = s
            .incidents_held()
            .into_iter()
            .map(|((state, kind), n)| (vec![("state", state.to_string()), ("root_cause", kind.to_string())], n as f64));
        family(
            e,
            "x0_job_incidents",
            "Incidents the job holds, by state and root-cause kind",
            MetricType::Gauge,
            held,
        )?;
        counter(e, "x0_job_commands_sent", "Healing commands published", g(&s.commands_sent))?;
        let results = s.results_by_status().into_iter().map(|(st, n)| (vec![("status", st.to_string())], n as f64));
        family(e, "x0_job_command_results", "Command results taken in, by status", MetricType::Counter, results)?;
        counter(e, "x0_job_duplicate_results", "Results delivered again (ignored)", g(&s.duplicate_results))?;
        counter(
            e,
            "x0_job_commands_reissued",
            "Commands re-issued because they reached their node expired",
            g(&s.commands_reissued),
        )?;
        counter(
            e,
            "x0_job_rollbacks",
            "Repairs rolled back (did not help, or refused in part)",
            g(&s.repairs_rolled_back),
        )?;
        counter(
            e,
            "x0_job_handoffs",
            "Region handoff messages published (a mesh split among instances; parts of at most 512 KB)",
            g(&s.handoffs),
        )?;
        counter(
            e,
            "x0_job_handoff_failures",
            "Region handoff messages the broker would not take: that region's open work would not reach a successor",
            g(&s.handoff_failures),
        )?;
        counter(e, "x0_job_takeovers", "Regions taken over from another instance's handoff", g(&s.takeovers))?;
        counter(e, "x0_job_checkpoints", "Checkpoints written", g(&s.checkpoints))?;
        let at = s.last_checkpoint_ns.load(Relaxed);
        if at > 0 {
            let age = (wall_clock_ns() - at).max(0) as f64 / 1e9;
            gauge(e, "x0_job_checkpoint_age_seconds", "Time since the last checkpoint was written", age)?;
            gauge(e, "x0_job_checkpoint_bytes", "Size of the last checkpoint", g(&s.checkpoint_bytes) as f64)?;
            let cost = g(&s.checkpoint_us) as f64 / 1e6;
            gauge(e, "x0_job_checkpoint_write_seconds", "What the last checkpoint cost the job's thread", cost)?;
        }
        let model = vec![(vec![("version", s.model_version())], 1.0)];
        family(e, "x0_job_model_info", "The detector in service (label version)", MetricType::Gauge, model)?;
        counter(e, "x0_job_model_swaps", "Newly promoted models taken into service", g(&s.model_swaps))?;
        counter(e, "x0_job_kb_remembered", "Finished incidents stored in the knowledge base", g(&s.kb_remembered))?;
        counter(e, "x0_job_kb_recalls", "Incidents confirmed early from the knowledge base", g(&s.kb_recalls))?;
        counter(e, "x0_job_kb_errors", "Knowledge-base calls that failed", g(&s.kb_errors))?;
        Ok(())
    }
}

/// Whether the job is ready (`/readyz`): it holds telemetry partitions, has decided on
/// a window, is at most `ops.ready_max_lag` messages behind on them, its newest closed
/// window ended at most `ops.ready_max_delay` ago, and (when it checkpoints) its last
/// checkpoint is no older than three intervals (at least 30 s).
pub fn job_readiness(
    stats: &JobStats,
    telemetry_topic: &str,
    ops: &OpsConfig,
    checkpoint_interval: std::time::Duration,
) -> Result<(), Vec<String>> {
    let mut not = Vec::new();
    let lag = stats.lag();
    let held: Vec<i64> = lag.iter().filter(|((t, _), _)| t == telemetry_topic).map(|(_, &n)| n).collect();
    let now = wall_clock_ns();
    if held.is_empty() {
        not.push(format!("no partition of {telemetry_topic} assigned yet"));
    }
    let behind: i64 = held.iter().sum();
    if behind > ops.ready_max_lag as i64 {
        not.push(format!("{behind} telemetry messages behind (ops.ready_max_lag {})", ops.ready_max_lag));
    }
    let end = stats.last_window_end_ns.load(Relaxed);
    if end == 0 {
        not.push("no window closed yet".into());
    } else {
        let delay = std::time::Duration::from_nanos((now - end).max(0) as u64);
        if delay > ops.ready_max_delay {
            not.push(format!(
                "the newest closed window ended {:.1} s ago (ops.ready_max_delay {:?})",
                delay.as_secs_f64(),
                ops.ready_max_delay
            ));
        }
    }
    if stats.durable.load(Relaxed) {
        let at = stats.last_checkpoint_ns.load(Relaxed);
        let bound = (checkpoint_interval * 3).max(std::time::Duration::from_secs(30));
        if at == 0 {
            not.push("no checkpoint written yet".into());
        } else if std::time::Duration::from_nanos((now - at).max(0) as u64) > bound {
            not.push(format!("the last checkpoint is older than {bound:?}"));
        }
    }
    if not.is_empty() {
        Ok(())
    } else {
        Err(not)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ready_only_when_consuming_caught_up_and_checkpointed() {
        let stats = JobStats::default();
        let ops = crate::Config::default().ops;
        let ready = |s: &JobStats| job_readiness(s, "x0.telemetry", &ops, Duration::from_secs(5));
        let why = ready(&stats).unwrap_err().join("; ");
        assert!(why.contains("no partition") && why.contains("no window"), "{why}");

        stats.set_lag([(("x0.telemetry".to_string(), 0), 20_000)].into());
        stats.window_closed(wall_clock_ns() - 60_000_000_000, Duration::from_millis(1));
        let why = ready(&stats).unwrap_err().join("; ");
        assert!(why.contains("20000 telemetry messages behind") && why.contains("ended 60"), "{why}");

        stats.set_lag([(("x0.telemetry".to_string(), 0), 3), (("x0.command-results".to_string(), 0), 50_000)].into());
        stats.window_closed(wall_clock_ns(), Duration::from_millis(1));
        assert_eq!(ready(&stats), Ok(()), "results lag does not hold readiness back");

        stats.durable.store(true, Relaxed);
        assert!(ready(&stats).unwrap_err()[0].contains("no checkpoint"));
        stats.checkpointed(10, 1.0);
        assert_eq!(ready(&stats), Ok(()));

        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &job_registry(Arc::new(stats))).unwrap();
        assert!(text.contains("x0_job_consumer_lag{topic=\"x0.telemetry\",partition=\"0\"} 3"), "{text}");
        assert!(text.contains("x0_job_checkpoint_age_seconds"), "{text}");
    }
}
