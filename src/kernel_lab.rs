//! `x0tta6bl4 lab`: a scenario on real kernels. Network namespaces joined by veth,
//! one agent process per node (eBPF probes, link probes, netlink routes), the stream
//! job and the embedded broker in this process; or babeld instead of our agents and
//! job. Faults are injected at their scenario times, repeated `trials` times, and
//! outage and recovery are measured from probe-flow packets only.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use x0_kafka::{DevBroker, KafkaConfig};
use x0_lab::kernel::babel::Babel;
use x0_lab::kernel::faults::{self, Injection, Injectors};
use x0_lab::kernel::flows::{impact, FlowSpec, Flows};
use x0_lab::kernel::netlab::{process_tag, NetLab};
use x0_lab::kernel::plan::{backup_coverage, baseline_routes, node_address};
use x0_lab::kernel::routes::{count_changes, count_flaps, off_baseline, Forwarding, RouteWatch};
use x0_pipeline::{run_job, Config, FeatureEngine, JobReport, JobStats, StreamCore};
use x0_schema::{Element, FaultKind, Percentiles, Scenario, Topology};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Routing {
    /// Our agents and stream job.
    X0,
    /// Debian's babeld, no agents, no job.
    Babel,
    /// Our agents with their baseline routes (primary, backup, U-turn) but no stream
    /// job: what the kernel's own failover does alone.
    Static,
}

#[derive(Debug, Clone)]
pub struct LabOptions {
    pub scenario: Scenario,
    pub routing: Routing,
    pub trials: usize,
    pub prefix: String,
    pub config: Config,
    /// Agent configuration files, keys, babeld state.
    pub run_dir: PathBuf,
    /// Use the kernel's interface counters instead of eBPF in the agents.
    pub no_ebpf: bool,
    /// The binary the agents run as: `x0-agent`, or `x0tta6bl4` (run as `x0tta6bl4
    /// agent`). None: the `x0-agent` beside this process's binary, else its own.
    pub agent_exe: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrialOutcome {
    /// Injection to the last lost packet plus one send interval; null: not restored
    /// before the trial ended.
    pub restored_ms: Option<f64>,
    pub lost_packets: u64,
    /// The element failed in this trial (an "auto" target under babeld can differ).
    pub element: String,
    /// Probe flows the kernel forwarded across the faulted link when the fault began
    /// (None for node faults). A trial with 0 failed an idle link: it says nothing
    /// about recovery and is left out of the figures.
    pub flows_across: Option<usize>,
    pub flows_hit: usize,
    /// Next-hop changes, and A→B→A flaps within 10 s, while the fault lasted.
    pub route_changes: usize,
    pub route_flaps: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabFaultSummary {
    pub kind: String,
    pub element: String,
    pub trials: Vec<TrialOutcome>,
    /// Trials whose fault hit traffic (see `TrialOutcome::flows_across`).
    pub trials_with_traffic: usize,
    /// Of those, the trials in which traffic was restored.
    pub restored: usize,
    /// Over the restored trials, milliseconds.
    pub restored_ms: Percentiles,
    pub route_flaps: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentCost {
    pub agents: usize,
    pub cpu_percent_mean: f64,
    pub cpu_percent_max: f64,
    /// Resident memory after the trials, worst agent.
    pub rss_mb_max: f64,
    /// The highest resident memory any agent reached, start included (`VmHWM`).
    pub rss_mb_peak_max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabSummary {
    pub scenario: String,
    pub routing: Routing,
    pub nodes: usize,
    pub links: usize,
    pub flows: usize,
    pub flow_interval_ms: f64,
    pub backup_coverage: f64,
    pub converged_after_ms: f64,
    pub faults: Vec<LabFaultSummary>,
    pub incidents: usize,
    /// Incidents blaming an element other than an injected fault's, opened once the
    /// trials began (the job's false alarms under the lab's load) and before them
    /// (while 16 agents start on the same CPUs).
    pub false_incidents: usize,
    pub false_incidents_at_startup: usize,
    pub commands: usize,
    /// Over the trials.
    pub agent_cost: Option<AgentCost>,
    /// Over 10 s before the trials, the mesh quiet.
    pub agent_cost_quiet: Option<AgentCost>,
    pub telemetry: Option<String>,
}

/// Processes started for the lab; killed, and the namespaces removed, on drop, so
/// that an error or Ctrl-C leaves nothing behind.
struct Teardown {
    lab: NetLab,
    agents: Vec<Child>,
}

impl Teardown {
    fn stop_agents(&mut self) {
        for a in &mut self.agents {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(a.id() as i32), nix::sys::signal::Signal::SIGTERM);
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

pub async fn run_lab(opts: LabOptions) -> Result<LabSummary> {
    let scenario = &opts.scenario;
    let topo = Topology::generate(&scenario.topology)?;
    let mut elements = topo.resolve_faults(scenario)?;
    let routes = baseline_routes(&topo);
    let lab = NetLab::up(&topo, &opts.prefix).context("building the namespace mesh (needs root)")?;
    let mut teardown = Teardown { lab, agents: Vec::new() };
    let lab = &teardown.lab;
    std::fs::create_dir_all(&opts.run_dir)?;
    eprintln!(
        "lab {}: {} namespaces, {} veth links, loop-free backup next hops for {:.0}% of routes",
        opts.prefix,
        topo.len(),
        topo.links().len(),
        100.0 * backup_coverage(&routes)
    );

    let mut broker = None;
    let mut job = None;
    let stats = Arc::new(JobStats::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut babel = None;
    match opts.routing {
        Routing::X0 | Routing::Static => {
            let topics = opts.config.kafka.topics.clone();
            let b = DevBroker::start(&topics, 4).context("starting the embedded broker")?;
            let kafka = KafkaConfig { brokers: b.bootstrap_servers(), topics, ..opts.config.kafka.clone() };
            let signer = x0_schema::generate_signing_key();
            let vk_path = opts.run_dir.join("verifying.key");
            std::fs::write(&vk_path, hex::encode(signer.verifying_key().to_bytes()))?;
            let exe = match &opts.agent_exe {
                Some(p) => p.clone(),
                None => {
                    let own = std::env::current_exe()?;
                    let lean = own.with_file_name(LEAN_AGENT);
                    if lean.is_file() {
                        lean
                    } else {
                        own
                    }
                }
            };
            let lean = exe.file_name().is_some_and(|n| n == LEAN_AGENT);
            for net in &lab.networks {
                let file = opts.run_dir.join(format!("{}.json", net.node));
                std::fs::write(&file, net.to_json())?;
                let mut cmd = Command::new(&exe);
                if !lean {
                    cmd.arg("agent");
                }
                cmd.args(["--node", &net.node, "--netns", &lab.namespace(&net.node)])
                    .arg("--network")
                    .arg(&file)
                    .args(["--brokers", &kafka.brokers])
                    .arg("--verify-key")
                    .arg(&vk_path)
                    .args([
                        "--telemetry-interval",
                        &humantime::format_duration(scenario.telemetry_interval).to_string(),
                    ])
                    .args(["--lab-tag", &process_tag(&opts.prefix)])
                    .env("RUST_BACKTRACE", "0")
                    .stdin(Stdio::null());
                if opts.no_ebpf {
                    cmd.arg("--no-ebpf");
                }
                teardown.agents.push(cmd.spawn().context("starting an agent")?);
            }
            let sql = opts.config.feature_sql()?;
            let features = FeatureEngine::new(&sql).await?;
            let job_id = uuid::Uuid::new_v4().simple().to_string();
            let core = StreamCore::new(
                opts.config.clone(),
                topo.clone(),
                features,
                signer,
                stats.clone(),
                &format!("inc-{}", &job_id[..8]),
            );
            let data_dir = opts.run_dir.join("history");
            let core = crate::with_memory(core, &opts.config, &data_dir);
            if opts.routing == Routing::X0 {
                job = Some(tokio::spawn(async move { run_job(core, &kafka, &data_dir, &job_id, stop_rx).await }));
            }
            broker = Some(b);
        }
        Routing::Babel => {
            babel = Some(Babel::start(lab, &topo, &opts.run_dir)?);
        }
    }

    let epoch = Instant::now();
    let pairs = topo.flows(scenario);
    let specs: Vec<FlowSpec> = pairs
        .iter()
        .copied()
        .map(|(s, d)| FlowSpec {
            src_ns: lab.namespace(topo.name(s)),
            dst_ns: lab.namespace(topo.name(d)),
            src_addr: node_address(s),
            dst_addr: node_address(d),
        })
        .collect();
    let interval = Duration::from_secs_f64(1.0 / f64::from(scenario.traffic.rate_pps.max(1)));
    let flows = Flows::start(&specs, interval, epoch).context("starting probe flows")?;
    let watch = RouteWatch::start(&lab.namespaces, epoch, Duration::from_millis(20));
    let ns = |d: Duration| d.as_nanos() as u64;

    let converged = wait_converged(&flows, interval, Duration::from_secs(90)).await?;
    eprintln!("routes converged: every flow delivers ({:.1} s after start)", converged.as_secs_f64());
    // The agents' cost with the mesh quiet (telemetry and link probes only) over 10 s,
    // then over the trials (commands, reroutes, faults) below.
    let agent_cost_quiet = if opts.routing == Routing::Babel {
        None
    } else {
        let start = agent_cpu(&teardown.agents);
        let wall = Instant::now();
        tokio::time::sleep(Duration::from_secs(10)).await;
        Some(agent_cost(&teardown.agents, &start, wall.elapsed()))
    };
    let cost_start = agent_cpu(&teardown.agents);
    let cost_wall = Instant::now();

    // Load the fault injectors now, not at the first fault: loading parses the
    // kernel's BTF, a CPU burst that would land inside the first trial's measurement.
    let mut injectors = Injectors::default();
    let mut trials_from_ns = i64::MAX;
    for (f, e) in scenario.faults.iter().zip(&elements) {
        if f.kind == FaultKind::LinkLoss {
            faults::apply(
                lab,
                &topo,
                &mut injectors,
                e,
                Injection { kind: f.kind, loss: 0.0, direction: f.direction, on: false },
            )?;
        }
    }
    let mut outcomes: Vec<Vec<TrialOutcome>> = vec![Vec::new(); scenario.faults.len()];
    for trial in 0..opts.trials {
        // Every trial, the first included, starts from the baseline: the job has
        // cleared any incident and withdrawn its plan, routes quiet for 3 s (babeld:
        // routes settled).
        let settle = Instant::now();
        loop {
            wait_converged(&flows, interval, Duration::from_secs(60)).await?;
            let quiet =
                count_changes(&watch.changes(), ns(epoch.elapsed().saturating_sub(Duration::from_secs(3))), u64::MAX)
                    == 0;
            let off = if opts.routing == Routing::Babel { vec![] } else { off_baseline(lab) };
            if quiet && off.is_empty() {
                break;
            }
            if settle.elapsed() > Duration::from_secs(90) {
                bail!(
                    "routes did not return to the baseline within 90 s before trial {} (routes changed in the last 3 s: {}; off the baseline: {} {:?})",
                    trial + 1,
                    !quiet,
                    off.len(),
                    &off[..off.len().min(8)]
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // An "auto" link fault fails the link carrying the most probe flows now. With
        // our routing that is the scenario's resolved target (trials start from the
        // baseline); babeld may have moved traffic off it after an earlier trial.
        let forwarding = Forwarding::read(lab);
        if opts.routing == Routing::Babel {
            for (i, f) in scenario.faults.iter().enumerate() {
                if f.target == "auto" && matches!(elements[i], Element::Link { .. }) {
                    if let Some(&(a, b)) =
                        topo.links().iter().max_by_key(|&&(a, b)| forwarding.flows_across(&pairs, a, b))
                    {
                        elements[i] = Element::link(topo.name(a), topo.name(b));
                    }
                }
            }
        }
        let across: Vec<Option<usize>> = elements
            .iter()
            .map(|e| match e {
                Element::Link { a, b } => match (topo.id(a), topo.id(b)) {
                    (Some(a), Some(b)) => Some(forwarding.flows_across(&pairs, a, b)),
                    _ => None,
                },
                Element::Node { .. } => None,
            })
            .collect();
        let t0 = epoch.elapsed();
        trials_from_ns = trials_from_ns.min(x0_pipeline::wall_clock_ns());
        let mut events: Vec<(Duration, usize, bool)> = Vec::new();
        let mut windows = Vec::new();
        for (i, f) in scenario.faults.iter().enumerate() {
            let start = t0 + f.at;
            let end = t0 + f.duration.map_or(scenario.duration, |d| (f.at + d).min(scenario.duration));
            windows.push((start, end));
            if f.kind == FaultKind::LinkFlap {
                let half = f.period.unwrap_or(Duration::from_secs(4)) / 2;
                let mut t = start;
                let mut on = true;
                while t < end {
                    events.push((t, i, on));
                    t += half;
                    on = !on;
                }
            } else {
                events.push((start, i, true));
            }
            events.push((end, i, false));
        }
        events.sort_by_key(|e| e.0);
        for (at, i, on) in events {
            sleep_until(epoch + at).await;
            let f = &scenario.faults[i];
            let injection = Injection { kind: f.kind, loss: f.loss.unwrap_or(0.3), direction: f.direction, on };
            faults::apply(lab, &topo, &mut injectors, &elements[i], injection)?;
        }
        let trial_end = t0 + scenario.duration;
        sleep_until(epoch + trial_end + Duration::from_millis(500)).await;
        let logs = flows.snapshot();
        let changes = watch.changes();
        for (i, (start, end)) in windows.iter().enumerate() {
            let imp = impact(&logs, ns(*start), ns(trial_end), interval, Duration::from_secs(1));
            outcomes[i].push(TrialOutcome {
                restored_ms: imp.restored_after.map(|d| d.as_secs_f64() * 1e3),
                lost_packets: imp.lost,
                element: element_name(&elements[i]),
                flows_across: across[i],
                flows_hit: imp.flows_hit,
                route_changes: count_changes(&changes, ns(*start), ns(*end)),
                route_flaps: count_flaps(&changes, ns(*start), ns(*end), Duration::from_secs(10)),
            });
        }
        let last: Vec<String> = outcomes
            .iter()
            .map(|o| {
                let t = o.last().expect("pushed above");
                format!(
                    "restored {} lost {}",
                    t.restored_ms.map_or("never".into(), |m| format!("{m:.0} ms")),
                    t.lost_packets
                )
            })
            .collect();
        eprintln!("trial {}/{}: {}", trial + 1, opts.trials, last.join("; "));
    }
    let agent_cost =
        (opts.routing != Routing::Babel).then(|| agent_cost(&teardown.agents, &cost_start, cost_wall.elapsed()));

    teardown.stop_agents();
    let _ = stop_tx.send(true);
    let report = match job {
        Some(j) => Some(j.await.context("stream job panicked")??),
        None => None,
    };
    flows.stop();
    watch.stop();
    drop(babel);
    drop(broker);
    drop(teardown);

    let faults = scenario
        .faults
        .iter()
        .zip(&elements)
        .zip(outcomes)
        .map(|((f, e), trials)| {
            let hit: Vec<&TrialOutcome> = trials.iter().filter(|t| t.flows_across != Some(0)).collect();
            let restored: Vec<i64> = hit.iter().filter_map(|t| t.restored_ms.map(|m| m.round() as i64)).collect();
            LabFaultSummary {
                kind: f.kind.as_str().to_string(),
                element: {
                    let mut seen: Vec<String> = Vec::new();
                    for t in &trials {
                        if !seen.contains(&t.element) {
                            seen.push(t.element.clone());
                        }
                    }
                    if seen.is_empty() {
                        element_name(e)
                    } else {
                        seen.join(", ")
                    }
                },
                trials_with_traffic: hit.len(),
                restored: restored.len(),
                restored_ms: Percentiles::of(&restored),
                route_flaps: trials.iter().map(|t| t.route_flaps).sum(),
                trials,
            }
        })
        .collect();
    Ok(LabSummary {
        scenario: scenario.name.clone(),
        routing: opts.routing,
        nodes: topo.len(),
        links: topo.links().len(),
        flows: specs.len(),
        flow_interval_ms: interval.as_secs_f64() * 1e3,
        backup_coverage: backup_coverage(&routes),
        converged_after_ms: converged.as_secs_f64() * 1e3,
        faults,
        incidents: report.as_ref().map_or(0, |r| r.incidents.len()),
        false_incidents: false_incidents(report.as_ref(), &elements, |t| t >= trials_from_ns),
        false_incidents_at_startup: false_incidents(report.as_ref(), &elements, |t| t < trials_from_ns),
        commands: report.as_ref().map_or(0, |r| r.commands.len()),
        agent_cost,
        agent_cost_quiet,
        telemetry: (opts.routing != Routing::Babel).then(|| if opts.no_ebpf { "procfs" } else { "ebpf" }.to_string()),
    })
}

fn false_incidents(report: Option<&JobReport>, faults: &[Element], when: impl Fn(i64) -> bool) -> usize {
    report.map_or(0, |r| {
        r.incidents
            .iter()
            .filter(|i| when(i.opened_at))
            .filter(|i| i.root_cause.as_ref().is_none_or(|c| !faults.contains(&c.element)))
            .count()
    })
}

fn element_name(e: &Element) -> String {
    e.to_string()
}

async fn sleep_until(t: Instant) {
    tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await;
}

/// Waits until every flow delivered everything sent in the last second.
async fn wait_converged(flows: &Flows, interval: Duration, limit: Duration) -> Result<Duration> {
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
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

/// (utime + stime ticks) per agent.
fn agent_cpu(agents: &[Child]) -> Vec<u64> {
    agents.iter().map(|a| read_ticks(a.id()).unwrap_or(0)).collect()
}

fn read_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// A field of /proc/PID/status in MB: `VmRSS` (resident now) or `VmHWM` (the peak).
fn status_mb(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn agent_cost(agents: &[Child], start: &[u64], wall: Duration) -> AgentCost {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64;
    let cpu: Vec<f64> = agents
        .iter()
        .zip(start)
        .map(|(a, s)| read_ticks(a.id()).unwrap_or(*s).saturating_sub(*s) as f64 / hz / wall.as_secs_f64() * 100.0)
        .collect();
    let rss = agents.iter().filter_map(|a| status_mb(a.id(), "VmRSS:")).fold(0.0, f64::max);
    let peak = agents.iter().filter_map(|a| status_mb(a.id(), "VmHWM:")).fold(0.0, f64::max);
    AgentCost {
        agents: agents.len(),
        cpu_percent_mean: cpu.iter().sum::<f64>() / cpu.len().max(1) as f64,
        cpu_percent_max: cpu.iter().copied().fold(0.0, f64::max),
        rss_mb_max: rss,
        rss_mb_peak_max: peak,
    }
}

/// Where a lab keeps its files.
/// The lean agent binary's file name (`src/bin/x0-agent.rs`).
const LEAN_AGENT: &str = "x0-agent";

pub fn default_run_dir(prefix: &str) -> PathBuf {
    Path::new("/run/x0tta6bl4").join(prefix.trim_end_matches('-'))
}
