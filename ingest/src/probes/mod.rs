//! The kernel probes, user-space side: load, attach, read.

mod btf;
mod tracefs;

pub use tracefs::ensure_tracefs;

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuHashMap};
use aya::programs::{tc, SchedClassifier, TcAttachType, TracePoint};
use aya::{Ebpf, EbpfLoader};
use btf::KernelOffsets;
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use tracefs::TracepointFormat;
use x0_ebpf_common as common;

static PROBES_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/x0-probes"));

/// Why the kernel probes could not be used; the agent says it once and falls back to
/// the kernel's interface counters.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("this binary was built without the eBPF toolchain, so it carries no probes (install nightly's rust-src and bpf-linker 0.10.4, then rebuild)")]
    /// The probes were not compiled into this binary.
    NotBuilt,
    #[error("kernel BTF: {0}")]
    /// The kernel's BTF is missing or lacks what the probes need.
    Btf(String),
    #[error("tracefs: {0}")]
    /// tracefs is not mounted or lacks a tracepoint.
    Tracefs(String),
    #[error("loading the eBPF object: {0}")]
    /// The kernel refused the object.
    Load(#[from] aya::EbpfError),
    /// A program could not be loaded or attached.
    #[error("{what}: {source}")]
    Program {
        /// Which program, and where.
        what: String,
        /// What aya said.
        source: aya::programs::ProgramError,
    },
    /// A map is missing or could not be read.
    #[error("eBPF map {name}: {source}")]
    Map {
        /// The map's name.
        name: &'static str,
        /// What aya said.
        source: aya::maps::MapError,
    },
    #[error("interface {0}: {1}")]
    /// An interface that cannot take a TC program.
    Interface(String, String),
    #[error("{0}")]
    /// Reading a kernel file failed.
    Io(#[from] std::io::Error),
}

/// Inode of the network namespace the calling thread is in (what the probes compare
/// against `net->ns.inum`).
pub fn current_netns_inode() -> std::io::Result<u32> {
    Ok(std::fs::metadata("/proc/thread-self/ns/net")?.ino() as u32)
}

/// Whether this process may load eBPF at all (root or CAP_BPF+CAP_NET_ADMIN); a cheap
/// check that tests use to print SKIPPED instead of failing.
pub fn probes_available() -> Result<(), String> {
    if !probes_built() {
        return Err(ProbeError::NotBuilt.to_string());
    }
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err("kernel has no BTF (/sys/kernel/btf/vmlinux)".into());
    }
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_NET_ADMIN: u64 = 1 << 12;
    const CAP_SYS_ADMIN: u64 = 1 << 21;
    const CAP_BPF: u64 = 1 << 39;
    if eff & CAP_NET_ADMIN != 0 && eff & (CAP_BPF | CAP_SYS_ADMIN) != 0 {
        Ok(())
    } else {
        Err("needs root (CAP_BPF and CAP_NET_ADMIN)".into())
    }
}

/// Packets and bytes through one interface, as TC saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfCounters {
    /// Packets received (TC ingress).
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets sent (TC egress).
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}

/// Kernel drops of one reason on one interface (`ifindex` 0: no device, a socket drop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropCount {
    /// The interface (0: no device, a socket drop).
    pub ifindex: u32,
    /// The kernel's `skb_drop_reason`, by name.
    pub reason: String,
    /// Drops counted.
    pub count: u64,
}

/// Cumulative counters read from the probes' maps.
#[derive(Debug, Clone, Default)]
pub struct ProbeSnapshot {
    /// Counters per interface index.
    pub interfaces: BTreeMap<u32, IfCounters>,
    /// Drops per interface and reason.
    pub drops: Vec<DropCount>,
    /// TCP retransmits per IPv4 destination.
    pub retransmits: BTreeMap<std::net::Ipv4Addr, u64>,
}

impl ProbeSnapshot {
    /// Every drop charged to interface `ifindex`.
    pub fn drops_on(&self, ifindex: u32) -> u64 {
        self.drops.iter().filter(|d| d.ifindex == ifindex).map(|d| d.count).sum()
    }
}

/// The probes loaded for one network namespace: tracepoints attached at load,
/// interfaces attached one by one. Dropping it detaches everything.
pub struct KernelProbes {
    ebpf: Ebpf,
    reasons: HashMap<u32, String>,
    netns: u32,
}

impl std::fmt::Debug for KernelProbes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelProbes").field("netns", &self.netns).finish_non_exhaustive()
    }
}

/// Whether the build embedded the probes (see `build.rs`: without the eBPF toolchain
/// it embeds an empty object).
pub fn probes_built() -> bool {
    !PROBES_OBJECT.is_empty()
}

fn load_object(netns: u32) -> Result<(Ebpf, HashMap<u32, String>), ProbeError> {
    if !probes_built() {
        return Err(ProbeError::NotBuilt);
    }
    let k = KernelOffsets::from_running_kernel()?;
    let kfree = TracepointFormat::read("skb", "kfree_skb")?;
    let retrans = TracepointFormat::read("tcp", "tcp_retransmit_skb")?;
    let tp = [
        kfree.offset("skbaddr")?,
        kfree.offset("reason")?,
        retrans.offset("skaddr")?,
        retrans.offset("family")?,
        retrans.offset("daddr")?,
    ];
    use common::globals as g;
    let values: [(&str, u32); 12] = [
        (g::NETNS_INO, netns),
        (g::OFF_SKB_DEV, k.skb_dev),
        (g::OFF_SKB_SK, k.skb_sk),
        (g::OFF_DEV_ND_NET, k.dev_nd_net),
        (g::OFF_DEV_IFINDEX, k.dev_ifindex),
        (g::OFF_NET_NS_INUM, k.net_ns_inum),
        (g::OFF_SK_NET, k.sk_net),
        (g::TP_KFREE_SKBADDR, tp[0]),
        (g::TP_KFREE_REASON, tp[1]),
        (g::TP_RETRANS_SKADDR, tp[2]),
        (g::TP_RETRANS_FAMILY, tp[3]),
        (g::TP_RETRANS_DADDR, tp[4]),
    ];
    // The programs read kernel structs at offsets we resolved above (no CO-RE), so
    // aya need not parse the kernel's BTF again: that parse doubled the agent's peak
    // memory at start.
    let mut loader = EbpfLoader::new();
    loader.btf(None);
    for (name, value) in &values {
        loader.override_global(name, value, true);
    }
    Ok((loader.load(PROBES_OBJECT)?, kfree.symbols()))
}

fn program_err(what: impl Into<String>) -> impl FnOnce(aya::programs::ProgramError) -> ProbeError {
    let what = what.into();
    move |source| ProbeError::Program { what, source }
}

fn classifier<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier, ProbeError> {
    let prog = ebpf.program_mut(name).ok_or_else(|| ProbeError::Btf(format!("object lacks program {name}")))?;
    prog.try_into().map_err(program_err(name))
}

/// Index of interface `name` in the calling thread's network namespace.
pub fn interface_index(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

impl KernelProbes {
    /// Loads the probes for the network namespace the calling thread is in and
    /// attaches the host-wide tracepoints (filtered to that namespace in the kernel).
    pub fn load() -> Result<Self, ProbeError> {
        let netns = current_netns_inode()?;
        let (mut ebpf, reasons) = load_object(netns)?;
        for (prog, category, name) in
            [(common::PROG_KFREE_SKB, "skb", "kfree_skb"), (common::PROG_TCP_RETRANSMIT, "tcp", "tcp_retransmit_skb")]
        {
            let what = format!("tracepoint {category}:{name}");
            let tp: &mut TracePoint = ebpf
                .program_mut(prog)
                .ok_or_else(|| ProbeError::Btf(format!("object lacks program {prog}")))?
                .try_into()
                .map_err(program_err(&what))?;
            tp.load().map_err(program_err(&what))?;
            tp.attach(category, name).map_err(program_err(&what))?;
        }
        for prog in [common::PROG_TC_INGRESS, common::PROG_TC_EGRESS] {
            classifier(&mut ebpf, prog)?.load().map_err(program_err(prog))?;
        }
        Ok(KernelProbes { ebpf, reasons, netns })
    }

    /// The inode of the namespace this instance serves.
    pub fn netns(&self) -> u32 {
        self.netns
    }

    /// Counts packets in and out of `ifname` (in the calling thread's namespace).
    pub fn attach_interface(&mut self, ifname: &str) -> Result<(), ProbeError> {
        // Older kernels (no TCX) need the clsact qdisc; on TCX kernels aya ignores it.
        if let Err(e) = tc::qdisc_add_clsact(ifname) {
            if !matches!(&e, tc::TcError::NetlinkError(ne) if ne.raw_os_error() == Some(17)) {
                tracing::debug!(%ifname, error = %e, "clsact qdisc");
            }
        }
        for (prog, dir) in
            [(common::PROG_TC_INGRESS, TcAttachType::Ingress), (common::PROG_TC_EGRESS, TcAttachType::Egress)]
        {
            classifier(&mut self.ebpf, prog)?
                .attach(ifname, dir)
                .map_err(program_err(format!("{prog} on {ifname}")))?;
        }
        Ok(())
    }

    /// Reads every counter (cumulative since load, summed over CPUs).
    pub fn snapshot(&self) -> Result<ProbeSnapshot, ProbeError> {
        let mut snap = ProbeSnapshot::default();
        let ifc: PerCpuHashMap<&MapData, u64, [u64; 2]> = self.map(common::MAP_IF_COUNTERS)?;
        for entry in ifc.iter() {
            let (key, per_cpu) = entry.map_err(|source| ProbeError::Map { name: common::MAP_IF_COUNTERS, source })?;
            let (ifindex, egress) = common::split_if_key(key);
            let (p, b) = per_cpu.iter().fold((0, 0), |(p, b), v| (p + v[0], b + v[1]));
            let c = snap.interfaces.entry(ifindex).or_default();
            if egress {
                (c.tx_packets, c.tx_bytes) = (p, b);
            } else {
                (c.rx_packets, c.rx_bytes) = (p, b);
            }
        }
        let drops: PerCpuHashMap<&MapData, u64, u64> = self.map(common::MAP_DROPS)?;
        for entry in drops.iter() {
            let (key, per_cpu) = entry.map_err(|source| ProbeError::Map { name: common::MAP_DROPS, source })?;
            let (ifindex, reason) = common::split_drop_key(key);
            let reason = self.reasons.get(&reason).cloned().unwrap_or_else(|| format!("reason {reason}"));
            snap.drops.push(DropCount { ifindex, reason, count: per_cpu.iter().sum() });
        }
        let retrans: PerCpuHashMap<&MapData, u32, u64> = self.map(common::MAP_RETRANSMITS)?;
        for entry in retrans.iter() {
            let (daddr, per_cpu) = entry.map_err(|source| ProbeError::Map { name: common::MAP_RETRANSMITS, source })?;
            // The tracepoint's daddr is the address's bytes in network order.
            snap.retransmits.insert(std::net::Ipv4Addr::from(daddr.to_ne_bytes()), per_cpu.iter().sum());
        }
        Ok(snap)
    }

    fn map<'a, V: TryFrom<&'a aya::maps::Map, Error = aya::maps::MapError>>(
        &'a self,
        name: &'static str,
    ) -> Result<V, ProbeError> {
        let map = self
            .ebpf
            .map(name)
            .ok_or(ProbeError::Map { name, source: aya::maps::MapError::InvalidName { name: name.into() } })?;
        V::try_from(map).map_err(|source| ProbeError::Map { name, source })
    }
}

/// The lab's gray-failure injector: drops a share of an interface's egress packets in
/// the kernel (the drops show up as `TC_EGRESS` in the drop-reason probe).
pub struct FaultInjector {
    ebpf: Ebpf,
}

impl std::fmt::Debug for FaultInjector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultInjector").finish_non_exhaustive()
    }
}

impl FaultInjector {
    /// Loads the lab's fault dropper (not attached anywhere yet).
    pub fn load() -> Result<Self, ProbeError> {
        let (mut ebpf, _) = load_object(0)?;
        classifier(&mut ebpf, common::PROG_TC_FAULT)?.load().map_err(program_err(common::PROG_TC_FAULT))?;
        Ok(FaultInjector { ebpf })
    }

    /// Attaches the dropper to `ifname`'s egress (calling thread's namespace); it
    /// passes everything until [`FaultInjector::set_loss`] says otherwise.
    pub fn attach(&mut self, ifname: &str) -> Result<(), ProbeError> {
        let _ = tc::qdisc_add_clsact(ifname);
        classifier(&mut self.ebpf, common::PROG_TC_FAULT)?
            .attach(ifname, TcAttachType::Egress)
            .map_err(program_err(format!("fault injector on {ifname}")))?;
        Ok(())
    }

    /// Drops `loss` (0..=1) of the egress packets of interface `ifindex`.
    pub fn set_loss(&mut self, ifindex: u32, loss: f64) -> Result<(), ProbeError> {
        let threshold = (loss.clamp(0.0, 1.0) * u32::MAX as f64) as u32;
        let map = self.ebpf.map_mut(common::MAP_FAULT_DROP).ok_or(ProbeError::Map {
            name: common::MAP_FAULT_DROP,
            source: aya::maps::MapError::InvalidName { name: common::MAP_FAULT_DROP.into() },
        })?;
        let mut m: BpfHashMap<&mut MapData, u32, u32> =
            BpfHashMap::try_from(map).map_err(|source| ProbeError::Map { name: common::MAP_FAULT_DROP, source })?;
        m.insert(ifindex, threshold, 0).map_err(|source| ProbeError::Map { name: common::MAP_FAULT_DROP, source })
    }
}
