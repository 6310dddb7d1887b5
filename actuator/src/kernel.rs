//! The kernel's routing table as a [`RouteTarget`].
//!
//! Each destination gets two host routes with our protocol id: the primary next hop
//! at metric [`PRIMARY_METRIC`] and a backup at [`BACKUP_METRIC`]. With
//! `ignore_routes_with_linkdown` set, the kernel skips a route whose device lost its
//! carrier and uses the backup by itself, before any controller acts; the stream
//! job's commands move routes away from gray (lossy but up) links.
//!
//! Every change is verified by reading the table back; a change that does not verify
//! is rolled back to the routes we had before. Routes without our protocol id are
//! never touched.

use crate::netlink::{KernelRoute, RouteSocket};
use crate::node_network::NodeNetwork;
use crate::{RouteTarget, TargetError};
use std::collections::{BTreeMap, BTreeSet};
use x0_schema::{Action, RouteEntry};

/// Metric of a destination's primary route.
pub const PRIMARY_METRIC: u32 = 100;
/// Metric of its backup route: the kernel uses it once the primary's link loses carrier.
pub const BACKUP_METRIC: u32 = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Hops {
    primary: String,
    backup: Option<String>,
}

/// Routes of one node, in its kernel.
#[derive(Debug)]
pub struct KernelRouteTarget {
    net: NodeNetwork,
    socket: RouteSocket,
    ifindex: BTreeMap<String, u32>,
    /// What the controller asked for (baseline until overridden).
    desired: BTreeMap<String, Hops>,
    drained: BTreeSet<String>,
}

fn failed(what: &str) -> impl Fn(std::io::Error) -> TargetError + '_ {
    move |e| TargetError::Failed(format!("{what}: {e}"))
}

impl KernelRouteTarget {
    /// Opens the route socket in the calling thread's namespace, removes stale routes
    /// of ours and installs the baseline (replacing our routes in place: an agent's
    /// actuator then puts back the overrides its journal holds).
    pub fn start(net: NodeNetwork) -> Result<Self, TargetError> {
        let socket = RouteSocket::open().map_err(failed("netlink socket"))?;
        let mut ifindex = BTreeMap::new();
        for n in &net.neighbours {
            let idx = nix::net::if_::if_nametoindex(n.iface.as_str())
                .map_err(|e| TargetError::Failed(format!("interface {}: {e}", n.iface)))?;
            ifindex.insert(n.node.clone(), idx);
        }
        let desired = net
            .baseline
            .iter()
            .map(|(d, b)| (d.clone(), Hops { primary: b.primary.clone(), backup: b.backup.clone() }))
            .collect();
        let mut t = KernelRouteTarget { net, socket, ifindex, desired, drained: BTreeSet::new() };
        // Routes of ours to destinations this node still routes are replaced in place
        // below (a restarted agent must not leave a gap); only the others go.
        let managed: BTreeSet<_> = t.net.destinations.values().copied().collect();
        for stale in t.socket.ours().map_err(failed("reading routes"))? {
            if !managed.contains(&stale.destination) || ![PRIMARY_METRIC, BACKUP_METRIC].contains(&stale.metric) {
                t.socket.delete(stale.destination, stale.metric).map_err(failed("removing a stale route"))?;
            }
        }
        t.socket.clear_uturns().map_err(failed("removing stale U-turn routes"))?;
        let all: Vec<String> = t.desired.keys().cloned().collect();
        t.sync(&all)?;
        t.install_uturns()?;
        Ok(t)
    }

    /// Puts back what the kernel removed on its own: routes through an interface that
    /// went administratively down are deleted by the kernel, and must return with the
    /// interface. Returns how many destinations were re-synced; errors (the interface
    /// is still down) are retried on the next call.
    pub fn reconcile(&mut self) -> usize {
        let Ok(kernel) = self.socket.ours() else { return 0 };
        let mut stale = Vec::new();
        for dst in self.desired.keys() {
            let (p, b) = self.effective(dst);
            let addr = self.net.destinations[dst];
            let ok = [(p, PRIMARY_METRIC), (b, BACKUP_METRIC)].iter().all(|(want, metric)| {
                let have = kernel.iter().find(|r| r.destination == addr && r.metric == *metric).map(|r| r.gateway);
                have == want.and_then(|w| self.net.neighbour(w)).map(|n| n.peer)
            });
            if !ok {
                stale.push(dst.clone());
            }
        }
        let fixed = stale.iter().filter(|d| self.sync(std::slice::from_ref(*d)).is_ok()).count();
        if fixed > 0 {
            let _ = self.install_uturns();
        }
        fixed
    }

    /// Per incoming interface, the U-turn routes of the baseline (see `NodeNetwork`):
    /// fixed for the agent's life, they only ever carry packets a neighbour sent us
    /// while failing over.
    fn install_uturns(&mut self) -> Result<(), TargetError> {
        let uturn = self.net.uturn.clone();
        for (from, routes) in &uturn {
            let k = self
                .net
                .neighbours
                .iter()
                .position(|n| &n.node == from)
                .ok_or_else(|| TargetError::Invalid(format!("U-turn from {from}, not a neighbour")))?;
            let k = u8::try_from(k)
                .ok()
                .filter(|k| *k < 50)
                .ok_or_else(|| TargetError::Invalid("too many neighbours for U-turn tables".into()))?;
            for (dst, via) in routes {
                let r = self.kernel_route(dst, via, PRIMARY_METRIC)?;
                self.socket.replace_in(crate::netlink::UTURN_TABLE_BASE + k, &r).map_err(failed("U-turn route"))?;
            }
            let iface = self.net.neighbours[usize::from(k)].iface.clone();
            match self.socket.add_uturn_rule(&iface, k) {
                Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EEXIST as i32) => {}
                other => other.map_err(failed("U-turn rule"))?,
            }
        }
        Ok(())
    }

    /// The node's neighbours, addresses and baseline routes.
    pub fn network(&self) -> &NodeNetwork {
        &self.net
    }

    /// The next hops in force for `dst`: drained neighbours are skipped.
    fn effective(&self, dst: &str) -> (Option<&str>, Option<&str>) {
        let Some(h) = self.desired.get(dst) else { return (None, None) };
        let primary_live = !self.drained.contains(&h.primary);
        let backup = h.backup.as_deref().filter(|b| !self.drained.contains(*b));
        match (primary_live, backup) {
            (true, b) => (Some(h.primary.as_str()), b),
            (false, Some(b)) => (Some(b), None),
            // Nowhere else to go: draining must not blackhole the destination.
            (false, None) => (Some(h.primary.as_str()), None),
        }
    }

    fn kernel_route(&self, dst: &str, via: &str, metric: u32) -> Result<KernelRoute, TargetError> {
        let destination =
            *self.net.destinations.get(dst).ok_or_else(|| TargetError::Invalid(format!("unknown node {dst}")))?;
        let n = self.net.neighbour(via).ok_or_else(|| TargetError::Invalid(format!("{via} is not a neighbour")))?;
        Ok(KernelRoute { destination, gateway: n.peer, oif: self.ifindex[via], metric, linkdown: false })
    }

    /// Makes the kernel match `desired` for `dsts`, then checks that it does.
    fn sync(&mut self, dsts: &[String]) -> Result<(), TargetError> {
        for dst in dsts {
            let (p, b) = self.effective(dst);
            let (p, b) = (p.map(str::to_string), b.map(str::to_string));
            let addr =
                *self.net.destinations.get(dst).ok_or_else(|| TargetError::Invalid(format!("unknown node {dst}")))?;
            match p {
                Some(p) => self
                    .socket
                    .replace(&self.kernel_route(dst, &p, PRIMARY_METRIC)?)
                    .map_err(failed("route replace"))?,
                None => self.socket.delete(addr, PRIMARY_METRIC).map_err(failed("route delete"))?,
            }
            match b {
                Some(b) => {
                    self.socket.replace(&self.kernel_route(dst, &b, BACKUP_METRIC)?).map_err(failed("route replace"))?
                }
                None => self.socket.delete(addr, BACKUP_METRIC).map_err(failed("route delete"))?,
            }
        }
        self.verify(dsts)
    }

    fn verify(&mut self, dsts: &[String]) -> Result<(), TargetError> {
        let kernel = self.socket.ours().map_err(failed("reading routes back"))?;
        for dst in dsts {
            let (p, b) = self.effective(dst);
            let addr = self.net.destinations[dst];
            for (want, metric) in [(p, PRIMARY_METRIC), (b, BACKUP_METRIC)] {
                let have = kernel.iter().find(|r| r.destination == addr && r.metric == metric);
                let want_gw = want.and_then(|w| self.net.neighbour(w)).map(|n| n.peer);
                if have.map(|r| r.gateway) != want_gw {
                    return Err(TargetError::Failed(format!(
                        "kernel table disagrees for {dst} metric {metric}: want {want_gw:?}, have {:?}",
                        have.map(|r| r.gateway)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Applies a change to `desired`/`drained`; rolls back if the kernel does not
    /// end up matching.
    fn transact(&mut self, dsts: Vec<String>, change: impl FnOnce(&mut Self)) -> Result<(), TargetError> {
        let (before, drained_before) = (self.desired.clone(), self.drained.clone());
        change(self);
        if let Err(e) = self.sync(&dsts) {
            self.desired = before;
            self.drained = drained_before;
            let rollback = self.sync(&dsts);
            return Err(match rollback {
                Ok(()) => TargetError::Failed(format!("{e}; rolled back")),
                Err(r) => TargetError::Failed(format!("{e}; rollback also failed: {r}")),
            });
        }
        Ok(())
    }

    fn check_neighbour(&self, n: &str) -> Result<(), TargetError> {
        self.net
            .neighbour(n)
            .map(|_| ())
            .ok_or_else(|| TargetError::Invalid(format!("{n} is not a neighbour of {}", self.net.node)))
    }

    fn check_destination(&self, d: &str) -> Result<(), TargetError> {
        if d == self.net.node {
            return Err(TargetError::Invalid("a route to ourselves".into()));
        }
        self.net.destinations.get(d).map(|_| ()).ok_or_else(|| TargetError::Invalid(format!("unknown node {d}")))
    }

    /// A route action checked: its destination and the hops it wants there (None:
    /// no route of ours, the destination has no baseline).
    fn staged(&self, action: &Action) -> Result<(String, Option<Hops>), TargetError> {
        match action {
            Action::RouteReplace { destination, primary, backup } => {
                self.check_destination(destination)?;
                self.check_neighbour(primary)?;
                if let Some(b) = backup {
                    self.check_neighbour(b)?;
                    if b == primary {
                        return Err(TargetError::Invalid("backup equals primary".into()));
                    }
                }
                Ok((destination.clone(), Some(Hops { primary: primary.clone(), backup: backup.clone() })))
            }
            Action::RouteWithdraw { destination } => {
                self.check_destination(destination)?;
                let baseline = self.net.baseline.get(destination);
                Ok((
                    destination.clone(),
                    baseline.map(|b| Hops { primary: b.primary.clone(), backup: b.backup.clone() }),
                ))
            }
            other => Err(TargetError::Invalid(format!("{} is not a route action", other.kind()))),
        }
    }

    fn set(&mut self, destination: String, hops: Option<Hops>) {
        match hops {
            Some(h) => self.desired.insert(destination, h),
            None => self.desired.remove(&destination),
        };
    }

    /// Destinations whose routes use neighbour `n`.
    fn via(&self, n: &str) -> Vec<String> {
        self.desired
            .iter()
            .filter(|(_, h)| h.primary == n || h.backup.as_deref() == Some(n))
            .map(|(d, _)| d.clone())
            .collect()
    }
}

impl RouteTarget for KernelRouteTarget {
    fn apply(&mut self, action: &Action) -> Result<(), TargetError> {
        match action {
            Action::RouteReplace { .. } | Action::RouteWithdraw { .. } => {
                let (destination, hops) = self.staged(action)?;
                self.transact(vec![destination.clone()], |t| t.set(destination, hops))
            }
            // Checked whole before anything changes, then one transaction: all or none.
            Action::RouteBatch { routes } => {
                let staged = routes.iter().map(|r| self.staged(r)).collect::<Result<Vec<_>, _>>()?;
                let dsts = staged.iter().map(|(d, _)| d.clone()).collect();
                self.transact(dsts, |t| {
                    for (destination, hops) in staged {
                        t.set(destination, hops);
                    }
                })
            }
            Action::LinkDrain { peer } | Action::LinkRestore { peer } => {
                self.check_neighbour(peer)?;
                let drain = matches!(action, Action::LinkDrain { .. });
                let dsts = self.via(peer);
                self.transact(dsts, |t| {
                    if drain {
                        t.drained.insert(peer.clone());
                    } else {
                        t.drained.remove(peer);
                    }
                })
            }
            Action::ProbeRate { interval_ms } if *interval_ms == 0 => {
                Err(TargetError::Invalid("probe interval must be positive".into()))
            }
            Action::ProbeRate { .. } | Action::NoOp => Ok(()),
        }
    }

    fn routes(&self) -> Vec<RouteEntry> {
        self.desired
            .keys()
            .filter_map(|d| {
                let (p, b) = self.effective(d);
                Some(RouteEntry { destination: d.clone(), next_hop: p?.to_string(), backup: b.map(str::to_string) })
            })
            .collect()
    }
}
