//! Network namespaces by name (`ip netns` convention: `/run/netns/NAME`).
//!
//! A process can have threads in different namespaces: the agent keeps its Kafka
//! clients in the namespace it started in (where the broker is reachable) and does
//! everything that touches the node's network (probes, routes, eBPF attach) from
//! threads that entered the node's namespace.

use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::io;
use std::path::PathBuf;

/// `/run/netns/NAME`, or NAME itself when it is a path.
pub fn netns_path(name: &str) -> PathBuf {
    if name.contains('/') {
        PathBuf::from(name)
    } else {
        PathBuf::from("/run/netns").join(name)
    }
}

/// Moves the calling thread into namespace `name`.
pub fn enter_netns(name: &str) -> io::Result<()> {
    let path = netns_path(name);
    let file = File::open(&path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    setns(file, CloneFlags::CLONE_NEWNET).map_err(|e| io::Error::other(format!("setns {}: {e}", path.display())))
}

/// Runs `f` on a new thread inside namespace `name` and returns its result.
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_netns(name)?;
            Ok(f())
        })
        .join()
        .map_err(|_| io::Error::other(format!("thread in namespace {name} panicked")))?
    })
}
