//! Detection models for the stream job.
//!
//! Two detectors live here:
//! - the graph model, [`GraphSage`] (burn, CPU `flex` backend): GraphSAGE over the
//!   mesh with an anomaly head per node and per link, trained on labelled windows
//!   ([`dataset`]), evaluated against baselines ([`evaluate`]) and served from a model
//!   registry ([`GraphDetector`], [`load_champion`]);
//! - the robust statistical detector, [`RobustDetector`]: per element and feature, a
//!   rolling median/MAD baseline of healthy windows (in the spirit of BARO's robust
//!   scoring), an anomaly when a value is both far from its own baseline (robust
//!   z-score) and past an absolute floor, with enough evidence behind it (enough
//!   packets or probes) that one unlucky packet never raises an alarm. It is the cold
//!   start and fallback path, and one of the baselines the model must beat.
//!
//! Serving needs neither autodiff nor plots: training (`train`, `plot`: the
//! loss and precision-recall curves) sits behind the default `train` feature, which
//! the stream job (`x0-pipeline`) turns off.
//!
//! ```
//! use x0_training::{DetectorConfig, Feature, RobustDetector};
//! let mut d = RobustDetector::new(DetectorConfig::default());
//! for _ in 0..20 {
//!     assert!(d.score("n1>n2", Feature::LossRatio, 0.001, 500.0).is_none());
//! }
//! assert!(d.score("n1>n2", Feature::LossRatio, 0.30, 500.0).is_some());
//! ```

mod baseline;
pub mod dataset;
mod detector;
mod eval;
mod graph;
mod model;
#[cfg(feature = "train")]
pub mod plot;
mod registry;
mod run_options;
#[cfg(feature = "train")]
mod train;

pub use baseline::RobustBaseline;
pub use dataset::{read_datasets, DatasetError, DatasetWriter, Label, LabelledWindow};
pub use detector::{DetectorConfig, Feature, RobustDetector, MODEL_VERSION};
pub use eval::{average_precision, evaluate, pr_curve, Quality, Scores};
pub use graph::{
    GraphWindow, LinkEndInput, NodeInput, EDGE_FEATURES, EDGE_FEATURE_NAMES, NODE_FEATURES, NODE_FEATURE_NAMES,
};
pub use model::{GraphBatch, GraphIndex, GraphSage, ModelShape, Normaliser};
pub use registry::{better, champion, load_champion, promote, GraphDetector, ModelCard, RegistryError, WindowScores};
pub use run_options::{EpochLoss, TrainOptions};
#[cfg(feature = "train")]
pub use train::{choose_threshold, score_windows, split_runs, train, Trained};
