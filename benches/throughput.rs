//! Throughput of the stream job on a large simulated mesh, on one core.
//!
//! Telemetry for a `--nodes`-node grid (every link end and every node, every 100 ms,
//! exactly what collectors send) is generated and encoded up front (the agents' compact
//! framing by default; `--arrow` or `--json` for the other formats); the timed
//! part is what the job does per message: decode, validate against the inventory, window,
//! and on every window close compute features with DataFusion, detect, localise and
//! plan. Kafka transport is not included (one hop is measured separately, see
//! BENCHMARKS.md). With `--authenticated`, every message carries its node's MAC
//! (`keys.fleet_secret`) and the job checks it and the samples' nodes first, timed on
//! its own.
//!
//! With `--ui`, the job also feeds its web dashboard, served from a second thread to a
//! headless Chromium that has the page open (one browser connected); the process's CPU
//! time per window, with and without, is what the dashboard costs the job.
//!
//! With `--faults`, a link loses carrier at 40% of the run and a node crashes at 60%,
//! so that root cause and planning are on the measured path; the incidents, commands
//! and the slowest window close→decision are reported.
//!
//! With `--regions R`, the inventory is split into R regions (`[topology] regions`)
//! and the job is one instance of R in a consumer group that assigned it region 0: it
//! is fed only what its partition carries (region 0's nodes and its 2-hop halo), and
//! the `--faults` are placed inside region 0. Its samples/s and decision latency are
//! what each of R instances needs from its core.
//!
//! cargo bench --bench throughput -- [--nodes 10000] [--seconds 4] [--arrow | --json] [--authenticated] [--ui] [--faults] [--regions R]

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{cpu_seconds, thread_cpu_seconds};
use x0_lab::{SimMesh, SimOptions};
use x0_pipeline::{
    inventory_digest, CheckpointMeta, CheckpointStore, Config, FeatureEngine, HealingLoop, JobStats, Publication,
    BUILTIN_FEATURES_SQL, CHECKPOINT_FORMAT,
};
use x0_schema::{decode_telemetry, encode_arrow, encode_binary, encode_json_lines, ContentType, Scenario};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

fn main() {
    let nodes = arg("--nodes", 10_000);
    let seconds = arg("--seconds", 4);
    let json = std::env::args().any(|a| a == "--json");
    let arrow = std::env::args().any(|a| a == "--arrow");
    let authenticated = std::env::args().any(|a| a == "--authenticated");
    let ui = std::env::args().any(|a| a == "--ui");
    let regions = arg("--regions", 1);
    let shape = format!("[topology]\nshape='grid'\nnodes={nodes}\nseed=1\nregions={regions}\n");
    let faults = if std::env::args().any(|a| a == "--faults") {
        let (link, node) = (seconds * 400, seconds * 600);
        let (a, b, c) = if regions > 1 {
            inside_region_zero(&shape)
        } else {
            // Near the middle of the grid (row-major names): a busy link, a busy node.
            let side = (nodes as f64).sqrt() as u64;
            let mid = side / 2 * side + side / 2;
            (format!("n{mid}"), format!("n{}", mid + 1), format!("n{}", mid - side - 3))
        };
        format!(
            "[[fault]]\nat='{link}ms'\nkind='link-down'\ntarget='{a}-{b}'\n[[fault]]\nat='{node}ms'\nkind='node-crash'\ntarget='{c}'\n"
        )
    } else {
        String::new()
    };
    let fleet = x0_schema::FleetSecret::generate();
    let encoding = match (json, arrow) {
        (true, _) => ContentType::JsonLines,
        (_, true) => ContentType::Arrow,
        _ => ContentType::Binary,
    };
    let scenario = Scenario::from_toml_str(&format!(
        "name='bench'\nduration='{seconds}s'\ntelemetry_interval='100ms'\n{shape}[traffic]\npairs=0\nrate_pps=0\n{faults}"
    ))
    .expect("bench scenario");
    let start_ns = 1_700_000_000_000_000_000;
    let mut mesh = SimMesh::new(&scenario, SimOptions { start_ns, ..Default::default() }).expect("mesh");
    let topo = mesh.topology().clone();
    eprintln!("generating {seconds} s of telemetry for {nodes} nodes, {} links ...", topo.links().len());
    let mut messages = Vec::new();
    let (mut samples, mut all_samples) = (0u64, 0u64);
    // Region 0's partition: its nodes and their 2-hop halo.
    let fed = |node: &str| topo.id(node).is_some_and(|v| topo.regions().audience(v).contains(&0));
    while !mesh.finished() {
        for (node, batch) in mesh.step() {
            all_samples += batch.len() as u64;
            if !fed(&node) {
                continue;
            }
            samples += batch.len() as u64;
            let payload = match encoding {
                ContentType::JsonLines => encode_json_lines(&batch),
                ContentType::Arrow => encode_arrow(&batch),
                ContentType::Binary => encode_binary(&batch),
            };
            let mac = fleet.node_key(&node).mac(node.as_bytes(), &payload);
            messages.push((node, payload, mac));
        }
    }
    let bytes: usize = messages.iter().map(|(_, p, _)| p.len()).sum();
    eprintln!("{} messages, {samples} samples, {:.1} MB of {encoding:?}", messages.len(), bytes as f64 / 1e6);
    if regions > 1 {
        println!(
            "regions {} · this instance owns region 0 and takes in {samples} of the mesh's {all_samples} samples ({:.1}%, its halo included)",
            topo.regions().count(),
            100.0 * samples as f64 / all_samples as f64
        );
    }

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let features = FeatureEngine::new(BUILTIN_FEATURES_SQL).await.expect("feature sql");
        let stats = Arc::new(JobStats::default());
        let mut config = Config::default();
        // Replaying recorded telemetry: its clock is not the wall clock.
        config.window.max_event_age = std::time::Duration::from_secs(100 * 365 * 86_400);
        let inventory = inventory_digest(&topo);
        let mut core =
            HealingLoop::new(config, topo, features, x0_schema::generate_signing_key(), stats.clone(), "bench");
        if authenticated {
            core = core.with_trust(x0_pipeline::Trust::new(fleet.clone()));
        }
        core.discard_features();
        core.split_by_regions(regions as usize);
        core.assign(vec![0]);
        let watched = if ui {
            let live = x0_pipeline::LiveView::new(mesh.topology());
            core = core.with_live(live.clone());
            Some((watched_dashboard(mesh.topology(), live.clone(), stats.clone()), live))
        } else {
            None
        };
        let wall = start_ns + seconds as i64 * 1_000_000_000;
        // What the generated telemetry (and the set-up job) holds before the run: the
        // job's own memory is the peak beyond it.
        let rss_before = rss_mb();
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        let mut decisions = 0;
        let (mut decode, mut admit, mut close) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let mut auth = Duration::ZERO;
        let mut handoffs = (0usize, 0usize, Duration::ZERO);
        for (node, m, mac) in &messages {
            let t = Instant::now();
            let speaker = core.authenticate(Some(node.as_bytes()), None, Some(mac), m).expect("authentic");
            let ta = Instant::now();
            let batch = decode_telemetry(encoding, m).expect("valid");
            let t1 = Instant::now();
            core.check_speaker(&speaker, &batch).expect("its own samples");
            let tc = Instant::now();
            core.admit(0, batch, wall).expect("admitted");
            let t2 = Instant::now();
            decisions += core.close_ready().await.expect("features").len();
            let t3 = Instant::now();
            // The region handoffs due, built and encoded as the job publishes them
            // (after the decision's commands; timed apart, in the throughput).
            for h in core.take_handoffs() {
                if let Publication::Handoff(h) = h {
                    handoffs.0 += 1;
                    handoffs.1 += h.to_bytes().len();
                }
            }
            handoffs.2 += t3.elapsed();
            (decode, admit, close) = (decode + (t1 - ta), admit + (t2 - tc), close + (t3 - t2));
            auth += (ta - t) + (tc - t1);
        }
        let elapsed = t0.elapsed();
        let cpu = cpu_seconds() - cpu0;
        let mut lat = stats.decision_latencies_us();
        println!(
            "nodes {nodes} · links {} · samples {samples} · windows closed {} · outputs {decisions}",
            mesh.topology().links().len(),
            lat.len()
        );
        println!(
            "throughput: {:.0} samples/s on one core ({:.2} s)",
            samples as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64()
        );
        println!(
            "time spent: decode {:.2} s · validate + window {:.2} s · features + detect + plan {:.2} s",
            decode.as_secs_f64(),
            admit.as_secs_f64(),
            close.as_secs_f64()
        );
        println!(
            "process CPU: {cpu:.2} s ({:.1} ms per window closed){}",
            cpu * 1e3 / lat.len().max(1) as f64,
            if ui { " with the dashboard open in a headless Chromium" } else { "" }
        );
        if let Some((browser, live)) = &watched {
            let (frames, build) = live.frame_cost();
            let serving = thread_cpu_seconds(browser.server_tid);
            println!(
                "dashboard: {frames} frames built in {:.1} ms on the job's thread ({:.2} ms each) · \
                 serving thread {serving:.2} s CPU · together {:.2}% of the process's CPU",
                build.as_secs_f64() * 1e3,
                build.as_secs_f64() * 1e3 / frames.max(1) as f64,
                100.0 * (build.as_secs_f64() + serving) / cpu
            );
        }
        if authenticated {
            println!(
                "MAC check: {:.3} s, {:.0} ns per sample, {:.1}% of the job's time ({:.1} B per sample hashed); \
                 at 1 M samples/s that is {:.1}% of one core",
                auth.as_secs_f64(),
                auth.as_nanos() as f64 / samples as f64,
                100.0 * auth.as_secs_f64() / elapsed.as_secs_f64(),
                bytes as f64 / samples as f64,
                auth.as_nanos() as f64 / samples as f64 * 1e6 / 1e9 * 100.0
            );
        }
        if !lat.is_empty() {
            let (p50, p95) = (percentile(&mut lat, 0.5), percentile(&mut lat, 0.95));
            let max = lat.iter().max().copied().unwrap_or(0);
            println!(
                "window close to decision: p50 {:.1} ms · p95 {:.1} ms · max {:.1} ms",
                p50 as f64 / 1000.0,
                p95 as f64 / 1000.0,
                max as f64 / 1000.0
            );
        }
        if regions > 1 {
            println!(
                "region handoffs: {} built and encoded, {:.1} MB, {:.1} ms in all (after each decision, not in its latency)",
                handoffs.0,
                handoffs.1 as f64 / 1e6,
                handoffs.2.as_secs_f64() * 1e3
            );
        }
        for plan in stats.plan_costs() {
            println!(
                "plan: {:.1} ms · {} route changes · {} repaired at the fault's edge · {} destinations over their whole tree · hop distances {:.1} MB",
                plan.took.as_secs_f64() * 1e3,
                plan.changes,
                plan.at_edge,
                plan.whole_tree,
                plan.hop_bytes as f64 / 1e6
            );
        }
        let incidents = core.incidents();
        println!(
            "incidents {} ({}) · commands {} · peak RSS {:.0} MB, of which the job's run {:.0} MB (the generated telemetry and set-up held {:.0} MB before it)",
            incidents.len(),
            incidents
                .iter()
                .filter_map(|i| i.root_cause.as_ref().map(|rc| format!("{} {}", rc.kind.as_str(), rc.element)))
                .collect::<Vec<_>>()
                .join(", "),
            JobStats::get(&stats.commands_sent),
            peak_rss_mb(),
            peak_rss_mb() - rss_before,
            rss_before
        );
        // What the job's checkpoint of this state costs (the state a window boundary
        // leaves: open windows, baselines of every element and feature, incidents).
        let dir = tempfile::tempdir().expect("temp dir");
        let store = CheckpointStore::new(dir.path());
        let meta = CheckpointMeta {
            format: CHECKPOINT_FORMAT,
            job_id: "bench".into(),
            inventory,
            offsets: Default::default(),
            written_at_ns: 0,
        };
        let costs: Vec<_> = (0..5).map(|_| store.write(&meta, &core).expect("checkpoint")).collect();
        let mut ms: Vec<f64> = costs.iter().map(|c| c.ms).collect();
        ms.sort_by(f64::total_cmp);
        let restore = Instant::now();
        store.restore(&mut core, mesh.topology()).expect("restore");
        println!(
            "checkpoint: {:.1} MB · write (serialise + fsync + rename) median {:.0} ms, max {:.0} ms · restore {:.0} ms",
            costs[0].bytes as f64 / 1e6,
            ms[ms.len() / 2],
            ms[ms.len() - 1],
            restore.elapsed().as_secs_f64() * 1e3
        );
    });
}

/// A link and a node deep inside region 0 (at its centre), so
/// that the instance owning region 0 plans for both: (link end, link end, node).
fn inside_region_zero(shape: &str) -> (String, String, String) {
    let spec: x0_schema::Scenario =
        Scenario::from_toml_str(&format!("name='r'\nduration='1s'\n{shape}[traffic]\npairs=0\nrate_pps=0\n"))
            .expect("scenario");
    let topo = x0_schema::Topology::generate(&spec.topology).expect("topology");
    let adjacency: Vec<Vec<usize>> = (0..topo.len()).map(|v| topo.neighbours(v).to_vec()).collect();
    let others: Vec<usize> = (0..topo.len()).filter(|&v| topo.regions().of(v) != 0).collect();
    let depth = x0_schema::hop_counts(&adjacency, &others);
    // The centre of region 0: farthest from both the other regions and the mesh's
    // edge (nodes short of a full set of links), as the one-region run's faults are.
    let full = (0..topo.len()).map(|v| topo.neighbours(v).len()).max().unwrap_or(0);
    let edge: Vec<usize> = (0..topo.len()).filter(|&v| topo.neighbours(v).len() < full).collect();
    let inland = x0_schema::hop_counts(&adjacency, &edge);
    let deepest = (0..topo.len())
        .filter(|&v| topo.regions().of(v) == 0)
        .max_by_key(|&v| (depth[v].min(inland[v]), std::cmp::Reverse(v)))
        .expect("a node in region 0");
    let next = topo.neighbours(deepest)[0];
    // Four hops from the link, still deep in region 0.
    let from_link = x0_schema::hop_counts(&adjacency, &[deepest, next]);
    let crash = (0..topo.len())
        .filter(|&v| from_link[v] == 4 && topo.regions().of(v) == 0)
        .max_by_key(|&v| (depth[v].min(inland[v]), std::cmp::Reverse(v)))
        .expect("a node four hops from the link");
    (topo.name(deepest).to_string(), topo.name(next).to_string(), topo.name(crash).to_string())
}

/// Serves the dashboard of `live` from a thread of its own and opens it in a headless
/// Chromium; returns once the page is subscribed to the live feed. The browser is
/// killed when the returned guard drops.
fn watched_dashboard(topo: &x0_schema::Topology, live: Arc<x0_pipeline::LiveView>, stats: Arc<JobStats>) -> Browser {
    let dir = tempfile::tempdir().expect("temp dir");
    let dashboard = x0_ui::Dashboard::new(topo, live.clone(), stats.clone(), dir.path().to_path_buf(), "builtin");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // This thread's id, to read its CPU time: /proc/thread-self is /proc/PID/task/TID.
        let me = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
        let tid: u32 = me.file_name().and_then(|t| t.to_str()).and_then(|t| t.parse().ok()).expect("tid");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let ready: x0_ops::ReadyCheck = Arc::new(|| Ok(()));
            let endpoint = x0_ops::Endpoint::serve_with(
                "127.0.0.1:0",
                x0_pipeline::job_registry(stats),
                ready,
                dashboard.router(),
            )
            .await
            .expect("serve");
            tx.send((endpoint.addr(), tid)).expect("send");
            std::future::pending::<()>().await;
        });
    });
    let (addr, server_tid) = rx.recv().expect("dashboard address");
    let profile = tempfile::tempdir().expect("temp dir");
    let child = std::process::Command::new("chromium")
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("http://{addr}/#/mesh"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromium (apt-get install chromium)");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !live.watched() {
        assert!(Instant::now() < deadline, "the page never subscribed to the live feed");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("dashboard at http://{addr}/ open in a headless Chromium (pid {})", child.id());
    Browser { child, server_tid, _dirs: (dir, profile) }
}

struct Browser {
    child: std::process::Child,
    /// The thread serving the dashboard.
    server_tid: u32,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The process's peak resident set (`VmHWM` in `/proc/self/status`), in MB.
fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// Resident memory now, MB.
fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kb.unwrap_or(0.0) / 1024.0
}
