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
    /// Starts one babeld per namespace of `lab`, its state under `state_dir`.
    pub fn start(lab: &NetLab, topo: &Topology, state_dir: &Path) -> Result<Babel, LabError> {
        std::fs::create_dir_all(state_dir)?;
        let tag = process_tag(&lab.prefix);
        let mut children = Vec::new();
        for (i, ns) in lab.namespaces.iter().enumerate() {
            let base = state_dir.join(format!("{tag}-{}", topo.name(i)));
            // babeld refuses to start over an existing pid file; one left by a killed
            // earlier run (every process of this lab was stopped before we got here).
            let _ = std::fs::remove_file(base.with_extension("pid"));
            let log = std::fs::File::create(base.with_extension("log"))?;
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
                .stderr(log)
                .spawn()
                .map_err(|e| LabError::Other(format!("starting babeld (apt-get install babeld): {e}")))?;
            children.push(child);
        }
        let mut babel = Babel { children };
        std::thread::sleep(std::time::Duration::from_millis(300));
        for (i, c) in babel.children.iter_mut().enumerate() {
            if let Ok(Some(status)) = c.try_wait() {
                let log = state_dir.join(format!("{tag}-{}.log", topo.name(i)));
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(LabError::Other(format!(
                    "babeld on {} exited at start ({status}): {}",
                    topo.name(i),
                    said.lines().last().unwrap_or("no output")
                )));
            }
        }
        Ok(babel)
    }
}

impl Drop for Babel {
    fn drop(&mut self) {
        // SIGTERM first: babeld then removes its routes and its pid file.
        for c in &self.children {
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
            }
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        for c in &mut self.children {
            while matches!(c.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
