//! `lab`: a scenario's mesh on real kernels (root).

use crate::args::LabFaultArg;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use x0_harness::lab_run::{default_run_dir, run_lab, LabOptions, Routing};
use x0_harness::report;
use x0_lab::kernel::faults::{self, Injection, Injectors};
use x0_lab::kernel::netlab::{down, NetLab};
use x0_schema::{Element, FaultKind, Scenario, Topology};

#[derive(clap::Subcommand)]
pub(crate) enum LabAction {
    /// Build the namespaces and veth links and leave them up (inspect with `ip netns`).
    Up {
        /// The scenario whose topology to build.
        #[arg(long)]
        scenario: PathBuf,
        /// Prefix of the namespaces' names.
        #[arg(long, default_value = "x0lab-")]
        prefix: String,
    },
    /// Build the mesh, start the routing (our agents + job, or babeld), run the
    /// scenario's faults `--trials` times and measure recovery from probe flows.
    Run {
        /// The scenario to run.
        #[arg(long)]
        scenario: PathBuf,
        /// Write the lab summary (JSON) here.
        #[arg(long)]
        summary_json: Option<PathBuf>,
        /// Who routes the mesh.
        #[arg(long, value_enum, default_value_t = Routing::X0)]
        routing: Routing,
        /// How many times the scenario's faults are injected.
        #[arg(long, default_value_t = 1)]
        trials: usize,
        /// Prefix of the namespaces' names.
        #[arg(long, default_value = "x0lab-")]
        prefix: String,
        /// Agents use the kernel's interface counters instead of eBPF.
        #[arg(long)]
        no_ebpf: bool,
        /// The agent binary to run on each node (default: `x0-agent` beside this
        /// binary, else this binary as `x0tta6bl4 agent`).
        #[arg(long)]
        agent_exe: Option<PathBuf>,
        /// In each trial, this long after its first fault began (e.g. `4s`): SIGKILL
        /// the agent of the node holding most of the job's overrides, flush its routes
        /// (as a reboot would), start it again; reports when the routes were back and
        /// whether every kernel's table then equals what the job wants.
        #[arg(long, value_parser = humantime::parse_duration)]
        kill_agent: Option<std::time::Duration>,
    },
    /// Inject (or with --off revert) one fault by hand in a lab that is up.
    Fault {
        /// What fails.
        #[arg(long, value_enum)]
        kind: LabFaultArg,
        /// "a-b" for a link, a node name for a node.
        #[arg(long)]
        target: String,
        /// The scenario the lab was brought up with.
        #[arg(long)]
        scenario: PathBuf,
        /// Share of packets dropped (link-loss).
        #[arg(long, default_value_t = 0.3)]
        loss: f64,
        /// Revert the fault instead.
        #[arg(long)]
        off: bool,
        /// Prefix of the namespaces' names.
        #[arg(long, default_value = "x0lab-")]
        prefix: String,
    },
    /// Stop every lab process and delete the lab's namespaces (also after a crash).
    Down {
        /// Prefix of the namespaces' names.
        #[arg(long, default_value = "x0lab-")]
        prefix: String,
    },
}

pub(crate) async fn lab(action: LabAction, config: Option<&Path>) -> Result<()> {
    match action {
        LabAction::Up { scenario, prefix } => {
            let topo = Topology::generate(&Scenario::from_file(&scenario)?.topology)?;
            let lab = NetLab::up(&topo, &prefix)?;
            let dir = default_run_dir(&prefix);
            std::fs::create_dir_all(&dir)?;
            for net in &lab.networks {
                std::fs::write(dir.join(format!("{}.json", net.node)), net.to_json())?;
            }
            println!("node network files (for `x0tta6bl4 agent --network`) in {}", dir.display());
            println!(
                "{} namespaces up: {} … (tear down with `x0tta6bl4 lab down --prefix {prefix}`)",
                lab.namespaces.len(),
                lab.namespaces[0]
            );
        }
        LabAction::Down { prefix } => println!("removed {} namespaces", down(&prefix)?),
        LabAction::Fault { kind, target, scenario, loss, off, prefix } => {
            let topo = Topology::generate(&Scenario::from_file(&scenario)?.topology)?;
            let lab = NetLab { prefix, namespaces: vec![], networks: vec![] };
            let kind = FaultKind::from(kind);
            let element = match target.split_once('-') {
                Some((a, b)) => Element::link(a, b),
                None => Element::node(&target),
            };
            let injection = Injection { kind, loss, direction: Default::default(), on: !off };
            faults::apply(&lab, &topo, &mut Injectors::default(), &element, injection)?;
            if kind == FaultKind::LinkLoss && !off {
                println!("loss injected; it lasts while this command runs: Ctrl-C to stop");
                tokio::signal::ctrl_c().await?;
            }
        }
        LabAction::Run { scenario, summary_json, routing, trials, prefix, no_ebpf, agent_exe, kill_agent } => {
            let opts = LabOptions {
                scenario: Scenario::from_file(&scenario)?,
                routing,
                trials: trials.max(1),
                run_dir: default_run_dir(&prefix),
                prefix,
                config: x0_pipeline::Config::load(config, std::env::vars())?,
                no_ebpf,
                agent_exe,
                kill_agent,
            };
            let summary = tokio::select! {
                s = run_lab(opts) => s?,
                _ = tokio::signal::ctrl_c() => {
                    // run_lab's teardown runs when its future is dropped here.
                    bail!("interrupted; lab torn down")
                }
            };
            print!("{}", report::lab_table(&summary));
            let json = serde_json::to_string_pretty(&summary)?;
            if let Some(path) = summary_json {
                std::fs::write(&path, &json).with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(())
}
