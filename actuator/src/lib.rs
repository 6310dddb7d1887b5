//! The execute side of a node agent: verify a signed [`HealingCommand`](x0_schema::HealingCommand), apply it to a
//! [`RouteTarget`], and say what happened in a [`CommandResult`](x0_schema::CommandResult).
//!
//! The actuator trusts nothing: a command that is malformed, names an action outside
//! the closed set, is meant for another node, is unsigned or badly signed, has
//! expired is rejected with a reason and never reaches the target. A command delivered
//! twice is applied once and answered the same both times; a node agent's actuator keeps
//! that memory, and the actions in force, in a journal file across restarts. Targets are the simulated mesh (in `lab`) and the kernel's routing table
//! through rtnetlink ([`KernelRouteTarget`]); both sit behind the same trait.
//!
//! ```
//! use x0_actuator::{Actuator, RouteTarget, TargetError};
//! use x0_schema::{Action, RouteEntry, ResultStatus};
//! struct Table(Vec<RouteEntry>);
//! impl RouteTarget for Table {
//!     fn apply(&mut self, _: &Action) -> Result<(), TargetError> { Ok(()) }
//!     fn routes(&self) -> Vec<RouteEntry> { self.0.clone() }
//! }
//! let key = x0_schema::generate_signing_key();
//! let mut actuator = Actuator::new("n1", key.verifying_key(), Table(vec![]));
//! let result = actuator.handle(b"not a command", 0);
//! assert_eq!(result.status, ResultStatus::Rejected);
//! ```

mod actuator;
mod journal;
mod kernel;
mod netlink;
mod node_network;
mod target;

pub use actuator::{reason_class, Actuator};
pub use kernel::{KernelRouteTarget, BACKUP_METRIC, PRIMARY_METRIC};
pub use netlink::{KernelRoute, RouteSocket, ROUTE_PROTOCOL};
pub use node_network::{BaselineRoute, Neighbour, NodeNetwork};
pub use target::{RouteTarget, TargetError};
