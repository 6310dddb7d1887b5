//! A topology as network namespaces joined by veth pairs.
//!
//! Built with iproute2 (`ip`), torn down by deleting the namespaces (which removes
//! their veths) and stopping every process started for the lab. Namespaces are named
//! `PREFIX` + node name, so `lab down` can find them after a crash of the lab itself.

use super::plan::{iface_name, link_addresses, node_networks};
use std::process::Command;
use x0_actuator::NodeNetwork;
use x0_ingest::in_netns;
use x0_schema::Topology;

#[derive(Debug, thiserror::Error)]
/// Why the lab could not be built or changed.
pub enum LabError {
    /// An `ip` command failed.
    #[error("`ip {args}` failed: {stderr}")]
    Ip {
        /// Its arguments.
        args: String,
        /// What it printed on stderr.
        stderr: String,
    },
    #[error("{0}")]
    /// A file or process operation failed.
    Io(#[from] std::io::Error),
    #[error("{0}")]
    /// Anything else, said in words.
    Other(String),
}

/// Runs `ip` with `args`; its stderr is the error when it fails.
pub fn ip(args: &[&str]) -> Result<(), LabError> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Ip { args: args.join(" "), stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
}

/// Sysctls every lab node gets: forward packets, fail over on carrier loss, no
/// reverse-path filter (asymmetric routes are normal while healing), and accept
/// packets carrying one of our own addresses as source: a U-turn brings a node's own
/// packets back to it on their way around a failed link.
const SYSCTLS: [(&str, &str); 8] = [
    ("net/ipv4/conf/all/accept_local", "1"),
    ("net/ipv4/conf/default/accept_local", "1"),
    ("net/ipv4/ip_forward", "1"),
    ("net/ipv4/conf/all/ignore_routes_with_linkdown", "1"),
    ("net/ipv4/conf/default/ignore_routes_with_linkdown", "1"),
    ("net/ipv4/conf/all/rp_filter", "0"),
    ("net/ipv4/conf/default/rp_filter", "0"),
    ("net/ipv4/icmp_ratelimit", "0"),
];

/// A running namespace mesh. Dropping it does not tear it down (the lab may be
/// inspected after a run); call [`NetLab::down`].
#[derive(Debug)]
pub struct NetLab {
    /// Prefix of the namespaces' names.
    pub prefix: String,
    /// The namespaces, one per node.
    pub namespaces: Vec<String>,
    /// Every node's network file.
    pub networks: Vec<NodeNetwork>,
}

impl NetLab {
    /// The namespace of `node` in a lab named by `prefix`.
    pub fn namespace_of(prefix: &str, node: &str) -> String {
        format!("{prefix}{node}")
    }

    /// Builds the mesh; anything left from an earlier lab with this prefix goes first.
    pub fn up(topo: &Topology, prefix: &str) -> Result<NetLab, LabError> {
        down(prefix)?;
        let networks = node_networks(topo);
        let namespaces: Vec<String> = (0..topo.len()).map(|i| Self::namespace_of(prefix, topo.name(i))).collect();
        let lab = NetLab { prefix: prefix.to_string(), namespaces, networks };
        if let Err(e) = lab.build(topo) {
            let _ = down(prefix);
            return Err(e);
        }
        Ok(lab)
    }

    fn build(&self, topo: &Topology) -> Result<(), LabError> {
        for (ns, net) in self.namespaces.iter().zip(&self.networks) {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "addr", "add", &format!("{}/32", net.address), "dev", "lo"])?;
            in_netns(ns, || {
                for (key, value) in SYSCTLS {
                    std::fs::write(format!("/proc/sys/{key}"), value)
                        .map_err(|e| LabError::Other(format!("sysctl {key} in {ns}: {e}")))?;
                }
                Ok::<_, LabError>(())
            })??;
        }
        for (k, &(a, b)) in topo.links().iter().enumerate() {
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            let (ns_lo, ns_hi) = (&self.namespaces[lo], &self.namespaces[hi]);
            let (if_lo, if_hi) = (iface_name(hi), iface_name(lo));
            ip(&["link", "add", &if_lo, "netns", ns_lo, "type", "veth", "peer", "name", &if_hi, "netns", ns_hi])?;
            let (addr_lo, addr_hi) = link_addresses(k);
            for (ns, dev, addr) in [(ns_lo, &if_lo, addr_lo), (ns_hi, &if_hi, addr_hi)] {
                ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev])?;
                ip(&["-n", ns, "link", "set", dev, "up"])?;
            }
        }
        Ok(())
    }

    /// Namespace of node `node`.
    pub fn namespace(&self, node: &str) -> String {
        Self::namespace_of(&self.prefix, node)
    }

    /// Kills every process the lab started and deletes its namespaces; returns how many.
    pub fn down(&self) -> Result<usize, LabError> {
        down(&self.prefix)
    }
}

/// Stops every process started for lab `prefix` and deletes its namespaces; returns
/// how many namespaces it removed. Safe to run any number of times.
pub fn down(prefix: &str) -> Result<usize, LabError> {
    if prefix.len() < 3 || prefix.contains('/') {
        return Err(LabError::Other(format!("refusing lab prefix {prefix:?}")));
    }
    kill_lab_processes(prefix);
    let mut removed = 0;
    if let Ok(dir) = std::fs::read_dir("/run/netns") {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(prefix) {
                ip(&["netns", "del", &name])?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Processes whose command line names the lab (agents get `--netns PREFIX…`, babeld
/// its `PREFIX…` state files): found through /proc so it also works after a crash.
fn kill_lab_processes(prefix: &str) {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else { return };
    let mut victims = Vec::new();
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let args: Vec<String> = cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).to_string()).collect();
        if args.iter().any(|a| a.contains(&process_tag(prefix))) {
            victims.push(pid);
        }
    }
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    for &pid in &victims {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    if !victims.is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(300));
        for &pid in &victims {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

/// The tag a lab process carries in its command line so that [`down`] finds it.
pub fn process_tag(prefix: &str) -> String {
    format!("x0lab:{prefix}")
}
