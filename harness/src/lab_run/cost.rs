//! What the agents cost: CPU share and resident memory, read from /proc.

use super::AgentCost;
use std::process::Child;
use std::time::Duration;

/// (utime + stime ticks) per agent.
pub(super) fn agent_cpu(agents: &[Child]) -> Vec<u64> {
    agents.iter().map(|a| read_ticks(a.id()).unwrap_or(0)).collect()
}

fn read_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// A field of /proc/PID/status in MB: `VmRSS` (resident now) or `VmHWM` (the peak).
fn status_mb(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub(super) fn agent_cost(agents: &[Child], start: &[u64], wall: Duration) -> AgentCost {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64;
    let cpu: Vec<f64> = agents
        .iter()
        .zip(start)
        .map(|(a, s)| read_ticks(a.id()).unwrap_or(*s).saturating_sub(*s) as f64 / hz / wall.as_secs_f64() * 100.0)
        .collect();
    let rss = agents.iter().filter_map(|a| status_mb(a.id(), "VmRSS:")).fold(0.0, f64::max);
    let peak = agents.iter().filter_map(|a| status_mb(a.id(), "VmHWM:")).fold(0.0, f64::max);
    AgentCost {
        agents: agents.len(),
        cpu_percent_mean: cpu.iter().sum::<f64>() / cpu.len().max(1) as f64,
        cpu_percent_max: cpu.iter().copied().fold(0.0, f64::max),
        rss_mb_max: rss,
        rss_mb_peak_max: peak,
    }
}
