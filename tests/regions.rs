//! Two stream-job instances sharing one mesh through Kafka's consumer group: the
//! inventory splits a 6×6 grid into 2 regions, each region's telemetry (with its
//! 2-hop halo) goes to its own partition, and each instance owns the regions of the
//! partitions the group assigns it.
//!
//! Processes as a user deploys them: a broker, `run` twice, `simulate`. The broker is
//! librdkafka's mock cluster as its own process (`x0tta6bl4 broker`): tansu 0.6 never
//! expires the session of a member that was killed, so its partitions never move (a
//! member that leaves cleanly hands them over at once); see BENCHMARKS §8.
//!
//! A gray loss inside each region, two links down together on opposite sides of a
//! grid square (one each region's: each instance's repair must avoid the other's
//! fault, which it knows from the other's handoffs), then a link down on the border,
//! each detected by one instance only and repaired. Then a link goes down in region 1, its owner
//! repairs it, and is killed (`kill -9`) while the link is still down: the group hands
//! its partition to the survivor, which takes the open incident over from the region's
//! handoff (`x0.handoff`), carries it on under its id and withdraws its routes when
//! the link comes back. A later fault in region 1 is the survivor's. Everything is
//! counted from the simulated mesh (restoration from its probe traffic, applications
//! per command id, overrides left) and from both instances' histories through SQL.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use x0_schema::{Element, Scenario, Topology};
use x0_sql::HistoryEngine;

const HEAD: &str = r#"
name = "regions-two-instances"
duration = "104s"
telemetry_interval = "100ms"
[topology]
shape = "grid"
nodes = 36
seed = 7
regions = 2
[traffic]
pairs = 80
rate_pps = 50
"#;

/// When the owner of region 1 is killed (scenario time): 8 s into a link down in its
/// region that lasts until 74 s.
const KILL_AT: Duration = Duration::from_secs(58);

fn exe() -> std::ffi::OsString {
    std::env::var_os("X0_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_x0tta6bl4").into())
}

/// A process killed when the test ends, however it ends.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The link carrying most probe flows among `candidates`.
fn busiest(topo: &Topology, scenario: &Scenario, candidates: &[(usize, usize)]) -> Element {
    let mut load: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for (s, d) in topo.flows(scenario) {
        for w in topo.baseline_path(s, d).unwrap().windows(2) {
            *load.entry((w[0].min(w[1]), w[0].max(w[1]))).or_default() += 1;
        }
    }
    let &(a, b) =
        candidates.iter().max_by_key(|l| (load.get(l).copied().unwrap_or(0), std::cmp::Reverse(**l))).unwrap();
    topo.link_element(a, b)
}

/// The scenario with its seven faults: targets picked by region from the inventory.
fn scenario() -> (String, [Element; 7]) {
    let base = Scenario::from_toml_str(HEAD).unwrap();
    let topo = Topology::generate(&base.topology).unwrap();
    let regions = topo.regions();
    assert_eq!(regions.count(), 2);
    // Inside a region and out of the other's sight (neither end in its halo), when
    // there is such a link; else inside the region.
    let inside = |r: u32| {
        let own: Vec<_> =
            topo.links().iter().copied().filter(|&(a, b)| regions.of(a) == r && regions.of(b) == r).collect();
        let unseen: Vec<_> = own
            .iter()
            .copied()
            .filter(|&(a, b)| regions.audience(a).len() == 1 && regions.audience(b).len() == 1)
            .collect();
        busiest(&topo, &base, if unseen.is_empty() { &own } else { &unseen })
    };
    let border: Vec<_> = topo.links().iter().copied().filter(|&(a, b)| regions.of(a) != regions.of(b)).collect();
    let (r0, r1, edge) = (inside(0), inside(1), busiest(&topo, &base, &border));
    // More links in region 1, other than those picked before: one down across the
    // kill, one after the failover.
    let other_in_1 = |taken: &[&Element]| {
        let own: Vec<_> = topo
            .links()
            .iter()
            .copied()
            .filter(|&(a, b)| regions.of(a) == 1 && regions.of(b) == 1 && !taken.contains(&&topo.link_element(a, b)))
            .collect();
        busiest(&topo, &base, &own)
    };
    let r1_later = other_in_1(&[&r1]);
    let r1_across = other_in_1(&[&r1, &r1_later]);
    // Two opposite sides of a grid square, one owned by each region, down together:
    // each repair's natural detour crosses the other fault.
    let picked = [&r0, &r1, &edge, &r1_later, &r1_across];
    let free = |(a, b): (usize, usize)| !picked.contains(&&topo.link_element(a, b));
    let owner = |(a, b): (usize, usize)| regions.owner(&topo, &topo.link_element(a, b));
    let (sq0, sq1) = topo
        .links()
        .iter()
        .copied()
        .filter(|&l| free(l) && regions.of(l.0) == 1 && regions.of(l.1) == 1)
        .find_map(|(a, b)| {
            let other = topo.neighbours(a).iter().find_map(|&c| {
                let d = topo.neighbours(b).iter().copied().find(|&d| {
                    c != b && d != a && topo.neighbours(c).contains(&d) && free((c, d)) && owner((c, d)) == Some(0)
                })?;
                Some((c, d))
            })?;
            Some((topo.link_element(other.0, other.1), topo.link_element(a, b)))
        })
        .expect("a grid square across the border");
    let link = |e: &Element| match e {
        Element::Link { a, b } => format!("{a}-{b}"),
        Element::Node { .. } => unreachable!(),
    };
    let faults = format!(
        r#"
[[fault]]
at = "10s"
kind = "link-loss"
target = "{}"
loss = 0.4
duration = "12s"
[[fault]]
at = "12s"
kind = "link-down"
target = "{}"
duration = "12s"
[[fault]]
at = "14s"
kind = "link-down"
target = "{}"
duration = "10s"
[[fault]]
at = "26s"
kind = "link-loss"
target = "{}"
loss = 0.4
duration = "12s"
[[fault]]
at = "40s"
kind = "link-down"
target = "{}"
duration = "8s"
[[fault]]
at = "50s"
kind = "link-down"
target = "{}"
duration = "24s"
[[fault]]
at = "80s"
kind = "link-down"
target = "{}"
duration = "12s"
"#,
        link(&r0),
        link(&sq1),
        link(&sq0),
        link(&r1),
        link(&edge),
        link(&r1_across),
        link(&r1_later)
    );
    (format!("{HEAD}{faults}"), [r0, r1, edge, r1_later, r1_across, sq0, sq1])
}

/// The regions an instance's log says it owns last (None: not yet).
fn owns(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("stream job: owns regions ")?.strip_suffix(" of the mesh"))
        .next_back()
        .map(str::to_string)
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every incident of a history: (root-cause element, kind, state, id).
async fn incidents(history: &Path) -> Vec<(String, String, String, String)> {
    if !history.exists() {
        return vec![];
    }
    let engine = HistoryEngine::open(history.to_str().unwrap()).await.unwrap();
    let batches = engine
        .query("SELECT root_cause_element, root_cause_kind, state, incident_id FROM incidents ORDER BY detected_at")
        .await
        .unwrap();
    let mut out = Vec::new();
    for b in batches {
        let col = |i: usize| arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8).unwrap();
        let (e, k, s, id) = (col(0), col(1), col(2), col(3));
        let str = |a: &arrow::array::ArrayRef, r: usize| {
            a.as_any().downcast_ref::<arrow::array::StringArray>().unwrap().value(r).to_string()
        };
        for r in 0..b.num_rows() {
            out.push((str(&e, r), str(&k, r), str(&s, r), str(&id, r)));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_split_a_two_region_mesh_and_the_survivor_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n);
    x0_schema::generate_key_files(dir.path()).unwrap();
    // The broker, as its own process.
    let mut broker = Command::new(exe());
    broker.args(["broker", "--partitions", "2"]).stdin(Stdio::null()).stdout(Stdio::piped());
    broker.stderr(std::fs::File::create(path("broker.log")).unwrap());
    let mut broker = Owned(broker.spawn().unwrap());
    let mut address = String::new();
    BufReader::new(broker.0.stdout.take().unwrap()).read_line(&mut address).unwrap();
    let address = address.trim().to_string();
    assert!(address.contains(':'), "broker address {address:?}");

    let (text, targets) = scenario();
    std::fs::write(path("scenario.toml"), &text).unwrap();
    let config = |name: &str| {
        let file = path(&format!("{name}.toml"));
        std::fs::write(
            &file,
            format!(
                "data_dir = \"{}\"\n[kafka]\nbrokers = \"{address}\"\n[checkpoint]\nenabled = false\n\
                 [keys]\nsigning_key = \"{}\"\nverifying_key = \"{}\"\n",
                path(&format!("history-{name}")).display(),
                path("signing.key").display(),
                path("verifying.key").display()
            ),
        )
        .unwrap();
        file
    };
    let spawn = |name: &str, args: &[&str]| {
        let mut c = Command::new(exe());
        c.arg("--config").arg(config(name)).args(args).stdin(Stdio::null()).stdout(Stdio::null());
        c.stderr(std::fs::File::create(path(&format!("{name}.log"))).unwrap());
        Owned(c.spawn().unwrap())
    };
    let topology = path("scenario.toml");
    let run = |name: &str| spawn(name, &["run", "--topology", topology.to_str().unwrap()]);
    let log = |name: &str| std::fs::read_to_string(path(&format!("{name}.log"))).unwrap_or_default();

    let mut a = run("a");
    wait_for("instance a owns regions", Duration::from_secs(60), || owns(&path("a.log")).is_some());
    let b = run("b");
    wait_for(
        "the group splits the regions",
        Duration::from_secs(60),
        || matches!((owns(&path("a.log")), owns(&path("b.log"))), (Some(x), Some(y)) if x != y && !x.contains(',') && !y.contains(',')),
    );
    eprintln!("a owns {:?}, b owns {:?}", owns(&path("a.log")), owns(&path("b.log")));
    let (mut victim, survivor, victim_name, survivor_name) =
        if owns(&path("b.log")).as_deref() == Some("[1]") { (b, a, "b", "a") } else { (a, b, "a", "b") };
    a = survivor;

    let mesh_json = path("mesh.json");
    let verifying = path("verifying.key");
    let mut sim = spawn(
        "sim",
        &[
            "simulate",
            "--scenario",
            topology.to_str().unwrap(),
            "--verifying-key",
            verifying.to_str().unwrap(),
            "--stats-json",
            mesh_json.to_str().unwrap(),
        ],
    );
    let started = Instant::now();
    tokio::time::sleep(KILL_AT).await;
    victim.0.kill().unwrap();
    let _ = victim.0.wait();
    eprintln!("killed {victim_name} (region 1) at {:?}", started.elapsed());
    wait_for("the survivor owns both regions", Duration::from_secs(40), || {
        owns(&path(&format!("{survivor_name}.log"))).as_deref() == Some("[0, 1]")
    });
    eprintln!("{survivor_name} owns both regions at {:?} (scenario time)", started.elapsed());
    wait_for("simulate ends", Duration::from_secs(120), || sim.0.try_wait().unwrap().is_some());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(a.0.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    wait_for("the survivor stops", Duration::from_secs(30), || a.0.try_wait().unwrap().is_some());

    let context = format!(
        "{}:\n{}\n{}:\n{}\nsim:\n{}",
        victim_name,
        log(victim_name),
        survivor_name,
        log(survivor_name),
        log("sim")
    );
    let mesh: serde_json::Value = serde_json::from_slice(&std::fs::read(&mesh_json).unwrap()).unwrap();
    eprintln!("mesh: {mesh}");
    // Repaired: each fault's traffic restored while it lasted (from the probe flows).
    for (i, f) in mesh["faults"].as_array().unwrap().iter().enumerate() {
        assert!(f["traffic_restored_at_ms"].is_i64(), "fault {i} ({}) not restored: {mesh}\n{context}", f["target"]);
    }
    assert_eq!(mesh["max_applications_per_command"], 1, "a command applied twice: {mesh}");
    assert_eq!(mesh["overrides_in_force"], 0, "overrides left behind: {mesh}\n{context}");
    assert_eq!(mesh["route_flaps"], 0, "no route flapped: {mesh}\n{context}");

    // Detected once, by the owner, and diagnosed right; nothing else opened. An
    // incident is one id: the one carried across the kill is in both histories (open
    // in the killed instance's last snapshot, resolved in the survivor's).
    let by_victim = incidents(&path(&format!("history-{victim_name}"))).await;
    let by_survivor = incidents(&path(&format!("history-{survivor_name}"))).await;
    eprintln!("{victim_name} (region 1, killed): {by_victim:?}\n{survivor_name}: {by_survivor:?}");
    type Row = (String, String, String, String);
    let ids = |e: &Element, list: &[Row]| -> std::collections::BTreeSet<String> {
        list.iter().filter(|(el, ..)| *el == e.to_string()).map(|(.., id)| id.clone()).collect()
    };
    let named = |e: &Element, list: &[Row]| ids(e, list).len();
    let all: Vec<Row> = by_victim.iter().chain(&by_survivor).cloned().collect();
    for (i, t) in targets.iter().enumerate() {
        assert_eq!(named(t, &all), 1, "fault {i} on {t}: one incident across both instances: {all:?}\n{context}");
    }
    let distinct: std::collections::BTreeSet<&String> = all.iter().map(|(.., id)| id).collect();
    assert_eq!(distinct.len(), 7, "no incident but the seven faults': {all:?}\n{context}");
    assert!(all.iter().all(|(_, kind, ..)| kind.starts_with("link-")), "{all:?}");
    assert_eq!(named(&targets[1], &by_victim), 1, "region 1's fault is its owner's: {all:?}");
    assert_eq!(named(&targets[3], &by_survivor), 1, "the fault after the kill is the survivor's: {all:?}");
    assert_eq!(named(&targets[0], &by_survivor), 1, "{all:?}");
    assert_eq!(named(&targets[2], &by_survivor), 1, "the border link is region 0's: {all:?}");
    // The square: each side its region's, both restored while they lasted (above).
    assert_eq!(named(&targets[5], &by_survivor), 1, "{all:?}");
    assert_eq!(named(&targets[6], &by_victim), 1, "{all:?}");
    // The fault across the kill: opened by region 1's owner, carried on and resolved by
    // the survivor under the same id.
    let across = &targets[4];
    let (opened, carried) = (ids(across, &by_victim), ids(across, &by_survivor));
    assert_eq!(opened.len(), 1, "{across} was opened by region 1's owner before the kill: {all:?}\n{context}");
    assert_eq!(carried, opened, "{across}: the survivor carried the same incident on: {all:?}\n{context}");
    assert!(
        by_survivor.iter().any(|(el, _, state, _)| *el == across.to_string() && state == "resolved"),
        "{across}: resolved by the survivor: {by_survivor:?}\n{context}"
    );
    let took = log(survivor_name);
    let line = took.lines().find(|l| l.contains("took over region 1 from")).unwrap_or_default();
    eprintln!("{survivor_name}: {line}");
    assert!(line.contains("1 open incident(s)"), "{context}");
    drop(broker);
}
