//! The agent's configuration: the `[kafka]`, `[keys]` and `[agent]` sections of the
//! same layered file the stream job reads (defaults, then a file, then `X0__…`
//! environment variables); the job's own sections are checked for unknown keys and
//! otherwise ignored, so one file can serve a whole deployment.

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use x0_kafka::KafkaConfig;
use x0_schema::{ConfigErrors, ConfigLayers, ContentType};

/// The defaults of every process, documented key by key (`config/default.toml`).
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Everything the agent reads from configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// Brokers, topics and librdkafka options.
    pub kafka: KafkaConfig,
    /// The file holding the public key commands must be signed with (`keys.verifying_key`).
    pub verifying_key: String,
    /// The node's own key file its telemetry and results are signed with
    /// (`keys.node_key`); empty: they go unsigned.
    pub node_key: String,
    /// The `[agent]` section.
    pub agent: AgentSettings,
}

/// The `[agent]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// Counters are sampled on the wall clock's multiples of this interval.
    #[serde(with = "humantime_serde")]
    pub telemetry_interval: Duration,
    /// One UDP probe per neighbour per interval.
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
    /// A probe unanswered this long is lost.
    #[serde(with = "humantime_serde")]
    pub probe_timeout: Duration,
    /// Telemetry encoding on the wire.
    pub encoding: Encoding,
    /// Load the eBPF probes (false: the kernel's interface counters).
    pub ebpf: bool,
    /// Where the actuator journal lives (`<node>.journal.json`).
    pub state_dir: std::path::PathBuf,
    /// Address of the agent's `/metrics`, `/healthz`, `/readyz`; empty: none.
    pub listen: String,
    /// On a mesh split into regions, the telemetry partitions this node's batches go to
    /// (`x0tta6bl4 config regions` lists them per node); empty: keyed by node, as Kafka
    /// hashes it.
    #[serde(default)]
    pub telemetry_partitions: Vec<i32>,
}

impl AgentSettings {
    /// The actuator journal of `node`.
    pub fn journal(&self, node: &str) -> std::path::PathBuf {
        self.state_dir.join(format!("{node}.journal.json"))
    }
}

/// A telemetry encoding on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// JSON lines, one sample per line.
    Json,
    /// An Arrow IPC stream.
    Arrow,
    /// The compact framing (`application/vnd.x0tta6bl4.telemetry.v1`).
    Binary,
}

impl From<Encoding> for ContentType {
    fn from(e: Encoding) -> Self {
        match e {
            Encoding::Json => ContentType::JsonLines,
            Encoding::Arrow => ContentType::Arrow,
            Encoding::Binary => ContentType::Binary,
        }
    }
}

#[derive(Deserialize)]
struct Keys {
    verifying_key: String,
    node_key: String,
    // The job's; present in the shared file.
    #[allow(dead_code)]
    signing_key: String,
    #[allow(dead_code)]
    fleet_secret: String,
    #[allow(dead_code)]
    producers: String,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig::load(None, std::iter::empty()).expect("the embedded defaults are valid")
    }
}

impl AgentConfig {
    /// Defaults, then `file`, then `env` (pairs like `("X0__AGENT__EBPF", "false")`);
    /// every problem at once.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigErrors> {
        let mut layers = ConfigLayers::load(DEFAULT_TOML, file, env);
        let kafka = layers.section("kafka");
        let keys: Keys = layers.section("keys");
        let agent: AgentSettings = layers.section("agent");
        let mut more = Vec::new();
        if agent.telemetry_interval.is_zero() || agent.probe_interval.is_zero() {
            more.push("agent.telemetry_interval and agent.probe_interval must be positive".into());
        }
        for (name, path) in [("keys.verifying_key", &keys.verifying_key), ("keys.node_key", &keys.node_key)] {
            if !path.is_empty() && !Path::new(path).is_file() {
                more.push(format!("{name} {path} does not exist"));
            }
        }
        layers.finish(AgentConfig { kafka, verifying_key: keys.verifying_key, node_key: keys.node_key, agent }, more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = AgentConfig::default();
        assert_eq!(c.agent.telemetry_interval, Duration::from_millis(100));
        assert_eq!(c.agent.probe_timeout, Duration::from_millis(200));
        assert_eq!(c.agent.encoding, Encoding::Binary);
        assert!(c.agent.ebpf);
        assert_eq!(c.agent.journal("n1"), Path::new("/var/lib/x0tta6bl4/agent/n1.journal.json"));
        assert_eq!(c.kafka.topics.commands, "x0.commands");
    }

    #[test]
    fn one_file_serves_job_and_agent_and_every_problem_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[window]\nsize = \"1s\"\n[agent]\nencoding = \"xml\"\nprobe_timeot = \"1s\"\n[kafka]\nbrokers = \"a:1\"\n",
        )
        .unwrap();
        let env = [("X0__AGENT__EBPF".to_string(), "maybe".to_string())];
        let problems = AgentConfig::load(Some(&f), env).unwrap_err();
        let text = problems.to_string();
        assert_eq!(problems.0.len(), 2, "{text}");
        assert!(text.contains("agent.probe_timeot"), "{text}");
        assert!(text.contains("agent:"), "{text}");

        std::fs::write(&f, "[window]\nsize = \"1s\"\n[agent]\nencoding = \"arrow\"\n[kafka]\nbrokers = \"a:1\"\n")
            .unwrap();
        let c = AgentConfig::load(Some(&f), [("X0__AGENT__EBPF".to_string(), "false".to_string())]).unwrap();
        assert_eq!((c.agent.encoding, c.agent.ebpf, c.kafka.brokers.as_str()), (Encoding::Arrow, false, "a:1"));
    }
}
