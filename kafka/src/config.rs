//! Client configuration and the small helpers every producer and consumer shares.

use crate::SpiffeConfig;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, FutureProducer, FutureRecord, ProducerContext};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use thiserror::Error;
use x0_schema::{Topics, REASON_HEADER};

/// Errors talking to Kafka. Usually external (broker unreachable, misconfigured);
/// retrying helps when the broker comes back, not when the config is wrong.
#[derive(Debug, Error)]
pub enum KafkaError {
    /// librdkafka refused the configuration or the operation.
    #[error("kafka: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    /// A topic could not be created.
    #[error("creating topic {topic}: {code}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// What the broker said.
        code: rdkafka::types::RDKafkaErrorCode,
    },
    /// A message could not be delivered.
    #[error("kafka delivery to {topic} failed: {source}")]
    Delivery {
        /// The topic it was sent to.
        topic: String,
        #[source]
        /// What the broker or client said.
        source: rdkafka::error::KafkaError,
    },
    /// The cluster knows no partition of a topic the client needs.
    #[error("topic {topic} has no partitions on the cluster (create it first)")]
    NoPartitions {
        /// The topic.
        topic: String,
    },
}

/// Where the brokers are and how to talk to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `host:port,...`; empty means "start the embedded dev broker" where a command allows it.
    pub brokers: String,
    /// Consumer group of the stream job; more instances in one group split the partitions.
    pub group_id: String,
    /// Any librdkafka option, passed through as is (`security.protocol`, `ssl.ca.location`, ...).
    pub options: BTreeMap<String, String>,
    /// Topic names.
    pub topics: Topics,
    /// The stream job stops with an error when no broker has answered for this long
    /// (agents never give up: they keep forwarding and keep their routes).
    #[serde(with = "humantime_serde")]
    pub outage_limit: Duration,
    /// mTLS from SPIFFE X.509 SVID files, and which IDs may play which role.
    pub spiffe: SpiffeConfig,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            group_id: "x0tta6bl4".into(),
            options: BTreeMap::new(),
            topics: Topics::default(),
            outage_limit: Duration::from_secs(60),
            spiffe: SpiffeConfig::default(),
        }
    }
}

impl KafkaConfig {
    /// The defaults with these bootstrap servers.
    pub fn for_brokers(brokers: &str) -> Self {
        KafkaConfig { brokers: brokers.to_string(), ..Self::default() }
    }

    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        // The SVID files first: an explicit option in [kafka.options] still wins.
        for (k, v) in self.spiffe.client_options() {
            c.set(k, v);
        }
        for (k, v) in &self.options {
            c.set(k, v);
        }
        c
    }

    /// A producer tuned for latency: batches for at most 2 ms, never a per-message flush.
    pub fn producer(&self) -> Result<FutureProducer, KafkaError> {
        Ok(self.producer_config().create()?)
    }

    /// The stream job's producer: as [`Self::producer`], with LZ4 batches and room for
    /// a large message. An incident on a mesh of thousands carries thousands of
    /// commands (1 MB and more of JSON, which compresses about tenfold): the client
    /// checks a message's size before compression, a broker checks the compressed
    /// batch against its own `message.max.bytes` (1 MB by default).
    pub fn job_producer(&self) -> Result<FutureProducer, KafkaError> {
        let mut c = self.producer_config();
        set_default(&mut c, "compression.type", "lz4");
        set_default(&mut c, "message.max.bytes", "16777216");
        Ok(c.create()?)
    }

    /// The same producer without rdkafka's polling thread: the caller polls it (and
    /// `context` hears every delivery). For small processes that send a few messages
    /// a second, where that thread's 100 ms poll loop costs more than the sending.
    pub fn base_producer<C: ProducerContext>(&self, context: C) -> Result<BaseProducer<C>, KafkaError> {
        Ok(self.producer_config().create_with_context(context)?)
    }

    fn producer_config(&self) -> ClientConfig {
        let mut c = self.base();
        set_default(&mut c, "linger.ms", "2");
        set_default(&mut c, "message.timeout.ms", "10000");
        set_default(&mut c, "enable.idempotence", "true");
        c
    }

    /// A consumer in `group`, subscribed to `topics`, reading from the earliest
    /// uncommitted offset and waiting at most a few ms for data.
    pub fn consumer(&self, group: &str, topics: &[&str]) -> Result<StreamConsumer, KafkaError> {
        self.consumer_with(group, topics, false, None)
    }

    /// The same; with `manual_commit`, offsets are committed only when the caller
    /// commits them (the stream job, behind its checkpoint), never as messages are
    /// polled. With `instance`, a static member of its group (`group.instance.id`): a
    /// process restarted under the same instance takes its partitions back at once,
    /// without waiting out its predecessor's session.
    pub fn consumer_with(
        &self,
        group: &str,
        topics: &[&str],
        manual_commit: bool,
        instance: Option<&str>,
    ) -> Result<StreamConsumer, KafkaError> {
        let consumer: StreamConsumer = self.consumer_config(group, manual_commit, instance).create()?;
        consumer.subscribe(topics)?;
        Ok(consumer)
    }

    /// A consumer under `group` that joins no group membership: [`assign_all`] gives it
    /// every partition of a topic, and it resumes from the offsets committed under
    /// `group` (auto-committed as it reads). No rebalance, no session to expire: for a
    /// node agent, which reads every partition of the command topic anyway and, when
    /// restarted, must not wait out its predecessor's session (librdkafka's mock cluster
    /// does not hand a static member's partitions over).
    pub fn unmanaged_consumer(&self, group: &str) -> Result<StreamConsumer, KafkaError> {
        Ok(self.consumer_config(group, false, None).create()?)
    }

    /// A consumer that commits nothing and joins no group: the caller assigns it the
    /// partitions and offsets to read (a topic read from its start, like a changelog).
    pub fn reader(&self, group: &str) -> Result<StreamConsumer, KafkaError> {
        Ok(self.consumer_config(group, true, None).create()?)
    }

    fn consumer_config(&self, group: &str, manual_commit: bool, instance: Option<&str>) -> ClientConfig {
        let mut c = self.base();
        if manual_commit {
            c.set("enable.auto.commit", "false");
        }
        if let Some(id) = instance {
            set_default(&mut c, "group.instance.id", id);
        }
        c.set("group.id", group);
        set_default(&mut c, "auto.offset.reset", "earliest");
        set_default(&mut c, "fetch.wait.max.ms", "5");
        set_default(&mut c, "fetch.error.backoff.ms", "20");
        // A static member (the durable job) gets sessions long enough that a broker
        // paused or failing over for a few seconds is waited out, not taken for a dead
        // consumer (a rebalance then; tansu 0.6 never settles one): restarted, it comes
        // back as the same member instead. Others keep short ones: librdkafka's mock
        // cluster makes any later rebalance wait a session less one second.
        set_default(&mut c, "session.timeout.ms", if instance.is_some() { "30000" } else { "6000" });
        set_default(&mut c, "enable.auto.commit", "true");
        set_default(&mut c, "auto.commit.interval.ms", "500");
        set_default(&mut c, "topic.metadata.refresh.interval.ms", "1000");
        c
    }
}

impl KafkaConfig {
    /// Creates `topics` with `partitions` partitions each (replication 1) through the
    /// admin API; a topic that already exists is left as it is. For brokers that do not
    /// create topics on first use (tansu, locked-down clusters).
    pub async fn create_topics(&self, topics: &[&str], partitions: i32) -> Result<(), KafkaError> {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::types::RDKafkaErrorCode;
        let admin: AdminClient<rdkafka::client::DefaultClientContext> = self.base().create()?;
        let new: Vec<NewTopic> =
            topics.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1))).collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(&new, &options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(KafkaError::CreateTopic { topic, code }),
            }
        }
        Ok(())
    }
}

fn set_default(c: &mut ClientConfig, key: &str, value: &str) {
    if c.get(key).is_none() {
        c.set(key, value);
    }
}

/// Assigns every partition of `topic` to `consumer`, each from its committed offset (or
/// `auto.offset.reset` without one); waits at most `within` for the topic's metadata.
/// Returns how many partitions.
pub fn assign_all<C: Consumer>(consumer: &C, topic: &str, within: Duration) -> Result<usize, KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), within)?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Stored)?;
        }
    }
    if tpl.count() == 0 {
        return Err(KafkaError::Client(rdkafka::error::KafkaError::MetadataFetch(
            rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
        )));
    }
    consumer.assign(&tpl)?;
    Ok(tpl.count())
}

/// The value of header `name` on a message, if present and UTF-8.
pub fn header<'a, M: Message>(msg: &'a M, name: &str) -> Option<&'a str> {
    let headers = msg.headers()?;
    headers.iter().find(|h| h.key == name).and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok())
}

/// Whether a produce error means the broker refused the producer's id or epoch (it
/// fenced it, say after in-flight messages timed out in a broker outage and the
/// idempotent producer bumped its epoch: tansu 0.6 fences it then). Such a producer
/// never sends again; only a new one (a new producer id) does.
pub fn fenced(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        e,
        rdkafka::error::KafkaError::MessageProduction(
            Code::ProducerFenced
                | Code::InvalidProducerEpoch
                | Code::UnknownProducerId
                | Code::InvalidProducerIdMapping
                | Code::OutOfOrderSequenceNumber
        )
    )
}

/// Whether a message the producer gave up on may be in the broker's log all the same:
/// it was in flight when its time ran out, so the broker may have written it without
/// saying so (librdkafka's `rd_kafka_message_status`, which rdkafka does not wrap).
/// A drop counter that counts these as lost over-counts.
#[allow(unsafe_code)]
pub fn possibly_persisted(m: &rdkafka::message::BorrowedMessage<'_>) -> bool {
    use rdkafka::bindings::{rd_kafka_message_status, rd_kafka_msg_status_t};
    // SAFETY: `m.ptr()` is the live message the caller borrows (a delivery report's);
    // the call only reads its status field.
    let status = unsafe { rd_kafka_message_status(m.ptr()) };
    status != rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED
}

/// Sends rejected bytes to the dead-letter topic with the reason in a header.
pub async fn dead_letter(
    producer: &FutureProducer,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    reason: &str,
) -> Result<(), KafkaError> {
    let headers = OwnedHeaders::new().insert(Header { key: REASON_HEADER, value: Some(reason) });
    let mut record = FutureRecord::<[u8], [u8]>::to(topic).payload(payload).headers(headers);
    if let Some(k) = key {
        record = record.key(k);
    }
    producer
        .send(record, Duration::from_secs(5))
        .await
        .map(|_| ())
        .map_err(|(source, _)| KafkaError::Delivery { topic: topic.to_string(), source })
}
