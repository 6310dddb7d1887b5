//! `x0-agent`: the node agent alone (`x0tta6bl4 agent` in a binary that links only
//! what an agent runs).

use clap::Parser;
use std::path::PathBuf;
use x0_agent::{agent_main, agent_runtime, AgentArgs};
use x0_ops::{init_logging, LogFormat};

/// The x0tta6bl4 node agent: kernel probes and link probes out, signed commands in (netlink).
#[derive(Parser)]
#[command(version = x0_schema::CONTRACT_VERSION)]
struct Cli {
    /// Configuration file (TOML); defaults are built in.
    #[arg(long, env = "X0_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Log lines on stderr: text, or JSON objects with stable field names.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "X0_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(flatten)]
    agent: AgentArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    agent_runtime()?.block_on(agent_main(cli.agent, cli.config.as_deref()))
}
