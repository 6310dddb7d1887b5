//! The agent's command line, shared by `x0tta6bl4 agent` and the lean `x0-agent`
//! binary. Why a second binary: an agent runs on every node, and the full binary
//! carries the stream job, the model and the knowledge base; the dynamic loader maps
//! and relocates all of it at start (about 20 MB of an agent's resident memory). The
//! lean one links only what an agent runs.

use crate::agent::{run_agent, AgentOptions};
use crate::keys;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use x0_pipeline::Config;
use x0_schema::ContentType;

/// What `agent` takes on the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// This node's network file (JSON: neighbours, addresses, baseline routes).
    #[arg(long)]
    pub network: PathBuf,
    /// Node name; must match the network file.
    #[arg(long)]
    pub node: Option<String>,
    /// Enter this network namespace for probes and routes (lab nodes).
    #[arg(long)]
    pub netns: Option<String>,
    /// Kafka bootstrap servers (overrides kafka.brokers).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Public key healing commands must be signed with (overrides keys.verifying_key).
    #[arg(long)]
    pub verify_key: Option<PathBuf>,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "100ms")]
    pub telemetry_interval: std::time::Duration,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "100ms")]
    pub probe_interval: std::time::Duration,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "200ms")]
    pub probe_timeout: std::time::Duration,
    /// Telemetry encoding on the wire: json or arrow. JSON by default: an agent sends
    /// one node's few samples per message, where Arrow IPC's per-message schema costs
    /// more to write, send and read than it saves (BENCHMARKS.md, sections 3 and 4).
    #[arg(long, default_value = "json")]
    pub encoding: String,
    /// Use the kernel's interface counters, not eBPF.
    #[arg(long)]
    pub no_ebpf: bool,
    /// Marks a process the lab started (so `lab down` finds it); exits with its parent.
    #[arg(long, hide = true)]
    pub lab_tag: Option<String>,
}

/// A telemetry encoding by name.
pub fn encoding(s: &str) -> Result<ContentType> {
    match s {
        "arrow" => Ok(ContentType::Arrow),
        "json" => Ok(ContentType::JsonLines),
        other => bail!("unknown encoding {other:?} (arrow, json)"),
    }
}

/// Runs the agent until SIGINT or SIGTERM (or, for a lab agent, its parent's exit).
pub async fn agent_main(args: AgentArgs, config_file: Option<&Path>) -> Result<()> {
    let mut config = Config::load(config_file, std::env::vars())?;
    if let Some(b) = args.brokers {
        config.kafka.brokers = b;
    }
    let file = &args.network;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let network = x0_actuator::NodeNetwork::from_json(&bytes).with_context(|| format!("parsing {}", file.display()))?;
    if let Some(n) = args.node.filter(|n| *n != network.node) {
        bail!("--node {n} but the network file describes {}", network.node);
    }
    let vk_path = args.verify_key.unwrap_or_else(|| PathBuf::from(&config.keys.verifying_key));
    let verify_key = keys::read_verifying_key(&vk_path)?;
    let opts = AgentOptions {
        network,
        netns: args.netns,
        kafka: config.kafka.clone(),
        verify_key,
        telemetry_interval: args.telemetry_interval,
        probe_interval: args.probe_interval,
        probe_timeout: args.probe_timeout,
        encoding: encoding(&args.encoding)?,
        no_ebpf: args.no_ebpf,
        exit_with_parent: args.lab_tag.is_some(),
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        let _ = tx.send(true);
    });
    let report = run_agent(opts, rx).await?;
    eprintln!(
        "agent stopped: {} telemetry batches, {} commands ({} applied)",
        report.batches, report.commands, report.applied
    );
    Ok(())
}

/// An agent's runtime: its async half only relays between Kafka and its data-plane
/// thread, and one thread does that with fewer wake-ups than a worker pool (its cost
/// is paid on every node).
pub fn agent_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// The default log filter of every binary.
const LOG_FILTER: &str = "warn,netlink_packet_route=error,qdrant_edge=error";

/// Logs to stderr, filtered by `RUST_LOG`, else by `LOG_FILTER`.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            // qdrant-edge warns about process-wide flags its public API cannot set.
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| LOG_FILTER.into()),
        )
        .with_writer(std::io::stderr)
        .init();
}
