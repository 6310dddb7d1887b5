//! Bringing a lab up and down: the namespace mesh, the routing (our agents and stream
//! job on an embedded broker, or babeld), the probe flows and the route watch.

use super::{LabOptions, Routing};
use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use x0_kafka::{DevBroker, KafkaConfig};
use x0_lab::kernel::babel::Babel;
use x0_lab::kernel::faults::{self, Injection, Injectors};
use x0_lab::kernel::flows::{impact, FlowSpec, Flows};
use x0_lab::kernel::netlab::{process_tag, NetLab};
use x0_lab::kernel::plan::{backup_coverage, baseline_routes, node_address};
use x0_lab::kernel::routes::RouteWatch;
use x0_pipeline::{JobError, JobReport, LiveView, StreamJob, WantedRoute};
use x0_schema::{Element, FaultKind, NodeId, SigningKey, Topology};

/// Sends `signal` to a child process.
fn send(child: &Child, signal: Signal) -> nix::Result<()> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX)), signal)
}

/// The lean agent binary's file name (the `agent` package).
const LEAN_AGENT: &str = "x0-agent";

/// Processes started for the lab; killed, and the namespaces removed, on drop, so
/// that an error or Ctrl-C leaves nothing behind.
struct Teardown {
    lab: NetLab,
    agents: Vec<Child>,
    /// Each agent's command line, to start it again after a crash.
    launches: Vec<Vec<OsString>>,
}

/// Starts an agent from its command line (program first).
fn spawn_agent(argv: &[OsString]) -> Result<Child> {
    let (exe, args) = argv.split_first().context("an empty agent command line")?;
    Command::new(exe)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting an agent ({})", exe.to_string_lossy()))
}

impl Teardown {
    /// A crashed node's agent dies with it: stopped (SIGSTOP) while the node is down,
    /// continued when it comes back. Without this the node's own agent kept reporting
    /// carrier lost on every link, which is not what a crash looks like.
    fn freeze_agent(&mut self, node: &str, frozen: bool) -> Result<()> {
        let Some(i) = self.lab.networks.iter().position(|n| n.node == node) else { return Ok(()) };
        let Some(agent) = self.agents.get(i) else { return Ok(()) };
        let signal = if frozen { Signal::SIGSTOP } else { Signal::SIGCONT };
        send(agent, signal).with_context(|| format!("{signal} to the agent of {node}"))?;
        Ok(())
    }

    /// Kills node `i`'s agent with SIGKILL, runs `meanwhile` (the node losing its
    /// routes, say), and starts the agent again with the same command line.
    fn kill_and_restart(&mut self, i: usize, meanwhile: impl FnOnce() -> Result<()>) -> Result<()> {
        let agent = self.agents.get_mut(i).context("no such agent")?;
        send(agent, Signal::SIGKILL).context("SIGKILL to an agent")?;
        agent.wait()?;
        meanwhile()?;
        self.agents[i] = spawn_agent(&self.launches[i])?;
        Ok(())
    }

    /// An error naming the first agent that is no longer running (a crash, a bad
    /// binary): the lab stops instead of waiting for routes that will never settle.
    /// Read from `/proc` so that a shared borrow will do (the lab is Linux-only).
    fn agents_alive(&self) -> Result<()> {
        for (agent, net) in self.agents.iter().zip(&self.lab.networks) {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", agent.id())).unwrap_or_default();
            // The state is the field after the parenthesised command name.
            let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
            if matches!(state, None | Some('Z' | 'X')) {
                bail!("the agent of {} (pid {}) exited; its output is above", net.node, agent.id());
            }
        }
        Ok(())
    }

    fn stop_agents(&mut self) {
        for a in &self.agents {
            // A frozen agent (a crashed node's) must run to hear SIGTERM.
            let _ = send(a, Signal::SIGCONT);
            let _ = send(a, Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for mut a in self.agents.drain(..) {
            while matches!(a.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(a.try_wait(), Ok(None)) {
                let _ = a.kill();
            }
            let _ = a.wait();
        }
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        self.stop_agents();
        if let Err(e) = self.lab.down() {
            eprintln!("lab down: {e}");
        }
    }
}

/// A lab that is up, its routing converged and its probe flows running.
pub(super) struct Lab {
    pub(super) topo: Topology,
    /// The element each fault of the scenario hits (an "auto" target resolved).
    pub(super) elements: Vec<Element>,
    pub(super) pairs: Vec<(NodeId, NodeId)>,
    pub(super) epoch: Instant,
    pub(super) flows: Flows,
    pub(super) flow_count: usize,
    pub(super) interval: Duration,
    pub(super) watch: RouteWatch,
    injectors: Injectors,
    /// Wall clock of the first trial's start (incidents before it are start-up's).
    pub(super) trials_from_ns: i64,
    backup_coverage: f64,
    converged: Duration,
    teardown: Teardown,
    routing: Routing,
    routing_run: RoutingRun,
}

/// What remains of a lab once it is down: what the summary needs.
pub(super) struct FinishedLab {
    pub(super) elements: Vec<Element>,
    pub(super) report: Option<JobReport>,
    pub(super) nodes: usize,
    pub(super) links: usize,
    pub(super) flows: usize,
    pub(super) flow_interval: Duration,
    pub(super) backup_coverage: f64,
    pub(super) converged_after: Duration,
    pub(super) trials_from_ns: i64,
}

/// The routing that runs the mesh: our agents (and, for `x0`, the stream job on an
/// embedded broker), or babeld.
enum RoutingRun {
    Ours {
        broker: DevBroker,
        job: Option<JoinHandle<Result<JobReport, JobError>>>,
        stop: watch::Sender<bool>,
        /// What the job wants installed, as it runs.
        live: Arc<LiveView>,
    },
    Babel(Babel),
}

impl Lab {
    /// Builds the mesh, starts the routing and the flows, and waits for every flow to
    /// deliver.
    pub(super) async fn up(opts: &LabOptions) -> Result<Lab> {
        let scenario = &opts.scenario;
        let topo = Topology::generate(&scenario.topology)?;
        let elements = topo.resolve_faults(scenario)?;
        // The eBPF probes and the loss injector read tracefs: mount it, or say why it
        // cannot be, before anything is built.
        let injects_loss = scenario.faults.iter().any(|f| f.kind == FaultKind::LinkLoss);
        let agents_probe = opts.routing != Routing::Babel && !opts.no_ebpf;
        if injects_loss || agents_probe {
            x0_ingest::ensure_tracefs().context("the lab's probes and fault injector need tracefs")?;
        }
        let routes = baseline_routes(&topo);
        let net = NetLab::up(&topo, &opts.prefix).context("building the namespace mesh (needs root)")?;
        let mut teardown = Teardown { lab: net, agents: Vec::new(), launches: Vec::new() };
        std::fs::create_dir_all(&opts.run_dir)?;
        // A fresh mesh: no agent journal of an earlier lab may put its routes back.
        match std::fs::remove_dir_all(opts.run_dir.join("agents")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let backup_coverage = backup_coverage(&routes);
        eprintln!(
            "lab {}: {} namespaces, {} veth links, loop-free backup next hops for {:.0}% of routes",
            opts.prefix,
            topo.len(),
            topo.links().len(),
            100.0 * backup_coverage
        );
        let routing_run = start_routing(opts, &topo, &mut teardown)?;
        let epoch = Instant::now();
        let pairs = topo.flows(scenario);
        let net = &teardown.lab;
        let specs: Vec<FlowSpec> = pairs
            .iter()
            .map(|&(s, d)| FlowSpec {
                src_ns: net.namespace(topo.name(s)),
                dst_ns: net.namespace(topo.name(d)),
                src_addr: node_address(s),
                dst_addr: node_address(d),
            })
            .collect();
        let interval = Duration::from_secs_f64(1.0 / f64::from(scenario.traffic.rate_pps.max(1)));
        let flows = Flows::start(&specs, interval, epoch).context("starting probe flows")?;
        let watch = RouteWatch::start(&net.namespaces, epoch, Duration::from_millis(20));
        let alive = || teardown.agents_alive();
        let converged = wait_converged(&flows, interval, Duration::from_secs(90), &alive).await?;
        eprintln!("routes converged: every flow delivers ({:.1} s after start)", converged.as_secs_f64());
        Ok(Lab {
            topo,
            elements,
            pairs,
            epoch,
            flows,
            flow_count: specs.len(),
            interval,
            watch,
            injectors: Injectors::default(),
            trials_from_ns: i64::MAX,
            backup_coverage,
            converged,
            teardown,
            routing: opts.routing,
            routing_run,
        })
    }

    /// The namespace mesh.
    pub(super) fn net(&self) -> &NetLab {
        &self.teardown.lab
    }

    /// An error if an agent is no longer running.
    pub(super) fn agents_alive(&self) -> Result<()> {
        self.teardown.agents_alive()
    }

    /// The agent processes (none under babeld).
    pub(super) fn agents(&self) -> &[Child] {
        &self.teardown.agents
    }

    /// Loads the fault injectors before the first trial, not at its first fault:
    /// loading parses the kernel's BTF, a CPU burst that would land inside the first
    /// trial's measurement.
    pub(super) fn load_injectors(&mut self, opts: &LabOptions) -> Result<()> {
        for (f, e) in opts.scenario.faults.iter().zip(&self.elements) {
            if f.kind == FaultKind::LinkLoss {
                let off = Injection { kind: f.kind, loss: 0.0, direction: f.direction, on: false };
                faults::apply(&self.teardown.lab, &self.topo, &mut self.injectors, e, off)?;
            }
        }
        Ok(())
    }

    /// Injects or reverts one fault.
    pub(super) fn apply_fault(&mut self, element: &Element, injection: Injection) -> Result<()> {
        faults::apply(&self.teardown.lab, &self.topo, &mut self.injectors, element, injection)?;
        if let (FaultKind::NodeCrash, Element::Node { id }) = (injection.kind, element) {
            self.teardown.freeze_agent(id, injection.on)?;
        }
        Ok(())
    }

    /// Stops the agents, then the job (which writes its history), the flows, the
    /// route watch and the routing, and removes the namespaces.
    pub(super) async fn down(mut self) -> Result<FinishedLab> {
        self.teardown.stop_agents();
        let report = match self.routing_run {
            RoutingRun::Ours { broker, job, stop, .. } => {
                let _ = stop.send(true);
                let report = match job {
                    Some(j) => Some(j.await.context("stream job panicked")??),
                    None => None,
                };
                drop(broker);
                report
            }
            RoutingRun::Babel(babel) => {
                drop(babel);
                None
            }
        };
        self.flows.stop();
        self.watch.stop();
        let (nodes, links) = (self.topo.len(), self.topo.links().len());
        drop(self.teardown);
        Ok(FinishedLab {
            elements: self.elements,
            report,
            nodes,
            links,
            flows: self.flow_count,
            flow_interval: self.interval,
            backup_coverage: self.backup_coverage,
            converged_after: self.converged,
            trials_from_ns: self.trials_from_ns,
        })
    }

    /// The routes our job wants beyond the baselines now (None without a job).
    pub(super) fn wanted_routes(&self) -> Option<Arc<Vec<WantedRoute>>> {
        match &self.routing_run {
            RoutingRun::Ours { job: Some(_), live, .. } => Some(live.wanted_routes()),
            _ => None,
        }
    }

    /// The job's incidents not yet over, one line each with the latest line of its
    /// explanation (why a lab waits: what keeps an incident open).
    pub(super) fn open_incidents(&self) -> Vec<String> {
        let RoutingRun::Ours { live, .. } = &self.routing_run else { return vec![] };
        live.incidents()
            .iter()
            .map(|v| &v.incident)
            .filter(|i| !i.state.is_final())
            .map(|i| {
                let cause =
                    i.root_cause.as_ref().map_or(String::new(), |rc| format!("{} {}", rc.kind.as_str(), rc.element));
                let last = i.explanation.lines().last().unwrap_or("");
                format!("{} {cause} ({:?}): {last}", i.incident_id, i.state)
            })
            .collect()
    }

    /// Kills node `i`'s agent (SIGKILL), runs `meanwhile`, and starts it again.
    pub(super) fn kill_and_restart_agent(&mut self, i: usize, meanwhile: impl FnOnce() -> Result<()>) -> Result<()> {
        self.teardown.kill_and_restart(i, meanwhile)
    }

    /// Whether the routing is babeld's (its routes have no baseline of ours).
    pub(super) fn under_babel(&self) -> bool {
        self.routing == Routing::Babel
    }
}

fn start_routing(opts: &LabOptions, topo: &Topology, teardown: &mut Teardown) -> Result<RoutingRun> {
    if opts.routing == Routing::Babel {
        return Ok(RoutingRun::Babel(Babel::start(&teardown.lab, topo, &opts.run_dir)?));
    }
    let topics = opts.config.kafka.topics.clone();
    let broker = DevBroker::start(&topics, crate::demo::embedded_partitions(&opts.scenario))
        .context("starting the embedded broker")?;
    let kafka = KafkaConfig { brokers: broker.bootstrap_servers(), topics, ..opts.config.kafka.clone() };
    let signer = x0_schema::generate_signing_key();
    start_agents(opts, &kafka, &signer, teardown)?;
    let (stop, stopped) = watch::channel(false);
    // Trials are independent experiments on the same element, a minute apart: the job
    // must not take trial n's fault for trial n-1's coming back (it would reopen the
    // incident and double its hold-down every trial, past the lab's 90 s wait for the
    // baseline). Recurrence is measured by `eval stress` and the bundled scenarios.
    let mut config = opts.config.clone();
    config.rca.reopen_within = Duration::ZERO;
    let live = LiveView::new(topo);
    let job = (opts.routing == Routing::X0).then(|| {
        let stream_job =
            StreamJob::new(config, topo.clone(), signer).data_dir(opts.run_dir.join("history")).live(live.clone());
        tokio::spawn(async move { stream_job.run(&kafka, stopped).await })
    });
    Ok(RoutingRun::Ours { broker, job, stop, live })
}

/// The binary agents run as: the one asked for, else `x0-agent` beside this one, else
/// this one (as `x0tta6bl4 agent`). An `x0-agent` built from other contract sources
/// (its `--version`) is passed over, loudly: `cargo build --release` leaves it alone
/// unless asked for, and an agent that predates a command kind rejects every command
/// of that kind, so the lab would measure a job whose plans all roll back.
fn agent_exe(opts: &LabOptions) -> Result<PathBuf> {
    if let Some(p) = &opts.agent_exe {
        return Ok(p.clone());
    }
    let own = std::env::current_exe()?;
    let lean = own.with_file_name(LEAN_AGENT);
    if !lean.is_file() {
        return Ok(own);
    }
    let theirs = Command::new(&lean).arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let ours = x0_schema::CONTRACT_VERSION;
    match theirs {
        Ok(v) if v.trim_end().ends_with(ours) => Ok(lean),
        other => {
            let theirs = other.map_or_else(|e| e.to_string(), |v| v.trim().to_string());
            eprintln!(
                "note: {} is not built from these sources ({theirs}; this binary: {ours}): agents run as `x0tta6bl4 agent` (rebuild it: cargo build --release -p x0-agent)",
                lean.display()
            );
            Ok(own)
        }
    }
}

fn start_agents(opts: &LabOptions, kafka: &KafkaConfig, signer: &SigningKey, teardown: &mut Teardown) -> Result<()> {
    let vk_path = opts.run_dir.join("verifying.key");
    std::fs::write(&vk_path, hex::encode(signer.verifying_key().to_bytes()))?;
    let exe = agent_exe(opts)?;
    let lean = exe.file_name().is_some_and(|n| n == LEAN_AGENT);
    let interval = humantime::format_duration(opts.scenario.telemetry_interval).to_string();
    // With a fleet secret the job demands MACs: each agent gets its own node's key.
    let fleet = crate::demo::configured_fleet(&opts.config)?;
    for net in &teardown.lab.networks {
        let file = opts.run_dir.join(format!("{}.json", net.node));
        std::fs::write(&file, net.to_json())?;
        let mut argv: Vec<OsString> = vec![exe.clone().into()];
        if !lean {
            argv.push("agent".into());
        }
        let ns = teardown.lab.namespace(&net.node);
        argv.extend(["--node", &net.node, "--netns", &ns].map(OsString::from));
        argv.extend(["--network".into(), file.into_os_string(), "--brokers".into(), kafka.brokers.clone().into()]);
        argv.extend(["--verify-key".into(), vk_path.clone().into_os_string()]);
        argv.extend(["--telemetry-interval", &interval].map(OsString::from));
        argv.extend(["--state-dir".into(), opts.run_dir.join("agents").into_os_string()]);
        argv.extend(["--lab-tag".into(), process_tag(&opts.prefix).into()]);
        if opts.no_ebpf {
            argv.push("--no-ebpf".into());
        }
        if let Some(fleet) = &fleet {
            let key = opts.run_dir.join("node-keys").join(format!("{}.key", net.node));
            if !key.exists() {
                x0_schema::write_message_key(&key, &fleet.node_key(&net.node))?;
            }
            argv.extend(["--node-key".into(), key.into_os_string()]);
        }
        teardown.agents.push(spawn_agent(&argv)?);
        teardown.launches.push(argv);
    }
    Ok(())
}

/// Waits until every flow delivered everything sent in the last second.
/// `alive` is asked every round: an error (an agent died) ends the wait at once.
pub(super) async fn wait_converged(
    flows: &Flows,
    interval: Duration,
    limit: Duration,
    alive: &dyn Fn() -> Result<()>,
) -> Result<Duration> {
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        alive()?;
        let now = flows.epoch().elapsed().as_nanos() as u64;
        let from = now.saturating_sub(1_300_000_000);
        let until = now.saturating_sub(300_000_000);
        let logs = flows.snapshot();
        let i = impact(&logs, from, until, interval, Duration::ZERO);
        let every_flow_sent = logs.iter().all(|l| l.sent_ns.iter().any(|&t| t >= from && t < until));
        if i.lost == 0 && i.sent > 0 && every_flow_sent {
            return Ok(flows.epoch().elapsed());
        }
        if started.elapsed() > limit {
            bail!("routes did not converge within {limit:?}: {} of {} packets lost in the last second", i.lost, i.sent);
        }
    }
}
