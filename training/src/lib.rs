//! Detection models for the stream job.
//!
//! Today this holds the robust statistical detector, [`RobustDetector`]: per element
//! and feature, a rolling median/MAD baseline of healthy windows (in the spirit of
//! BARO's robust scoring), an anomaly when a value is both far from its own baseline
//! (robust z-score) and past an absolute floor, with enough evidence behind it (enough
//! packets or probes) that one unlucky packet never raises an alarm. It is the cold
//! start and fallback path; the GraphSAGE model (burn) joins it here.
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
mod detector;

pub use baseline::RobustBaseline;
pub use detector::{DetectorConfig, Feature, RobustDetector, MODEL_VERSION};
