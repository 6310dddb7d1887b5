//! Configuration: documented defaults embedded from `config/default.toml`, overridden
//! by a file, then by `X0__SECTION__KEY` environment variables. Every problem is
//! reported at once, before anything starts.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use x0_kafka::KafkaConfig;
use x0_schema::{ConfigErrors, ConfigLayers};
use x0_training::DetectorConfig;

/// The defaults, documented key by key.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// The stream job's configuration (`config/default.toml` documents every key).
pub struct Config {
    /// Where the incident history (Parquet) is written: a local path or file:// URL.
    pub data_dir: String,
    /// Brokers, the job's consumer group, topics, librdkafka options.
    pub kafka: KafkaConfig,
    /// Event-time windows and the clock checks of admission.
    pub window: WindowConfig,
    /// The feature SQL.
    pub features: FeaturesConfig,
    /// The statistical detector's thresholds.
    pub detector: DetectorConfig,
    /// The graph model served.
    pub model: ModelConfig,
    /// Root-cause analysis and incident confirmation.
    pub rca: RcaConfig,
    /// The planner's guardrails and repair verification.
    pub planner: PlannerConfig,
    /// The incident knowledge base.
    pub knowledge: KnowledgeConfig,
    /// The key files.
    pub keys: KeysConfig,
    /// The job's checkpoint (`run`).
    pub checkpoint: CheckpointConfig,
    /// The job's HTTP endpoint and readiness bounds.
    pub ops: OpsConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// The `[ops]` section: how an operator watches the job.
pub struct OpsConfig {
    /// Address of `/metrics`, `/healthz` and `/readyz`; empty: none.
    pub listen: String,
    /// Ready only at most this many telemetry messages behind the broker.
    pub ready_max_lag: u64,
    /// Ready only while the newest closed window ended at most this long ago.
    #[serde(with = "humantime_serde")]
    pub ready_max_delay: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// The `[window]` section.
pub struct WindowConfig {
    /// Tumbling window length.
    #[serde(with = "humantime_serde")]
    pub size: Duration,
    /// A window closes when the watermark (newest event time minus this) passes its end.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// A source (partition) this far behind the newest event time is idle and no
    /// longer holds the watermark back.
    #[serde(with = "humantime_serde")]
    pub idle_source_timeout: Duration,
    /// Rows further than this ahead of max(wall clock, watermark) are dead-lettered.
    #[serde(with = "humantime_serde")]
    pub max_future_skew: Duration,
    /// Rows older than this (wall clock) or this far behind the watermark are dead-lettered.
    #[serde(with = "humantime_serde")]
    pub max_event_age: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// The `[features]` section.
pub struct FeaturesConfig {
    /// The feature SQL file; empty: the built-in `sql/features.sql`.
    pub sql_file: String,
}

/// Where the graph model comes from (see `config/default.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// "builtin", a model registry directory, or "" for the statistical detector alone.
    pub registry: String,
    /// Record each window's model inputs in the history (`train --history`).
    pub record_inputs: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// The `[rca]` section.
pub struct RcaConfig {
    /// Consecutive anomalous windows before a soft symptom opens an incident.
    pub confirm_windows: u32,
    /// Windows an element must stay healthy before its incident resolves.
    pub clear_windows: u32,
    /// Probes each end of a link must have sent over those windows to prove it healthy.
    pub clear_min_probes: f64,
    /// The most probe loss (share) either end may see over them for the link to count healthy.
    pub clear_max_probe_loss: f64,
    /// A fault that comes back on an element within this long of its incident
    /// resolving reopens that incident.
    #[serde(with = "humantime_serde")]
    pub reopen_within: Duration,
    /// "builtin", a calibration JSON file, or "" for raw evidence scores.
    pub calibration: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// The `[planner]` section.
pub struct PlannerConfig {
    /// Act only on root causes at least this confident.
    pub min_confidence: f64,
    /// Healing commands expire this long after they are issued.
    #[serde(with = "humantime_serde")]
    pub command_ttl: Duration,
    /// Next hops per rerouted route: 1 = primary only, 2 (or more) = primary and a
    /// backup for kernel failover (a loop-free alternate where one exists).
    pub k_paths: usize,
    /// A rerouted element must be healthy this long before routes return to it.
    #[serde(with = "humantime_serde")]
    pub hold_down: Duration,
    /// The hold-down doubles each time the same fault returns, up to this.
    #[serde(with = "humantime_serde")]
    pub max_hold_down: Duration,
    /// At most this many changes of one (node, destination) route per minute.
    pub max_changes_per_route_per_minute: u32,
    /// Windows after a plan is applied over which it is verified; 0: never verified.
    pub verify_windows: u32,
    /// Packets per window the incident's links must have lost before acting for the
    /// repair to be judged.
    pub verify_min_lost: f64,
    /// A repair that cut that loss by less than this share is rolled back.
    pub verify_min_improvement: f64,
}

/// The incident knowledge base (see `config/default.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeConfig {
    /// Remember finished incidents and consult them.
    pub enabled: bool,
    /// A Qdrant server (gRPC URL); empty: the embedded shard in `path`.
    pub url: String,
    /// The collection (server) or shard's name.
    pub collection: String,
    /// The embedded shard's directory; empty: `<data_dir>/knowledge`.
    pub path: String,
    /// Cosine similarity at which a past incident counts as the same incident again.
    pub recall_similarity: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// The `[keys]` section.
pub struct KeysConfig {
    /// The job's ed25519 signing key file (hex).
    pub signing_key: String,
    /// The agents' verifying key file (hex).
    pub verifying_key: String,
    /// The fleet secret node keys derive from; set: telemetry and results must be
    /// authenticated.
    pub fleet_secret: String,
    /// Third-party producers' keys and nodes (TOML); needs `fleet_secret`.
    pub producers: String,
    /// The agent's own node key (read by the agent, not the job).
    pub node_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// The `[checkpoint]` section.
pub struct CheckpointConfig {
    /// `run` keeps a checkpoint and takes it up on restart.
    pub enabled: bool,
    /// Its directory; empty: `checkpoint/` in the job's history directory.
    pub dir: String,
    /// At most one checkpoint per this long, at a window boundary.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config::load(None, std::iter::empty()).expect("the embedded defaults are valid")
    }
}

impl Config {
    /// Defaults, then `file`, then `env` (pairs like `("X0__KAFKA__BROKERS", "k:9092")`).
    /// The `[agent]` section is the node agent's (`x0_agent::AgentConfig`): checked for
    /// unknown keys here too, so one file serves both, but not read.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigErrors> {
        let mut layers = ConfigLayers::load(DEFAULT_TOML, file, env);
        // Each section on its own, so one bad value does not hide the others; a broken
        // section is replaced by its default to let the semantic checks still run.
        macro_rules! sections {
            ($($field:ident),*) => {
                Config { $($field: layers.section(stringify!($field))),* }
            };
        }
        let config = sections!(
            data_dir, kafka, window, features, detector, model, rca, planner, knowledge, keys, checkpoint, ops
        );
        let more = config.validate();
        layers.finish(config, more)
    }

    /// Checks that need more than types.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.window.size.is_zero() {
            p.push("window.size must be positive".into());
        }
        if self.window.allowed_lateness > self.window.max_event_age {
            p.push("window.allowed_lateness exceeds window.max_event_age".into());
        }
        if !(0.0..=1.0).contains(&self.planner.min_confidence) {
            p.push(format!("planner.min_confidence {} is not in 0..1", self.planner.min_confidence));
        }
        if self.planner.k_paths < 1 {
            p.push("planner.k_paths must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.planner.verify_min_improvement) {
            p.push(format!("planner.verify_min_improvement {} is not in 0..1", self.planner.verify_min_improvement));
        }
        if !self.planner.verify_min_lost.is_finite() || self.planner.verify_min_lost < 0.0 {
            p.push(format!("planner.verify_min_lost {} must be zero or more", self.planner.verify_min_lost));
        }
        if self.planner.command_ttl.is_zero() {
            p.push("planner.command_ttl must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.knowledge.recall_similarity) {
            p.push(format!("knowledge.recall_similarity {} is not in 0..1", self.knowledge.recall_similarity));
        }
        if let Err(e) = crate::calibration::Calibration::configured(&self.rca.calibration) {
            p.push(e);
        }
        if !(0.0..=1.0).contains(&self.rca.clear_max_probe_loss) {
            p.push(format!("rca.clear_max_probe_loss {} is not in 0..1", self.rca.clear_max_probe_loss));
        }
        if !self.rca.clear_min_probes.is_finite() || self.rca.clear_min_probes < 0.0 {
            p.push(format!("rca.clear_min_probes {} must be zero or more", self.rca.clear_min_probes));
        }
        if self.planner.max_hold_down < self.planner.hold_down {
            p.push("planner.max_hold_down is shorter than planner.hold_down".into());
        }
        if self.rca.confirm_windows == 0 {
            p.push("rca.confirm_windows must be at least 1".into());
        }
        if !self.features.sql_file.is_empty() && !Path::new(&self.features.sql_file).is_file() {
            p.push(format!("features.sql_file {} does not exist", self.features.sql_file));
        }
        for (name, path) in [
            ("keys.signing_key", &self.keys.signing_key),
            ("keys.verifying_key", &self.keys.verifying_key),
            ("keys.fleet_secret", &self.keys.fleet_secret),
            ("keys.producers", &self.keys.producers),
        ] {
            if !path.is_empty() && !Path::new(path).is_file() {
                p.push(format!("{name} {path} does not exist"));
            }
        }
        if let Err(e) = crate::trust::Trust::from_files(&self.keys.fleet_secret, &self.keys.producers) {
            p.push(e);
        }
        p
    }

    /// The feature SQL to run: `features.sql_file`, or the built-in one when empty.
    pub fn feature_sql(&self) -> std::io::Result<String> {
        match self.features.sql_file.as_str() {
            "" => Ok(crate::features::BUILTIN_FEATURES_SQL.to_string()),
            path => std::fs::read_to_string(path),
        }
    }

    /// The history directory (`data_dir` without a `file://` scheme).
    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(self.data_dir.strip_prefix("file://").unwrap_or(&self.data_dir))
    }

    /// The checkpoint's directory: `checkpoint.dir`, or `checkpoint/` in the job's
    /// history directory.
    pub fn checkpoint_dir(&self, data_dir: &Path) -> PathBuf {
        match self.checkpoint.dir.as_str() {
            "" => data_dir.join("checkpoint"),
            p => PathBuf::from(p),
        }
    }

    /// The embedded knowledge base's directory: `knowledge.path`, or `knowledge/` in
    /// the job's history directory.
    pub fn knowledge_dir(&self, data_dir: &Path) -> PathBuf {
        match self.knowledge.path.as_str() {
            "" => data_dir.join("knowledge"),
            p => PathBuf::from(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression guard: the structs' own `Default`s (used by tests, benchmarks and
    /// library callers) must say what the documented file says.
    #[test]
    fn every_default_is_the_embedded_default_toml() {
        let c = Config::default();
        assert_eq!(c.kafka, KafkaConfig::default(), "KafkaConfig::default vs [kafka]");
        assert_eq!(c.kafka.topics, x0_schema::Topics::default(), "Topics::default vs [kafka.topics]");
        assert_eq!(c.detector, DetectorConfig::default(), "DetectorConfig::default vs [detector]");
        let layers = ConfigLayers::load(DEFAULT_TOML, None, std::iter::empty());
        let sections: std::collections::BTreeSet<&str> = layers.defaults.keys().map(String::as_str).collect();
        let read = [
            "data_dir",
            "kafka",
            "window",
            "features",
            "detector",
            "model",
            "rca",
            "planner",
            "knowledge",
            "keys",
            "checkpoint",
            "ops",
        ];
        // [agent] is the node agent's (x0_agent::AgentConfig), read there.
        let known: std::collections::BTreeSet<&str> = read.into_iter().chain(["agent"]).collect();
        assert_eq!(sections, known, "a section nobody reads, or one missing");
    }

    #[test]
    fn defaults_load() {
        let c = Config::default();
        assert_eq!(c.window.size, Duration::from_millis(500));
        assert_eq!(c.kafka.topics.telemetry, "x0.telemetry");
    }

    #[test]
    fn file_then_env_override() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[window]\nsize = \"1s\"\n[kafka]\nbrokers = \"a:1\"\n[kafka.options]\n\"security.protocol\" = \"ssl\"\n",
        )
        .unwrap();
        let env =
            [("X0__KAFKA__BROKERS".to_string(), "b:2".to_string()), ("X0__DETECTOR__Z_THRESHOLD".into(), "4.5".into())];
        let c = Config::load(Some(&f), env).unwrap();
        assert_eq!(c.window.size, Duration::from_secs(1));
        assert_eq!(c.kafka.brokers, "b:2");
        assert_eq!(c.detector.z_threshold, 4.5);
        assert_eq!(c.kafka.options["security.protocol"], "ssl");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "colour = 1\n[window]\nsise = \"1s\"\nsize = \"fast\"\n[planner]\nmin_confidence = 3.0\n")
            .unwrap();
        let env = [("X0__NOPE".to_string(), "1".to_string())];
        let err = Config::load(Some(&f), env).unwrap_err();
        let text = err.to_string();
        // unknown colour, unknown window.sise, unknown env key, window.size type, min_confidence range
        assert_eq!(err.0.len(), 5, "{text}");
        for needle in ["colour", "window.sise", "X0__NOPE", "window:", "min_confidence"] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }
}
