//! The seam between verifying a command and changing a routing table.

use thiserror::Error;
use x0_schema::{Action, RouteEntry};

/// Why a verified command could not be applied. Nothing was changed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// The command is well-formed but impossible here (e.g. next hop is not a
    /// neighbour). The sender's plan is wrong; retrying does not help.
    #[error("cannot apply: {0}")]
    Invalid(String),
    /// The target failed (kernel error, lost link). A retry may help.
    #[error("target failed: {0}")]
    Failed(String),
}

/// Something whose routes an actuator can change.
pub trait RouteTarget {
    /// Applies one action atomically: either it takes effect or nothing changes.
    fn apply(&mut self, action: &x0_schema::Action) -> Result<(), TargetError>;
    /// The routes we own on this node now.
    fn routes(&self) -> Vec<RouteEntry>;
}

impl<T: RouteTarget + ?Sized> RouteTarget for Box<T> {
    fn apply(&mut self, action: &Action) -> Result<(), TargetError> {
        (**self).apply(action)
    }
    fn routes(&self) -> Vec<RouteEntry> {
        (**self).routes()
    }
}
