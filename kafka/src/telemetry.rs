//! Telemetry to Kafka: a batch as a message (payload in the chosen encoding, the
//! encoding named in the `content-type` header), and a publisher that awaits the
//! broker's acknowledgement.

use crate::{KafkaConfig, KafkaError};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;
use x0_schema::{encode_arrow, encode_json_lines, ContentType, TelemetryBatch, CONTENT_TYPE_HEADER};

/// Publishes telemetry batches keyed by node, in the configured encoding.
pub struct TelemetryPublisher {
    producer: FutureProducer,
    topic: String,
    encoding: ContentType,
}

impl std::fmt::Debug for TelemetryPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryPublisher").field("topic", &self.topic).field("encoding", &self.encoding).finish()
    }
}

impl TelemetryPublisher {
    /// A publisher on `kafka`'s telemetry topic in `encoding`.
    pub fn new(kafka: &KafkaConfig, encoding: ContentType) -> Result<Self, KafkaError> {
        Ok(TelemetryPublisher { producer: kafka.producer()?, topic: kafka.topics.telemetry.clone(), encoding })
    }

    /// Sends one node's batch; resolves when the broker acknowledged it.
    pub async fn publish(&self, node: &str, batch: &TelemetryBatch) -> Result<(), KafkaError> {
        let (payload, headers) = telemetry_message(self.encoding, batch);
        let record = FutureRecord::to(&self.topic).key(node).payload(&payload).headers(headers);
        self.producer
            .send(record, Duration::from_secs(5))
            .await
            .map(|_| ())
            .map_err(|(source, _)| KafkaError::Delivery { topic: self.topic.clone(), source })
    }
}

/// A batch's Kafka payload in `encoding` and the headers that name the encoding.
pub fn telemetry_message(encoding: ContentType, batch: &TelemetryBatch) -> (Vec<u8>, OwnedHeaders) {
    let payload = match encoding {
        ContentType::Arrow => encode_arrow(batch),
        ContentType::JsonLines => encode_json_lines(batch),
    };
    let headers = OwnedHeaders::new().insert(Header { key: CONTENT_TYPE_HEADER, value: Some(encoding.header_value()) });
    (payload, headers)
}
