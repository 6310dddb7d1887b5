//! A real broker process for the service tests: tansu (`cargo install tansu --version
//! 0.6.0 --locked --features dynostore,libsql`; in-memory storage, loopback), started
//! per test on a free port with the topics created up front. `X0_TEST_KAFKA_BROKERS`
//! points the same tests at any Kafka cluster instead (topics get a fresh prefix).
//!
//! Without tansu the tests say so and pass, unless `X0_REQUIRE_BROKER_TESTS=1` (CI),
//! where a missing broker is a failure.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use x0_kafka::KafkaConfig;
use x0_schema::Topics;

/// A broker the test owns (or an external cluster it borrows).
pub(crate) struct TestBroker {
    child: Option<Child>,
    /// Client settings: bootstrap servers and this test's topic names.
    pub(crate) kafka: KafkaConfig,
}

pub(crate) fn tansu() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("tansu")).collect::<Vec<_>>())
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    on_path.into_iter().chain(cargo_home.map(|c| c.join("bin/tansu"))).find(|p| p.is_file())
}

/// A port nothing listens on now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl TestBroker {
    /// A broker with every topic created (`partitions` each); None when there is none
    /// to be had and the tests may skip (said on stderr).
    pub(crate) async fn start(test: &str, partitions: i32) -> Option<TestBroker> {
        let (child, brokers, topics) = match std::env::var("X0_TEST_KAFKA_BROKERS") {
            Ok(b) if !b.is_empty() => {
                let tag = format!("{test}-{}", std::process::id());
                let t = Topics::default();
                let topics = Topics {
                    telemetry: format!("{}.{tag}", t.telemetry),
                    commands: format!("{}.{tag}", t.commands),
                    command_results: format!("{}.{tag}", t.command_results),
                    incidents: format!("{}.{tag}", t.incidents),
                    dlq: format!("{}.{tag}", t.dlq),
                    handoff: format!("{}.{tag}", t.handoff),
                };
                (None, b, topics)
            }
            _ => {
                let Some(exe) = tansu() else {
                    assert!(
                        std::env::var("X0_REQUIRE_BROKER_TESTS").as_deref() != Ok("1"),
                        "X0_REQUIRE_BROKER_TESTS=1 but tansu is not installed \
                         (cargo install tansu --version 0.6.0 --locked --features dynostore,libsql)"
                    );
                    eprintln!("SKIPPED {test}: no broker (install tansu, or set X0_TEST_KAFKA_BROKERS)");
                    return None;
                };
                let port = free_port();
                let url = format!("tcp://127.0.0.1:{port}");
                let child = Command::new(exe)
                    .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
                    .args(["--storage-engine", "memory://tansu/"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("tansu starts");
                (Some(child), format!("127.0.0.1:{port}"), Topics::default())
            }
        };
        let mut kafka = KafkaConfig::for_brokers(&brokers);
        kafka.topics = topics;
        kafka.group_id = format!("x0-{test}");
        let broker = TestBroker { child, kafka };
        let names = broker.kafka.topics.all();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match broker.kafka.create_topics(&names, partitions).await {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("broker not ready yet ({e})");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => panic!("creating topics on {brokers}: {e}"),
            }
        }
        Some(broker)
    }

    /// The broker process (None: an external cluster).
    pub(crate) fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// This broker's settings as a TOML `[kafka]` section.
    pub(crate) fn kafka_toml(&self) -> String {
        let t = &self.kafka.topics;
        format!(
            "[kafka]\nbrokers = \"{}\"\ngroup_id = \"{}\"\n[kafka.topics]\ntelemetry = \"{}\"\ncommands = \"{}\"\n\
             command_results = \"{}\"\nincidents = \"{}\"\ndlq = \"{}\"\n",
            self.kafka.brokers, self.kafka.group_id, t.telemetry, t.commands, t.command_results, t.incidents, t.dlq
        )
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
