//! The one-command demo: embedded broker, simulated mesh with its actuators, and the
//! real stream job, talking over the real Kafka protocol in one process.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use x0_kafka::{DevBroker, KafkaConfig, Signer};
use x0_lab::{run_simulation, score_run, SimMesh, SimOptions, SimRunStats};
use x0_pipeline::{Config, JobReport, JobStats, StreamJob};
use x0_schema::{wall_clock_ns, ContentType, RunSummary, Scenario};

/// The scenario `demo` runs when given none.
pub const DEFAULT_SCENARIO: &str = include_str!("../../examples/scenarios/grid16-link-down.toml");

#[derive(Debug, Clone)]
/// What one demo run is given.
pub struct DemoOptions {
    /// The scenario to run.
    pub scenario: Scenario,
    /// The stream job's configuration.
    pub config: Config,
    /// Where the history is written.
    pub data_dir: PathBuf,
    /// Simulated seconds per wall-clock second. Recovery times are only real at 1.
    pub speed: f64,
    /// Telemetry encoding on the wire.
    pub encoding: ContentType,
    /// Show a progress bar.
    pub progress: bool,
    /// Start the stream job this long after the mesh, so it must catch up on a
    /// backlog (as after a restart). Zero in normal use.
    pub job_start_delay: Duration,
    /// Serve the job's `/metrics`, `/healthz` and `/readyz` here while it runs.
    pub listen: Option<String>,
    /// Serve the web dashboard on that listener too.
    pub ui: bool,
}

#[derive(Debug)]
/// What one demo run produced.
pub struct DemoOutcome {
    /// The run scored against the simulator's ground truth.
    pub summary: RunSummary,
    /// What the job held when it stopped.
    pub report: JobReport,
    /// What the simulated mesh sent and received.
    pub sim: SimRunStats,
    /// The job's counters.
    pub job: Arc<JobStats>,
    /// The embedded broker's address (gone once the run returns).
    pub bootstrap: String,
    /// The job's listener (and dashboard), still serving what the run left: drop it to stop.
    pub endpoint: Option<x0_ops::Endpoint>,
}

/// The scenarios `demo --scenario PATH` runs: the file, every `*.toml` of the
/// directory in name order, or the built-in one when no path is given.
pub fn load_scenarios(path: Option<&std::path::Path>) -> Result<Vec<Scenario>> {
    match path {
        Some(p) if p.is_dir() => crate::datasets::scenario_files(p)?
            .iter()
            .map(|f| Scenario::from_file(f).with_context(|| format!("reading {}", f.display())))
            .collect(),
        Some(p) => Ok(vec![Scenario::from_file(p).with_context(|| format!("reading {}", p.display()))?]),
        None => Ok(vec![Scenario::from_toml_str(DEFAULT_SCENARIO)?]),
    }
}

/// The fleet secret of `keys.fleet_secret`, when one is configured (the job then
/// demands every node's MAC).
pub fn configured_fleet(config: &Config) -> Result<Option<x0_schema::FleetSecret>> {
    Ok(match config.keys.fleet_secret.as_str() {
        "" => None,
        path => Some(x0_schema::read_fleet_secret(std::path::Path::new(path))?),
    })
}

/// How the simulated nodes sign their telemetry and results: with their keys derived
/// from the configured fleet secret, else not at all.
pub fn sim_signer(config: &Config) -> Result<Signer> {
    Ok(configured_fleet(config)?.map_or(Signer::Unsigned, Signer::Fleet))
}

/// Partitions for the embedded broker: librdkafka's mock cluster keeps at most 5 MB
/// (and 100,000 messages) per partition and discards the oldest beyond, read or not,
/// so a big mesh gets enough partitions to hold about 30 s of its telemetry (4 at the
/// least, 64 at most): a job that falls behind then has time to catch up before
/// anything is lost, and whatever is lost is counted (`telemetry_discarded`).
pub fn embedded_partitions(scenario: &x0_schema::Scenario) -> i32 {
    const HELD: f64 = 5.0 * 1024.0 * 1024.0;
    // One node's tick in the compact framing, with its headers and MAC: about 400 B.
    let per_second = scenario.topology.nodes as f64 * 400.0 / scenario.telemetry_interval.as_secs_f64().max(0.01);
    ((per_second * 30.0 / HELD).ceil() as i32).clamp(4, 64)
}

/// Runs a scenario end to end and scores it against the simulator's ground truth.
pub async fn run_demo(opts: DemoOptions) -> Result<DemoOutcome> {
    let topics = opts.config.kafka.topics.clone();
    let partitions = embedded_partitions(&opts.scenario);
    let broker = DevBroker::start(&topics, partitions).context("starting the embedded broker")?;
    let kafka = KafkaConfig { brokers: broker.bootstrap_servers(), topics, ..opts.config.kafka.clone() };
    let signer = x0_schema::generate_signing_key();
    let start_ns = wall_clock_ns();
    let mesh = SimMesh::new(&opts.scenario, SimOptions { start_ns, ..Default::default() })
        .context("building the simulated mesh")?;
    let elements = mesh.fault_elements();
    let topology = mesh.topology().clone();
    let mesh = Arc::new(Mutex::new(mesh));

    let job = StreamJob::new(opts.config.clone(), topology, signer.clone()).data_dir(&opts.data_dir);
    let stats = job.stats();
    let (job, dashboard) = with_dashboard(job, opts.ui, &opts.data_dir, &opts.config);
    let endpoint = match &opts.listen {
        Some(addr) => Some(serve_job(addr, &stats, &opts.config, dashboard.as_ref()).await?),
        None => None,
    };
    let core = job.healing_loop().await.context("setting up the stream job")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let job = {
        let kafka = kafka.clone();
        let data_dir = opts.data_dir.clone();
        let delay = opts.job_start_delay;
        let job_id = job.job_id().to_string();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            x0_pipeline::run_job(core, &kafka, &data_dir, &job_id, None, stop_rx).await
        })
    };

    let bar = progress_bar(opts.progress, opts.scenario.duration);
    let job_stats = stats.clone();
    let nodes = sim_signer(&opts.config)?;
    let sim = run_simulation(mesh.clone(), &kafka, signer.verifying_key(), nodes, opts.speed, opts.encoding, |m| {
        if let Some(bar) = &bar {
            bar.set_position(m.elapsed().as_millis() as u64);
            bar.set_message(format!(
                "windows {} · incidents {} · commands {} · applied {} · dlq {}",
                JobStats::get(&job_stats.windows_closed),
                JobStats::get(&job_stats.incidents),
                JobStats::get(&job_stats.commands_sent),
                job_stats.results_applied(),
                job_stats.dlq_total()
            ));
        }
    })
    .await?;
    if let Some(bar) = bar {
        bar.finish();
    }
    // Let the job drain what is in flight (last windows, last results) before stopping it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = stop_tx.send(true);
    let report = job.await.context("stream job panicked")??;
    let truth = mesh.lock().unwrap_or_else(|p| p.into_inner()).truth().clone();
    let summary = score_run(&opts.scenario, &elements, &truth, &report.incidents, start_ns, "sim");
    let bootstrap = broker.bootstrap_servers();
    drop(broker);
    Ok(DemoOutcome { summary, report, sim, job: stats, bootstrap, endpoint })
}

/// When `wanted`, the job fed to a new web dashboard of it (history read from
/// `data_dir`); else the job as it was.
pub fn with_dashboard(
    job: StreamJob,
    wanted: bool,
    data_dir: &std::path::Path,
    config: &Config,
) -> (StreamJob, Option<x0_ui::Dashboard>) {
    if !wanted {
        return (job, None);
    }
    let live = x0_pipeline::LiveView::new(job.topology());
    let dashboard = x0_ui::Dashboard::new(
        job.topology(),
        live.clone(),
        job.stats(),
        data_dir.to_path_buf(),
        &config.model.registry,
    );
    (job.live(live), Some(dashboard))
}

/// Serves a job's `/metrics`, `/healthz` and `/readyz` on `addr` (`run` and `demo`),
/// with its web dashboard when given one, and says where.
pub async fn serve_job(
    addr: &str,
    stats: &Arc<JobStats>,
    config: &Config,
    dashboard: Option<&x0_ui::Dashboard>,
) -> Result<x0_ops::Endpoint> {
    let (s, topic, ops) = (stats.clone(), config.kafka.topics.telemetry.clone(), config.ops.clone());
    let interval = config.checkpoint.interval;
    let ready: x0_ops::ReadyCheck = Arc::new(move || x0_pipeline::job_readiness(&s, &topic, &ops, interval));
    let ui = dashboard.map(x0_ui::Dashboard::router).unwrap_or_default();
    let endpoint = x0_ops::Endpoint::serve_with(addr, x0_pipeline::job_registry(stats.clone()), ready, ui)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let url = format!("http://{}", endpoint.addr());
    if x0_ops::json_logs() {
        tracing::info!(url = %url, dashboard = dashboard.is_some(), "serving /metrics, /healthz, /readyz");
    } else {
        eprintln!("stream job endpoint: {url}/metrics · {url}/healthz · {url}/readyz");
    }
    if dashboard.is_some() {
        // Always on stderr, also with JSON logs: a person (or a test) opens it.
        eprintln!("dashboard: {url}/");
    }
    Ok(endpoint)
}

fn progress_bar(enabled: bool, duration: Duration) -> Option<indicatif::ProgressBar> {
    enabled.then(|| {
        let bar = indicatif::ProgressBar::new(duration.as_millis() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:30}] sim {pos}/{len} ms · {msg}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar
    })
}
