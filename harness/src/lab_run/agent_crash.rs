//! An agent killed mid-repair (`lab run --kill-agent`): SIGKILL to the agent of the
//! node holding most of the job's overrides, that node's routes of ours flushed as a
//! reboot would lose them, the agent started again at once. Judged from the kernels'
//! own tables: when the node's overrides are back, and whether every node's table then
//! holds exactly what the job wants (its overrides over the baselines).

use super::setup::Lab;
use super::AgentRestart;
use anyhow::{Context, Result};
use std::time::{Duration, Instant};
use x0_lab::kernel::netlab::ip;
use x0_lab::kernel::routes::{baseline_table, kernel_table, RouteTable};
use x0_pipeline::WantedRoute;

/// How long the restarted agent has to put the overrides back before the lab says it
/// did not (the bar is 2 s; this only bounds the wait).
const BACK_WITHIN: Duration = Duration::from_secs(10);
/// How long the tables may take to agree with the job afterwards (a command in flight).
const AGREE_WITHIN: Duration = Duration::from_secs(3);

/// Node `i`'s table as the job wants it: the baseline with the job's overrides on it.
fn wanted_table(lab: &Lab, i: usize, wanted: &[WantedRoute]) -> RouteTable {
    let node = &lab.net().networks[i].node;
    let mut table = baseline_table(lab.net(), i);
    for w in wanted.iter().filter(|w| &w.node == node) {
        table.insert(w.destination.clone(), (Some(w.primary.clone()), w.backup.clone()));
    }
    table
}

fn show(route: Option<&(Option<String>, Option<String>)>) -> String {
    match route {
        None => "nothing".into(),
        Some((p, b)) => format!("via {} backup {}", p.as_deref().unwrap_or("-"), b.as_deref().unwrap_or("-")),
    }
}

/// Every (node, destination) whose kernel route differs from what the job wants.
fn disagreements(lab: &Lab, wanted: &[WantedRoute]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, net) in lab.net().networks.iter().enumerate() {
        let want = wanted_table(lab, i, wanted);
        let have = match kernel_table(lab.net(), i) {
            Ok(t) => t,
            Err(e) => {
                out.push(format!("{}: table unreadable ({e})", net.node));
                continue;
            }
        };
        for dst in want.keys().chain(have.keys().filter(|d| !want.contains_key(*d))) {
            if want.get(dst) != have.get(dst) {
                out.push(format!(
                    "{} -> {dst}: job wants {}, kernel has {}",
                    net.node,
                    show(want.get(dst)),
                    show(have.get(dst))
                ));
            }
        }
    }
    out
}

/// Whether node `i`'s kernel holds each of `overrides` (its routes the job installed).
fn holds(lab: &Lab, i: usize, overrides: &[WantedRoute]) -> bool {
    let Ok(have) = kernel_table(lab.net(), i) else { return false };
    overrides.iter().all(|w| have.get(&w.destination) == Some(&(Some(w.primary.clone()), w.backup.clone())))
}

/// Kills and restarts the agent of the node with most overrides now, and measures.
pub(super) async fn kill_and_restart(lab: &mut Lab, trial: usize) -> Result<AgentRestart> {
    let wanted = lab.wanted_routes().context("--kill-agent needs our job (routing x0)")?;
    let nodes = &lab.net().networks;
    let most =
        (0..nodes.len()).max_by_key(|&i| (wanted.iter().filter(|w| w.node == nodes[i].node).count(), usize::MAX - i));
    let Some(i) = most.filter(|&i| wanted.iter().any(|w| w.node == nodes[i].node)) else {
        return Ok(AgentRestart { trial, node: None, overrides: 0, back_ms: None, disagreements: vec![] });
    };
    let node = nodes[i].node.clone();
    let overrides: Vec<WantedRoute> = wanted.iter().filter(|w| w.node == node).cloned().collect();
    let ns = lab.net().namespaces[i].clone();
    eprintln!("killing the agent of {node} (SIGKILL), which holds {} of the job's routes", overrides.len());
    lab.kill_and_restart_agent(i, || {
        // The node loses our routes with its agent, as a reboot would.
        ip(&["-n", &ns, "route", "flush", "proto", &x0_actuator::ROUTE_PROTOCOL.to_string()])?;
        Ok(())
    })?;
    let restarted = Instant::now();
    let mut back_ms = None;
    while restarted.elapsed() < BACK_WITHIN {
        if holds(lab, i, &overrides) {
            back_ms = Some(restarted.elapsed().as_secs_f64() * 1e3);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let agreeing = Instant::now();
    let disagreements = loop {
        let wanted = lab.wanted_routes().unwrap_or_default();
        let d = disagreements(lab, &wanted);
        if d.is_empty() || agreeing.elapsed() > AGREE_WITHIN {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let back = back_ms.map_or("never".into(), |ms| format!("{ms:.0} ms"));
    eprintln!(
        "agent of {node} restarted: its routes back after {back}; {} disagreements with the job",
        disagreements.len()
    );
    Ok(AgentRestart { trial, node: Some(node), overrides: overrides.len(), back_ms, disagreements })
}
