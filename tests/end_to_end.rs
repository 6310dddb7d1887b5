//! The whole loop on the mock cluster: scenario → telemetry → windows → incident →
//! signed commands → actuator results → Parquet rows, scored against ground truth.
#![allow(clippy::unwrap_used)]

use std::time::Duration;
use x0_harness::demo::{run_demo, DemoOptions, DemoOutcome};
use x0_harness::history_labels::{label_incident, read_history, HistorySet, OperatorVerdict};
use x0_pipeline::Config;
use x0_schema::{ContentType, IncidentState, Outcome, ResultStatus, Scenario};
use x0_sql::HistoryEngine;

fn scenario(kind: &str, extra: &str) -> Scenario {
    Scenario::from_toml_str(&format!(
        r#"
        name = "e2e-{kind}"
        duration = "14s"
        telemetry_interval = "100ms"
        [topology]
        shape = "grid"
        nodes = 16
        seed = 7
        [traffic]
        pairs = 24
        rate_pps = 50
        [[fault]]
        at = "5s"
        kind = "{kind}"
        target = "auto"
        {extra}
        "#
    ))
    .expect("valid scenario")
}

/// Runs a scenario through the whole loop at real speed; the history lands in `dir`.
async fn run(scenario: Scenario, encoding: ContentType, dir: &std::path::Path) -> DemoOutcome {
    run_delayed(scenario, encoding, dir, Duration::ZERO).await
}

async fn run_delayed(scenario: Scenario, encoding: ContentType, dir: &std::path::Path, delay: Duration) -> DemoOutcome {
    run_with(scenario, encoding, dir, delay, Config::default()).await
}

async fn run_with(
    scenario: Scenario,
    encoding: ContentType,
    dir: &std::path::Path,
    delay: Duration,
    config: Config,
) -> DemoOutcome {
    let options = DemoOptions {
        scenario,
        config,
        data_dir: dir.to_path_buf(),
        speed: 1.0,
        encoding,
        progress: false,
        job_start_delay: delay,
        listen: None,
        ui: false,
    };
    run_demo(options).await.expect("demo runs")
}

async fn count(engine: &HistoryEngine, sql: &str) -> i64 {
    let batches = engine.query(sql).await.expect("query runs");
    let col = batches[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().expect("count is i64");
    col.value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_link_failure_is_detected_rerouted_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(scenario("link-down", ""), ContentType::Arrow, dir.path()).await;
    let s = &outcome.summary;
    let f = &s.faults[0];
    assert!(f.detected_at_ms.is_some(), "not detected: {s:?}");
    assert!(f.root_cause_correct, "wrong root cause: {s:?}");
    assert!(f.actions > 0, "no commands: {s:?}");
    assert!(f.traffic_restored_at_ms.is_some(), "traffic never restored: {s:?}");
    assert!(f.mttd_ms.unwrap() < 2_000, "{s:?}");
    assert_eq!(s.false_incidents, 0);

    // Every command was applied by an actuator and came back as a result.
    let incident = &outcome.report.incidents[0];
    // A repair still being verified when the job stopped is closed with it (no incident
    // outlives its job); its outcome says how far it got.
    assert!(matches!(incident.state, IncidentState::Closed | IncidentState::Resolved), "{:?}", incident.state);
    assert!(matches!(incident.outcome, Outcome::Mitigated | Outcome::Recovered), "{:?}", incident.outcome);
    assert!(incident.actions.iter().all(|a| a.status == Some(ResultStatus::Applied)), "{:?}", incident.actions);
    assert!(incident.mitigated_at.is_some());

    // And the history says the same, through SQL over the Parquet files.
    let engine = HistoryEngine::open(dir.path().to_str().unwrap()).await.unwrap();
    assert_eq!(count(&engine, "SELECT count(*) FROM incidents").await, outcome.report.incidents.len() as i64);
    // A command carries one node's route changes (a batch); the summary counts routes.
    let applied = count(&engine, "SELECT sum(routes) FROM commands WHERE status = 'applied'").await;
    assert_eq!(applied, f.actions as i64);
    assert!(count(&engine, "SELECT count(*) FROM features").await > 0);
    let kind = engine.query("SELECT root_cause_kind FROM incidents").await.unwrap();
    let kind = arrow::util::pretty::pretty_format_batches(&kind).unwrap().to_string();
    assert!(kind.contains("link-down"), "{kind}");

    // An operator's verdict turns the recorded windows into training data.
    let data = dir.path().to_str().unwrap();
    let cause = outcome.report.incidents[0].root_cause.as_ref().unwrap().element.to_string();
    assert!(label_incident(data, "no-such-incident", OperatorVerdict::Confirmed, None, None).await.is_err());
    assert!(label_incident(data, &incident.incident_id, OperatorVerdict::Confirmed, Some("link n1"), None)
        .await
        .is_err());
    label_incident(data, &incident.incident_id, OperatorVerdict::Confirmed, None, Some("seen on site")).await.unwrap();
    let faulty_windows = |h: &HistorySet| {
        h.windows
            .iter()
            .filter(|w| {
                (0..w.links.len()).any(|k| {
                    w.links[k].faulty
                        && x0_schema::Element::parse(&format!("link {}", w.link_name(k))).unwrap().to_string() == cause
                })
            })
            .count()
    };
    let h = read_history(dir.path(), Duration::from_secs(86_400)).await.unwrap();
    assert_eq!((h.incidents, h.confirmed, h.false_positives), (1, 1, 0));
    assert!(h.windows.len() > 20, "{} windows recorded", h.windows.len());
    let faulty = faulty_windows(&h);
    assert!(faulty > 0 && faulty < h.windows.len(), "{faulty} of {} windows", h.windows.len());
    assert!(h.windows.iter().all(|w| w.nodes.iter().all(|l| !l.faulty)));
    // The latest verdict wins.
    label_incident(data, &incident.incident_id, OperatorVerdict::FalsePositive, None, None).await.unwrap();
    let h = read_history(dir.path(), Duration::from_secs(86_400)).await.unwrap();
    assert_eq!((h.confirmed, h.false_positives, faulty_windows(&h)), (0, 1, 0));
}

/// JSON lines through the same loop, with a fleet secret: every telemetry message and
/// command result authenticated by its node's MAC (the simulated nodes hold their
/// derived keys), none refused, the repair taken on the signed results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_json_lines_telemetry_runs_the_same_loop() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("fleet.key");
    x0_schema::generate_fleet_secret(&secret).unwrap();
    let mut config = Config::default();
    config.keys.fleet_secret = secret.to_string_lossy().into_owned();
    let data = dir.path().join("history");
    let scenario = scenario("link-loss", "loss = 0.3");
    let outcome = run_with(scenario, ContentType::JsonLines, &data, Duration::ZERO, config).await;
    let f = &outcome.summary.faults[0];
    assert!(f.root_cause_correct, "{:?}", outcome.summary);
    assert!(f.traffic_restored_at_ms.is_some(), "{:?}", outcome.summary);
    assert_eq!(outcome.job.dlq(), Default::default(), "nothing refused");
    let applied = outcome.job.results_applied();
    assert!(applied > 0 && applied == outcome.report.commands.len() as u64, "{applied} results applied");
}

/// Regression: a weak one-sided diagnosis in the second window used to confirm an
/// incident still carrying the first window's stronger cause, and the liar's word
/// rerouted traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_reporter_causes_no_reroute() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = scenario("byzantine-reporter", "loss = 0.5");
    s.faults[0].target = "n5".into();
    let outcome = run(s, ContentType::Arrow, dir.path()).await;
    let summary = &outcome.summary;
    assert!(summary.faults[0].root_cause_correct, "liar not named: {summary:?}");
    assert_eq!(summary.routes_changed, 0, "rerouted on a liar's word: {:?}", outcome.report.incidents);
    assert!(outcome.report.commands.is_empty());
}

/// Regression: a job catching up on a backlog saw one partition race ahead; the single
/// watermark closed windows the other partitions still had rows for, and half-filled
/// windows read as loss on many links (7 false incidents, 164 route flaps). The
/// telemetry is in the compact framing here: the whole loop reads it alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catching_up_on_a_backlog_raises_no_false_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run_delayed(scenario("link-down", ""), ContentType::Binary, dir.path(), Duration::from_secs(4)).await;
    assert_eq!(outcome.job.dlq_total(), 0, "{:?}", outcome.job.dlq());
    let s = &outcome.summary;
    assert_eq!(s.false_incidents, 0, "{:?}", outcome.report.incidents);
    assert_eq!(outcome.report.incidents.len(), 1, "{:?}", outcome.report.incidents);
    assert!(s.faults[0].root_cause_correct, "{s:?}");
    assert_eq!(s.route_flaps, 0);
}

/// The knowledge base at work: a gray loss the job repaired once is recognised when it
/// recurs on the same link, and acted on at its first anomalous window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recurring_fault_is_recalled_and_repaired_sooner() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = scenario("link-loss", "loss = 0.3\nduration = \"4s\"");
    // Long enough for the incident to resolve: the loss ends at 9 s, the hold-down is
    // 10 s, and a window whose probes happen to lose one more (2% of them, seen once in
    // CI) delays the clearing by a few seconds more.
    s.duration = Duration::from_secs(30);
    s.faults[0].target = "n5-n6".into();
    let first = run(s.clone(), ContentType::Arrow, dir.path()).await;
    let second = run(s, ContentType::Arrow, dir.path()).await;
    let incident = |o: &DemoOutcome| {
        o.report
            .incidents
            .iter()
            .find(|i| i.root_cause.as_ref().is_some_and(|rc| rc.element.to_string() == "link n5-n6"))
            .cloned()
            .unwrap()
    };
    let (a, b) = (incident(&first), incident(&second));
    assert_eq!(a.state, IncidentState::Resolved, "the first incident must finish to be remembered: {a:?}");
    assert!(!a.explanation.contains("known incident"), "nothing to recall yet: {}", a.explanation);
    assert!(b.explanation.contains("known incident"), "not recalled: {}", b.explanation);
    assert!(b.explanation.contains(&a.incident_id), "recalled the wrong incident: {}", b.explanation);
    let (ta, tb) = (first.summary.faults[0].mttd_ms.unwrap(), second.summary.faults[0].mttd_ms.unwrap());
    assert!(tb < ta, "recalled incident detected in {tb} ms, first time {ta} ms");
    let view = x0_harness::kb_view::KbView::open(&Config::default(), dir.path()).unwrap();
    assert_eq!(view.kb().stats().unwrap().incidents, 2);
}

/// A flapping link is routed around once and stays routed around while it flaps: the
/// hold-down keeps routes off it between its "up" phases, so no route flaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_link_causes_no_route_flapping() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = scenario("link-flap", "period = \"2s\"\nduration = \"8s\"");
    s.duration = Duration::from_secs(16);
    let outcome = run(s, ContentType::Arrow, dir.path()).await;
    let summary = &outcome.summary;
    assert!(summary.faults[0].root_cause_correct, "{summary:?}");
    assert!(summary.routes_changed > 0, "the flapping link was never routed around: {summary:?}");
    assert_eq!(summary.route_flaps, 0, "routes flapped with the link: {summary:?}");
}
