//! `x0tta6bl4`: self-healing for mesh networks. One binary, one subcommand per role.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use x0_kafka::{DevBroker, KafkaConfig};
use x0_pipeline::{run_job, Config, FeatureEngine, JobStats, StreamCore};
use x0_schema::{Scenario, Topology};
use x0_sql::{format_batches, saved_queries, saved_query, HistoryEngine, OutputFormat};
use x0tta6bl4::agent_cli::{agent_main, agent_runtime, encoding, init_logging, AgentArgs};
use x0tta6bl4::demo::{run_demo, DemoOptions, DEFAULT_SCENARIO};
use x0tta6bl4::{keys, report};

#[derive(Parser)]
#[command(
    name = "x0tta6bl4",
    version,
    about = "Self-healing for mesh networks: kernel telemetry -> detection -> root cause -> signed reroute"
)]
struct Cli {
    /// Configuration file (TOML); defaults are built in, see `x0tta6bl4 config show`.
    #[arg(long, global = true, env = "X0_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario end to end in one process: embedded broker, simulated mesh,
    /// the real stream job and actuators; print what was found and fixed.
    Demo {
        /// Scenario file; the built-in grid-16 hard link failure when omitted.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Override the scenario's duration (e.g. 30s).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
        /// Where the incident history is written.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Write the run summary (JSON) here.
        #[arg(long)]
        summary_json: Option<PathBuf>,
        /// Simulated seconds per second; recovery times are only real at 1.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Telemetry encoding on the wire: arrow or json.
        #[arg(long, default_value = "arrow")]
        encoding: String,
    },
    /// Run the stream job against the configured Kafka cluster.
    Run {
        /// A scenario file whose [topology] is the mesh inventory (nodes and links).
        #[arg(long)]
        topology: PathBuf,
    },
    /// Start the embedded dev broker (librdkafka mock cluster) and print its address.
    Broker {
        #[arg(long, default_value_t = 4)]
        partitions: i32,
    },
    /// Run a simulated mesh (telemetry out, actuators in) against a broker; or, with
    /// --scenarios and --out, write labelled windows (Parquet) for training.
    Simulate {
        #[arg(long, required_unless_present = "scenarios")]
        scenario: Option<PathBuf>,
        /// Public key that healing commands must be signed with.
        #[arg(long, required_unless_present = "scenarios")]
        verifying_key: Option<PathBuf>,
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        #[arg(long, default_value = "arrow")]
        encoding: String,
        /// Dataset mode: every *.toml scenario in this directory, offline, no healing.
        #[arg(long, requires = "out", conflicts_with_all = ["scenario", "verifying_key"])]
        scenarios: Option<PathBuf>,
        /// Dataset directory to write (nodes.parquet, links.parquet).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Runs per scenario, each with another topology seed (and so fault placement).
        #[arg(long, default_value_t = 1)]
        seeds: u64,
    },
    /// Train the GraphSAGE detector on datasets, evaluate it on a held-out dataset
    /// against the baselines, and write a versioned model and report to a registry.
    Train {
        /// Training dataset directories (from `simulate --out`); runs are split into
        /// training and validation by run.
        #[arg(long, required = true, num_args = 1..)]
        data: Vec<PathBuf>,
        /// Held-out dataset directory: scenarios, seeds and parameters never trained on.
        #[arg(long)]
        held_out: PathBuf,
        /// Model registry directory.
        #[arg(long, default_value = "models")]
        registry: PathBuf,
        #[arg(long, default_value_t = 12)]
        epochs: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Width of the model's node states (cost of scoring grows with it).
        #[arg(long, default_value_t = x0_training::ModelShape::default().hidden)]
        hidden: usize,
        /// Promote the new model even if it does not beat the champion.
        #[arg(long)]
        force_promote: bool,
        /// Also train on the incident history of this data directory: the job's
        /// recorded model inputs, labelled from its incidents and operators' verdicts.
        #[arg(long)]
        history: Option<PathBuf>,
        /// How far back the history goes.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30d")]
        since: std::time::Duration,
        /// Retrain on this schedule (e.g. 6h) until stopped, instead of once.
        #[arg(long, value_parser = humantime::parse_duration)]
        every: Option<std::time::Duration>,
    },
    /// Incidents: operators' verdicts that feed the next training.
    Incident {
        #[command(subcommand)]
        action: IncidentAction,
    },
    /// Evaluate a part of the pipeline on scenarios (see BENCHMARKS.md).
    Eval {
        #[command(subcommand)]
        action: EvalAction,
    },
    /// The incident knowledge base: what the job remembers of finished incidents.
    Kb {
        #[command(subcommand)]
        action: KbAction,
    },
    /// Query the incident history with SQL (tables: incidents, commands, features, labels).
    Sql {
        /// The query; or use --file / --saved.
        query: Option<String>,
        #[arg(long)]
        file: Option<PathBuf>,
        /// A saved query by name (see --list).
        #[arg(long)]
        saved: Option<String>,
        /// List the saved queries.
        #[arg(long)]
        list: bool,
        #[arg(long)]
        data_dir: Option<String>,
        /// table, csv or json
        #[arg(long, default_value = "table")]
        format: OutputFormat,
    },
    /// Inspect configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Manage the ed25519 keys that sign healing commands.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// The node agent: kernel probes and link probes out, signed commands in (netlink).
    /// The same as the lean `x0-agent` binary.
    Agent(AgentArgs),
    /// The kernel lab: a scenario's mesh as network namespaces with real agents (root).
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
}

#[derive(Subcommand)]
enum LabAction {
    /// Build the namespaces and veth links and leave them up (inspect with `ip netns`).
    Up {
        #[arg(long)]
        scenario: PathBuf,
        #[arg(long, default_value = "x0lab-")]
        prefix: String,
    },
    /// Build the mesh, start the routing (our agents + job, or babeld), run the
    /// scenario's faults `--trials` times and measure recovery from probe flows.
    Run {
        #[arg(long)]
        scenario: PathBuf,
        #[arg(long)]
        summary_json: Option<PathBuf>,
        /// x0 (our agents and stream job), babel (Debian's babeld) or static (our
        /// agents' baseline routes and the kernel's failover, no stream job).
        #[arg(long, default_value = "x0")]
        routing: String,
        #[arg(long, default_value_t = 1)]
        trials: usize,
        #[arg(long, default_value = "x0lab-")]
        prefix: String,
        /// Agents use the kernel's interface counters instead of eBPF.
        #[arg(long)]
        no_ebpf: bool,
    },
    /// Inject (or with --off revert) one fault by hand in a lab that is up.
    Fault {
        /// link-down, link-loss or node-crash
        #[arg(long)]
        kind: String,
        /// "a-b" for a link, a node name for a node
        #[arg(long)]
        target: String,
        #[arg(long)]
        scenario: PathBuf,
        #[arg(long, default_value_t = 0.3)]
        loss: f64,
        #[arg(long)]
        off: bool,
        #[arg(long, default_value = "x0lab-")]
        prefix: String,
    },
    /// Stop every lab process and delete the lab's namespaces (also after a crash).
    Down {
        #[arg(long, default_value = "x0lab-")]
        prefix: String,
    },
}

#[derive(Subcommand)]
enum IncidentAction {
    /// Record a verdict on an incident: it was real (optionally naming the real cause)
    /// or a false positive. `train --history` learns from it.
    Label {
        /// The incident's id (`SELECT incident_id FROM incidents`).
        id: String,
        #[arg(long)]
        verdict: x0tta6bl4::history_labels::Verdict,
        /// The real cause when it was not the one the job named: `link A-B` or `node N`.
        #[arg(long)]
        cause: Option<String>,
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        data_dir: Option<String>,
    },
}

#[derive(Subcommand)]
enum EvalAction {
    /// Root-cause analysis: AC@1, AC@3 and Avg@5 per fault type, blamed-set precision
    /// and recall with several faults, and calibration error of the confidences.
    Rca {
        /// A directory of scenario files (e.g. examples/training/held-out); repeatable.
        #[arg(long, required = true)]
        scenarios: Vec<PathBuf>,
        /// Runs per scenario, each with another topology seed.
        #[arg(long, default_value_t = 1)]
        seeds: u64,
        #[arg(long)]
        summary_json: Option<PathBuf>,
        /// Score with raw evidence scores (no calibration), fit a calibration on these
        /// scenarios and write it here (`rca.calibration` reads it).
        #[arg(long)]
        fit_calibration: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KbAction {
    /// The stored incidents most like incident ID (cosine similarity of their symptom
    /// signatures): what was done then and whether it worked.
    Similar {
        id: String,
        #[arg(long, default_value_t = 5)]
        k: usize,
        /// Only incidents blamed on the same link or node.
        #[arg(long)]
        same_element: bool,
        /// History directory whose knowledge/ to read (default: the configured data_dir).
        #[arg(long)]
        data_dir: Option<String>,
    },
    /// How many incidents are stored, by root cause and outcome.
    Stats {
        #[arg(long)]
        data_dir: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Check a configuration file (plus X0__ environment overrides); report every problem.
    Check { file: PathBuf },
    /// Print the built-in defaults, documented.
    Show,
}

#[derive(Subcommand)]
enum KeysAction {
    /// Write signing.key and verifying.key into a directory.
    Generate {
        #[arg(long)]
        out: PathBuf,
    },
}

fn load_config(file: Option<&std::path::Path>) -> Result<Config> {
    Ok(Config::load(file, std::env::vars())?)
}

/// The data directory given on the command line, else the configured one.
fn history_dir(given: Option<String>, config: Option<&std::path::Path>) -> Result<String> {
    match given {
        Some(d) => Ok(d),
        None => Ok(load_config(config)?.data_dir),
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // Before any thread exists: the roles that score windows keep freed memory.
    if matches!(cli.command, Command::Demo { .. } | Command::Run { .. }) {
        x0tta6bl4::memory::keep_freed_memory();
    }
    let runtime = match cli.command {
        Command::Agent(_) => agent_runtime()?,
        _ => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    init_logging();
    match cli.command {
        Command::Demo { scenario, duration, data_dir, summary_json, speed, encoding: enc } => {
            let config = load_config(cli.config.as_deref())?;
            let scenarios: Vec<Scenario> = match &scenario {
                Some(p) if p.is_dir() => {
                    let mut files: Vec<PathBuf> = std::fs::read_dir(p)?
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                        .collect();
                    files.sort();
                    files.iter().map(|f| Scenario::from_file(f)).collect::<Result<_, _>>()?
                }
                Some(p) => vec![Scenario::from_file(p)?],
                None => vec![Scenario::from_toml_str(DEFAULT_SCENARIO)?],
            };
            let root = data_dir.unwrap_or_else(|| config.data_dir());
            let many = scenarios.len() > 1;
            let mut summaries = Vec::new();
            for mut scenario in scenarios {
                if let Some(d) = duration {
                    scenario.duration = d;
                }
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
                    data_dir: data_dir.clone(),
                    speed,
                    encoding: encoding(&enc)?,
                    progress: true,
                    job_start_delay: std::time::Duration::ZERO,
                })
                .await?;
                println!("{}", report::fault_table(&outcome.summary, outcome.report.incidents.len()));
                let dlq = outcome.job.dlq();
                if !dlq.is_empty() {
                    println!("dead-lettered telemetry: {dlq:?}");
                }
                let late = x0_pipeline::JobStats::get(&outcome.job.late_rows);
                if late > 0 {
                    println!("late rows (arrived after their window closed; counted, not used): {late}");
                }
                summaries.push((outcome.summary, outcome.report.incidents.len()));
            }
            let json = if summaries.len() == 1 {
                serde_json::to_string_pretty(&summaries[0].0)?
            } else {
                println!("{}", report::aggregate_table(&summaries));
                serde_json::to_string_pretty(&summaries.iter().map(|(s, _)| s).collect::<Vec<_>>())?
            };
            if summaries.len() == 1 {
                println!("{json}");
                println!("\nquery the history: x0tta6bl4 sql --data-dir {} \"SELECT incident_id, root_cause_element, outcome, mttr_ms FROM incidents\"", root.display());
            }
            if let Some(path) = summary_json {
                std::fs::write(&path, &json).with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Command::Run { topology } => {
            let config = load_config(cli.config.as_deref())?;
            if config.kafka.brokers.is_empty() {
                bail!("kafka.brokers is empty: point it at your cluster (or start `x0tta6bl4 broker`)");
            }
            if config.keys.signing_key.is_empty() {
                bail!("keys.signing_key is empty: create keys with `x0tta6bl4 keys generate`");
            }
            let signer = keys::read_signing_key(std::path::Path::new(&config.keys.signing_key))?;
            let scenario = Scenario::from_file(&topology)?;
            let topo = Topology::generate(&scenario.topology)?;
            let sql = config.feature_sql().with_context(|| format!("reading {}", config.features.sql_file))?;
            let features = FeatureEngine::new(&sql).await?;
            let job_id = uuid::Uuid::new_v4().simple().to_string();
            let core = StreamCore::new(
                config.clone(),
                topo,
                features,
                signer,
                Arc::new(JobStats::default()),
                &format!("inc-{}", &job_id[..8]),
            );
            let core = x0tta6bl4::with_memory(core, &config, &config.data_dir());
            let (tx, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                let _ = tx.send(true);
            });
            eprintln!(
                "stream job {job_id} consuming {} from {}; Ctrl-C stops it",
                config.kafka.topics.telemetry, config.kafka.brokers
            );
            let report = run_job(core, &config.kafka, &config.data_dir(), &job_id, rx).await?;
            eprintln!("stopped: {} incidents, {} commands", report.incidents.len(), report.commands.len());
        }
        Command::Broker { partitions } => {
            let config = load_config(cli.config.as_deref())?;
            let broker = DevBroker::start(&config.kafka.topics, partitions)?;
            println!("{}", broker.bootstrap_servers());
            eprintln!(
                "embedded dev broker (librdkafka mock cluster, loopback only) with topics {:?}; Ctrl-C stops it",
                config.kafka.topics.all()
            );
            tokio::signal::ctrl_c().await?;
        }
        Command::Simulate { scenarios: Some(dir), out: Some(out), seeds, .. } => {
            let config = load_config(cli.config.as_deref())?;
            let (runs, windows, node_windows) =
                x0tta6bl4::datasets::write_datasets(&config, &dir, &out, seeds, |run| eprintln!("simulating {run}"))
                    .await?;
            println!("{runs} runs, {windows} windows, {node_windows} node-windows -> {}", out.display());
        }
        Command::Train { data, held_out, registry, epochs, seed, hidden, force_promote, history, since, every } => {
            let shape = x0_training::ModelShape { hidden };
            let opts = x0_training::TrainOptions { epochs, seed, shape, ..Default::default() };
            let history = history.as_deref().map(|h| (h, since));
            let Some(every) = every else {
                x0tta6bl4::train_cmd::run_training(&data, history, &held_out, &registry, &opts, force_promote).await?;
                return Ok(());
            };
            // On a schedule: a failed round is reported and the next one still runs.
            loop {
                if let Err(e) =
                    x0tta6bl4::train_cmd::run_training(&data, history, &held_out, &registry, &opts, force_promote).await
                {
                    eprintln!("training failed: {e:#}");
                }
                eprintln!("next training in {}", humantime::format_duration(every));
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                }
            }
        }
        Command::Incident { action: IncidentAction::Label { id, verdict, cause, note, data_dir } } => {
            let data_dir = history_dir(data_dir, cli.config.as_deref())?;
            let row =
                x0tta6bl4::history_labels::label_incident(&data_dir, &id, verdict, cause.as_deref(), note.as_deref())
                    .await?;
            println!(
                "incident {} labelled {}{} by {}; the next `train --history {data_dir}` learns from it",
                row.incident_id,
                row.verdict,
                row.cause.as_deref().map(|c| format!(" (cause: {c})")).unwrap_or_default(),
                row.labelled_by
            );
        }
        Command::Simulate { scenario, verifying_key, speed, encoding: enc, .. } => {
            let (Some(scenario), Some(verifying_key)) = (scenario, verifying_key) else {
                bail!("simulate needs --scenario and --verifying-key (or --scenarios and --out for datasets)");
            };
            let config = load_config(cli.config.as_deref())?;
            if config.kafka.brokers.is_empty() {
                bail!("kafka.brokers is empty: set it (X0__KAFKA__BROKERS=host:port) or use `demo`");
            }
            let scenario = Scenario::from_file(&scenario)?;
            let vk = keys::read_verifying_key(&verifying_key)?;
            let start_ns = x0_pipeline::wall_clock_ns();
            let mesh = x0_lab::SimMesh::new(&scenario, x0_lab::SimOptions { start_ns, ..Default::default() })?;
            let mesh = Arc::new(std::sync::Mutex::new(mesh));
            let kafka = KafkaConfig { ..config.kafka };
            let stats = x0_lab::run_simulation(mesh.clone(), &kafka, vk, speed, encoding(&enc)?, |_| {}).await?;
            let m = mesh.lock().unwrap_or_else(|p| p.into_inner());
            let t = m.truth();
            println!("{} ticks · {} telemetry messages · {} commands ({} applied) · probe packets {} sent, {} delivered · {} route changes", stats.ticks, stats.telemetry_messages, stats.commands, stats.commands_applied, t.packets_sent, t.packets_delivered, t.route_changes.len());
        }
        Command::Eval { action: EvalAction::Rca { scenarios, seeds, summary_json, fit_calibration } } => {
            let mut config = load_config(cli.config.as_deref())?;
            if fit_calibration.is_some() {
                config.rca.calibration = String::new();
            }
            let (report, points) =
                x0tta6bl4::eval_rca::eval_rca(&config, &scenarios, seeds, |run| eprintln!("running {run}")).await?;
            print!("{}", x0tta6bl4::eval_rca::table(&report));
            if let Some(path) = fit_calibration {
                let dirs: Vec<String> = scenarios.iter().map(|d| d.display().to_string()).collect();
                let on = format!("{} ({} runs, {} incidents)", dirs.join(" + "), report.runs, points.len());
                let fitted = x0_pipeline::Calibration::fit(&points, &on);
                std::fs::write(&path, serde_json::to_string_pretty(&fitted)? + "\n")?;
                eprintln!("calibration fitted on {on} written to {}", path.display());
            }
            if let Some(path) = summary_json {
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
                eprintln!("summary written to {}", path.display());
            }
        }
        Command::Kb { action } => {
            let config = load_config(cli.config.as_deref())?;
            let data_dir = |d: Option<String>| -> PathBuf {
                d.map(|d| PathBuf::from(d.strip_prefix("file://").unwrap_or(&d).to_string()))
                    .unwrap_or_else(|| config.data_dir())
            };
            match action {
                KbAction::Similar { id, k, same_element, data_dir: d } => {
                    let view = x0tta6bl4::kb_cmd::KbView::open(&config, &data_dir(d))?;
                    print!("{}", x0tta6bl4::kb_cmd::similar(&view, &id, k, same_element)?);
                }
                KbAction::Stats { data_dir: d } => {
                    let view = x0tta6bl4::kb_cmd::KbView::open(&config, &data_dir(d))?;
                    print!("{}", x0tta6bl4::kb_cmd::stats(&view)?);
                }
            }
        }
        Command::Sql { query, file, saved, list, data_dir, format } => {
            if list {
                for q in saved_queries() {
                    println!("{:<22} {}", q.name, q.description);
                }
                return Ok(());
            }
            let sql = match (query, file, saved) {
                (Some(q), None, None) => q,
                (None, Some(f), None) => {
                    std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?
                }
                (None, None, Some(name)) => {
                    saved_query(&name).with_context(|| format!("no saved query {name:?}; see --list"))?.sql.to_string()
                }
                _ => bail!("give exactly one of QUERY, --file or --saved"),
            };
            let data_dir = history_dir(data_dir, cli.config.as_deref())?;
            let engine = HistoryEngine::open(&data_dir).await?;
            let batches = engine.query(&sql).await?;
            print!("{}", format_batches(&batches, format)?);
            if format == OutputFormat::Table {
                println!();
            }
        }
        Command::Config { action: ConfigAction::Check { file } } => match Config::load(Some(&file), std::env::vars()) {
            Ok(_) => println!("{}: ok", file.display()),
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                std::process::exit(1);
            }
        },
        Command::Config { action: ConfigAction::Show } => print!("{}", x0_pipeline::DEFAULT_TOML),
        Command::Agent(args) => agent_main(args, cli.config.as_deref()).await?,
        Command::Lab { action } => lab(action, cli.config.as_deref()).await?,
        Command::Keys { action: KeysAction::Generate { out } } => {
            let (sk, vk) = keys::generate(&out)?;
            println!(
                "signing key   {} (keep it on the stream job only)\nverifying key {} (give it to every agent)",
                sk.display(),
                vk.display()
            );
        }
    }
    Ok(())
}

async fn lab(action: LabAction, config: Option<&std::path::Path>) -> Result<()> {
    use x0_lab::kernel::netlab::{down, NetLab};
    use x0tta6bl4::kernel_lab::{default_run_dir, run_lab, LabOptions, Routing};
    match action {
        LabAction::Up { scenario, prefix } => {
            let scenario = Scenario::from_file(&scenario)?;
            let topo = Topology::generate(&scenario.topology)?;
            let lab = NetLab::up(&topo, &prefix)?;
            let dir = default_run_dir(&prefix);
            std::fs::create_dir_all(&dir)?;
            for net in &lab.networks {
                std::fs::write(dir.join(format!("{}.json", net.node)), net.to_json())?;
            }
            println!("node network files (for `x0tta6bl4 agent --network`) in {}", dir.display());
            println!(
                "{} namespaces up: {} … (tear down with `x0tta6bl4 lab down --prefix {prefix}`)",
                lab.namespaces.len(),
                lab.namespaces[0]
            );
        }
        LabAction::Down { prefix } => {
            let n = down(&prefix)?;
            println!("removed {n} namespaces");
        }
        LabAction::Fault { kind, target, scenario, loss, off, prefix } => {
            let scenario = Scenario::from_file(&scenario)?;
            let topo = Topology::generate(&scenario.topology)?;
            let lab = NetLab { prefix: prefix.clone(), namespaces: vec![], networks: vec![] };
            let kind = match kind.as_str() {
                "link-down" => x0_schema::FaultKind::LinkDown,
                "link-loss" => x0_schema::FaultKind::LinkLoss,
                "node-crash" => x0_schema::FaultKind::NodeCrash,
                other => bail!("unknown fault kind {other:?} (link-down, link-loss, node-crash)"),
            };
            let element = match target.split_once('-') {
                Some((a, b)) => x0_schema::Element::link(a, b),
                None => x0_schema::Element::node(&target),
            };
            let mut injectors = x0_lab::kernel::faults::Injectors::default();
            x0_lab::kernel::faults::apply(
                &lab,
                &topo,
                &mut injectors,
                &element,
                x0_lab::kernel::faults::Injection { kind, loss, direction: Default::default(), on: !off },
            )?;
            if kind == x0_schema::FaultKind::LinkLoss && !off {
                println!("loss injected; it lasts while this command runs: Ctrl-C to stop");
                tokio::signal::ctrl_c().await?;
            }
        }
        LabAction::Run { scenario, summary_json, routing, trials, prefix, no_ebpf } => {
            let routing = match routing.as_str() {
                "x0" => Routing::X0,
                "babel" => Routing::Babel,
                "static" => Routing::Static,
                other => bail!("unknown routing {other:?} (x0, babel, static)"),
            };
            let scenario = Scenario::from_file(&scenario)?;
            let opts = LabOptions {
                scenario,
                routing,
                trials: trials.max(1),
                run_dir: default_run_dir(&prefix),
                prefix: prefix.clone(),
                config: load_config(config)?,
                no_ebpf,
                agent_exe: None,
            };
            let summary = tokio::select! {
                s = run_lab(opts) => s?,
                _ = tokio::signal::ctrl_c() => {
                    // run_lab's teardown runs when its future is dropped here.
                    bail!("interrupted; lab torn down")
                }
            };
            print!("{}", report::lab_table(&summary));
            let json = serde_json::to_string_pretty(&summary)?;
            if let Some(path) = summary_json {
                std::fs::write(&path, &json).with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(())
}
