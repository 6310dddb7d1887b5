//! One trial: back to the baseline, the scenario's faults injected at their times,
//! then what the probe flows and the route watch saw while each fault lasted.

use super::setup::{wait_converged, Lab};
use super::{AgentRestart, LabOptions, TrialOutcome};
use anyhow::{bail, Result};
use std::time::{Duration, Instant};
use x0_lab::kernel::faults::Injection;
use x0_lab::kernel::flows::impact;
use x0_lab::kernel::routes::{count_changes, count_flaps, off_baseline, Forwarding};
use x0_schema::{Element, FaultKind};

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What one trial gave: one outcome per fault of the scenario, and the agent restart
/// (`--kill-agent`).
pub(super) struct Trial {
    pub(super) outcomes: Vec<TrialOutcome>,
    pub(super) agent_restart: Option<AgentRestart>,
}

/// Runs trial `n` (from 0).
pub(super) async fn run(lab: &mut Lab, opts: &LabOptions, n: usize) -> Result<Trial> {
    settle(lab, n).await?;
    let across = flows_across_faults(lab, opts);
    let t0 = lab.epoch.elapsed();
    lab.trials_from_ns = lab.trials_from_ns.min(x0_schema::wall_clock_ns());
    let (windows, agent_restart) = inject(lab, opts, t0, n).await?;
    let trial_end = t0 + opts.scenario.duration;
    sleep_until(lab.epoch + trial_end + Duration::from_millis(500)).await;
    Ok(Trial { outcomes: measure(lab, &windows, trial_end, &across), agent_restart })
}

/// What happens at a moment of a trial.
enum Event {
    /// Fault `i` starts (`on`) or ends.
    Fault(usize, bool),
    /// An agent is killed and restarted (`--kill-agent`).
    KillAgent,
}

/// Waits until the mesh is back at its baseline: every flow delivers, no route changed
/// for 3 s and (with our routing) the job has withdrawn every override, so every
/// trial, the first included, starts from the same state.
async fn settle(lab: &Lab, n: usize) -> Result<()> {
    let started = Instant::now();
    loop {
        wait_converged(&lab.flows, lab.interval, Duration::from_secs(60), &|| lab.agents_alive()).await?;
        let recent = ns(lab.epoch.elapsed().saturating_sub(Duration::from_secs(3)));
        let quiet = count_changes(&lab.watch.changes(), recent, u64::MAX) == 0;
        let off = if lab.under_babel() { vec![] } else { off_baseline(lab.net()) };
        if quiet && off.is_empty() {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(90) {
            bail!(
                "routes did not return to the baseline within 90 s before trial {} (routes changed in the last 3 s: {}; off the baseline: {} {:?}; the job's open incidents: {:?})",
                n + 1,
                !quiet,
                off.len(),
                &off[..off.len().min(8)],
                lab.open_incidents()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Probe flows the kernel forwards across each fault's link now (None for node faults).
/// An "auto" link fault fails the link carrying the most flows: with our routing that
/// is the scenario's resolved target (trials start from the baseline); babeld may have
/// moved traffic off it after an earlier trial, so under babeld it is chosen again.
fn flows_across_faults(lab: &mut Lab, opts: &LabOptions) -> Vec<Option<usize>> {
    let forwarding = Forwarding::read(lab.net());
    if lab.under_babel() {
        for (i, f) in opts.scenario.faults.iter().enumerate() {
            if f.target == "auto" && matches!(lab.elements[i], Element::Link { .. }) {
                let busiest =
                    lab.topo.links().iter().max_by_key(|&&(a, b)| forwarding.flows_across(&lab.pairs, a, b)).copied();
                if let Some((a, b)) = busiest {
                    lab.elements[i] = Element::link(lab.topo.name(a), lab.topo.name(b));
                }
            }
        }
    }
    lab.elements
        .iter()
        .map(|e| match e {
            Element::Link { a, b } => match (lab.topo.id(a), lab.topo.id(b)) {
                (Some(a), Some(b)) => Some(forwarding.flows_across(&lab.pairs, a, b)),
                _ => None,
            },
            Element::Node { .. } => None,
        })
        .collect()
}

/// Injects (and reverts) every fault at its time from `t0`, and kills an agent when
/// asked; returns each fault's (start, end) since the lab's epoch. Measuring the
/// restart holds later events back until its routes are back (a few seconds at most).
async fn inject(
    lab: &mut Lab,
    opts: &LabOptions,
    t0: Duration,
    trial: usize,
) -> Result<(Vec<(Duration, Duration)>, Option<AgentRestart>)> {
    let scenario = &opts.scenario;
    let mut events: Vec<(Duration, Event)> = Vec::new();
    let mut windows = Vec::new();
    for (i, f) in scenario.faults.iter().enumerate() {
        let start = t0 + f.at;
        let end = t0 + f.duration.map_or(scenario.duration, |d| (f.at + d).min(scenario.duration));
        windows.push((start, end));
        if f.kind == FaultKind::LinkFlap {
            let half = f.period.unwrap_or(Duration::from_secs(4)) / 2;
            let mut t = start;
            let mut on = true;
            while t < end {
                events.push((t, Event::Fault(i, on)));
                t += half;
                on = !on;
            }
        } else {
            events.push((start, Event::Fault(i, true)));
        }
        events.push((end, Event::Fault(i, false)));
    }
    if let (Some(after), Some(first)) = (opts.kill_agent, windows.iter().map(|w| w.0).min()) {
        events.push((first + after, Event::KillAgent));
    }
    // Stable: at equal times, faults before the kill, in scenario order.
    events.sort_by_key(|e| e.0);
    let mut restart = None;
    for (at, event) in events {
        sleep_until(lab.epoch + at).await;
        match event {
            Event::Fault(i, on) => {
                let f = &scenario.faults[i];
                let injection = Injection { kind: f.kind, loss: f.loss.unwrap_or(0.3), direction: f.direction, on };
                let element = lab.elements[i].clone();
                lab.apply_fault(&element, injection)?;
            }
            Event::KillAgent => restart = Some(super::agent_crash::kill_and_restart(lab, trial).await?),
        }
    }
    Ok((windows, restart))
}

/// Each fault's outage and recovery from the probe packets, and the route changes and
/// flaps while it lasted.
fn measure(
    lab: &Lab,
    windows: &[(Duration, Duration)],
    trial_end: Duration,
    across: &[Option<usize>],
) -> Vec<TrialOutcome> {
    let logs = lab.flows.snapshot();
    let changes = lab.watch.changes();
    windows
        .iter()
        .enumerate()
        .map(|(i, (start, end))| {
            // A crashed node's own flows cannot be restored by any reroute: judge a
            // node fault on the flows that only cross it (transit), as the simulator does.
            let endpoint = match &lab.elements[i] {
                Element::Node { id } => lab.topo.id(id),
                Element::Link { .. } => None,
            };
            let transit = logs
                .iter()
                .zip(&lab.pairs)
                .filter(|(_, &(s, d))| endpoint.is_none_or(|n| s != n && d != n))
                .map(|(log, _)| log);
            let imp = impact(transit, ns(*start), ns(trial_end), lab.interval, Duration::from_secs(1));
            TrialOutcome {
                restored_ms: imp.restored_after.map(|d| d.as_secs_f64() * 1e3),
                lost_packets: imp.lost,
                element: lab.elements[i].to_string(),
                flows_across: across[i],
                flows_hit: imp.flows_hit,
                route_changes: count_changes(&changes, ns(*start), ns(*end)),
                route_flaps: count_flaps(&changes, ns(*start), ns(*end), Duration::from_secs(10)),
            }
        })
        .collect()
}

async fn sleep_until(t: Instant) {
    tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await;
}
