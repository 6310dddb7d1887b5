//! The node's CPU and memory from procfs.

use crate::collector::NodeResources;

/// Host CPU busy and softirq shares between calls, from /proc/stat, and memory in use
/// from /proc/meminfo. In the lab every namespace shares the host's CPUs, so every
/// node reports the same figure.
#[derive(Debug, Default)]
pub struct ProcResources {
    last: Option<CpuTimes>,
}

#[derive(Debug, Clone, Copy)]
struct CpuTimes {
    total: u64,
    idle: u64,
    softirq: u64,
}

impl ProcResources {
    /// Shares since the previous call (CPU zero on the first); zeros where procfs is
    /// unreadable.
    pub fn sample(&mut self) -> NodeResources {
        let mem = memory_used().unwrap_or(0.0);
        let Some(now) = read_cpu() else { return NodeResources { mem, ..Default::default() } };
        let (cpu, softirq) = match self.last {
            Some(before) if now.total > before.total => {
                let dt = (now.total - before.total) as f64;
                (1.0 - (now.idle - before.idle) as f64 / dt, (now.softirq - before.softirq) as f64 / dt)
            }
            _ => (0.0, 0.0),
        };
        self.last = Some(now);
        NodeResources { cpu: cpu.clamp(0.0, 1.0), softirq: softirq.clamp(0.0, 1.0), mem }
    }
}

fn read_cpu() -> Option<CpuTimes> {
    parse_cpu(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn parse_cpu(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().next()?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    Some(CpuTimes { total, idle: v.get(3)? + v.get(4)?, softirq: *v.get(6)? })
}

fn memory_used() -> Option<f64> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

fn parse_meminfo(info: &str) -> Option<f64> {
    let field = |name: &str| -> Option<f64> {
        info.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()
    };
    Some(1.0 - field("MemAvailable:")? / field("MemTotal:")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_line_counts_idle_and_iowait_as_idle() {
        let t = parse_cpu("cpu  100 0 50 800 50 0 10 0 0 0\ncpu0 1 2 3\n").unwrap();
        assert_eq!((t.total, t.idle, t.softirq), (1010, 850, 10));
    }

    #[test]
    fn memory_in_use_is_what_is_not_available() {
        let m = parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 250 kB\n").unwrap();
        assert!((m - 0.75).abs() < 1e-9);
    }

    #[test]
    fn this_machine_reads() {
        let mut r = ProcResources::default();
        r.sample();
        let s = r.sample();
        assert!((0.0..=1.0).contains(&s.cpu) && (0.0..=1.0).contains(&s.mem) && s.mem > 0.0, "{s:?}");
    }
}
