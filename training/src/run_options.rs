//! What a training run was asked to do and how its loss went: recorded in every
//! model's card, so they exist where models are only served, without training.

use crate::model::ModelShape;
use serde::{Deserialize, Serialize};

/// Knobs of one training run; recorded with the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Passes over the training set.
    pub epochs: usize,
    /// Windows per gradient step (one block-diagonal graph).
    pub batch_windows: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Seed of initialisation and shuffling.
    pub seed: u64,
    /// The model's width.
    pub shape: ModelShape,
    /// Every n-th run (by name order) is held back for validation and the threshold.
    pub validation_every: usize,
    /// The largest per-window false-positive rate the threshold may cost on validation.
    pub max_window_fpr: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 12,
            batch_windows: 64,
            learning_rate: 3e-3,
            seed: 7,
            shape: ModelShape::default(),
            validation_every: 5,
            max_window_fpr: 0.005,
        }
    }
}

/// Per epoch, for the loss curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochLoss {
    /// The epoch (from 1).
    pub epoch: usize,
    /// Mean training loss.
    pub train: f64,
    /// Mean validation loss.
    pub validation: f64,
}
