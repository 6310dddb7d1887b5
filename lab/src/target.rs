//! The simulated twin of a node's kernel routing table, behind the actuator's seam.

use crate::SimMesh;
use std::sync::{Arc, Mutex};
use x0_actuator::{RouteTarget, TargetError};
use x0_schema::{Action, NodeId, RouteEntry};

/// One node's routing table inside a shared [`SimMesh`].
#[derive(Debug, Clone)]
pub struct SimRouteTarget {
    mesh: Arc<Mutex<SimMesh>>,
    node: NodeId,
}

impl SimRouteTarget {
    /// The routing table of `node` in `mesh`.
    pub fn new(mesh: Arc<Mutex<SimMesh>>, node: NodeId) -> Self {
        SimRouteTarget { mesh, node }
    }
}

/// Locks the shared mesh. A panic elsewhere must not take the actuators or the
/// simulation down with it; the mesh stays usable.
pub(crate) fn lock(mesh: &Mutex<SimMesh>) -> std::sync::MutexGuard<'_, SimMesh> {
    mesh.lock().unwrap_or_else(|p| p.into_inner())
}

impl RouteTarget for SimRouteTarget {
    fn apply(&mut self, action: &Action) -> Result<(), TargetError> {
        let mut mesh = lock(&self.mesh);
        let node = self.node;
        let known = |mesh: &SimMesh, name: &str| {
            mesh.node_id(name).ok_or_else(|| TargetError::Invalid(format!("unknown node {name}")))
        };
        let neighbour = |mesh: &SimMesh, name: &str| {
            let id = known(mesh, name)?;
            if mesh.topology().has_link(node, id) {
                Ok(id)
            } else {
                Err(TargetError::Invalid(format!("{name} is not a neighbour of {}", mesh.topology().name(node))))
            }
        };
        match action {
            Action::RouteReplace { destination, primary, backup } => {
                let dst = known(&mesh, destination)?;
                let p = neighbour(&mesh, primary)?;
                let b = backup.as_deref().map(|b| neighbour(&mesh, b)).transpose()?;
                if b == Some(p) {
                    return Err(TargetError::Invalid("backup equals primary".into()));
                }
                mesh.set_route(node, dst, p, b);
            }
            Action::RouteWithdraw { destination } => {
                let dst = known(&mesh, destination)?;
                mesh.withdraw_route(node, dst);
            }
            Action::LinkDrain { peer } => {
                let p = neighbour(&mesh, peer)?;
                mesh.set_drained(node, p, true);
            }
            Action::LinkRestore { peer } => {
                let p = neighbour(&mesh, peer)?;
                mesh.set_drained(node, p, false);
            }
            Action::ProbeRate { interval_ms } if *interval_ms == 0 => {
                return Err(TargetError::Invalid("probe interval must be positive".into()));
            }
            Action::ProbeRate { .. } | Action::NoOp => {}
        }
        Ok(())
    }

    fn routes(&self) -> Vec<RouteEntry> {
        lock(&self.mesh).routes_of(self.node)
    }
}
