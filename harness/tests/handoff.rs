//! Two healing loops splitting a 2-region grid as two job instances would (each fed
//! its region's telemetry and halo, handoffs passed between them as the handoff topic
//! carries them), with real actuators on the simulated mesh. Judged from the mesh.
//!
//! - A region changing hands mid-incident: the owner of region 1 repairs a link down
//!   in its region and is then lost; the survivor is given region 1 and takes its open
//!   work over from the last handoff. The incident is carried on under its id (not
//!   opened again) and its routes are withdrawn when the link comes back. The same run
//!   without the takeover is the control: it opens the fault again.
//! - Concurrent faults in the two regions, on opposite sides of one grid square, so
//!   each repair's natural detour crosses the other fault: with each instance watching
//!   the other's handoffs, both are restored; the control without is judged the same
//!   way and reported.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use x0_harness::datasets::START_NS;
use x0_lab::{GroundTruth, SimMesh, SimOptions};
use x0_pipeline::{Config, FeatureEngine, HealingLoop, JobStats, Publication, RegionHandoff, Takeover};
use x0_schema::{Element, HealingCommand, Incident, IncidentState, Scenario, Topology};

const HEAD: &str = "name = \"handoff\"\nduration = \"45s\"\n[topology]\nshape = \"grid\"\nnodes = 36\nseed = 7\nregions = 2\n[traffic]\npairs = 80\nrate_pps = 50\n";

fn link_down(e: &Element, at: u64, secs: u64) -> String {
    let Element::Link { a, b } = e else { unreachable!() };
    format!("[[fault]]\nat = \"{at}s\"\nkind = \"link-down\"\ntarget = \"{a}-{b}\"\nduration = \"{secs}s\"\n")
}

/// The busiest link inside region 1, down from 10 s to 30 s.
fn one_fault() -> (Scenario, Element) {
    let topo = Topology::generate(&Scenario::from_toml_str(HEAD).unwrap().topology).unwrap();
    let s = Scenario::from_toml_str(HEAD).unwrap();
    let regions = topo.regions();
    let mut load: HashMap<(usize, usize), usize> = HashMap::new();
    for (a, b) in topo.flows(&s) {
        for w in topo.baseline_path(a, b).unwrap().windows(2) {
            *load.entry((w[0].min(w[1]), w[0].max(w[1]))).or_default() += 1;
        }
    }
    let &(a, b) = topo
        .links()
        .iter()
        .filter(|&&(a, b)| regions.of(a) == 1 && regions.of(b) == 1)
        .max_by_key(|l| (load.get(l).copied().unwrap_or(0), std::cmp::Reverse(**l)))
        .unwrap();
    let element = topo.link_element(a, b);
    (Scenario::from_toml_str(&format!("{HEAD}{}", link_down(&element, 10, 20))).unwrap(), element)
}

/// Two opposite sides of a grid square, one owned by each region (region 1's inside
/// it, region 0's on the border: this grid's border runs diagonally): region 1's down
/// from 10 s, region 0's from 12 s, both until 30 s.
fn square_faults() -> (Scenario, [Element; 2]) {
    let topo = Topology::generate(&Scenario::from_toml_str(HEAD).unwrap().topology).unwrap();
    let regions = topo.regions();
    let linked = |x: usize, y: usize| topo.neighbours(x).contains(&y);
    let owner = |(a, b): (usize, usize)| regions.owner(&topo, &topo.link_element(a, b));
    let (f0, f1) = topo
        .links()
        .iter()
        .filter(|&&(a, b)| regions.of(a) == 1 && regions.of(b) == 1)
        .find_map(|&(a, b)| {
            let across = topo.neighbours(a).iter().find_map(|&c| {
                topo.neighbours(b)
                    .iter()
                    .copied()
                    .find(|&d| c != b && d != a && linked(c, d) && owner((c, d)) == Some(0))
                    .map(|d| (c, d))
            })?;
            Some((topo.link_element(across.0, across.1), topo.link_element(a, b)))
        })
        .expect("a grid square across the border");
    let text = format!("{HEAD}{}{}", link_down(&f1, 10, 20), link_down(&f0, 12, 18));
    (Scenario::from_toml_str(&text).unwrap(), [f0, f1])
}

/// How the two instances run.
#[derive(Clone, Copy)]
struct Options {
    /// When `b` (region 1) is lost, s; `a` is then given region 1.
    lost_at: Option<u64>,
    /// `a` takes region 1 over from `b`'s last handoff when given it.
    take_over: bool,
    /// Each watches the other's handoffs.
    watch: bool,
}

struct Run {
    a: Vec<Incident>,
    b: Vec<Incident>,
    overrides_left: usize,
    truth: GroundTruth,
    taken: Option<Takeover>,
    last_handoff_incidents: usize,
}

/// Sorts a loop's publications: commands into `next`, handoffs into `handoffs`.
fn split(
    from: char,
    out: Vec<Publication>,
    next: &mut Vec<(char, HealingCommand)>,
    handoffs: &mut Vec<(char, RegionHandoff)>,
) {
    for p in out {
        match p {
            Publication::Command(c) => next.push((from, c)),
            Publication::Handoff(h) => handoffs.push((from, *h)),
            Publication::Incident(_) => {}
        }
    }
}

async fn run(scenario: &Scenario, o: Options) -> Run {
    let mut config = Config::default();
    config.window.max_event_age = std::time::Duration::from_secs(100 * 365 * 86_400);
    let mesh = SimMesh::new(scenario, SimOptions { start_ns: START_NS, ..Default::default() }).unwrap();
    let topo = mesh.topology().clone();
    let mesh = Arc::new(Mutex::new(mesh));
    let signer = x0_schema::generate_signing_key();
    let key = signer.verifying_key();
    let instance = |id: &'static str, partition: i32| {
        let (config, topo, signer) = (config.clone(), topo.clone(), signer.clone());
        async move {
            let features = FeatureEngine::new(&config.feature_sql().unwrap()).await.unwrap();
            let mut h = HealingLoop::new(config, topo, features, signer, Arc::new(JobStats::default()), id);
            h.discard_features();
            h.split_by_regions(2);
            assert!(h.assign(vec![partition]).is_some());
            h
        }
    };
    let mut a = instance("a", 0).await;
    let mut b = Some(instance("b", 1).await);
    let mut actuators = x0_harness::stress::closed_loop::actuators(&topo, key, &mesh);
    // Commands and handoffs in flight, with the loop that sent them.
    let mut in_flight: Vec<(char, HealingCommand)> = Vec::new();
    let mut handoffs: Vec<(char, RegionHandoff)> = Vec::new();
    let mut last_of_b: Option<RegionHandoff> = None;
    let (mut b_incidents, mut taken) = (None, None);
    let regions = topo.regions();
    loop {
        let (now, batches) = {
            let mut m = mesh.lock().unwrap();
            if m.finished() {
                break;
            }
            (m.now_ns(), m.step())
        };
        let elapsed = std::time::Duration::from_nanos((now - START_NS) as u64);
        if b.is_some() && o.lost_at.is_some_and(|t| elapsed >= std::time::Duration::from_secs(t)) {
            b_incidents = b.take().map(|b| b.incidents());
            assert!(a.assign(vec![0, 1]).is_some());
            if o.take_over {
                taken = a.take_over(last_of_b.clone().expect("b published region 1's handoff"));
            }
        }
        // Handoffs published last step reach the other instance now.
        for (from, h) in handoffs.drain(..) {
            match (from, &mut b) {
                ('b', _) if h.region == 1 => {
                    last_of_b = Some(h.clone());
                    if o.watch {
                        a.observe_foreign(h);
                    }
                }
                ('a', Some(b)) if o.watch => b.observe_foreign(h),
                _ => {}
            }
        }
        let mut next = Vec::new();
        let mut published = Vec::new();
        for (from, cmd) in in_flight.drain(..) {
            let result = actuators.get_mut(&cmd.target).unwrap().handle(&cmd.to_json(), now);
            match (from, &mut b) {
                ('a', _) => split('a', a.on_result(&result), &mut next, &mut published),
                (_, Some(b)) => split('b', b.on_result(&result), &mut next, &mut published),
                _ => {} // its sender is gone: the result is lost with it
            }
        }
        for (node, batch) in batches {
            let v = topo.id(&node).unwrap();
            for p in regions.partitions_of(v, 2) {
                let target = match &mut b {
                    Some(b) if p == 1 => b,
                    _ => &mut a,
                };
                if target.takes_copy(Some(node.as_bytes()), p) {
                    target.admit(p, batch.clone(), now).unwrap();
                }
            }
        }
        split('a', a.close_ready().await.unwrap(), &mut next, &mut published);
        split('a', a.take_handoffs(), &mut next, &mut published);
        if let Some(b) = &mut b {
            split('b', b.close_ready().await.unwrap(), &mut next, &mut published);
            split('b', b.take_handoffs(), &mut next, &mut published);
        }
        in_flight = next;
        handoffs = published;
    }
    let m = mesh.lock().unwrap();
    Run {
        a: a.incidents(),
        b: b_incidents.or_else(|| b.map(|b| b.incidents())).unwrap(),
        overrides_left: m.overrides_in_force(),
        truth: m.truth().clone(),
        taken,
        last_handoff_incidents: last_of_b.map_or(0, |h| h.incidents()),
    }
}

fn on(list: &[Incident], element: &Element) -> Vec<Incident> {
    list.iter().filter(|i| i.root_cause.as_ref().is_some_and(|rc| &rc.element == element)).cloned().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_survivor_carries_a_lost_instances_open_incident_on_and_withdraws_its_routes() {
    let (scenario, element) = one_fault();
    // Lost at 16 s: mid-fault, its repair applied.
    let r = run(&scenario, Options { lost_at: Some(16), take_over: true, watch: true }).await;
    let (by_lost, by_survivor) = (on(&r.b, &element), on(&r.a, &element));
    assert_eq!(by_lost.len(), 1, "the owner of region 1 opened the incident: {:?}", r.b);
    let id = &by_lost[0].incident_id;
    assert!(
        !by_lost[0].actions.is_empty() && by_lost[0].state != IncidentState::Diagnosed,
        "and repaired: {:?}",
        by_lost[0]
    );
    assert_eq!(r.last_handoff_incidents, 1, "its last handoff carried it");
    let taken = r.taken.unwrap();
    assert_eq!(taken.incidents, vec![id.clone()], "{taken:?}");
    assert!(taken.routes > 0, "with its routes: {taken:?}");
    assert_eq!(by_survivor.len(), 1, "carried on, not opened again: {:?}", r.a);
    assert_eq!(&by_survivor[0].incident_id, id);
    assert!(by_survivor[0].state.is_final(), "resolved by the survivor: {:?}", by_survivor[0]);
    assert!(by_survivor[0].explanation.contains("carried on by a"), "{}", by_survivor[0].explanation);
    assert_eq!(r.overrides_left, 0, "its routes withdrawn when the link came back");
    assert!(r.truth.restored_at_ms(&element, 10_000, 30_000, 2_000).is_some(), "traffic restored while it lasted");
    assert_eq!(r.a.len(), 1, "nothing else opened: {:?}", r.a);

    // The control: the same loss without the takeover opens the fault again.
    let control = run(&scenario, Options { lost_at: Some(16), take_over: false, watch: true }).await;
    let again = on(&control.a, &element);
    assert!(
        control.overrides_left > 0 || !again.is_empty(),
        "without the handoff the test must see the difference: {} overrides, {again:?}",
        control.overrides_left,
    );
    eprintln!(
        "takeover: incident {id} carried on and resolved, {} routes, 0 overrides left; without it: {} overrides left, {} incident(s) opened again",
        taken.routes,
        control.overrides_left,
        again.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_faults_in_two_regions_are_repaired_around_each_other() {
    let (scenario, [f0, f1]) = square_faults();
    let judge = |r: &Run| {
        let restored: Vec<Option<i64>> =
            [&f0, &f1].iter().map(|e| r.truth.restored_at_ms(e, 10_000, 30_000, 2_000)).collect();
        (restored, r.truth.route_flaps(5_000), r.overrides_left)
    };
    let watched = run(&scenario, Options { lost_at: None, take_over: false, watch: true }).await;
    let blind = run(&scenario, Options { lost_at: None, take_over: false, watch: false }).await;
    let (w, b) = (judge(&watched), judge(&blind));
    eprintln!("faults {f0} (region 0) and {f1} (region 1); restored at ms, flaps, overrides left: watching each other {w:?}; blind {b:?}");
    assert_eq!(on(&watched.a, &f0).len(), 1, "{f0} is region 0's: {:?}", watched.a);
    assert_eq!(on(&watched.b, &f1).len(), 1, "{f1} is region 1's: {:?}", watched.b);
    assert_eq!(watched.a.len() + watched.b.len(), 2, "nothing else opened: {:?} {:?}", watched.a, watched.b);
    assert!(w.0.iter().all(Option::is_some), "both restored while they lasted: {w:?}");
    assert_eq!(w.1, 0, "no route flaps");
    assert_eq!(w.2, 0, "no overrides left");
    // The control: blind to each other, each repair's detour crosses the other fault.
    assert!(b.0.iter().any(Option::is_none), "without the view the test must see the difference: {b:?}");
}
