//! `config`: check a file, show the defaults, list the regions of an inventory.

use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use x0_pipeline::Config;
use x0_schema::{Scenario, Topology};

#[derive(Subcommand)]
pub(crate) enum ConfigAction {
    /// Check a configuration file (plus X0__ environment overrides); report every problem.
    Check {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the built-in defaults, documented.
    Show,
    /// The regions of an inventory split among job instances (`[topology] regions`):
    /// per node, its region and the telemetry partitions its agent sends to
    /// (`agent.telemetry_partitions`).
    Regions {
        /// A scenario file whose `[topology]` is the mesh inventory.
        #[arg(long)]
        topology: PathBuf,
        /// Partitions of the telemetry topic.
        #[arg(long)]
        partitions: usize,
    },
}

pub(crate) fn config(action: ConfigAction) -> Result<()> {
    match action {
        ConfigAction::Show => print!("{}", x0_pipeline::DEFAULT_TOML),
        ConfigAction::Check { file } => match Config::load(Some(&file), std::env::vars()) {
            Ok(_) => println!("{}: ok", file.display()),
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                std::process::exit(1);
            }
        },
        ConfigAction::Regions { topology, partitions } => {
            let topo = Topology::generate(&Scenario::from_file(&topology)?.topology)?;
            let regions = topo.regions();
            println!("# node region telemetry_partitions ({} regions, {partitions} partitions)", regions.count());
            for v in 0..topo.len() {
                println!("{} {} {:?}", topo.name(v), regions.of(v), regions.partitions_of(v, partitions));
            }
        }
    }
    Ok(())
}
