//! The agent's command line, shared by `x0-agent` and `x0tta6bl4 agent`. Flags
//! override the configuration's `[agent]` section.

use crate::config::{AgentConfig, Encoding};
use crate::node_agent::{run_agent, AgentOptions};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// The node's own key its telemetry and results are signed with (overrides
    /// keys.node_key; `x0tta6bl4 keys node` writes it).
    #[arg(long)]
    pub node_key: Option<PathBuf>,
    /// Sampling interval (overrides agent.telemetry_interval).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub telemetry_interval: Option<Duration>,
    /// Link probe interval (overrides agent.probe_interval).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub probe_interval: Option<Duration>,
    /// Link probe timeout (overrides agent.probe_timeout).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub probe_timeout: Option<Duration>,
    /// Telemetry encoding on the wire (overrides agent.encoding).
    #[arg(long, value_enum)]
    pub encoding: Option<Encoding>,
    /// Use the kernel's interface counters, not eBPF (agent.ebpf = false).
    #[arg(long)]
    pub no_ebpf: bool,
    /// Where the actuator journal lives (overrides agent.state_dir).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Serve /metrics, /healthz and /readyz on this address (overrides agent.listen).
    #[arg(long)]
    pub listen: Option<String>,
    /// Marks a process the lab started (so `lab down` finds it); exits with its parent.
    #[arg(long, hide = true)]
    pub lab_tag: Option<String>,
}

/// Runs the agent until SIGINT or SIGTERM (or, for a lab agent, its parent's exit).
pub async fn agent_main(args: AgentArgs, config_file: Option<&Path>) -> Result<()> {
    let mut config = AgentConfig::load(config_file, std::env::vars())?;
    if let Some(b) = args.brokers {
        config.kafka.brokers = b;
    }
    let s = &mut config.agent;
    s.telemetry_interval = args.telemetry_interval.unwrap_or(s.telemetry_interval);
    s.probe_interval = args.probe_interval.unwrap_or(s.probe_interval);
    s.probe_timeout = args.probe_timeout.unwrap_or(s.probe_timeout);
    s.encoding = args.encoding.unwrap_or(s.encoding);
    s.ebpf &= !args.no_ebpf;
    if let Some(d) = args.state_dir {
        s.state_dir = d;
    }
    if let Some(l) = args.listen {
        s.listen = l;
    }
    let file = &args.network;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let network = x0_actuator::NodeNetwork::from_json(&bytes).with_context(|| format!("parsing {}", file.display()))?;
    if let Some(n) = args.node.filter(|n| *n != network.node) {
        bail!("--node {n} but the network file describes {}", network.node);
    }
    let vk_path = args.verify_key.unwrap_or_else(|| PathBuf::from(&config.verifying_key));
    if vk_path.as_os_str().is_empty() {
        bail!("no verifying key: pass --verify-key or set keys.verifying_key");
    }
    let verify_key = x0_schema::read_verifying_key(&vk_path)?;
    let signer = match args.node_key.unwrap_or_else(|| PathBuf::from(&config.node_key)) {
        p if p.as_os_str().is_empty() => x0_kafka::Signer::Unsigned,
        p => x0_kafka::Signer::Node(x0_schema::read_message_key(&p)?),
    };
    let node = network.node.clone();
    if let Some(id) = config.kafka.spiffe.check_identity(x0_kafka::Role::Agent { node: &node })? {
        tracing::info!(node = %node, spiffe_id = %id, "connecting to Kafka with this SVID");
    }
    let opts = AgentOptions {
        network,
        netns: args.netns,
        kafka: config.kafka,
        verify_key,
        signer,
        settings: config.agent,
        exit_with_parent: args.lab_tag.is_some(),
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    // A rotated SVID stops it cleanly too (librdkafka reads the files only at start):
    // it exits for its supervisor to start it on the new ones.
    let spiffe = opts.kafka.spiffe.clone();
    let signals = tokio::spawn(async move {
        let rotated = x0_ops::stop_requested(spiffe.rotated(x0_kafka::SVID_CHECK_EVERY)).await;
        let _ = tx.send(true);
        rotated
    });
    let report = run_agent(opts, rx).await;
    let rotated = if signals.is_finished() {
        signals.await.unwrap_or(false)
    } else {
        signals.abort();
        false
    };
    let report = report?;
    if x0_ops::json_logs() {
        tracing::info!(
            node = %node,
            batches = report.batches,
            dropped = report.telemetry_dropped,
            commands = report.commands,
            applied = report.applied,
            "agent stopped"
        );
    } else {
        eprintln!(
            "agent stopped: {} telemetry batches ({} dropped), {} commands ({} applied)",
            report.batches, report.telemetry_dropped, report.commands, report.applied
        );
    }
    if rotated {
        tracing::warn!(node = %node, exit = x0_kafka::EXIT_SVID_ROTATED, "SVID files changed: exiting to restart on them");
        std::process::exit(x0_kafka::EXIT_SVID_ROTATED);
    }
    Ok(())
}

/// An agent's runtime: its async half only relays between Kafka and its data-plane
/// thread, and one thread does that with fewer wake-ups than a worker pool (its cost
/// is paid on every node).
pub fn agent_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}
