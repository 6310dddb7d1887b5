//! Watching the stream job as an operator does: `/metrics`, `/healthz` and `/readyz`
//! of a demo run, scraped four times a second while the mesh fails and heals (the
//! embedded broker, the real pipeline). The job starts 6 s after the mesh, so it
//! first has a backlog to catch up on.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use x0_harness::demo::{run_demo, DemoOptions, DEFAULT_SCENARIO};
use x0_pipeline::{Config, JobStats};
use x0_schema::{ContentType, Scenario};

/// The value of every series of `name` whose labels contain `with`, summed.
fn sum(text: &str, name: &str, with: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (n, labels) = series.split_once('{').unwrap_or((series, ""));
            n == name && labels.contains(with)
        })
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[derive(Debug)]
struct Poll {
    at: Duration,
    ready: u16,
    why: String,
    telemetry_lag: Option<f64>,
    event_lag: Option<f64>,
    metrics: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_readiness_follow_a_demo_that_heals() {
    let addr: SocketAddr = format!("127.0.0.1:{}", support::free_port()).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default();
    let (max_lag, max_delay) = (config.ops.ready_max_lag as f64, config.ops.ready_max_delay.as_secs_f64());
    let scenario = Scenario::from_toml_str(DEFAULT_SCENARIO).unwrap();
    // The embedded broker is not Send: the demo runs on this task, the scraper beside it.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let finished = done.clone();
    let scraper = tokio::spawn(async move {
        let started = Instant::now();
        let mut polls = Vec::new();
        while !finished.load(std::sync::atomic::Ordering::Relaxed) {
            let got = tokio::task::spawn_blocking(move || {
                let health = x0_ops::http_get(addr, "/healthz")?;
                Ok::<_, std::io::Error>((
                    health,
                    x0_ops::http_get(addr, "/readyz")?,
                    x0_ops::http_get(addr, "/metrics")?,
                ))
            })
            .await
            .unwrap();
            if let Ok((health, (ready, why), (status, metrics))) = got {
                assert_eq!(health, (200, "ok\n".to_string()));
                assert_eq!(status, 200, "{metrics}");
                polls.push(Poll {
                    at: started.elapsed(),
                    ready,
                    why,
                    telemetry_lag: sum(&metrics, "x0_job_consumer_lag", "topic=\"x0.telemetry\""),
                    event_lag: sum(&metrics, "x0_job_event_time_lag_seconds", ""),
                    metrics,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        polls
    });
    let outcome = run_demo(DemoOptions {
        scenario,
        config,
        data_dir: dir.path().to_path_buf(),
        speed: 1.0,
        encoding: ContentType::Arrow,
        progress: false,
        job_start_delay: Duration::from_secs(6),
        listen: Some(addr.to_string()),
        ui: false,
    })
    .await
    .unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let polls = scraper.await.unwrap();

    assert!(polls.len() > 100, "the endpoint answered through the run ({} polls)", polls.len());

    // Not ready before the job consumes; ready only while caught up; ready at the end.
    let first = &polls[0];
    assert_eq!(first.ready, 503, "{first:?}");
    assert!(first.why.contains("no window closed yet"), "{}", first.why);
    let ready: Vec<&Poll> = polls.iter().filter(|p| p.ready == 200).collect();
    let became = ready.first().expect("the job became ready");
    assert!(became.at > Duration::from_secs(6), "ready before the job started: {:?}", became.at);
    for p in &ready {
        let (lag, behind) = (p.telemetry_lag.unwrap(), p.event_lag.unwrap());
        assert!(lag <= max_lag && behind <= max_delay, "ready at {:?} with lag {lag} and {behind} s behind", p.at);
    }
    let last = polls.last().unwrap();
    assert_eq!(last.ready, 200, "{last:?}");
    let lag = last.telemetry_lag.unwrap();
    assert!(lag <= 64.0, "telemetry lag falls to near zero (a few ticks of 16 nodes): {lag}");
    println!(
        "{} polls; ready from {:.1} s (job started at 6 s); final telemetry lag {lag}; {:.2} s behind",
        polls.len(),
        became.at.as_secs_f64(),
        last.event_lag.unwrap()
    );

    // The run as the metrics tell it: one incident, its commands, their results.
    let m = &last.metrics;
    let stats = &outcome.job;
    assert_eq!(sum(m, "x0_job_incidents_opened_total", ""), Some(1.0), "{m}");
    assert_eq!(sum(m, "x0_job_incidents", "root_cause=\"link-down\""), Some(1.0), "{m}");
    let commands = outcome.report.commands.len() as f64;
    assert!(commands > 0.0);
    assert_eq!(sum(m, "x0_job_commands_sent_total", ""), Some(commands), "{m}");
    assert_eq!(sum(m, "x0_job_command_results_total", "status=\"applied\""), Some(commands), "{m}");
    assert_eq!(sum(m, "x0_job_windows_closed_total", ""), Some(JobStats::get(&stats.windows_closed) as f64));
    assert_eq!(sum(m, "x0_job_decision_seconds_count", ""), Some(JobStats::get(&stats.windows_closed) as f64));
    assert!(sum(m, "x0_job_samples_total", "").unwrap() > 10_000.0, "{m}");
    assert_eq!(sum(m, "x0_job_model_info", "version=\""), Some(1.0), "{m}");
    for series in ["x0_job_dead_lettered", "x0_job_late_rows_total", "x0_job_rollbacks_total", "x0_job_kb_errors_total"]
    {
        assert!(m.contains(series), "{series} missing");
    }
    // Bounded cardinality: no series names a node.
    assert!(!m.lines().any(|l| l.contains("node=\"")), "a per-node label: {m}");
}
