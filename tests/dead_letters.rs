//! Bad telemetry lands in the dead-letter topic with a reason and a counter, and the
//! job keeps running; with a fleet secret, so does anything not said by whom it
//! claims: proven on the mock cluster against the real stream job.
#![allow(clippy::unwrap_used)]

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use x0_kafka::{DevBroker, KafkaConfig};
use x0_pipeline::{run_job, Config, FeatureEngine, HealingLoop, JobStats, Trust, BUILTIN_FEATURES_SQL};
use x0_schema::{
    encode_arrow, encode_json_lines, FleetSecret, LinkSample, MessageKey, NodeSample, Provenance, Shape,
    TelemetryBatch, Topics, Topology, TopologySpec, CONTENT_TYPE_ARROW, CONTENT_TYPE_HEADER, CONTENT_TYPE_JSON,
    MAC_HEADER, PRODUCER_HEADER, REASON_HEADER, SCHEMA_VERSION,
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

/// A stream job over a 4-node ring on its own embedded broker.
struct Job {
    _broker: DevBroker,
    _dir: tempfile::TempDir,
    kafka: KafkaConfig,
    stats: Arc<JobStats>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<x0_pipeline::JobReport, x0_pipeline::JobError>>,
}

async fn start_job(trust: Option<Trust>) -> Job {
    let broker = DevBroker::start(&Topics::default(), 1).unwrap();
    let kafka = KafkaConfig::for_brokers(&broker.bootstrap_servers());
    let topo = Topology::generate(&TopologySpec {
        shape: Shape::Ring,
        nodes: 4,
        seed: 1,
        links: vec![],
        regions: Default::default(),
    })
    .unwrap();
    let stats = Arc::new(JobStats::default());
    let features = FeatureEngine::new(BUILTIN_FEATURES_SQL).await.unwrap();
    let mut core =
        HealingLoop::new(Config::default(), topo, features, x0_schema::generate_signing_key(), stats.clone(), "t");
    if let Some(t) = trust {
        core = core.with_trust(t);
    }
    let dir = tempfile::tempdir().unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = {
        let (kafka, root) = (kafka.clone(), dir.path().to_path_buf());
        tokio::spawn(async move { run_job(core, &kafka, &root, "dlq-test", None, stop_rx).await })
    };
    Job { _broker: broker, _dir: dir, kafka, stats, stop, task }
}

/// The dead letters' (key, reason) pairs, until `n` arrived or 30 s passed.
async fn dead_letters(kafka: &KafkaConfig, n: usize) -> Vec<(String, String)> {
    let dlq: StreamConsumer = kafka.consumer("dlq-reader", &[&kafka.topics.dlq]).unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < n && tokio::time::Instant::now() < deadline {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(1), dlq.recv()).await {
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            let reason = m
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == REASON_HEADER).and_then(|h| h.value))
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            got.push((key, reason));
        }
    }
    dlq.unsubscribe();
    got
}

/// Waits until the job has taken in `samples` samples and closed a window.
async fn processed(stats: &JobStats, samples: u64) {
    let done = || JobStats::get(&stats.samples) >= samples && JobStats::get(&stats.windows_closed) >= 1;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        done(),
        "good telemetry was not processed: samples {} of {samples}, windows closed {}",
        JobStats::get(&stats.samples),
        JobStats::get(&stats.windows_closed)
    );
}

/// A refusal of some command in n1's name, as JSON.
fn forged_refusal(t: i64) -> Vec<u8> {
    x0_schema::CommandResult {
        schema_version: x0_schema::SCHEMA_VERSION,
        command_id: "inc-x.c1.00000000".into(),
        node: "n1".into(),
        status: x0_schema::ResultStatus::Rejected,
        reason: "forged".into(),
        applied_at: t,
        routes: vec![],
    }
    .to_json()
}

fn headers(content_type: &str) -> OwnedHeaders {
    OwnedHeaders::new().insert(Header { key: CONTENT_TYPE_HEADER, value: Some(content_type) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_telemetry_is_dead_lettered_with_a_reason_and_the_job_keeps_running() {
    let job = start_job(None).await;
    let (kafka, stats, topics) = (&job.kafka, &job.stats, &job.kafka.topics);

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
        producer
            .send(
                FutureRecord::to(&topics.telemetry).key(*key).payload(payload).headers(headers(ct)),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }
    // A result in another node's name (keyed by its real sender): refused, never taken.
    let json = forged_refusal(t);
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
        producer
            .send(
                FutureRecord::to(&topics.telemetry).key("n0").payload(&ok).headers(headers(CONTENT_TYPE_ARROW)),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }

    let reasons: BTreeMap<String, String> = dead_letters(kafka, cases.len() + 1).await.into_iter().collect();
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
    processed(stats, 12).await;
    job.stop.send(true).unwrap();
    job.task.await.unwrap().unwrap();
}

/// With a fleet secret, only a node speaks for itself, and a registered third-party
/// producer for its nodes: impersonation, smuggled samples, missing or wrong MACs and
/// forged results are dead-lettered as `unauthenticated`, and nothing they say is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_node_speaks_for_itself_with_a_fleet_secret() {
    let fleet = FleetSecret::generate();
    let bridge = MessageKey::generate();
    let trust = Trust::new(fleet.clone()).with_producer("bridge", bridge.clone(), Some(["n2".to_string()].into()));
    let job = start_job(Some(trust)).await;
    let (kafka, stats, topics) = (&job.kafka, &job.stats, &job.kafka.topics);
    let producer = kafka.producer().unwrap();
    let t = now_ns();
    let send = |topic: &str, key: &str, payload: Vec<u8>, h: OwnedHeaders| {
        let (topic, key, producer) = (topic.to_string(), key.to_string(), producer.clone());
        async move {
            producer
                .send(FutureRecord::to(&topic).key(&key).payload(&payload).headers(h), Duration::from_secs(5))
                .await
                .unwrap();
        }
    };
    let signed = |key: &MessageKey, as_key: &str, payload: &[u8], producer: Option<&str>| {
        let h = headers(CONTENT_TYPE_ARROW)
            .insert(Header { key: MAC_HEADER, value: Some(&key.mac(as_key.as_bytes(), payload)) });
        match producer {
            Some(p) => h.insert(Header { key: PRODUCER_HEADER, value: Some(p) }),
            None => h,
        }
    };
    let of = |n: &str, ts: i64| arrow(TelemetryBatch { links: vec![], nodes: vec![node(ts, n)] });
    let n0 = fleet.node_key("n0");
    // (key, payload, headers, reason)
    let bad = [
        ("n1", of("n1", t), signed(&n0, "n1", &of("n1", t), None), "MAC does not verify under n1's key"),
        ("n0", of("n1", t), signed(&n0, "n0", &of("n1", t), None), "node n0 may not report samples of n1"),
        ("n3", of("n3", t), headers(CONTENT_TYPE_ARROW), "carries no MAC"),
        (
            "n3",
            of("n3", t),
            signed(&bridge, "n3", &of("n3", t), Some("bridge")),
            "producer bridge may not report samples of n3",
        ),
        ("n2", of("n2", t), signed(&n0, "n2", &of("n2", t), Some("bridge")), "under producer bridge's key"),
        ("n2", of("n2", t), signed(&bridge, "n2", &of("n2", t), Some("ghost")), "unknown producer"),
    ];
    for (key, payload, h, _) in bad.clone() {
        send(&topics.telemetry, key, payload, h).await;
    }
    // A refusal in n1's name, signed with n0's key, and one not signed at all.
    let forged = forged_refusal(t);
    let mac = n0.mac(b"n1", &forged);
    send(
        &topics.command_results,
        "n1",
        forged.clone(),
        OwnedHeaders::new().insert(Header { key: MAC_HEADER, value: Some(&mac) }),
    )
    .await;
    send(&topics.command_results, "n1", forged, OwnedHeaders::new()).await;
    // The genuine: each node for itself, the bridge for n2.
    for i in 1..=3 {
        let ts = t + i * 1_000_000_000;
        for n in ["n0", "n1"] {
            let p = of(n, ts);
            send(&topics.telemetry, n, p.clone(), signed(&fleet.node_key(n), n, &p, None)).await;
        }
        let p = of("n2", ts);
        send(&topics.telemetry, "n2", p.clone(), signed(&bridge, "n2", &p, Some("bridge"))).await;
    }

    let letters = dead_letters(kafka, bad.len() + 2).await;
    for (key, _, _, expect) in &bad {
        assert!(
            letters.iter().any(|(k, r)| k == key && r.contains(expect)),
            "{key}: no dead letter saying {expect:?} in {letters:#?}"
        );
    }
    assert!(letters.iter().any(|(k, r)| k == "n1" && r.contains("MAC does not verify under n1's key")), "{letters:#?}");
    assert!(letters.iter().any(|(k, r)| k == "n1" && r.contains("no MAC")), "{letters:#?}");
    processed(stats, 9).await;
    assert_eq!(stats.dlq(), BTreeMap::from([("unauthenticated", bad.len() as u64 + 2)]));
    assert_eq!(JobStats::get(&stats.samples), 9, "the genuine samples only");
    assert_eq!(stats.results_by_status().values().sum::<u64>(), 0, "no forged result was taken");
    println!("{} dead letters, all unauthenticated; 9 genuine samples taken", letters.len());
    job.stop.send(true).unwrap();
    job.task.await.unwrap().unwrap();
}
