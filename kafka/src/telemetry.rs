//! Telemetry to Kafka: a batch as a message (payload in the chosen encoding, the
//! encoding named in the `content-type` header), and a publisher that awaits the
//! broker's acknowledgement; [`Signer`] adds the MAC that says who may speak for a
//! node.

use crate::{KafkaConfig, KafkaError};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;
use x0_schema::{
    encode_telemetry, ContentType, FleetSecret, MessageKey, TelemetryBatch, CONTENT_TYPE_HEADER, MAC_HEADER,
};

/// Who authenticates the messages a process sends in a node's name (telemetry and
/// command results): nobody (a deployment without keys, the demo), one node (an
/// agent, with its own key), or every node of a fleet (the simulator plays them all).
#[derive(Debug, Clone, Default)]
pub enum Signer {
    /// Messages go out without a MAC.
    #[default]
    Unsigned,
    /// An agent's own key: it can speak for its node only.
    Node(MessageKey),
    /// The fleet secret: any node's key, derived per message.
    Fleet(FleetSecret),
}

impl Signer {
    /// `headers` plus the `x0-mac` header for a message keyed `node` carrying `payload`.
    pub fn sign(&self, headers: OwnedHeaders, node: &str, payload: &[u8]) -> OwnedHeaders {
        let mac = match self {
            Signer::Unsigned => return headers,
            Signer::Node(key) => key.mac(node.as_bytes(), payload),
            Signer::Fleet(fleet) => fleet.node_key(node).mac(node.as_bytes(), payload),
        };
        headers.insert(Header { key: MAC_HEADER, value: Some(&mac) })
    }
}

/// Publishes telemetry batches keyed by node, in the configured encoding.
pub struct TelemetryPublisher {
    producer: FutureProducer,
    topic: String,
    encoding: ContentType,
    signer: Signer,
}

impl std::fmt::Debug for TelemetryPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryPublisher").field("topic", &self.topic).field("encoding", &self.encoding).finish()
    }
}

impl TelemetryPublisher {
    /// A publisher on `kafka`'s telemetry topic in `encoding`.
    pub fn new(kafka: &KafkaConfig, encoding: ContentType) -> Result<Self, KafkaError> {
        Ok(TelemetryPublisher {
            producer: kafka.producer()?,
            topic: kafka.topics.telemetry.clone(),
            encoding,
            signer: Signer::Unsigned,
        })
    }

    /// The same publisher, authenticating every message with `signer`.
    pub fn signed(self, signer: Signer) -> Self {
        TelemetryPublisher { signer, ..self }
    }

    /// Sends one node's batch; resolves when the broker acknowledged it.
    pub async fn publish(&self, node: &str, batch: &TelemetryBatch) -> Result<(), KafkaError> {
        let (payload, headers) = telemetry_message(self.encoding, batch);
        let headers = self.signer.sign(headers, node, &payload);
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
    let payload = encode_telemetry(encoding, batch);
    let headers = OwnedHeaders::new().insert(Header { key: CONTENT_TYPE_HEADER, value: Some(encoding.header_value()) });
    (payload, headers)
}
