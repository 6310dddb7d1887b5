//! The per-node collector side of x0tta6bl4.
//!
//! - [`KernelProbes`]: the eBPF probes (per-interface TC counters, drops with their
//!   kernel drop reason, TCP retransmits) loaded into the running kernel and read
//!   every telemetry interval.
//! - [`FaultInjector`]: the lab's gray-failure injector (a TC program dropping a share
//!   of an interface's egress packets).
//! - [`LinkProber`]: active UDP probes of every link (loss, RTT).
//! - [`read_interfaces`]: the kernel's interface counters and carrier (rtnetlink),
//!   the fallback when the probes cannot load; [`LinkEvents`], the kernel's carrier
//!   notifications.
//! - [`Collector`]: one [`x0_schema::TelemetryBatch`] per tick from a [`CounterSource`]
//!   (the kernel's: [`KernelCounters`]) and the link probes' results.

mod collector;
mod interfaces;
mod kernel_counters;
mod link_probe;
mod netns;
mod node_resources;
mod probes;

pub use collector::{CollectedLink, Collector, CounterSource, LinkCounters, LinkReading, NodeResources};
pub use interfaces::{read_interfaces, InterfaceReader, InterfaceStats};
pub use kernel_counters::{KernelCounters, KernelLink};
pub use link_probe::{LinkProber, ProbeStats, PROBE_PORT};
pub use netns::{enter_netns, in_netns, netns_path};
pub use node_resources::ProcResources;
pub use probes::{
    current_netns_inode, ensure_tracefs, interface_index, probes_available, probes_built, DropCount, FaultInjector,
    IfCounters, KernelProbes, ProbeError, ProbeSnapshot,
};
pub use x0_netlink::LinkEvents;
