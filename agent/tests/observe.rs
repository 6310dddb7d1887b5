//! The agent as its operator watches it: `/metrics`, `/healthz`, `/readyz` and JSON
//! logs of a real `x0-agent` in a network namespace (interface counters, link probes
//! whose far ends answer nothing), taking one good command and two bad ones over the
//! embedded broker. Needs root; without it prints SKIPPED (with
//! `X0_REQUIRE_KERNEL_TESTS=1` a skip fails).
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{result_of, skip_unless_root};
use x0_kafka::rdkafka::consumer::StreamConsumer;
use x0_kafka::rdkafka::producer::FutureRecord;
use x0_kafka::{DevBroker, KafkaConfig};
use x0_schema::{wall_clock_ns, ResultStatus, Topics};

/// The value of the one series `series` (name and labels, as exposed).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn an_agent_shows_its_commands_probes_and_readiness() {
    if skip_unless_root("an_agent_shows_its_commands_probes_and_readiness") {
        return;
    }
    let (ns, dir, key) = support::node("x0obs");
    let broker = DevBroker::start(&Topics::default(), 1).unwrap();
    let kafka = KafkaConfig::for_brokers(&broker.bootstrap_servers());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = dir.path().join("agent.log");
    let listen = addr.to_string();
    let extra = ["--listen", listen.as_str(), "--log-format", "json"];
    let _agent = support::start_agent(&ns.0, dir.path(), &kafka.brokers, &extra, Some(&log));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let applied_id = "inc-obs.c1.00000001";
    rt.block_on(async {
        let results: StreamConsumer = kafka.consumer("observe-test", &[&kafka.topics.command_results]).unwrap();
        let producer = kafka.producer().unwrap();
        let later = wall_clock_ns() + 600_000_000_000;
        let commands = [
            support::command(&key, applied_id, "inc-obs", later),
            support::command(&x0_schema::generate_signing_key(), "inc-obs.c2.forged", "inc-obs", later),
            support::command(&key, "inc-obs.c3.expired", "inc-obs", wall_clock_ns() - 1),
        ];
        for c in &commands {
            let json = c.to_json();
            producer
                .send(FutureRecord::to(&kafka.topics.commands).key("n1").payload(&json), Duration::from_secs(5))
                .await
                .unwrap();
        }
        assert_eq!(result_of(&results, applied_id).await.status, ResultStatus::Applied);
    });

    // Ready once its command topic is assigned and the broker took its telemetry.
    let started = Instant::now();
    let ready = loop {
        match x0_ops::http_get(addr, "/readyz") {
            Ok((200, _)) => break started.elapsed(),
            other if started.elapsed() > Duration::from_secs(20) => panic!("never ready: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert_eq!(x0_ops::http_get(addr, "/healthz").unwrap(), (200, "ok\n".into()));
    // Every command answered (the bad ones are refused at once), probes counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let (status, m) = x0_ops::http_get(addr, "/metrics").unwrap();
        assert_eq!(status, 200);
        let answered: f64 = ["none", "bad_signature", "expired"]
            .iter()
            .filter_map(|r| {
                value(
                    &m,
                    &format!(
                        "x0_agent_commands_total{{status=\"{}\",reason=\"{r}\"}}",
                        if *r == "none" { "applied" } else { "rejected" }
                    ),
                )
            })
            .sum();
        if answered == 3.0 || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for (series, want) in [
        ("x0_agent_commands_total{status=\"applied\",reason=\"none\"}", 1.0),
        ("x0_agent_commands_total{status=\"rejected\",reason=\"bad_signature\"}", 1.0),
        ("x0_agent_commands_total{status=\"rejected\",reason=\"expired\"}", 1.0),
        ("x0_agent_probe_mode{mode=\"procfs\"}", 1.0),
        ("x0_agent_telemetry_dropped_total", 0.0),
    ] {
        assert_eq!(value(&m, series), Some(want), "{series} in\n{m}");
    }
    for series in
        ["x0_agent_telemetry_batches_total", "x0_agent_samples_total", "x0_agent_probes_sent_total{peer=\"n2\"}"]
    {
        assert!(value(&m, series).unwrap_or(0.0) > 0.0, "{series} in\n{m}");
    }
    // Nobody answers at the far end: every probe that timed out is lost.
    assert!(value(&m, "x0_agent_probes_lost_total{peer=\"n3\"}").unwrap_or(0.0) > 0.0, "{m}");
    assert!(value(&m, "x0_agent_telemetry_buffered").is_some(), "{m}");
    println!("agent ready {ready:?} after the commands were answered");

    // JSON logs: one object per line, stable fields, the command's id on its line.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.iter().all(|l| l["timestamp"].is_string() && l["level"].is_string() && l["message"].is_string()),
        "{text}"
    );
    let answered = lines.iter().find(|l| l["message"] == "command answered" && l["command_id"] == applied_id);
    assert!(answered.is_some_and(|l| l["status"] == "applied" && l["node"] == "n1"), "{text}");
    let refused = lines.iter().find(|l| l["command_id"] == "inc-obs.c2.forged");
    assert!(refused.is_some_and(|l| l["status"] == "rejected"), "{text}");
    drop(broker);
}
