//! What the benches share: CPU time from `/proc` and the clock, and the broker to
//! measure against.
#![allow(dead_code)]

/// User + system CPU time of this process so far, in seconds (`/proc/self/stat`, in
/// clock ticks of 10 ms).
pub(crate) fn cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/self/stat")
}

/// The same for one thread of this process.
pub(crate) fn thread_cpu_seconds(tid: u32) -> f64 {
    stat_cpu_seconds(&format!("/proc/self/task/{tid}/stat"))
}

fn stat_cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).expect("a /proc stat file");
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}

/// CPU time of this process so far (every thread), in seconds, to the nanosecond
/// (`CLOCK_PROCESS_CPUTIME_ID`).
pub(crate) fn process_cpu_precise() -> f64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID).expect("process CPU clock");
    t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9
}

/// The broker a bench runs against: `--brokers HOST:PORT` (its telemetry topic
/// `x0.<bench>-<pid>`, created with one partition), or librdkafka's mock cluster in
/// this process (kept alive by the returned handle). Returns the client settings and
/// a label for the report.
pub(crate) async fn bench_broker(
    brokers: Option<String>,
    bench: &str,
) -> (x0_kafka::KafkaConfig, String, Option<x0_kafka::DevBroker>) {
    match brokers {
        Some(b) => {
            let mut k = x0_kafka::KafkaConfig::for_brokers(&b);
            k.topics.telemetry = format!("x0.{bench}-{}", std::process::id());
            k.create_topics(&[&k.topics.telemetry], 1).await.expect("topic");
            (k, format!("broker at {b}"), None)
        }
        None => {
            // The mock cluster has its topics already (and no admin API).
            let mock = x0_kafka::DevBroker::start(&x0_schema::Topics::default(), 1).expect("mock cluster");
            let k = x0_kafka::KafkaConfig::for_brokers(&mock.bootstrap_servers());
            (k, "mock cluster (in process)".to_string(), Some(mock))
        }
    }
}
