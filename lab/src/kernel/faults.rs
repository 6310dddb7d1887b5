//! Fault injection in the namespace mesh: carrier loss (`ip link set down` on one end,
//! the other end loses carrier), gray loss through our own TC program (the
//! `FaultInjector`, in the kernel), flapping, and node crash (all its links down).

use super::netlab::{ip, LabError, NetLab};
use super::plan::iface_name;
use std::collections::HashMap;
use x0_ingest::{in_netns, interface_index, FaultInjector};
use x0_schema::{Direction, Element, FaultKind, Topology};

/// Injectors per namespace, loaded on first use and kept for the lab's life.
#[derive(Debug, Default)]
pub struct Injectors {
    by_ns: HashMap<(String, String), (FaultInjector, u32)>,
}

impl Injectors {
    fn set(&mut self, ns: &str, iface: &str, loss: f64) -> Result<(), LabError> {
        let key = (ns.to_string(), iface.to_string());
        if !self.by_ns.contains_key(&key) {
            let made = in_netns(ns, || -> Result<(FaultInjector, u32), LabError> {
                let mut f = FaultInjector::load().map_err(|e| LabError::Other(format!("fault injector: {e}")))?;
                f.attach(iface).map_err(|e| LabError::Other(format!("fault injector on {iface}: {e}")))?;
                let idx = interface_index(iface).ok_or_else(|| LabError::Other(format!("no {iface} in {ns}")))?;
                Ok((f, idx))
            })??;
            self.by_ns.insert(key.clone(), made);
        }
        let (inj, idx) = self.by_ns.get_mut(&key).expect("inserted above");
        inj.set_loss(*idx, loss).map_err(|e| LabError::Other(format!("setting loss: {e}")))
    }
}

/// What to do to an element: the fault's kind, its loss share and direction (link
/// loss), and whether it starts (`on`) or ends.
#[derive(Debug, Clone, Copy)]
pub struct Injection {
    /// What to inject.
    pub kind: FaultKind,
    /// Share of packets dropped (link-loss).
    pub loss: f64,
    /// Which way a link fault acts.
    pub direction: Direction,
    /// Inject (true) or revert (false).
    pub on: bool,
}

/// One element's fault, applied or reverted.
pub fn apply(
    lab: &NetLab,
    topo: &Topology,
    injectors: &mut Injectors,
    element: &Element,
    injection: Injection,
) -> Result<(), LabError> {
    let Injection { kind, loss, direction, on } = injection;
    let id = |name: &str| topo.id(name).ok_or_else(|| LabError::Other(format!("no node {name}")));
    match (kind, element) {
        (FaultKind::LinkDown | FaultKind::LinkFlap, Element::Link { a, b }) => {
            let (ia, ib) = (id(a)?, id(b)?);
            ip(&["-n", &lab.namespace(a), "link", "set", &iface_name(ib), if on { "down" } else { "up" }])?;
            let _ = ia;
            Ok(())
        }
        (FaultKind::LinkLoss, Element::Link { a, b }) => {
            let (ia, ib) = (id(a)?, id(b)?);
            let p = if on { loss } else { 0.0 };
            if matches!(direction, Direction::Both | Direction::Forward) {
                injectors.set(&lab.namespace(a), &iface_name(ib), p)?;
            }
            if matches!(direction, Direction::Both | Direction::Reverse) {
                injectors.set(&lab.namespace(b), &iface_name(ia), p)?;
            }
            Ok(())
        }
        (FaultKind::NodeCrash, Element::Node { id: name }) => {
            let i = id(name)?;
            for &nb in topo.neighbours(i) {
                ip(&["-n", &lab.namespace(name), "link", "set", &iface_name(nb), if on { "down" } else { "up" }])?;
            }
            Ok(())
        }
        (k, e) => {
            Err(LabError::Other(format!("{} on {e} is not supported in the kernel lab (simulator only)", k.as_str())))
        }
    }
}
