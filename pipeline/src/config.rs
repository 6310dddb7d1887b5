//! Configuration: documented defaults embedded from `config/default.toml`, overridden
//! by a file, then by `X0__SECTION__KEY` environment variables. Every problem is
//! reported at once, before anything starts.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;
use x0_kafka::KafkaConfig;
use x0_training::DetectorConfig;

/// The defaults, documented key by key.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");
const ENV_PREFIX: &str = "X0__";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data_dir: String,
    pub kafka: KafkaConfig,
    pub window: WindowConfig,
    pub features: FeaturesConfig,
    pub detector: DetectorConfig,
    pub model: ModelConfig,
    pub rca: RcaConfig,
    pub planner: PlannerConfig,
    pub knowledge: KnowledgeConfig,
    pub keys: KeysConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    #[serde(with = "humantime_serde")]
    pub size: Duration,
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// A source (partition) this far behind the newest event time is idle and no
    /// longer holds the watermark back.
    #[serde(with = "humantime_serde")]
    pub idle_source_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub max_future_skew: Duration,
    #[serde(with = "humantime_serde")]
    pub max_event_age: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesConfig {
    pub sql_file: String,
}

/// Where the graph model comes from (see `config/default.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub registry: String,
    /// Record each window's model inputs in the history (`train --history`).
    pub record_inputs: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RcaConfig {
    pub confirm_windows: u32,
    pub clear_windows: u32,
    /// "builtin", a calibration JSON file, or "" for raw evidence scores.
    pub calibration: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannerConfig {
    pub min_confidence: f64,
    #[serde(with = "humantime_serde")]
    pub command_ttl: Duration,
    pub k_paths: usize,
    #[serde(with = "humantime_serde")]
    pub hold_down: Duration,
    pub max_route_changes_per_minute: u32,
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
    pub enabled: bool,
    /// A Qdrant server (gRPC URL); empty: the embedded shard in `path`.
    pub url: String,
    pub collection: String,
    /// The embedded shard's directory; empty: `<data_dir>/knowledge`.
    pub path: String,
    /// Cosine similarity at which a past incident counts as the same incident again.
    pub recall_similarity: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    pub signing_key: String,
    pub verifying_key: String,
}

/// Everything wrong with a configuration.
#[derive(Debug, Error)]
#[error("configuration has {} problem(s):\n  - {}", .0.len(), .0.join("\n  - "))]
pub struct ConfigErrors(pub Vec<String>);

impl Default for Config {
    fn default() -> Self {
        Config::load(None, std::iter::empty()).expect("the embedded defaults are valid")
    }
}

impl Config {
    /// Defaults, then `file`, then `env` (pairs like `("X0__KAFKA__BROKERS", "k:9092")`).
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigErrors> {
        let mut problems = Vec::new();
        let mut merged: toml::Table = toml::from_str(DEFAULT_TOML).expect("default.toml parses");
        let defaults = merged.clone();
        if let Some(path) = file {
            match std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|t| toml::from_str::<toml::Table>(&t).map_err(|e| e.to_string()))
            {
                Ok(user) => {
                    unknown_keys(&user, &defaults, "", &mut problems);
                    merge(&mut merged, user);
                }
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            }
        }
        for (key, value) in env {
            let Some(rest) = key.strip_prefix(ENV_PREFIX) else { continue };
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(toml::Value::String(value.clone()));
            let mut overlay = toml::Table::new();
            let mut slot = &mut overlay;
            for p in &path[..path.len() - 1] {
                slot = slot
                    .entry(p.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .expect("fresh table");
            }
            slot.insert(path[path.len() - 1].clone(), parsed);
            let before = problems.len();
            unknown_keys(&overlay, &defaults, "", &mut problems);
            for p in &mut problems[before..] {
                *p = format!("{p} (from environment variable {key})");
            }
            merge(&mut merged, overlay);
        }
        // Unknown keys are reported above; drop them so serde reports what else is wrong.
        prune(&mut merged, &defaults, "");
        // Each section on its own, so one bad value does not hide the others; a broken
        // section is replaced by its default to let the semantic checks still run.
        let mut config: Config = toml::Value::Table(defaults.clone()).try_into().expect("defaults deserialise");
        macro_rules! section {
            ($field:ident) => {
                if let Some(v) = merged.get(stringify!($field)).cloned() {
                    match v.try_into() {
                        Ok(parsed) => config.$field = parsed,
                        Err(e) => problems.push(format!(
                            "{}: {}",
                            stringify!($field),
                            e.to_string().trim().replace('\n', " ")
                        )),
                    }
                }
            };
        }
        section!(data_dir);
        section!(kafka);
        section!(window);
        section!(features);
        section!(detector);
        section!(model);
        section!(rca);
        section!(planner);
        section!(knowledge);
        section!(keys);
        problems.extend(config.validate());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(problems))
        }
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
        if self.rca.confirm_windows == 0 {
            p.push("rca.confirm_windows must be at least 1".into());
        }
        if !self.features.sql_file.is_empty() && !Path::new(&self.features.sql_file).is_file() {
            p.push(format!("features.sql_file {} does not exist", self.features.sql_file));
        }
        for (name, path) in
            [("keys.signing_key", &self.keys.signing_key), ("keys.verifying_key", &self.keys.verifying_key)]
        {
            if !path.is_empty() && !Path::new(path).is_file() {
                p.push(format!("{name} {path} does not exist"));
            }
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

    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(self.data_dir.strip_prefix("file://").unwrap_or(&self.data_dir))
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

fn unknown_keys(user: &toml::Table, defaults: &toml::Table, prefix: &str, problems: &mut Vec<String>) {
    for (k, v) in user {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match defaults.get(k) {
            None => problems.push(format!("unknown key {path}")),
            // Free-form maps: anything goes.
            Some(_) if path == "kafka.options" => {}
            Some(toml::Value::Table(d)) => match v {
                toml::Value::Table(u) => unknown_keys(u, d, &path, problems),
                _ => problems.push(format!("{path} must be a table")),
            },
            Some(_) => {}
        }
    }
}

/// Removes keys the defaults do not have (free-form maps excepted).
fn prune(table: &mut toml::Table, defaults: &toml::Table, prefix: &str) {
    table.retain(|k, _| defaults.contains_key(k));
    for (k, v) in table.iter_mut() {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        if let (toml::Value::Table(t), Some(toml::Value::Table(d))) = (v, defaults.get(k)) {
            if path != "kafka.options" {
                prune(t, d, &path);
            }
        }
    }
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (k, v) in overlay {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
