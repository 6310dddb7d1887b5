//! Kafka for every part of x0tta6bl4: one config type whose librdkafka options pass
//! straight through (TLS, SASL, anything), producers tuned for a few milliseconds per
//! hop, consumer-group consumers, dead-lettering, and the embedded dev broker
//! (librdkafka's mock cluster: the real Kafka protocol, in process, loopback only).
//!
//! ```no_run
//! # fn main() -> Result<(), x0_kafka::KafkaError> {
//! let broker = x0_kafka::DevBroker::start(&x0_schema::Topics::default(), 4)?;
//! let config = x0_kafka::KafkaConfig::for_brokers(&broker.bootstrap_servers());
//! let producer = config.producer()?;
//! # Ok(()) }
//! ```

mod broker;
mod config;
mod spiffe;
mod telemetry;

pub use broker::DevBroker;
pub use config::{assign_all, dead_letter, fenced, header, possibly_persisted, KafkaConfig, KafkaError};
pub use rdkafka;
pub use spiffe::{svid_id, Role, SpiffeConfig, SpiffeError, EXIT_SVID_ROTATED, SVID_CHECK_EVERY};
pub use telemetry::{partition_count, telemetry_message, Signer, TelemetryPublisher};
