//! The embedded dev broker: librdkafka's mock cluster, a real implementation of the
//! Kafka protocol living in this process and listening on loopback.

use crate::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use x0_schema::Topics;

/// A running mock cluster; it stops when dropped. Not `Send`: keep it on the thread
/// (or in the `main` future) that started it.
pub struct DevBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl std::fmt::Debug for DevBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevBroker").field("bootstrap", &self.bootstrap_servers()).finish()
    }
}

impl DevBroker {
    /// Starts one broker and creates every topic with `partitions` partitions.
    pub fn start(topics: &Topics, partitions: i32) -> Result<Self, KafkaError> {
        let cluster = MockCluster::new(1)?;
        for t in topics.all() {
            cluster.create_topic(t, partitions, 1)?;
        }
        Ok(DevBroker { cluster })
    }

    /// `host:port` to give clients.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}
