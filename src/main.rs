//! `x0tta6bl4`: self-healing for mesh networks. One binary, one subcommand per role;
//! this crate only parses flags and calls the library crates.

mod args;
mod config_cmd;
mod history_cmd;
mod job_cmd;
mod lab_cmd;
mod model_cmd;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use x0_agent::{agent_main, agent_runtime, AgentArgs};
use x0_ops::{init_logging, LogFormat};
use x0_pipeline::Config;

#[derive(Parser)]
#[command(
    name = "x0tta6bl4",
    version = x0_schema::CONTRACT_VERSION,
    about = "Self-healing for mesh networks: kernel telemetry -> detection -> root cause -> signed reroute"
)]
struct Cli {
    /// Configuration file (TOML); defaults are built in, see `x0tta6bl4 config show`.
    #[arg(long, global = true, env = "X0_CONFIG")]
    config: Option<PathBuf>,
    /// Log lines on stderr: text, or JSON objects with stable field names.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "X0_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario end to end in one process: embedded broker, simulated mesh,
    /// the real stream job and actuators; print what was found and fixed.
    Demo(job_cmd::DemoArgs),
    /// Run the stream job against the configured Kafka cluster.
    Run(job_cmd::RunArgs),
    /// Start the embedded dev broker (librdkafka mock cluster) and print its address.
    Broker {
        /// Partitions per topic.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
    },
    /// Run a simulated mesh (telemetry out, actuators in) against a broker; or, with
    /// --scenarios and --out, write labelled windows (Parquet) for training.
    Simulate(job_cmd::SimulateArgs),
    /// Train the GraphSAGE detector on datasets, evaluate it on a held-out dataset
    /// against the baselines, and write a versioned model and report to a registry.
    Train(model_cmd::TrainArgs),
    /// Incidents: operators' verdicts that feed the next training.
    Incident {
        #[command(subcommand)]
        action: history_cmd::IncidentAction,
    },
    /// Evaluate a part of the pipeline on scenarios (see BENCHMARKS.md).
    Eval {
        #[command(subcommand)]
        action: model_cmd::EvalAction,
    },
    /// The incident knowledge base: what the job remembers of finished incidents.
    Kb {
        #[command(subcommand)]
        action: history_cmd::KbAction,
    },
    /// Query the incident history with SQL (tables: incidents, commands, features, labels).
    Sql(history_cmd::SqlArgs),
    /// Inspect configuration.
    Config {
        #[command(subcommand)]
        action: config_cmd::ConfigAction,
    },
    /// Manage the keys: the ed25519 pair that signs healing commands, the fleet secret
    /// and the node and producer keys that authenticate telemetry and results.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// The node agent: kernel probes and link probes out, signed commands in (netlink).
    /// The same as the lean `x0-agent` binary.
    Agent(AgentArgs),
    /// The kernel lab: a scenario's mesh as network namespaces with real agents (root).
    Lab {
        #[command(subcommand)]
        action: lab_cmd::LabAction,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Write signing.key and verifying.key into a directory.
    Generate {
        /// The directory (created if missing; an existing signing key is kept).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a fresh fleet secret (the job's `keys.fleet_secret`; mode 0600).
    Fleet {
        /// The file to write (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write one node's key, derived from the fleet secret (the agent's `keys.node_key`).
    Node {
        /// The fleet secret file.
        #[arg(long)]
        fleet_secret: PathBuf,
        /// The node id, exactly as in the inventory.
        #[arg(long)]
        node: String,
        /// The file to write (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a fresh key for a third-party producer and print its `keys.producers` entry.
    Producer {
        /// The producer's id (its `x0-producer` header).
        #[arg(long)]
        id: String,
        /// The file to write (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
}

/// The configuration: defaults, then the file, then `X0__…` environment variables.
fn load_config(file: Option<&Path>) -> Result<Config> {
    Ok(Config::load(file, std::env::vars())?)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // Before any thread exists: the roles that score windows keep freed memory.
    if matches!(cli.command, Command::Demo { .. } | Command::Run { .. }) {
        x0_pipeline::keep_freed_memory();
    }
    let runtime = match cli.command {
        Command::Agent(_) => agent_runtime()?,
        _ => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    init_logging(cli.log_format);
    let config = cli.config.as_deref();
    match cli.command {
        Command::Demo(args) => job_cmd::demo(args, load_config(config)?).await,
        Command::Run(args) => job_cmd::run(args, load_config(config)?).await,
        Command::Broker { partitions } => job_cmd::broker(partitions, load_config(config)?).await,
        Command::Simulate(args) => job_cmd::simulate(args, load_config(config)?).await,
        Command::Train(args) => model_cmd::train(args).await,
        Command::Eval { action } => model_cmd::eval(action, load_config(config)?).await,
        Command::Incident { action } => history_cmd::incident(action, load_config(config)?).await,
        Command::Kb { action } => history_cmd::kb(action, load_config(config)?),
        Command::Sql(args) => history_cmd::sql(args, load_config(config)?).await,
        Command::Agent(args) => agent_main(args, config).await,
        Command::Lab { action } => lab_cmd::lab(action, config).await,
        Command::Config { action } => config_cmd::config(action),
        Command::Keys { action: KeysAction::Fleet { out } } => {
            x0_schema::generate_fleet_secret(&out)?;
            println!("fleet secret {} (keep it on the stream job only: keys.fleet_secret)", out.display());
            Ok(())
        }
        Command::Keys { action: KeysAction::Node { fleet_secret, node, out } } => {
            let key = x0_schema::read_fleet_secret(&fleet_secret)?.node_key(&node);
            x0_schema::write_message_key(&out, &key)?;
            println!("node key of {node} {} (give it to that node's agent only: keys.node_key)", out.display());
            Ok(())
        }
        Command::Keys { action: KeysAction::Producer { id, out } } => {
            let key = x0_schema::MessageKey::generate();
            x0_schema::write_message_key(&out, &key)?;
            println!(
                "producer key {} ; its entry in the job's keys.producers file:\n[{id}]\nkey = \"{}\"\nnodes = [\"*\"]  # narrow to the nodes it reports on",
                out.display(),
                key.to_hex()
            );
            Ok(())
        }
        Command::Keys { action: KeysAction::Generate { out } } => {
            let (sk, vk) = x0_schema::generate_key_files(&out)?;
            println!(
                "signing key   {} (keep it on the stream job only)\nverifying key {} (give it to every agent)",
                sk.display(),
                vk.display()
            );
            Ok(())
        }
    }
}
