//! The comparison: Debian's babeld as the mesh's routing daemon instead of ours, on
//! the same namespaces, faults and probe flows.
//!
//! Settings: carrier sense on (`-l`, babeld's fast path for a dead link), a 1 s wired
//! hello interval (`-H 1`, four times faster than the default, the usual tuning for a
//! lab), redistribution of the node addresses only. Everything else is babeld's
//! default.

use super::netlab::{process_tag, LabError, NetLab};
use super::plan::iface_name;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use x0_schema::Topology;

/// One babeld per node; killed on drop.
#[derive(Debug)]
pub struct Babel {
    children: Vec<Child>,
}

impl Babel {
    pub fn start(lab: &NetLab, topo: &Topology, state_dir: &Path) -> Result<Babel, LabError> {
        std::fs::create_dir_all(state_dir)?;
        let tag = process_tag(&lab.prefix);
        let mut children = Vec::new();
        for (i, ns) in lab.namespaces.iter().enumerate() {
            let base = state_dir.join(format!("{tag}-{}", topo.name(i)));
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns, "babeld", "-l", "-H", "1", "-d", "0"])
                .arg("-I")
                .arg(base.with_extension("pid"))
                .arg("-S")
                .arg(base.with_extension("state"))
                .args(["-C", "redistribute local ip 10.255.0.0/16 ge 32 allow", "-C", "redistribute local deny"]);
            for &nb in topo.neighbours(i) {
                cmd.arg(iface_name(nb));
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| LabError::Other(format!("starting babeld (apt-get install babeld): {e}")))?;
            children.push(child);
        }
        Ok(Babel { children })
    }
}

impl Drop for Babel {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
