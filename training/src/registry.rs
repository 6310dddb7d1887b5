//! The model registry: a directory of versioned models and a `champion` file naming
//! the one in service.
//!
//! ```text
//! <registry>/champion             the serving version's name
//! <registry>/<version>/model.bpk  weights (burnpack)
//! <registry>/<version>/model.json ModelCard: shape, normalisation, threshold, provenance, held-out quality
//! <registry>/<version>/report.md  the evaluation report (and report.json, *.png)
//! ```
//! A version is written completely before `champion` changes, and `champion` is
//! replaced by a rename, so a reader never sees half a model.

use crate::eval::Quality;
use crate::graph::GraphWindow;
use crate::model::{probabilities, GraphBatch, GraphIndex, GraphSage, ModelShape, Normaliser};
use crate::run_options::{EpochLoss, TrainOptions};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use thiserror::Error;

#[derive(Debug, Error)]
/// Why a model registry could not be read or written.
pub enum RegistryError {
    #[error("model registry {0}: {1}")]
    /// A file operation failed.
    Io(PathBuf, std::io::Error),
    #[error("model registry {0}: {1}")]
    /// A file's contents make no sense.
    Invalid(PathBuf, String),
}

const BUILTIN_CARD: &str = include_str!("../../models/default/model.json");
const BUILTIN_WEIGHTS: &[u8] = include_bytes!("../../models/default/model.bpk");

/// Everything about a model but its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The model's version (name and content hash).
    pub version: String,
    /// Its width.
    pub shape: ModelShape,
    /// Its input normalisation.
    pub normaliser: Normaliser,
    /// Its decision threshold on probabilities.
    pub threshold: f32,
    /// How it was trained.
    pub options: TrainOptions,
    /// The datasets it was trained on.
    pub datasets: Vec<String>,
    /// Runs it was trained on.
    pub train_runs: usize,
    /// Node windows it was trained on.
    pub train_node_windows: usize,
    /// Its loss per epoch.
    pub losses: Vec<EpochLoss>,
    /// The epoch whose weights were kept (lowest validation loss).
    #[serde(default)]
    pub best_epoch: usize,
    /// Quality on the held-out set, per fault type ("all" overall).
    pub held_out: BTreeMap<String, Quality>,
}

/// A model ready to score windows in the stream job.
#[derive(Debug)]
pub struct GraphDetector {
    /// What the model is and how it was made.
    pub card: ModelCard,
    model: GraphSage,
    device: Device,
    /// The last window's topology and its index tensors: a mesh keeps its shape from
    /// one window to the next, so only the measurements are converted per window.
    topology: Mutex<Option<CachedIndex>>,
}

#[derive(Debug)]
struct CachedIndex {
    nodes: usize,
    src: Vec<u32>,
    dst: Vec<u32>,
    index: GraphIndex,
}

/// One window's scores: probability of a fault per node and per link.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowScores {
    /// Per node, the probability it is faulty.
    pub nodes: Vec<f32>,
    /// Per link, the probability it is faulty.
    pub links: Vec<f32>,
}

impl GraphDetector {
    /// A detector serving `model` as its `card` says.
    pub fn new(card: ModelCard, model: GraphSage) -> Self {
        GraphDetector { card, model, device: Device::flex(), topology: Mutex::new(None) }
    }

    /// The network itself (batch scoring in evaluation).
    pub fn graph(&self) -> &GraphSage {
        &self.model
    }

    /// The version served.
    pub fn version(&self) -> &str {
        &self.card.version
    }

    /// Its decision threshold.
    pub fn threshold(&self) -> f32 {
        self.card.threshold
    }

    /// Scores one window.
    pub fn score(&self, window: &GraphWindow) -> WindowScores {
        let index = {
            let mut cached = self.topology.lock().unwrap_or_else(|p| p.into_inner());
            match cached.as_ref() {
                Some(c) if c.nodes == window.nodes() && c.src == window.src && c.dst == window.dst => c.index.clone(),
                _ => {
                    let index = GraphIndex::new(&[window], &self.device);
                    *cached = Some(CachedIndex {
                        nodes: window.nodes(),
                        src: window.src.clone(),
                        dst: window.dst.clone(),
                        index: index.clone(),
                    });
                    index
                }
            }
        };
        let batch = GraphBatch::with_index(&[window], &self.card.normaliser, index, &self.device);
        let out = self.model.forward(&batch);
        WindowScores { nodes: probabilities(out.node), links: probabilities(out.link) }
    }

    /// The default model shipped inside the binary (`models/default`, produced by
    /// `x0tta6bl4 train` from the bundled scenarios; the command is in BENCHMARKS.md).
    pub fn builtin() -> Option<Self> {
        let card: ModelCard = match serde_json::from_str(BUILTIN_CARD) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "the built-in model card does not parse; no model");
                return None;
            }
        };
        let device = Device::flex();
        let record =
            burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(BUILTIN_WEIGHTS.to_vec()));
        match record.and_then(|r| GraphSage::new(card.shape, &device).try_load_record(r)) {
            Ok(model) => Some(GraphDetector { card, model, device, topology: Mutex::new(None) }),
            Err(e) => {
                tracing::warn!(error = %e, "the built-in model's weights do not load; no model");
                None
            }
        }
    }

    /// Writes this model as a new version under `registry` (not yet champion).
    pub fn save(&self, registry: &Path) -> Result<PathBuf, RegistryError> {
        let dir = registry.join(&self.card.version);
        let io = |e| RegistryError::Io(dir.clone(), e);
        std::fs::create_dir_all(&dir).map_err(io)?;
        let json =
            serde_json::to_vec_pretty(&self.card).map_err(|e| RegistryError::Invalid(dir.clone(), e.to_string()))?;
        std::fs::write(dir.join("model.json"), json).map_err(io)?;
        self.model
            .clone()
            .save_file(dir.join("model.bpk"))
            .map_err(|e| RegistryError::Invalid(dir.clone(), e.to_string()))?;
        Ok(dir)
    }

    /// Loads one version directory.
    pub fn load(dir: &Path) -> Result<Self, RegistryError> {
        let bad = |e: String| RegistryError::Invalid(dir.to_path_buf(), e);
        let json = std::fs::read(dir.join("model.json")).map_err(|e| RegistryError::Io(dir.join("model.json"), e))?;
        let card: ModelCard = serde_json::from_slice(&json).map_err(|e| bad(e.to_string()))?;
        let device = Device::flex();
        let model = GraphSage::new(card.shape, &device)
            .try_load_file(dir.join("model.bpk"))
            .map_err(|e| bad(format!("weights: {e}")))?;
        Ok(GraphDetector { card, model, device, topology: Mutex::new(None) })
    }
}

/// The version named by `<registry>/champion`, if any.
pub fn champion(registry: &Path) -> Result<Option<String>, RegistryError> {
    match std::fs::read_to_string(registry.join("champion")) {
        Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RegistryError::Io(registry.join("champion"), e)),
    }
}

/// Loads the champion (`None` when the registry has none yet).
pub fn load_champion(registry: &Path) -> Result<Option<GraphDetector>, RegistryError> {
    champion(registry)?.map(|v| GraphDetector::load(&registry.join(v))).transpose()
}

/// Makes `version` the champion (atomically: write, then rename).
pub fn promote(registry: &Path, version: &str) -> Result<(), RegistryError> {
    let io = |e| RegistryError::Io(registry.to_path_buf(), e);
    let tmp = registry.join(".champion.tmp");
    std::fs::write(&tmp, format!("{version}\n")).map_err(io)?;
    std::fs::rename(&tmp, registry.join("champion")).map_err(io)
}

/// Whether a challenger beats the champion on the same held-out set: a better overall
/// event F1, without a worse per-window false-positive rate beyond the budget.
pub fn better(challenger: &Quality, champion: &Quality, max_fpr: f64) -> bool {
    let within = challenger.window_fpr <= max_fpr.max(champion.window_fpr);
    within && challenger.f1 > champion.f1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{LinkEndInput, NodeInput};

    fn ring(n: u32, lossy: u32) -> GraphWindow {
        let mut g = GraphWindow {
            node_x: (0..n).map(|_| NodeInput::vector(Some(&NodeInput { cpu: 0.2, ..Default::default() }))).collect(),
            ..Default::default()
        };
        for i in 0..n {
            let loss = if i == lossy { 0.4 } else { 0.0 };
            let end = LinkEndInput {
                loss_ratio: Some(loss),
                probe_loss: Some(loss),
                tx_packets: 300.0,
                peer_present: true,
                ..Default::default()
            };
            let v = LinkEndInput::vector(Some(&end));
            g.push_link(i, (i + 1) % n, v, v);
        }
        g
    }

    #[test]
    fn a_reused_topology_scores_exactly_as_a_fresh_one() {
        let Some(cached) = GraphDetector::builtin() else { panic!("the built-in model loads") };
        // Same shape, other measurements; another shape; the first shape again.
        for window in [ring(8, 2), ring(8, 5), ring(11, 3), ring(8, 2)] {
            let fresh = GraphDetector::builtin().map(|d| d.score(&window));
            let reused = cached.score(&window);
            assert_eq!(Some(&reused), fresh.as_ref());
            assert_eq!((reused.nodes.len(), reused.links.len()), (window.nodes(), window.links()));
        }
        // The lossy link is the one the model flags.
        let s = cached.score(&ring(8, 5));
        let top = s.links.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i);
        assert_eq!(top, Some(5));
    }
}
