//! The stream job as a service, against a real broker process (tansu, see
//! `support`): `run` and `simulate` as separate processes, as a user deploys them.
//!
//! One gray failure (30% loss both ways on one link of grid-16) three times:
//! uninterrupted; with the job killed (`kill -9`) during the repair and restarted 3 s
//! later; and with every command delivered twice. Everything is counted from the
//! simulated mesh (route changes, applications per command id, routes still
//! overridden) and from the history through SQL, never from log lines.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::TestBroker;
use x0_sql::HistoryEngine;

const SCENARIO: &str = r#"
name = "service-gray-loss"
duration = "60s"
telemetry_interval = "100ms"
[topology]
shape = "grid"
nodes = 16
seed = 7
[traffic]
pairs = 24
rate_pps = 50
[[fault]]
at = "8s"
kind = "link-loss"
target = "auto"
loss = 0.3
direction = "both"
duration = "20s"
"#;

/// One run's files: configuration, scenario, keys, history, the mesh's counts.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(broker: &TestBroker) -> Setup {
        Setup::with(broker, SCENARIO, "")
    }

    /// With another scenario and more configuration (TOML appended).
    fn with(broker: &TestBroker, scenario: &str, more_config: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        x0_schema::generate_key_files(dir.path()).unwrap();
        let config = format!(
            "data_dir = \"{}\"\n{}\n[keys]\nsigning_key = \"{}\"\nverifying_key = \"{}\"\n",
            dir.path().join("history").display(),
            broker.kafka_toml(),
            dir.path().join("signing.key").display(),
            dir.path().join("verifying.key").display(),
        );
        std::fs::write(dir.path().join("x0.toml"), format!("{config}{more_config}")).unwrap();
        std::fs::write(dir.path().join("scenario.toml"), scenario).unwrap();
        Setup { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn x0(&self, log: &str) -> Command {
        // `X0_TEST_BIN` runs another build of the binary (a release one, to measure).
        let exe = std::env::var_os("X0_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_x0tta6bl4").into());
        let mut c = Command::new(exe);
        c.arg("--config").arg(self.path("x0.toml")).stdin(Stdio::null()).stdout(Stdio::null());
        c.stderr(std::fs::File::create(self.path(log)).unwrap());
        c
    }

    fn job(&self, log: &str) -> Child {
        self.job_with(log, &[])
    }

    fn job_with(&self, log: &str, more: &[&str]) -> Child {
        let mut c = self.x0(log);
        c.arg("run").arg("--topology").arg(self.path("scenario.toml"));
        c.arg("--stats-json").arg(self.path("job.json")).args(more);
        c.spawn().unwrap()
    }

    /// The address of the dashboard a job said it serves in `log`.
    fn dashboard(&self, log: &str) -> std::net::SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.log(log);
            if let Some(url) = text.lines().find_map(|l| l.strip_prefix("dashboard: http://")) {
                return url.trim_end_matches('/').parse().unwrap();
            }
            assert!(Instant::now() < deadline, "no dashboard line in {log}:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn job_stats(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.path("job.json")).unwrap()).unwrap()
    }

    fn simulate(&self, twice: bool) -> Child {
        let mut c = self.x0("simulate.log");
        c.arg("simulate").arg("--scenario").arg(self.path("scenario.toml"));
        c.arg("--verifying-key").arg(self.path("verifying.key"));
        c.arg("--stats-json").arg(self.path("mesh.json"));
        if twice {
            c.arg("--deliver-commands-twice");
        }
        c.spawn().unwrap()
    }

    fn mesh(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.path("mesh.json")).unwrap()).unwrap()
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }
}

/// Waits for a child within `limit`; a child still running then is a hang.
fn wait(child: &mut Child, what: &str, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
}

/// Stops the job cleanly (SIGTERM, as a service manager does) and checks it exits.
fn stop(mut job: Child, s: &Setup, log: &str) {
    signal(&job, nix::sys::signal::Signal::SIGTERM);
    let status = wait(&mut job, "the stream job after SIGTERM", Duration::from_secs(30));
    assert!(status.success(), "job exited with {status}:\n{}", s.log(log));
}

/// What a run left behind.
#[derive(Debug)]
struct Outcome {
    mesh: serde_json::Value,
    incidents: i64,
    unfinished: i64,
    recovered: i64,
    refused_or_rolled_back: i64,
}

async fn count(engine: &HistoryEngine, sql: &str) -> i64 {
    let batches = engine.query(sql).await.unwrap();
    let col = batches[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap();
    col.value(0)
}

async fn outcome(s: &Setup) -> Outcome {
    let engine = HistoryEngine::open(s.path("history").to_str().unwrap()).await.unwrap();
    Outcome {
        mesh: s.mesh(),
        incidents: count(&engine, "SELECT count(*) FROM incidents").await,
        unfinished: count(
            &engine,
            "SELECT count(*) FROM incidents WHERE state NOT IN ('resolved', 'failed', 'closed')",
        )
        .await,
        recovered: count(&engine, "SELECT count(*) FROM incidents WHERE state = 'resolved' AND outcome = 'recovered'")
            .await,
        refused_or_rolled_back: count(
            &engine,
            "SELECT count(*) FROM commands WHERE status IN ('rejected', 'failed', 'rolled_back')",
        )
        .await,
    }
}

async fn uninterrupted(twice: bool) -> Option<(Setup, Outcome)> {
    let broker = TestBroker::start(if twice { "service-twice" } else { "service-plain" }, 4).await?;
    let s = Setup::new(&broker);
    let job = s.job("job.log");
    let mut sim = s.simulate(twice);
    let status = wait(&mut sim, "simulate", Duration::from_secs(120));
    assert!(status.success(), "simulate: {}", s.log("simulate.log"));
    stop(job, &s, "job.log");
    let o = outcome(&s).await;
    Some((s, o))
}

fn n(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_killed_mid_repair_continues_its_incident_and_duplicates_are_never_applied_twice() {
    // Uninterrupted: the reference.
    let Some((_plain_setup, plain)) = uninterrupted(false).await else { return };
    assert_eq!(plain.incidents, 1, "{plain:?}");
    assert_eq!(plain.recovered, 1, "{plain:?}");
    assert_eq!(n(&plain.mesh, "overrides_in_force"), 0, "{plain:?}");

    // Killed with SIGKILL while its repair is being verified, restarted 3 s later.
    let broker = TestBroker::start("service-crash", 4).await.unwrap();
    let s = Setup::new(&broker);
    let mut first = s.job("job-1.log");
    let mut sim = s.simulate(false);
    tokio::time::sleep(Duration::from_secs(15)).await;
    signal(&first, nix::sys::signal::Signal::SIGKILL);
    let _ = first.wait();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Restart to first decision, seen from outside: the restarted job checkpoints at
    // its first window boundary, once that window's outputs are acknowledged.
    let checkpoint = s.path("history").join("checkpoint").join("job.ckpt");
    let mtime = || std::fs::metadata(&checkpoint).and_then(|m| m.modified()).ok();
    let before = mtime();
    let restarted = Instant::now();
    let second = s.job_with("job-2.log", &["--ui", "127.0.0.1:0"]);
    while mtime() == before && restarted.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first_decision = restarted.elapsed();
    assert!(first_decision < Duration::from_secs(30), "no decision within 30 s of the restart");
    eprintln!("restart to first decision (first checkpoint after a window closed): {first_decision:?}");
    // The restarted job's dashboard shows the incident it took over from the checkpoint.
    let ui = s.dashboard("job-2.log");
    let (status, body) = x0_ops::http_get(ui, "/api/state").unwrap();
    assert_eq!(status, 200, "{body}");
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    let shown = state["incidents"].as_array().unwrap();
    assert_eq!(shown.len(), 1, "the restored incident on the restarted job's dashboard: {body}");
    assert_eq!(shown[0]["kind"], "link-loss", "{body}");
    let status = wait(&mut sim, "simulate", Duration::from_secs(120));
    assert!(status.success(), "simulate: {}", s.log("simulate.log"));
    stop(second, &s, "job-2.log");
    let crash = outcome(&s).await;
    let context = format!("{crash:?}\nfirst job:\n{}\nsecond job:\n{}", s.log("job-1.log"), s.log("job-2.log"));
    assert!(s.log("job-2.log").contains("resumed from"), "the restarted job did not take up the checkpoint: {context}");
    assert_eq!(crash.incidents, 1, "one incident for the fault, continued across the crash: {context}");
    assert_eq!(crash.recovered, 1, "and closed once: {context}");
    assert_eq!(crash.unfinished, 0, "{context}");
    assert_eq!(n(&crash.mesh, "max_applications_per_command"), 1, "every command applied at most once: {context}");
    assert_eq!(n(&crash.mesh, "overrides_in_force"), 0, "the overrides are withdrawn after the fault: {context}");
    let (with, without) = (n(&crash.mesh, "route_changes"), n(&plain.mesh, "route_changes"));
    assert!(
        with as f64 <= 1.2 * without as f64,
        "route changes {with} with the crash, {without} without (at most 1.2x): {context}"
    );
    eprintln!("route changes: {without} uninterrupted, {with} with a kill -9 and restart");

    // Every command delivered twice: answered the same, applied once, nothing rolled back.
    let Some((_twice_setup, twice)) = uninterrupted(true).await else { return };
    assert_eq!(twice.incidents, 1, "{twice:?}");
    assert_eq!(twice.recovered, 1, "{twice:?}");
    assert_eq!(twice.refused_or_rolled_back, 0, "a duplicate is never a refusal: {twice:?}");
    assert_eq!(n(&twice.mesh, "command_messages"), 2 * n(&twice.mesh, "distinct_commands"), "{twice:?}");
    assert_eq!(n(&twice.mesh, "applications"), n(&twice.mesh, "distinct_commands"), "{twice:?}");
    assert_eq!(n(&twice.mesh, "overrides_in_force"), 0, "{twice:?}");
    assert_eq!(plain.refused_or_rolled_back, 0, "{plain:?}");
}

const QUIET: &str = r#"
name = "service-quiet"
duration = "40s"
telemetry_interval = "100ms"
[topology]
shape = "grid"
nodes = 16
seed = 7
[traffic]
pairs = 24
rate_pps = 50
"#;

/// The broker paused (SIGSTOP) for 10 s in a quiet mesh: the job takes it as its own
/// outage, not as 16 silent nodes; nothing is opened or rerouted, telemetry after the
/// pause is processed, and what the producers count as lost is what the job lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_broker_is_an_outage_not_a_fault() {
    let Some(broker) = TestBroker::start("service-outage", 4).await else { return };
    let Some(pid) = broker.pid() else {
        eprintln!("SKIPPED: an external cluster cannot be paused");
        return;
    };
    let s = Setup::with(&broker, QUIET, "");
    let job = s.job("job.log");
    let mut sim = s.simulate(false);
    tokio::time::sleep(Duration::from_secs(12)).await;
    let broker_pid = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(broker_pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    nix::sys::signal::kill(broker_pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let status = wait(&mut sim, "simulate", Duration::from_secs(120));
    assert!(status.success(), "simulate: {}", s.log("simulate.log"));
    // The job's consumers catch up before it is stopped.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop(job, &s, "job.log");
    let o = outcome(&s).await;
    let job = s.job_stats();
    let context = format!("{o:?}\njob: {job}\n{}", s.log("job.log"));
    assert_eq!(o.incidents, 0, "an outage is not a fault: {context}");
    assert_eq!(n(&o.mesh, "route_changes"), 0, "{context}");
    let (sent, lost) = (n(&o.mesh, "telemetry_messages"), n(&o.mesh, "send_failures"));
    assert_eq!(n(&job, "messages"), sent - lost, "every delivered message was taken in, and only those: {context}");
    assert_eq!(n(&job, "late_rows"), 0, "the partitions' backlogs are windowed, not dropped as late: {context}");
    // 40 s of 500 ms windows, minus at most the paused 10 s.
    assert!(n(&job, "windows_closed") >= 55, "telemetry after the pause was processed: {context}");
    eprintln!("outage: {sent} telemetry messages sent, {lost} lost to the pause (counted by the producers), {} taken in by the job", n(&job, "messages"));
}

/// A job whose broker is not there, or dies, stops with the reason in bounded time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_without_a_broker_exits_with_the_reason_instead_of_waiting() {
    let Some(broker) = TestBroker::start("service-no-broker", 1).await else { return };
    if broker.pid().is_none() {
        eprintln!("SKIPPED: an external cluster cannot be killed");
        return;
    }
    // Nothing listens on the port: refused at start, within 15 s.
    let s = Setup::with(&broker, QUIET, "");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let mut job = s.x0("job.log");
    job.env("X0__KAFKA__BROKERS", format!("127.0.0.1:{dead}"));
    let mut job = job.arg("run").arg("--topology").arg(s.path("scenario.toml")).spawn().unwrap();
    let status = wait(&mut job, "a job with no broker", Duration::from_secs(30));
    assert!(!status.success());
    assert!(s.log("job.log").contains("no Kafka broker"), "{}", s.log("job.log"));
    eprintln!("no broker at start: exited after {:?}", started.elapsed());

    // The broker dies under a running job: it stops after kafka.outage_limit.
    let mut job = s.x0("job-2.log");
    job.env("X0__KAFKA__OUTAGE_LIMIT", "5s");
    let mut job = job.arg("run").arg("--topology").arg(s.path("scenario.toml")).spawn().unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(job.try_wait().unwrap().is_none(), "running while the broker is up: {}", s.log("job-2.log"));
    drop(broker);
    let killed = Instant::now();
    let status = wait(&mut job, "a job whose broker died", Duration::from_secs(30));
    assert!(!status.success());
    assert!(s.log("job-2.log").contains("no Kafka broker"), "{}", s.log("job-2.log"));
    eprintln!("broker killed under the job: exited after {:?}", killed.elapsed());
}
