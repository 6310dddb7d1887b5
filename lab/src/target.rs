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
        // A route action checked: its destination and (primary, backup), None to withdraw.
        type Staged = (NodeId, Option<(NodeId, Option<NodeId>)>);
        let staged = |mesh: &SimMesh, action: &Action| -> Result<Staged, TargetError> {
            match action {
                Action::RouteReplace { destination, primary, backup } => {
                    let dst = known(mesh, destination)?;
                    let p = neighbour(mesh, primary)?;
                    let b = backup.as_deref().map(|b| neighbour(mesh, b)).transpose()?;
                    if b == Some(p) {
                        return Err(TargetError::Invalid("backup equals primary".into()));
                    }
                    Ok((dst, Some((p, b))))
                }
                Action::RouteWithdraw { destination } => Ok((known(mesh, destination)?, None)),
                other => Err(TargetError::Invalid(format!("{} is not a route action", other.kind()))),
            }
        };
        match action {
            Action::RouteReplace { .. } | Action::RouteWithdraw { .. } => {
                let (dst, hops) = staged(&mesh, action)?;
                set(&mut mesh, node, dst, hops);
            }
            // Checked whole before anything changes: all or none.
            Action::RouteBatch { routes } => {
                let staged = routes.iter().map(|r| staged(&mesh, r)).collect::<Result<Vec<_>, _>>()?;
                for (dst, hops) in staged {
                    set(&mut mesh, node, dst, hops);
                }
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

fn set(mesh: &mut SimMesh, node: NodeId, dst: NodeId, hops: Option<(NodeId, Option<NodeId>)>) {
    match hops {
        Some((primary, backup)) => mesh.set_route(node, dst, primary, backup),
        None => mesh.withdraw_route(node, dst),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimOptions;
    use x0_schema::Scenario;

    fn grid() -> Arc<Mutex<SimMesh>> {
        let scenario = Scenario::from_toml_str(
            "name='t'\nduration='1s'\n[topology]\nshape='grid'\nnodes=9\nseed=1\n[traffic]\npairs=0\nrate_pps=0\n",
        )
        .expect("scenario");
        Arc::new(Mutex::new(SimMesh::new(&scenario, SimOptions::default()).expect("mesh")))
    }

    fn replace(d: &str, p: &str) -> Action {
        Action::RouteReplace { destination: d.into(), primary: p.into(), backup: None }
    }

    /// n4 is the grid's centre, with neighbours n1, n3, n5 and n7.
    #[test]
    fn a_route_batch_applies_whole_or_not_at_all() {
        let mesh = grid();
        let mut n4 = SimRouteTarget::new(mesh.clone(), 4);
        let bad = Action::RouteBatch { routes: vec![replace("n0", "n3"), replace("n8", "n0")] };
        assert!(matches!(n4.apply(&bad), Err(TargetError::Invalid(why)) if why.contains("not a neighbour")));
        assert!(n4.routes().is_empty(), "nothing of a refused batch is applied");

        let good = Action::RouteBatch { routes: vec![replace("n0", "n3"), replace("n8", "n7")] };
        n4.apply(&good).expect("applied");
        let mut routes: Vec<(String, String)> = n4.routes().into_iter().map(|r| (r.destination, r.next_hop)).collect();
        routes.sort();
        assert_eq!(routes, vec![("n0".into(), "n3".into()), ("n8".into(), "n7".into())]);

        let back = Action::RouteBatch {
            routes: vec![Action::RouteWithdraw { destination: "n0".into() }, replace("n2", "n5")],
        };
        n4.apply(&back).expect("applied");
        let mut routes: Vec<String> = n4.routes().into_iter().map(|r| r.destination).collect();
        routes.sort();
        assert_eq!(routes, vec!["n2".to_string(), "n8".to_string()]);
    }
}
