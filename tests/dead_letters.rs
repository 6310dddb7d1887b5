//! Bad telemetry lands in the dead-letter topic with a reason and a counter, and the
//! job keeps running: proven on the mock cluster against the real stream job.
#![allow(clippy::unwrap_used)]

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use x0_kafka::{DevBroker, KafkaConfig};
use x0_pipeline::{run_job, Config, FeatureEngine, HealingLoop, JobStats, BUILTIN_FEATURES_SQL};
use x0_schema::{
    encode_arrow, encode_json_lines, LinkSample, NodeSample, Provenance, Shape, TelemetryBatch, Topics, Topology,
    TopologySpec, CONTENT_TYPE_ARROW, CONTENT_TYPE_HEADER, CONTENT_TYPE_JSON, REASON_HEADER, SCHEMA_VERSION,
};

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64
}

fn link(ts: i64, node: &str, peer: &str) -> LinkSample {
    LinkSample {
        ts,
        node: node.into(),
        peer: peer.into(),
        iface: "e0".into(),
        schema_version: SCHEMA_VERSION,
        provenance: Provenance::External,
        oper_up: true,
        tx_packets: 10,
        rx_packets: 10,
        tx_bytes: 1000,
        rx_bytes: 1000,
        drops: 0,
        errors: 0,
        tcp_retransmits: 0,
        probes_sent: 1,
        probes_lost: 0,
        rtt_avg_us: 900.0,
        rtt_max_us: 900.0,
    }
}

fn node(ts: i64, id: &str) -> NodeSample {
    NodeSample {
        ts,
        node: id.into(),
        schema_version: SCHEMA_VERSION,
        provenance: Provenance::External,
        cpu: 0.2,
        mem: 0.3,
        softirq: 0.0,
        queue_pressure: 0.0,
        agent_ok: true,
    }
}

fn arrow(b: TelemetryBatch) -> Vec<u8> {
    encode_arrow(&b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_telemetry_is_dead_lettered_with_a_reason_and_the_job_keeps_running() {
    let topics = Topics::default();
    let broker = DevBroker::start(&topics, 1).unwrap();
    let kafka = KafkaConfig::for_brokers(&broker.bootstrap_servers());
    let topo = Topology::generate(&TopologySpec { shape: Shape::Ring, nodes: 4, seed: 1, links: vec![] }).unwrap();
    let stats = Arc::new(JobStats::default());
    let features = FeatureEngine::new(BUILTIN_FEATURES_SQL).await.unwrap();
    let core =
        HealingLoop::new(Config::default(), topo, features, x0_schema::generate_signing_key(), stats.clone(), "t");
    let dir = tempfile::tempdir().unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let job = {
        let (kafka, root) = (kafka.clone(), dir.path().to_path_buf());
        tokio::spawn(async move { run_job(core, &kafka, &root, "dlq-test", None, stop_rx).await })
    };

    let t = now_ns();
    let good = arrow(TelemetryBatch { links: vec![link(t, "n0", "n1")], nodes: vec![node(t, "n0")] });
    let mut wrong_version = TelemetryBatch { links: vec![link(t, "n0", "n1")], nodes: vec![] };
    wrong_version.links[0].schema_version = 7;
    let mut nan = TelemetryBatch { links: vec![link(t, "n0", "n1")], nodes: vec![] };
    nan.links[0].rtt_avg_us = f64::NAN;
    let negative =
        String::from_utf8(encode_json_lines(&TelemetryBatch { links: vec![link(t, "n0", "n1")], nodes: vec![] }))
            .unwrap()
            .replace("\"tx_packets\":10", "\"tx_packets\":-10");
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("truncated", good[..good.len() / 2].to_vec(), CONTENT_TYPE_ARROW, "arrow"),
        ("garbage", b"\x13\x37 this is not telemetry".to_vec(), CONTENT_TYPE_ARROW, "arrow"),
        ("wrong-version", arrow(wrong_version), CONTENT_TYPE_ARROW, "schema version 7"),
        ("nan", arrow(nan), CONTENT_TYPE_ARROW, "rtt_avg_us"),
        ("negative", negative.into_bytes(), CONTENT_TYPE_JSON, "invalid json"),
        (
            "unknown-node",
            arrow(TelemetryBatch { links: vec![], nodes: vec![node(t, "n99")] }),
            CONTENT_TYPE_ARROW,
            "unknown node",
        ),
        (
            "unknown-link",
            arrow(TelemetryBatch { links: vec![link(t, "n0", "n2")], nodes: vec![] }),
            CONTENT_TYPE_ARROW,
            "share no link",
        ),
        (
            "future",
            arrow(TelemetryBatch { links: vec![], nodes: vec![node(t + 86_400_000_000_000, "n1")] }),
            CONTENT_TYPE_ARROW,
            "ahead",
        ),
        (
            "past",
            arrow(TelemetryBatch { links: vec![], nodes: vec![node(t - 86_400_000_000_000, "n1")] }),
            CONTENT_TYPE_ARROW,
            "older",
        ),
        ("content-type", good.clone(), "text/csv", "content type"),
    ];
    let producer = kafka.producer().unwrap();
    for (key, payload, ct, _) in &cases {
        let headers = OwnedHeaders::new().insert(Header { key: CONTENT_TYPE_HEADER, value: Some(*ct) });
        producer
            .send(
                FutureRecord::to(&topics.telemetry).key(*key).payload(payload).headers(headers),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }
    // A result in another node's name (keyed by its real sender): refused, never taken.
    let forged = x0_schema::CommandResult {
        schema_version: x0_schema::SCHEMA_VERSION,
        command_id: "inc-x.c1.00000000".into(),
        node: "n1".into(),
        status: x0_schema::ResultStatus::Rejected,
        reason: "forged".into(),
        applied_at: t,
        routes: vec![],
    };
    let json = forged.to_json();
    producer
        .send(FutureRecord::to(&topics.command_results).key("impostor").payload(&json), Duration::from_secs(5))
        .await
        .unwrap();
    // Good telemetry after the bad: still accepted.
    for i in 1..=3 {
        let ts = t + i * 1_000_000_000;
        let ok = arrow(TelemetryBatch {
            links: vec![link(ts, "n0", "n1"), link(ts, "n1", "n0")],
            nodes: vec![node(ts, "n0"), node(ts, "n1")],
        });
        let headers = OwnedHeaders::new().insert(Header { key: CONTENT_TYPE_HEADER, value: Some(CONTENT_TYPE_ARROW) });
        producer
            .send(FutureRecord::to(&topics.telemetry).key("n0").payload(&ok).headers(headers), Duration::from_secs(5))
            .await
            .unwrap();
    }

    let dlq: StreamConsumer = kafka.consumer("dlq-reader", &[&topics.dlq]).unwrap();
    let mut reasons: BTreeMap<String, String> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while reasons.len() < cases.len() + 1 && tokio::time::Instant::now() < deadline {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(1), dlq.recv()).await {
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            let reason = m
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == REASON_HEADER).and_then(|h| h.value))
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            reasons.insert(key, reason);
        }
    }
    dlq.unsubscribe();
    for (key, _, _, expect) in &cases {
        let reason = reasons.get(*key).unwrap_or_else(|| panic!("{key} was not dead-lettered; got {reasons:?}"));
        assert!(reason.contains(expect), "{key}: reason {reason:?} lacks {expect:?}");
    }
    let reason =
        reasons.get("impostor").unwrap_or_else(|| panic!("the forged result was not dead-lettered: {reasons:?}"));
    assert!(reason.contains("claims to come from n1"), "{reason}");
    let counters = stats.dlq();
    assert_eq!(counters.values().sum::<u64>(), cases.len() as u64 + 1, "{counters:?}");
    assert_eq!(counters.get("unauthenticated"), Some(&1), "{counters:?}");
    assert_eq!(stats.results_by_status().values().sum::<u64>(), 0, "the forged result was not taken");
    // The good batches may sit on another partition than the last bad one, so the
    // dead letters arriving first says nothing about them: wait for them on their own.
    let processed = || JobStats::get(&stats.samples) >= 12 && JobStats::get(&stats.windows_closed) >= 1;
    while !processed() && tokio::time::Instant::now() < deadline + Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        processed(),
        "good telemetry after the bad was not processed: samples {}, windows closed {}",
        JobStats::get(&stats.samples),
        JobStats::get(&stats.windows_closed)
    );
    stop.send(true).unwrap();
    job.await.unwrap().unwrap();
}
