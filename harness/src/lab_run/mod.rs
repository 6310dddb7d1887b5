//! `x0tta6bl4 lab`: a scenario on real kernels. Network namespaces joined by veth,
//! one agent process per node (eBPF probes, link probes, netlink routes), the stream
//! job and the embedded broker in this process; or babeld instead of our agents and
//! job. Faults are injected at their scenario times, repeated `trials` times, and
//! outage and recovery are measured from probe-flow packets only.
//!
//! [`run_lab`] is three steps: `setup` builds the mesh, starts the routing and the
//! probe flows and waits for them to converge; each `trial` returns the mesh to its
//! baseline, injects the faults and measures from the flows' packets; the summary
//! gathers the trials with what the job and the agents did.

mod agent_crash;
mod cost;
mod setup;
mod trial;

use anyhow::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use x0_pipeline::{Config, JobReport};
use x0_schema::{Element, Percentiles, Scenario};

/// Who routes the lab's mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Routing {
    /// Our agents and stream job.
    X0,
    /// Debian's babeld, no agents, no job.
    Babel,
    /// Our agents with their baseline routes (primary, backup, U-turn) but no stream
    /// job: what the kernel's own failover does alone.
    Static,
}

#[derive(Debug, Clone)]
/// What one `lab run` is given.
pub struct LabOptions {
    /// The scenario whose topology and faults to run.
    pub scenario: Scenario,
    /// Who routes.
    pub routing: Routing,
    /// How many times the faults are injected.
    pub trials: usize,
    /// Prefix of the namespaces' names.
    pub prefix: String,
    /// The stream job's configuration.
    pub config: Config,
    /// Agent configuration files, keys, babeld state.
    pub run_dir: PathBuf,
    /// Use the kernel's interface counters instead of eBPF in the agents.
    pub no_ebpf: bool,
    /// The binary the agents run as: `x0-agent`, or `x0tta6bl4` (run as `x0tta6bl4
    /// agent`). None: the `x0-agent` beside this process's binary, else its own.
    pub agent_exe: Option<PathBuf>,
    /// In each trial, this long after its first fault began: SIGKILL the agent of the
    /// node holding most of the job's overrides, flush that node's routes of ours (as a
    /// reboot would), start the agent again, and check the kernels against the job.
    pub kill_agent: Option<Duration>,
}

#[derive(Debug, Clone, Serialize)]
/// An agent killed and restarted during a trial (`kill_agent`).
pub struct AgentRestart {
    /// The trial (from 0).
    pub trial: usize,
    /// The node whose agent was killed; None: no node held an override then (the job
    /// had not rerouted), so nothing was killed.
    pub node: Option<String>,
    /// The job's routes on that node when it was killed.
    pub overrides: usize,
    /// Restart until every one of them was in its kernel's table again; None: not
    /// within 10 s.
    pub back_ms: Option<f64>,
    /// Afterwards (given up to 3 s to agree): every (node, destination) whose kernel
    /// route is not what the job wants (its overrides over the baselines).
    pub disagreements: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
/// One fault in one trial.
pub struct TrialOutcome {
    /// Injection to the last lost packet plus one send interval; null: not restored
    /// before the trial ended.
    pub restored_ms: Option<f64>,
    /// Probe packets lost, all flows.
    pub lost_packets: u64,
    /// The element failed in this trial (an "auto" target under babeld can differ).
    pub element: String,
    /// Probe flows the kernel forwarded across the faulted link when the fault began
    /// (None for node faults). A trial with 0 failed an idle link: it says nothing
    /// about recovery and is left out of the figures.
    pub flows_across: Option<usize>,
    /// Flows that lost a packet.
    pub flows_hit: usize,
    /// Next-hop changes, and A→B→A flaps within 10 s, while the fault lasted.
    pub route_changes: usize,
    /// Route flaps while it lasted.
    pub route_flaps: usize,
}

#[derive(Debug, Clone, Serialize)]
/// One fault over its trials.
pub struct LabFaultSummary {
    /// The fault kind.
    pub kind: String,
    /// The elements it hit (an `auto` target under babeld can differ per trial).
    pub element: String,
    /// Every trial.
    pub trials: Vec<TrialOutcome>,
    /// Trials whose fault hit traffic (see `TrialOutcome::flows_across`).
    pub trials_with_traffic: usize,
    /// Of those, the trials in which traffic was restored.
    pub restored: usize,
    /// Over the restored trials, milliseconds.
    pub restored_ms: Percentiles,
    /// Route flaps, all trials.
    pub route_flaps: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
/// What the agents cost.
pub struct AgentCost {
    /// Agents measured.
    pub agents: usize,
    /// Mean CPU share of a core.
    pub cpu_percent_mean: f64,
    /// Worst agent's CPU share.
    pub cpu_percent_max: f64,
    /// Resident memory after the trials, worst agent.
    pub rss_mb_max: f64,
    /// The highest resident memory any agent reached, start included (`VmHWM`).
    pub rss_mb_peak_max: f64,
}

#[derive(Debug, Clone, Serialize)]
/// What `lab run` reports (`--summary-json`).
pub struct LabSummary {
    /// The scenario's name.
    pub scenario: String,
    /// Who routed.
    pub routing: Routing,
    /// Nodes in the mesh.
    pub nodes: usize,
    /// Links in it.
    pub links: usize,
    /// Probe flows.
    pub flows: usize,
    /// Interval between a flow's packets.
    pub flow_interval_ms: f64,
    /// Share of baseline routes with a loop-free backup next hop.
    pub backup_coverage: f64,
    /// When every flow first delivered after start.
    pub converged_after_ms: f64,
    /// Every fault over its trials.
    pub faults: Vec<LabFaultSummary>,
    /// Incidents the job opened.
    pub incidents: usize,
    /// Incidents blaming an element other than an injected fault's, opened once the
    /// trials began (the job's false alarms under the lab's load) and before them
    /// (while 16 agents start on the same CPUs).
    pub false_incidents: usize,
    /// Those opened before the trials began.
    pub false_incidents_at_startup: usize,
    /// Commands the job sent.
    pub commands: usize,
    /// Of those, the ones whose result the job took as applied (results, like
    /// telemetry, are MAC'd by their node when a fleet secret is configured).
    pub commands_applied: usize,
    /// Over the trials.
    pub agent_cost: Option<AgentCost>,
    /// Over 10 s before the trials, the mesh quiet.
    pub agent_cost_quiet: Option<AgentCost>,
    /// Where the agents' counters came from (`ebpf` or `procfs`).
    pub telemetry: Option<String>,
    /// Agents killed and restarted (`kill_agent`), one per trial.
    pub agent_restarts: Vec<AgentRestart>,
}

/// Runs the scenario's faults `opts.trials` times on a fresh namespace mesh, and tears
/// everything down again (also on error or when the future is dropped).
pub async fn run_lab(opts: LabOptions) -> Result<LabSummary> {
    let mut lab = setup::Lab::up(&opts).await?;
    // The agents' cost with the mesh quiet (telemetry and link probes only) over 10 s,
    // then over the trials (commands, reroutes, faults) below.
    let agent_cost_quiet = if opts.routing == Routing::Babel {
        None
    } else {
        let start = cost::agent_cpu(lab.agents());
        let wall = Instant::now();
        tokio::time::sleep(Duration::from_secs(10)).await;
        Some(cost::agent_cost(lab.agents(), &start, wall.elapsed()))
    };
    let cost_start = cost::agent_cpu(lab.agents());
    let cost_wall = Instant::now();
    lab.load_injectors(&opts)?;
    let mut outcomes: Vec<Vec<TrialOutcome>> = vec![Vec::new(); opts.scenario.faults.len()];
    let mut agent_restarts = Vec::new();
    for n in 0..opts.trials {
        let trial::Trial { outcomes: trial, agent_restart } = trial::run(&mut lab, &opts, n).await?;
        agent_restarts.extend(agent_restart);
        let last: Vec<String> = trial
            .iter()
            .map(|t| {
                let restored = t.restored_ms.map_or("never".into(), |m| format!("{m:.0} ms"));
                format!("restored {restored} lost {}", t.lost_packets)
            })
            .collect();
        eprintln!("trial {}/{}: {}", n + 1, opts.trials, last.join("; "));
        for (all, t) in outcomes.iter_mut().zip(trial) {
            all.push(t);
        }
    }
    let agent_cost =
        (opts.routing != Routing::Babel).then(|| cost::agent_cost(lab.agents(), &cost_start, cost_wall.elapsed()));
    let finished = lab.down().await?;
    let mut summary = summarize(&opts, finished, outcomes, agent_cost, agent_cost_quiet);
    summary.agent_restarts = agent_restarts;
    Ok(summary)
}

/// The figures of one fault over its trials.
fn fault_summary(kind: &str, element: &Element, trials: Vec<TrialOutcome>) -> LabFaultSummary {
    let hit: Vec<&TrialOutcome> = trials.iter().filter(|t| t.flows_across != Some(0)).collect();
    let restored: Vec<i64> = hit.iter().filter_map(|t| t.restored_ms.map(|m| m.round() as i64)).collect();
    let mut seen: Vec<String> = Vec::new();
    for t in &trials {
        if !seen.contains(&t.element) {
            seen.push(t.element.clone());
        }
    }
    LabFaultSummary {
        kind: kind.to_string(),
        element: if seen.is_empty() { element.to_string() } else { seen.join(", ") },
        trials_with_traffic: hit.len(),
        restored: restored.len(),
        restored_ms: Percentiles::of(&restored),
        route_flaps: trials.iter().map(|t| t.route_flaps).sum(),
        trials,
    }
}

fn summarize(
    opts: &LabOptions,
    lab: setup::FinishedLab,
    outcomes: Vec<Vec<TrialOutcome>>,
    agent_cost: Option<AgentCost>,
    agent_cost_quiet: Option<AgentCost>,
) -> LabSummary {
    let scenario = &opts.scenario;
    let faults = scenario
        .faults
        .iter()
        .zip(&lab.elements)
        .zip(outcomes)
        .map(|((f, e), trials)| fault_summary(f.kind.as_str(), e, trials))
        .collect();
    let report = lab.report.as_ref();
    LabSummary {
        scenario: scenario.name.clone(),
        routing: opts.routing,
        nodes: lab.nodes,
        links: lab.links,
        flows: lab.flows,
        flow_interval_ms: lab.flow_interval.as_secs_f64() * 1e3,
        backup_coverage: lab.backup_coverage,
        converged_after_ms: lab.converged_after.as_secs_f64() * 1e3,
        faults,
        incidents: report.map_or(0, |r| r.incidents.len()),
        false_incidents: false_incidents(report, &lab.elements, |t| t >= lab.trials_from_ns),
        false_incidents_at_startup: false_incidents(report, &lab.elements, |t| t < lab.trials_from_ns),
        commands: report.map_or(0, |r| r.commands.len()),
        commands_applied: report
            .map_or(0, |r| r.commands.iter().filter(|c| c.status == Some(x0_schema::ResultStatus::Applied)).count()),
        agent_cost,
        agent_cost_quiet,
        telemetry: (opts.routing != Routing::Babel).then(|| if opts.no_ebpf { "procfs" } else { "ebpf" }.to_string()),
        agent_restarts: Vec::new(),
    }
}

fn false_incidents(report: Option<&JobReport>, faults: &[Element], when: impl Fn(i64) -> bool) -> usize {
    report.map_or(0, |r| {
        r.incidents
            .iter()
            .filter(|i| when(i.opened_at))
            .filter(|i| i.root_cause.as_ref().is_none_or(|c| !faults.contains(&c.element)))
            .count()
    })
}

/// Where a lab keeps its files (agents' network files, keys, babeld state, history).
pub fn default_run_dir(prefix: &str) -> PathBuf {
    Path::new("/run/x0tta6bl4").join(prefix.trim_end_matches('-'))
}
