//! Telemetry to Kafka: a batch as a message (payload in the chosen encoding, the
//! encoding named in the `content-type` header), and a publisher that awaits the
//! broker's acknowledgement; [`Signer`] adds the MAC that says who may speak for a
//! node.

use crate::{KafkaConfig, KafkaError};
use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::collections::HashMap;
use std::time::Duration;
use x0_schema::{
    encode_telemetry, ContentType, FleetSecret, MessageKey, TelemetryBatch, Topology, CONTENT_TYPE_HEADER, MAC_HEADER,
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
    /// Per node name, the partitions its batches go to (its regions' instances); a
    /// node not in it goes by key, as Kafka hashes it.
    routes: HashMap<String, Vec<i32>>,
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
            routes: HashMap::new(),
        })
    }

    /// The same publisher, sending each node's batches to the partitions of every
    /// region that needs them (see [`Regions`](x0_schema::Regions)), when `topology` is split into regions;
    /// asks the cluster how many partitions the topic has (blocking, at most `within`).
    pub fn regioned(mut self, topology: &Topology, within: Duration) -> Result<Self, KafkaError> {
        let regions = topology.regions();
        if regions.count() <= 1 {
            return Ok(self);
        }
        let partitions = partition_count(&self.producer, &self.topic, within)?;
        self.routes =
            (0..topology.len()).map(|v| (topology.name(v).to_string(), regions.partitions_of(v, partitions))).collect();
        Ok(self)
    }

    /// The same publisher, authenticating every message with `signer`.
    pub fn signed(self, signer: Signer) -> Self {
        TelemetryPublisher { signer, ..self }
    }

    /// Sends one node's batch; resolves when the broker acknowledged it.
    pub async fn publish(&self, node: &str, batch: &TelemetryBatch) -> Result<(), KafkaError> {
        let (payload, headers) = telemetry_message(self.encoding, batch);
        let headers = self.signer.sign(headers, node, &payload);
        let send = |partition: Option<i32>| {
            let mut record = FutureRecord::to(&self.topic).key(node).payload(&payload).headers(headers.clone());
            record.partition = partition;
            async move {
                self.producer
                    .send(record, Duration::from_secs(5))
                    .await
                    .map(|_| ())
                    .map_err(|(source, _)| KafkaError::Delivery { topic: self.topic.clone(), source })
            }
        };
        match self.routes.get(node) {
            None => send(None).await,
            Some(to) => join_all(to.iter().map(|&p| send(Some(p)))).await.into_iter().collect(),
        }
    }
}

/// How many partitions `topic` has (a metadata request; blocking).
pub fn partition_count(producer: &FutureProducer, topic: &str, within: Duration) -> Result<usize, KafkaError> {
    let metadata = producer.client().fetch_metadata(Some(topic), within)?;
    let count = metadata.topics().iter().find(|t| t.name() == topic).map_or(0, |t| t.partitions().len());
    if count == 0 {
        return Err(KafkaError::NoPartitions { topic: topic.to_string() });
    }
    Ok(count)
}

/// A batch's Kafka payload in `encoding` and the headers that name the encoding.
pub fn telemetry_message(encoding: ContentType, batch: &TelemetryBatch) -> (Vec<u8>, OwnedHeaders) {
    let payload = encode_telemetry(encoding, batch);
    let headers = OwnedHeaders::new().insert(Header { key: CONTENT_TYPE_HEADER, value: Some(encoding.header_value()) });
    (payload, headers)
}
