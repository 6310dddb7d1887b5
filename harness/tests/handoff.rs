//! A region changing hands in the middle of an incident: two healing loops split a
//! 2-region grid as two job instances would (each fed its region's telemetry and
//! halo), with real actuators on the simulated mesh. The owner of region 1 repairs a
//! link down in its region and is then lost; the survivor is given region 1 and takes
//! its open work over from the last handoff the lost one published. Judged from the
//! mesh: the incident is carried on under its id (not opened again), its routes are
//! withdrawn when the link comes back, and traffic was restored while it lasted. The
//! same run without the takeover is the control: it leaves the routes behind.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use x0_actuator::Actuator;
use x0_harness::datasets::START_NS;
use x0_lab::{SimMesh, SimOptions, SimRouteTarget};
use x0_pipeline::{Config, FeatureEngine, HealingLoop, JobStats, Publication, RegionHandoff};
use x0_schema::{Element, HealingCommand, Incident, IncidentState, Scenario, Topology};

/// When the owner of region 1 is lost (scenario time, s): mid-fault, its repair applied.
const LOST_AT: u64 = 16;

const HEAD: &str = "name = \"handoff\"\nduration = \"45s\"\n[topology]\nshape = \"grid\"\nnodes = 36\nseed = 7\nregions = 2\n[traffic]\npairs = 80\nrate_pps = 50\n";

/// The grid, and a link down from 10 s to 30 s on the busiest link inside region 1.
fn scenario() -> (Scenario, Element) {
    let s = Scenario::from_toml_str(HEAD).unwrap();
    let topo = Topology::generate(&s.topology).unwrap();
    let regions = topo.regions();
    // The busiest link inside region 1.
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
    let Element::Link { a: an, b: bn } = &element else { unreachable!() };
    let fault = format!("[[fault]]\nat = \"10s\"\nkind = \"link-down\"\ntarget = \"{an}-{bn}\"\nduration = \"20s\"\n");
    (Scenario::from_toml_str(&format!("{HEAD}{fault}")).unwrap(), element)
}

/// Sorts a loop's publications: its commands into `next`, `b`'s handoffs of region 1
/// into `handoff` (the latest is what a successor reads).
fn split(
    from: char,
    out: Vec<Publication>,
    next: &mut Vec<(char, HealingCommand)>,
    handoff: &mut Option<RegionHandoff>,
) {
    for p in out {
        match p {
            Publication::Command(c) => next.push((from, c)),
            Publication::Handoff(h) if from == 'b' && h.region == 1 => *handoff = Some(*h),
            _ => {}
        }
    }
}

struct Run {
    survivor: Vec<Incident>,
    lost: Vec<Incident>,
    overrides_left: usize,
    restored_ms: Option<i64>,
    taken: Option<x0_pipeline::Takeover>,
    handoff_incidents: usize,
}

/// Runs the scenario with region 0 on `a` and region 1 on `b` until `LOST_AT`, then
/// region 1 on `a` too, taken over from `b`'s last handoff when `take_over`.
async fn run(take_over: bool) -> Run {
    let (scenario, element) = scenario();
    let mut config = Config::default();
    config.window.max_event_age = std::time::Duration::from_secs(100 * 365 * 86_400);
    let mesh = SimMesh::new(&scenario, SimOptions { start_ns: START_NS, ..Default::default() }).unwrap();
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
    let mut actuators: HashMap<String, Actuator<SimRouteTarget>> = topo
        .names()
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), Actuator::new(n.clone(), key, SimRouteTarget::new(mesh.clone(), i))))
        .collect();
    // Commands in flight, with the loop that sent them (results go back to it).
    let mut in_flight: Vec<(char, HealingCommand)> = Vec::new();
    let mut last_handoff: Option<RegionHandoff> = None;
    let (mut lost, mut taken) = (None, None);
    let regions = topo.regions();
    loop {
        let (now, batches, elapsed) = {
            let mut m = mesh.lock().unwrap();
            if m.finished() {
                break;
            }
            let now = m.now_ns();
            (now, m.step(), std::time::Duration::from_nanos((now - START_NS) as u64))
        };
        if b.is_some() && elapsed >= std::time::Duration::from_secs(LOST_AT) {
            lost = b.take().map(|b| b.incidents());
            assert!(a.assign(vec![0, 1]).is_some());
            if take_over {
                taken = a.take_over(last_handoff.clone().expect("b published region 1's handoff"));
            }
        }
        let mut next = Vec::new();
        for (from, cmd) in in_flight.drain(..) {
            let result = actuators.get_mut(&cmd.target).unwrap().handle(&cmd.to_json(), now);
            match (from, &mut b) {
                ('a', _) => split('a', a.on_result(&result), &mut next, &mut last_handoff),
                (_, Some(b)) => split('b', b.on_result(&result), &mut next, &mut last_handoff),
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
        let out = a.close_ready().await.unwrap();
        split('a', out, &mut next, &mut last_handoff);
        if let Some(b) = &mut b {
            let out = b.close_ready().await.unwrap();
            split('b', out, &mut next, &mut last_handoff);
        }
        in_flight = next;
    }
    let m = mesh.lock().unwrap();
    let restored_ms = m.truth().restored_at_ms(&element, 10_000, 30_000, 2_000);
    Run {
        survivor: a.incidents(),
        lost: lost.unwrap(),
        overrides_left: m.overrides_in_force(),
        restored_ms,
        taken,
        handoff_incidents: last_handoff.map_or(0, |h| h.incidents()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_survivor_carries_a_lost_instances_open_incident_on_and_withdraws_its_routes() {
    let (_, element) = scenario();
    let on = |list: &[Incident]| -> Vec<Incident> {
        list.iter().filter(|i| i.root_cause.as_ref().is_some_and(|rc| rc.element == element)).cloned().collect()
    };
    let r = run(true).await;
    let (by_lost, by_survivor) = (on(&r.lost), on(&r.survivor));
    assert_eq!(by_lost.len(), 1, "the owner of region 1 opened the incident: {:?}", r.lost);
    let id = &by_lost[0].incident_id;
    assert!(
        !by_lost[0].actions.is_empty() && by_lost[0].state != IncidentState::Diagnosed,
        "and repaired: {:?}",
        by_lost[0]
    );
    assert_eq!(r.handoff_incidents, 1, "its last handoff carried it");
    let taken = r.taken.unwrap();
    assert_eq!(taken.incidents, vec![id.clone()], "{taken:?}");
    assert!(taken.routes > 0, "with its routes: {taken:?}");
    assert_eq!(by_survivor.len(), 1, "carried on, not opened again: {:?}", r.survivor);
    assert_eq!(&by_survivor[0].incident_id, id);
    assert!(by_survivor[0].state.is_final(), "resolved by the survivor: {:?}", by_survivor[0]);
    assert!(by_survivor[0].explanation.contains("carried on by a"), "{}", by_survivor[0].explanation);
    assert_eq!(r.overrides_left, 0, "its routes withdrawn when the link came back");
    assert!(r.restored_ms.is_some(), "traffic restored while the fault lasted");
    assert_eq!(r.survivor.len(), 1, "nothing else opened: {:?}", r.survivor);

    // The control: the same loss of an instance without the takeover leaves the lost
    // instance's routes in place after the fault, or opens its fault again.
    let control = run(false).await;
    let again = on(&control.survivor);
    assert!(
        control.overrides_left > 0 || !again.is_empty(),
        "without the handoff the test must see the difference: {} overrides, {:?}",
        control.overrides_left,
        again
    );
    eprintln!(
        "takeover: incident {id} carried on and resolved, {} routes, 0 overrides left; without it: {} overrides left, {} incident(s) opened again",
        taken.routes,
        control.overrides_left,
        again.len()
    );
}
