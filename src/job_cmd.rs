//! The roles that move telemetry: `demo`, `run`, `broker`, `simulate`.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use x0_agent::Encoding;
use x0_harness::demo::{load_scenarios, run_demo, DemoOptions};
use x0_harness::report;
use x0_kafka::DevBroker;
use x0_pipeline::{Config, JobStats, StreamJob};
use x0_schema::{Scenario, Topology};

/// `demo`'s flags.
#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    /// Scenario file, or a directory of them; the built-in grid-16 hard link failure when omitted.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Override the scenario's duration (e.g. 30s).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Where the incident history is written.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Write the run summary (JSON) here.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Simulated seconds per second; recovery times are only real at 1.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Telemetry encoding on the wire (the compact framing by default, as real agents send).
    #[arg(long, value_enum, default_value_t = Encoding::Binary)]
    encoding: Encoding,
    /// Serve the job's /metrics, /healthz and /readyz on this address (e.g.
    /// 127.0.0.1:9464; port 0 picks one and prints it). Overrides ops.listen.
    #[arg(long)]
    listen: Option<String>,
    /// Serve the web dashboard (and /metrics) on this address, e.g. 127.0.0.1:8080,
    /// and print its URL. Port 0 picks a free one.
    #[arg(long, value_name = "ADDR")]
    ui: Option<String>,
    /// With --ui: keep serving the dashboard after the scenario ends, until Ctrl-C.
    #[arg(long, requires = "ui")]
    keep_ui: bool,
}

pub(crate) async fn demo(args: DemoArgs, config: Config) -> Result<()> {
    let scenarios = load_scenarios(args.scenario.as_deref())?;
    let listen = ui_listen(args.ui.as_deref(), listen_addr(args.listen.clone(), &config), args.listen.is_some())?;
    let root = args.data_dir.unwrap_or_else(|| config.data_dir());
    let many = scenarios.len() > 1;
    if config.keys.fleet_secret.is_empty() {
        eprintln!(
            "x0tta6bl4 demo: runs without security: an in-process broker on loopback, no TLS, telemetry and results not authenticated (commands are signed, by a fresh key pair in memory); deploy/ turns it all on (README, Deploy)"
        );
    } else {
        eprintln!(
            "x0tta6bl4 demo: telemetry and results authenticated (keys.fleet_secret; the simulated nodes hold their derived keys); an in-process broker on loopback, no TLS"
        );
    }
    let mut summaries = Vec::new();
    let mut kept: Option<x0_ops::Endpoint> = None;
    for mut scenario in scenarios {
        // One scenario's dashboard at a time, on the one address.
        if let Some(endpoint) = kept.take() {
            endpoint.stop().await;
        }
        scenario.duration = args.duration.unwrap_or(scenario.duration);
        let data_dir = if many { root.join(&scenario.name) } else { root.clone() };
        eprintln!(
            "x0tta6bl4 demo: scenario {} ({:?}, {} faults) · history in {}",
            scenario.name,
            scenario.duration,
            scenario.faults.len(),
            data_dir.display()
        );
        let outcome = run_demo(DemoOptions {
            scenario,
            config: config.clone(),
            data_dir,
            speed: args.speed,
            encoding: args.encoding.into(),
            progress: !x0_ops::json_logs(),
            job_start_delay: Duration::ZERO,
            listen: listen.clone(),
            ui: args.ui.is_some(),
        })
        .await?;
        kept = outcome.endpoint;
        println!("{}", report::fault_table(&outcome.summary, outcome.report.incidents.len()));
        let dlq = outcome.job.dlq();
        if !dlq.is_empty() {
            println!("dead-lettered telemetry: {dlq:?}");
        }
        let discarded = JobStats::get(&outcome.job.telemetry_discarded);
        if discarded == 0 {
            println!(
                "kept up: {} telemetry messages taken in, none discarded by the broker",
                JobStats::get(&outcome.job.messages)
            );
        } else {
            println!(
                "NOT KEPT UP: the embedded broker discarded {discarded} telemetry message(s) before the job read them; \
                 the results above are from partial data (a smaller mesh, or a release build, keeps up)"
            );
        }
        let late = JobStats::get(&outcome.job.late_rows);
        if late > 0 {
            println!("late rows (arrived after their window closed; counted, not used): {late}");
        }
        summaries.push((outcome.summary, outcome.report.incidents.len()));
    }
    let json = if let [(one, _)] = summaries.as_slice() {
        let json = serde_json::to_string_pretty(one)?;
        println!("{json}");
        println!("\nquery the history: x0tta6bl4 sql --data-dir {} \"SELECT incident_id, root_cause_element, outcome, mttr_ms FROM incidents\"", root.display());
        json
    } else {
        println!("{}", report::aggregate_table(&summaries));
        serde_json::to_string_pretty(&summaries.iter().map(|(s, _)| s).collect::<Vec<_>>())?
    };
    if let Some(path) = args.summary_json {
        std::fs::write(&path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    if let (true, Some(endpoint)) = (args.keep_ui, &kept) {
        eprintln!("scenario over; the dashboard stays up at http://{}/ until Ctrl-C", endpoint.addr());
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}

/// The listener's address when the dashboard is asked for: the dashboard's, which
/// must not contradict an explicit `--listen` (one listener serves both).
fn ui_listen(ui: Option<&str>, listen: Option<String>, listen_given: bool) -> Result<Option<String>> {
    match (ui, listen) {
        (None, listen) => Ok(listen),
        (Some(ui), Some(listen)) if listen_given && listen != ui => {
            bail!("--ui {ui} and --listen {listen}: the dashboard shares the /metrics listener; give one address")
        }
        (Some(ui), _) => Ok(Some(ui.to_string())),
    }
}

/// `run`'s flags.
#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// A scenario file whose `[topology]` is the mesh inventory (nodes and links).
    #[arg(long)]
    topology: PathBuf,
    /// Write the job's counters (messages taken in, windows, incidents, commands,
    /// results, checkpoints) as JSON here when it stops.
    #[arg(long)]
    stats_json: Option<PathBuf>,
    /// Serve /metrics, /healthz and /readyz on this address (overrides ops.listen).
    #[arg(long)]
    listen: Option<String>,
    /// Serve the web dashboard (and /metrics) on this address, e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    ui: Option<String>,
}

pub(crate) async fn run(args: RunArgs, config: Config) -> Result<()> {
    if config.kafka.brokers.is_empty() {
        bail!("kafka.brokers is empty: point it at your cluster (or start `x0tta6bl4 broker`)");
    }
    if config.keys.signing_key.is_empty() {
        bail!("keys.signing_key is empty: create keys with `x0tta6bl4 keys generate`");
    }
    let signer = x0_schema::read_signing_key(std::path::Path::new(&config.keys.signing_key))?;
    if let Some(id) = config.kafka.spiffe.check_identity(x0_kafka::Role::Job)? {
        tracing::info!(spiffe_id = %id, "connecting to Kafka with this SVID");
    }
    let topology = Topology::generate(&Scenario::from_file(&args.topology)?.topology)?;
    let mut job = StreamJob::new(config.clone(), topology, signer);
    if config.checkpoint.enabled {
        job = job.checkpoint(config.checkpoint_dir(&config.data_dir()), config.checkpoint.interval)?;
    }
    let listen = ui_listen(args.ui.as_deref(), listen_addr(args.listen.clone(), &config), args.listen.is_some())?;
    let (job, dashboard) = x0_harness::demo::with_dashboard(job, args.ui.is_some(), &config.data_dir(), &config);
    let (tx, rx) = tokio::sync::watch::channel(false);
    // SIGINT or SIGTERM (what a service manager sends) stop it cleanly: a last
    // checkpoint hands its open incidents over to the next start.
    // So does a rotated SVID: librdkafka reads it only at start, so the job stops
    // cleanly and exits for its supervisor to start it on the new files.
    let spiffe = config.kafka.spiffe.clone();
    let ctrl_c = tokio::spawn(async move {
        let rotated = x0_ops::stop_requested(spiffe.rotated(x0_kafka::SVID_CHECK_EVERY)).await;
        if rotated {
            tracing::warn!("SVID files changed: stopping cleanly to restart on them");
        }
        let _ = tx.send(true);
        rotated
    });
    let stats = job.stats();
    let _endpoint = match listen {
        Some(addr) => Some(x0_harness::demo::serve_job(&addr, &stats, &config, dashboard.as_ref()).await?),
        None => None,
    };
    if x0_ops::json_logs() {
        tracing::info!(job_id = job.job_id(), topic = %config.kafka.topics.telemetry, brokers = %config.kafka.brokers, "stream job consuming");
    } else {
        eprintln!(
            "stream job {} consuming {} from {}; Ctrl-C or SIGTERM stops it",
            job.job_id(),
            config.kafka.topics.telemetry,
            config.kafka.brokers
        );
    }
    let report = job.run(&config.kafka, rx).await;
    let rotated = if ctrl_c.is_finished() {
        ctrl_c.await.unwrap_or(false)
    } else {
        ctrl_c.abort();
        false
    };
    if let Some(path) = &args.stats_json {
        std::fs::write(path, serde_json::to_vec_pretty(&stats.to_json())?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let report = report?;
    if x0_ops::json_logs() {
        tracing::info!(incidents = report.incidents.len(), commands = report.commands.len(), "stream job stopped");
    } else {
        eprintln!("stopped: {} incidents, {} commands", report.incidents.len(), report.commands.len());
    }
    if rotated {
        eprintln!("exiting with {} for the supervisor to restart on the rotated SVID", x0_kafka::EXIT_SVID_ROTATED);
        std::process::exit(x0_kafka::EXIT_SVID_ROTATED);
    }
    Ok(())
}

/// Where the job's endpoint listens: `--listen`, else `ops.listen`; none when empty.
fn listen_addr(flag: Option<String>, config: &Config) -> Option<String> {
    flag.or_else(|| Some(config.ops.listen.clone())).filter(|l| !l.is_empty())
}

pub(crate) async fn broker(partitions: i32, config: Config) -> Result<()> {
    let broker = DevBroker::start(&config.kafka.topics, partitions)?;
    println!("{}", broker.bootstrap_servers());
    eprintln!(
        "embedded dev broker (librdkafka mock cluster, loopback only) with topics {:?}; Ctrl-C stops it",
        config.kafka.topics.all()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// `simulate`'s flags.
#[derive(clap::Args)]
pub(crate) struct SimulateArgs {
    /// The scenario to simulate against the broker.
    #[arg(long, required_unless_present = "scenarios")]
    scenario: Option<PathBuf>,
    /// Public key that healing commands must be signed with.
    #[arg(long, required_unless_present = "scenarios")]
    verifying_key: Option<PathBuf>,
    /// Simulated seconds per second.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Telemetry encoding on the wire (the compact framing by default, as real agents send).
    #[arg(long, value_enum, default_value_t = Encoding::Binary)]
    encoding: Encoding,
    /// Dataset mode: every *.toml scenario in this directory, offline, no healing.
    #[arg(long, requires = "out", conflicts_with_all = ["scenario", "verifying_key"])]
    scenarios: Option<PathBuf>,
    /// Dataset directory to write (nodes.parquet, links.parquet).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Runs per scenario, each with another topology seed (and so fault placement).
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Write what happened (commands handled and applied, route changes, flaps, routes
    /// still overridden, probe packets) as JSON here when the scenario ends.
    #[arg(long)]
    stats_json: Option<PathBuf>,
    /// Hand every command to its actuator twice (a broker redelivering): a duplicate
    /// must be answered as the first, never applied again.
    #[arg(long)]
    deliver_commands_twice: bool,
}

pub(crate) async fn simulate(args: SimulateArgs, config: Config) -> Result<()> {
    if let (Some(dir), Some(out)) = (&args.scenarios, &args.out) {
        let (runs, windows, node_windows) =
            x0_harness::datasets::write_datasets(&config, dir, out, args.seeds, |run| eprintln!("simulating {run}"))
                .await?;
        println!("{runs} runs, {windows} windows, {node_windows} node-windows -> {}", out.display());
        return Ok(());
    }
    let (Some(scenario), Some(verifying_key)) = (args.scenario, args.verifying_key) else {
        bail!("simulate needs --scenario and --verifying-key (or --scenarios and --out for datasets)");
    };
    if config.kafka.brokers.is_empty() {
        bail!("kafka.brokers is empty: set it (X0__KAFKA__BROKERS=host:port) or use `demo`");
    }
    let scenario = Scenario::from_file(&scenario)?;
    let vk = x0_schema::read_verifying_key(&verifying_key)?;
    let options_start_ns = x0_schema::wall_clock_ns();
    let options = x0_lab::SimOptions {
        start_ns: options_start_ns,
        deliver_commands_twice: args.deliver_commands_twice,
        ..Default::default()
    };
    let mesh = Arc::new(Mutex::new(x0_lab::SimMesh::new(&scenario, options)?));
    let signer = x0_harness::demo::sim_signer(&config)?;
    let stats =
        x0_lab::run_simulation(mesh.clone(), &config.kafka, vk, signer, args.speed, args.encoding.into(), |_| {})
            .await?;
    let m = mesh.lock().unwrap_or_else(|p| p.into_inner());
    let t = m.truth();
    println!(
        "{} ticks · {} telemetry messages · {} commands ({} applied) · probe packets {} sent, {} delivered · {} route changes",
        stats.ticks,
        stats.telemetry_messages,
        stats.commands,
        stats.commands_applied,
        t.packets_sent,
        t.packets_delivered,
        t.route_changes.len()
    );
    if let Some(path) = args.stats_json {
        // Restoration from the probe traffic itself (the job's incidents are not here:
        // it runs elsewhere).
        let restored = x0_lab::score_run(&scenario, &m.fault_elements(), t, &[], options_start_ns, "sim")
            .faults
            .into_iter()
            .map(|f| serde_json::json!({"target": f.target, "injected_at_ms": f.injected_at_ms, "traffic_restored_at_ms": f.traffic_restored_at_ms}))
            .collect::<Vec<_>>();
        let json = serde_json::json!({
            "faults": restored,
            "ticks": stats.ticks,
            "telemetry_messages": stats.telemetry_messages,
            "send_failures": stats.send_failures,
            "command_messages": stats.commands,
            "answered_applied": stats.commands_applied,
            "distinct_commands": stats.distinct_commands,
            "applications": stats.applications,
            "max_applications_per_command": stats.max_applications_per_command,
            "route_changes": t.route_changes.len(),
            "route_flaps": t.route_flaps(x0_lab::FLAP_WINDOW_MS),
            "overrides_in_force": m.overrides_in_force(),
            "packets_sent": t.packets_sent,
            "packets_delivered": t.packets_delivered,
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
