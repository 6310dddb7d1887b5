//! One Kafka hop, produce to consume, with the job's client settings: librdkafka's
//! mock cluster (the demo's embedded broker) or a broker process named on the command
//! line (tansu, or any Kafka). The payload carries its send time; the consumer, in the
//! same process, takes the difference.
//!
//! cargo bench --bench kafka_hop -- [--brokers HOST:PORT] [--messages 2000] [--rate 200]

#[path = "support/mod.rs"]
mod support;

use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() {
    let messages: usize = arg("--messages").and_then(|v| v.parse().ok()).unwrap_or(2000);
    let rate: f64 = arg("--rate").and_then(|v| v.parse().ok()).unwrap_or(200.0);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let (kafka, label, _mock) = support::bench_broker(arg("--brokers"), "hop-bench").await;
        let topic = kafka.topics.telemetry.clone();
        let consumer: StreamConsumer =
            kafka.consumer(&format!("hop-bench-{}", std::process::id()), &[&topic]).expect("consumer");
        let producer = kafka.producer().expect("producer");
        let epoch = Instant::now();
        // Warm up: the consumer joins its group and the first fetches settle.
        let warm = epoch + Duration::from_secs(3);
        let reader = tokio::spawn(async move {
            let mut lat = Vec::new();
            while lat.len() < messages {
                let m = consumer.recv().await.expect("message");
                let sent = u64::from_le_bytes(m.payload().unwrap_or_default()[..8].try_into().expect("8 bytes"));
                let now = epoch.elapsed().as_nanos() as u64;
                if sent != u64::MAX {
                    lat.push(now - sent);
                }
            }
            lat
        });
        let marker = u64::MAX.to_le_bytes();
        while Instant::now() < warm {
            let warm_up = FutureRecord::to(&topic).key("w").payload(&marker[..]);
            let _ = producer.send(warm_up, Duration::from_secs(5)).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        for _ in 0..messages {
            tick.tick().await;
            let sent = (epoch.elapsed().as_nanos() as u64).to_le_bytes();
            // Not awaited in line: a node's agent does not wait for each delivery.
            let (p, t) = (producer.clone(), topic.clone());
            tokio::spawn(async move {
                let _ = p.send(FutureRecord::to(&t).key("n1").payload(&sent[..]), Duration::from_secs(5)).await;
            });
        }
        let mut lat = reader.await.expect("reader");
        lat.sort_unstable();
        let pct = |p: f64| lat[((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1] as f64 / 1e6;
        println!(
            "{label}: {} messages at {rate}/s · produce→consume p50 {:.1} ms · p95 {:.1} ms · p99 {:.1} ms · max {:.1} ms",
            lat.len(),
            pct(0.5),
            pct(0.95),
            pct(0.99),
            pct(1.0)
        );
    });
}
