//! What Kafka costs the stream job per sample: the job's consumer taking in a backlog
//! of real telemetry (a `--nodes`-node grid's batches over `--seconds`, in the
//! agents' compact framing), with the job's client settings, on librdkafka's mock
//! cluster (the demo's embedded broker) or a broker process (`--brokers`: tansu, or
//! any Kafka).
//!
//! The messages are produced 5,000 at a time, and each batch is then read by the
//! consumer and decoded, timed. The process's CPU time over the read (every thread: librdkafka's
//! fetch and broker threads do the transport) less the decoding is the transport's
//! share; `throughput` measures the job's work after decoding.
//!
//! cargo bench --bench transport -- [--nodes 2000] [--seconds 10] [--brokers HOST:PORT]

#[path = "support/mod.rs"]
mod support;

use futures::future::join_all;
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use std::time::{Duration, Instant};
use support::process_cpu_precise;
use x0_kafka::telemetry_message;
use x0_lab::{SimMesh, SimOptions};
use x0_schema::{decode_telemetry, ContentType, Scenario};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// Messages produced, then read, at a time.
const CHUNK: usize = 5_000;

fn main() {
    let nodes: usize = arg("--nodes").and_then(|v| v.parse().ok()).unwrap_or(2000);
    let seconds: u64 = arg("--seconds").and_then(|v| v.parse().ok()).unwrap_or(10);
    let scenario = Scenario::from_toml_str(&format!(
        "name='transport'\nduration='{seconds}s'\ntelemetry_interval='100ms'\n[topology]\nshape='grid'\nnodes={nodes}\nseed=1\n[traffic]\npairs=0\nrate_pps=0\n"
    ))
    .expect("scenario");
    let mut mesh = SimMesh::new(&scenario, SimOptions { start_ns: 1_700_000_000_000_000_000, ..Default::default() })
        .expect("mesh");
    let mut batches = Vec::new();
    while !mesh.finished() {
        batches.extend(mesh.step());
    }
    let samples: usize = batches.iter().map(|(_, b)| b.len()).sum();
    let encoded: Vec<_> =
        batches.iter().map(|(node, b)| (node.clone(), telemetry_message(ContentType::Binary, b))).collect();
    let bytes: usize = encoded.iter().map(|(_, (p, _))| p.len()).sum();
    eprintln!("{} messages, {samples} samples, {:.1} MB", encoded.len(), bytes as f64 / 1e6);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let (kafka, label, _mock) = support::bench_broker(arg("--brokers"), "transport-bench").await;
        let topic = kafka.topics.telemetry.clone();
        let producer = kafka.producer().expect("producer");
        // The job's consumer: manual commits, as a durable job runs.
        let consumer: StreamConsumer = kafka
            .consumer_with(&format!("transport-bench-{}", std::process::id()), &[&topic], true, None)
            .expect("consumer");
        // A chunk at a time, produced and acknowledged, then read: the broker keeps a
        // bounded log (the mock cluster drops the oldest of a long backlog), and only
        // the reading is timed.
        let (mut read, mut taken, mut decode) = (0usize, 0usize, Duration::ZERO);
        let (mut wall, mut cpu) = (0.0, 0.0);
        for (i, chunk) in encoded.chunks(CHUNK).enumerate() {
            let sends = chunk.iter().map(|(node, (payload, headers))| {
                let record = FutureRecord::to(&topic).key(node.as_str()).payload(payload).headers(headers.clone());
                producer.send(record, Duration::from_secs(30))
            });
            for sent in join_all(sends).await {
                sent.expect("delivered");
            }
            let (cpu0, t0) = (process_cpu_precise(), Instant::now());
            let mut got = 0;
            while got < chunk.len() {
                // The first chunk waits for the group to form: not timed.
                let m = match tokio::time::timeout(Duration::from_secs(if i == 0 { 30 } else { 5 }), consumer.recv()).await {
                    Ok(m) => m.expect("message"),
                    Err(_) => panic!("chunk {i}: {got} of {} messages read within the timeout", chunk.len()),
                };
                let t = Instant::now();
                let n = decode_telemetry(ContentType::Binary, m.payload().unwrap_or_default()).expect("valid").len();
                got += 1;
                if i > 0 {
                    (taken, read, decode) = (taken + n, read + 1, decode + t.elapsed());
                }
            }
            if i > 0 {
                (wall, cpu) = (wall + t0.elapsed().as_secs_f64(), cpu + process_cpu_precise() - cpu0);
            }
        }
        let transport = (cpu - decode.as_secs_f64()).max(0.0);
        println!("{label}: {read} messages ({taken} samples) read and decoded in chunks of {CHUNK} (the first chunk, the group forming, not counted)");
        println!(
            "wall {wall:.2} s ({:.0} samples/s) · process CPU {cpu:.2} s ({:.0} samples per CPU-second) · decode {:.2} s",
            taken as f64 / wall,
            taken as f64 / cpu,
            decode.as_secs_f64()
        );
        println!(
            "transport (CPU less decoding): {:.0} ns per sample, {:.0} ns per message; at 1 M samples/s that is {:.2} cores",
            transport * 1e9 / taken as f64,
            transport * 1e9 / read as f64,
            transport / taken as f64 * 1e6
        );
    });
}
