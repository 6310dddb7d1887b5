//! A real `x0-agent` in a network namespace whose broker, a separate process (tansu),
//! is paused (SIGSTOP) for longer than the agent's producer waits for it (10 s): the
//! agent keeps its routes (fails open), drops its oldest telemetry and counts every
//! batch it dropped, and delivers again once the broker is back. Counted from the
//! topic's messages and the agent's `/metrics`, not from log lines. Needs root and
//! tansu (see `tests/support` of the workspace); without them it prints SKIPPED (with
//! `X0_REQUIRE_KERNEL_TESTS=1` / `X0_REQUIRE_BROKER_TESTS=1` a skip fails).
#![allow(clippy::unwrap_used)]

#[path = "../../tests/support/mod.rs"]
mod broker;
mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{route_to_n4, skip_unless_root};
use x0_kafka::rdkafka::message::{Headers, Message};
use x0_schema::{decode_telemetry, ContentType, CONTENT_TYPE_HEADER};

/// The value of the one series `series` (name and labels, as exposed).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn metrics(addr: SocketAddr) -> String {
    let (status, m) = x0_ops::http_get(addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    m
}

/// Every telemetry batch's timestamp in the topic before `until` (ns), read from the
/// start (no group membership to wait for) until a batch from `until` on arrives.
async fn batch_times(kafka: &x0_kafka::KafkaConfig, until: i64) -> BTreeSet<i64> {
    let consumer = kafka.unmanaged_consumer("outage-count").unwrap();
    x0_kafka::assign_all(&consumer, &kafka.topics.telemetry, Duration::from_secs(10)).unwrap();
    let mut times = BTreeSet::new();
    while let Ok(m) = tokio::time::timeout(Duration::from_secs(10), consumer.recv()).await {
        let m = m.unwrap();
        let header = m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == CONTENT_TYPE_HEADER)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        });
        let kind = ContentType::from_header(header.as_deref()).unwrap();
        let batch = decode_telemetry(kind, m.payload().unwrap_or_default()).unwrap();
        let ts = batch.links.iter().map(|s| s.ts).chain(batch.nodes.iter().map(|s| s.ts)).next().unwrap();
        if ts >= until {
            return times;
        }
        assert!(times.insert(ts), "batch {ts} delivered twice");
    }
    panic!("no telemetry from after {until} within 10 s; got {} batches before it", times.len())
}

#[test]
fn an_agent_counts_exactly_the_telemetry_a_broker_outage_cost() {
    if skip_unless_root("an_agent_counts_exactly_the_telemetry_a_broker_outage_cost") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let Some(broker) = rt.block_on(broker::TestBroker::start("agent-outage", 1)) else { return };
    let Some(pid) = broker.pid() else {
        println!("SKIPPED: an external cluster cannot be paused");
        return;
    };
    let (ns, dir, _key) = support::node("x0out");
    let kafka = broker.kafka.clone();
    let port = broker::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, broker.kafka_toml()).unwrap();
    let listen = addr.to_string();
    let extra = ["--listen", listen.as_str(), "--config", config.to_str().unwrap()];
    let _agent = support::start_agent(&ns.0, dir.path(), &kafka.brokers, &extra, Some(&dir.path().join("agent.log")));
    let started = Instant::now();
    while !matches!(x0_ops::http_get(addr, "/readyz"), Ok((200, _))) {
        let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
        assert!(started.elapsed() < Duration::from_secs(30), "agent never ready:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let route = route_to_n4(&ns.0);
    assert!(route.is_some(), "the baseline route is in the kernel");

    let broker_pid = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(broker_pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    std::thread::sleep(Duration::from_secs(15));
    assert_eq!(route_to_n4(&ns.0), route, "the agent kept its routes while the broker was away");
    nix::sys::signal::kill(broker_pid, nix::sys::signal::Signal::SIGCONT).unwrap();

    // Delivering again: the queue drains, nothing more is dropped, new batches arrive.
    let resumed = Instant::now();
    let (mut last_dropped, mut steady_since) = (f64::NAN, Instant::now());
    let m = loop {
        let m = metrics(addr);
        let dropped = value(&m, "x0_agent_telemetry_dropped_total").unwrap_or(0.0);
        if dropped != last_dropped {
            (last_dropped, steady_since) = (dropped, Instant::now());
        }
        let drained = value(&m, "x0_agent_telemetry_buffered") == Some(0.0);
        if drained && steady_since.elapsed() > Duration::from_secs(3) {
            println!("delivering again {:.1} s after the broker resumed", (steady_since - resumed).as_secs_f64());
            break m;
        }
        if resumed.elapsed() > Duration::from_secs(60) {
            let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            panic!("the agent never delivered again:\n{m}\nits log, last lines first:\n{}", tail.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let dropped = value(&m, "x0_agent_telemetry_dropped_total").unwrap();
    // Batches from before now: the drop counter has had its say on all of them.
    let times = rt.block_on(batch_times(&kafka, x0_schema::wall_clock_ns()));
    let step = 100_000_000; // the agent's default telemetry interval, 100 ms
    let missing: i64 = times.iter().zip(times.iter().skip(1)).map(|(a, b)| (b - a) / step - 1).sum();
    let (first, last) = (times.first().unwrap(), times.last().unwrap());
    println!(
        "outage: {} batches in the topic from {first} to {last}, {missing} missing; the agent counted {dropped} dropped and {} uncertain of {} handed to its producer, and replaced its producer {} times",
        times.len(),
        value(&m, "x0_agent_telemetry_uncertain_total").unwrap_or(f64::NAN),
        value(&m, "x0_agent_telemetry_batches_total").unwrap_or(0.0),
        value(&m, "x0_agent_producer_restarts_total").unwrap_or(f64::NAN),
    );
    assert!(missing > 0, "a 15 s pause outlasts the producer's 10 s wait: some telemetry is lost");
    // Batches given up on in flight may or may not be in the log: the agent counts
    // them apart, so what the topic lacks lies between the two counts.
    let uncertain = value(&m, "x0_agent_telemetry_uncertain_total").unwrap();
    let lacking = missing as f64;
    assert!(
        dropped <= lacking && lacking <= dropped + uncertain,
        "the agent's counters bound what the topic lacks: {dropped} dropped, {uncertain} uncertain, {missing} missing"
    );
    assert!(*last > x0_schema::wall_clock_ns() - 5_000_000_000, "telemetry after the pause was delivered");
}
