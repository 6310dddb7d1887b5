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
        let dir = tempfile::tempdir().unwrap();
        x0_schema::generate_key_files(dir.path()).unwrap();
        let config = format!(
            "data_dir = \"{}\"\n{}\n[keys]\nsigning_key = \"{}\"\nverifying_key = \"{}\"\n",
            dir.path().join("history").display(),
            broker.kafka_toml(),
            dir.path().join("signing.key").display(),
            dir.path().join("verifying.key").display(),
        );
        std::fs::write(dir.path().join("x0.toml"), config).unwrap();
        std::fs::write(dir.path().join("scenario.toml"), SCENARIO).unwrap();
        Setup { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn x0(&self, log: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_x0tta6bl4"));
        c.arg("--config").arg(self.path("x0.toml")).stdin(Stdio::null()).stdout(Stdio::null());
        c.stderr(std::fs::File::create(self.path(log)).unwrap());
        c
    }

    fn job(&self, log: &str) -> Child {
        self.x0(log).arg("run").arg("--topology").arg(self.path("scenario.toml")).spawn().unwrap()
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
    let second = s.job("job-2.log");
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
