//! Watches every node's routing table (whoever writes it: our agents or babeld) and
//! counts route changes and flaps from the kernel's own state.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use x0_actuator::{KernelRoute, RouteSocket, BACKUP_METRIC, PRIMARY_METRIC};
use x0_ingest::in_netns;

/// A change of the next hop a node uses for a destination.
#[derive(Debug, Clone, PartialEq)]
pub struct NextHopChange {
    /// When it was seen (ns since the watch's epoch).
    pub at_ns: u64,
    /// The node whose table changed.
    pub node: usize,
    /// The destination.
    pub destination: Ipv4Addr,
    /// The next hop before.
    pub from: Option<Ipv4Addr>,
    /// The next hop after.
    pub to: Option<Ipv4Addr>,
}

/// Polls each namespace's main table every `every`; the next hop in use for a
/// destination is the lowest-metric route whose device has carrier.
pub struct RouteWatch {
    stop: Arc<AtomicBool>,
    changes: Arc<Mutex<Vec<NextHopChange>>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RouteWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteWatch").finish_non_exhaustive()
    }
}

impl RouteWatch {
    /// Polls every namespace's routing table every `every`.
    pub fn start(namespaces: &[String], epoch: Instant, every: Duration) -> RouteWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let changes = Arc::new(Mutex::new(Vec::new()));
        let threads = namespaces
            .iter()
            .enumerate()
            .map(|(node, ns)| {
                let (ns, stop, changes) = (ns.clone(), stop.clone(), changes.clone());
                std::thread::spawn(move || {
                    let _ = in_netns(&ns, || {
                        let Ok(mut sock) = RouteSocket::open() else { return };
                        let mut current: HashMap<Ipv4Addr, Ipv4Addr> = HashMap::new();
                        let mut first = true;
                        while !stop.load(Ordering::Relaxed) {
                            if let Ok(table) = sock.main_table() {
                                let now = gateways_in_use(&table);
                                if !first {
                                    let at_ns = epoch.elapsed().as_nanos() as u64;
                                    let mut log = changes.lock().unwrap_or_else(|e| e.into_inner());
                                    for (d, g) in &now {
                                        if current.get(d) != Some(g) {
                                            log.push(NextHopChange {
                                                at_ns,
                                                node,
                                                destination: *d,
                                                from: current.get(d).copied(),
                                                to: Some(*g),
                                            });
                                        }
                                    }
                                    for (d, g) in &current {
                                        if !now.contains_key(d) {
                                            log.push(NextHopChange {
                                                at_ns,
                                                node,
                                                destination: *d,
                                                from: Some(*g),
                                                to: None,
                                            });
                                        }
                                    }
                                }
                                current = now;
                                first = false;
                            }
                            std::thread::sleep(every);
                        }
                    });
                })
            })
            .collect();
        RouteWatch { stop, changes, threads }
    }

    /// Every change seen so far.
    pub fn changes(&self) -> Vec<NextHopChange> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops polling; returns every change seen.
    pub fn stop(self) -> Vec<NextHopChange> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        Arc::try_unwrap(self.changes).map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner())).unwrap_or_default()
    }
}

/// Flaps among `changes` within [from, until): a next hop that goes A → B → A within
/// `window` (the simulator's ground truth counts the same way).
pub fn count_flaps(changes: &[NextHopChange], from_ns: u64, until_ns: u64, window: Duration) -> usize {
    let mut by_key: HashMap<(usize, Ipv4Addr), Vec<&NextHopChange>> = HashMap::new();
    for c in changes.iter().filter(|c| c.at_ns >= from_ns && c.at_ns < until_ns) {
        by_key.entry((c.node, c.destination)).or_default().push(c);
    }
    let w = window.as_nanos() as u64;
    by_key
        .values()
        .map(|cs| cs.windows(2).filter(|p| p[1].to == p[0].from && p[1].at_ns - p[0].at_ns <= w).count())
        .sum()
}

/// Route changes among `changes` within [from, until).
pub fn count_changes(changes: &[NextHopChange], from_ns: u64, until_ns: u64) -> usize {
    changes.iter().filter(|c| c.at_ns >= from_ns && c.at_ns < until_ns).count()
}

/// Per destination, the gateway the kernel forwards to: the lowest-metric route whose
/// device has carrier (the first of equals, as the table lists them).
fn gateways_in_use(table: &[(u8, KernelRoute)]) -> HashMap<Ipv4Addr, Ipv4Addr> {
    let mut best: HashMap<Ipv4Addr, (u32, Ipv4Addr)> = HashMap::new();
    for (_, r) in table.iter().filter(|(_, r)| !r.linkdown) {
        let e = best.entry(r.destination).or_insert((r.metric, r.gateway));
        if r.metric < e.0 {
            *e = (r.metric, r.gateway);
        }
    }
    best.into_iter().map(|(d, (_, g))| (d, g)).collect()
}

/// The (node, destination) pairs whose kernel route is not the baseline's now (a node
/// whose table cannot be read counts once, as `node ?`). A trial starts when there are
/// none: the healing plan was withdrawn after the fault cleared.
pub fn off_baseline(lab: &super::netlab::NetLab) -> Vec<String> {
    let mut off = Vec::new();
    for (ns, net) in lab.namespaces.iter().zip(&lab.networks) {
        let node_off = in_netns(ns, || {
            let Ok(mut sock) = RouteSocket::open() else { return vec![format!("{} ?", net.node)] };
            let Ok(table) = sock.main_table() else { return vec![format!("{} ?", net.node)] };
            let in_use = gateways_in_use(&table);
            net.baseline
                .iter()
                .filter(|(dst, b)| {
                    let (Some(addr), Some(gw)) =
                        (net.destinations.get(*dst), net.neighbour(&b.primary).map(|n| n.peer))
                    else {
                        return true;
                    };
                    in_use.get(addr) != Some(&gw)
                })
                .map(|(dst, _)| format!("{} -> {dst}", net.node))
                .collect()
        });
        off.extend(node_off.unwrap_or_else(|_| vec![format!("{} ?", net.node)]));
    }
    off
}

/// One node's routes of ours by destination name: the primary neighbour (metric
/// [`PRIMARY_METRIC`]) and the backup (metric [`BACKUP_METRIC`]), as node names.
pub type RouteTable = BTreeMap<String, (Option<String>, Option<String>)>;

/// Node `i`'s routes of ours as its kernel holds them now.
pub fn kernel_table(lab: &super::netlab::NetLab, i: usize) -> std::io::Result<RouteTable> {
    let (ns, net) = (&lab.namespaces[i], &lab.networks[i]);
    let routes = in_netns(ns, || RouteSocket::open().and_then(|mut s| s.ours()))??;
    let names: HashMap<Ipv4Addr, &String> = net.destinations.iter().map(|(n, a)| (*a, n)).collect();
    let hop = |gw: Ipv4Addr| net.neighbours.iter().find(|n| n.peer == gw).map(|n| n.node.clone());
    let mut table = RouteTable::new();
    for r in routes {
        let Some(&dst) = names.get(&r.destination) else { continue };
        let entry = table.entry(dst.clone()).or_default();
        match r.metric {
            PRIMARY_METRIC => entry.0 = hop(r.gateway),
            BACKUP_METRIC => entry.1 = hop(r.gateway),
            _ => {}
        }
    }
    Ok(table)
}

/// Node `i`'s baseline routes (what its agent installs at start) as a [`RouteTable`].
pub fn baseline_table(lab: &super::netlab::NetLab, i: usize) -> RouteTable {
    lab.networks[i].baseline.iter().map(|(d, b)| (d.clone(), (Some(b.primary.clone()), b.backup.clone()))).collect()
}

/// Every node's next hop (node index) per destination address as the kernel has it
/// now: the lowest-metric route with carrier, as the kernel picks.
#[derive(Debug, Clone)]
pub struct Forwarding {
    next: Vec<HashMap<Ipv4Addr, usize>>,
    addresses: Vec<Ipv4Addr>,
}

impl Forwarding {
    /// Reads every namespace's forwarding table now.
    pub fn read(lab: &super::netlab::NetLab) -> Forwarding {
        let next = lab
            .namespaces
            .iter()
            .zip(&lab.networks)
            .map(|(ns, net)| {
                in_netns(ns, || {
                    let Ok(mut sock) = RouteSocket::open() else { return HashMap::new() };
                    let Ok(table) = sock.main_table() else { return HashMap::new() };
                    gateways_in_use(&table)
                        .into_iter()
                        .filter_map(|(d, gw)| {
                            let peer = net.neighbours.iter().find(|n| n.peer == gw)?;
                            let id = lab.networks.iter().position(|m| m.node == peer.node)?;
                            Some((d, id))
                        })
                        .collect()
                })
                .unwrap_or_default()
            })
            .collect();
        Forwarding { next, addresses: lab.networks.iter().map(|n| n.address).collect() }
    }

    /// How many of `flows` (source, destination node index) cross the link between
    /// nodes `a` and `b`, traced hop by hop. Tells a trial whose fault hit traffic
    /// from one that failed an idle link, whatever the routing daemon chose.
    pub fn flows_across(&self, flows: &[(usize, usize)], a: usize, b: usize) -> usize {
        flows
            .iter()
            .filter(|&&(s, d)| {
                let Some(&dst) = self.addresses.get(d) else { return false };
                let mut at = s;
                for _ in 0..self.addresses.len() {
                    if at == d {
                        return false;
                    }
                    let Some(&hop) = self.next.get(at).and_then(|t| t.get(&dst)) else { return false };
                    if (at, hop) == (a, b) || (at, hop) == (b, a) {
                        return true;
                    }
                    at = hop;
                }
                false
            })
            .count()
    }
}
