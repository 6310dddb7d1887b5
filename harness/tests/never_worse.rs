//! Healing never makes things worse: liars on one or two links move no route, one-way
//! loss in either direction heals without a flap, and a silent agent beside a lossy
//! link is not taken for a crashed node while the link is rerouted. Each runs the
//! closed loop (the healing loop with real actuators on the simulated mesh) and is
//! judged from the ground truth.

#![allow(clippy::unwrap_used)]

use x0_harness::stress::{closed_loop, judge};
use x0_pipeline::Config;
use x0_schema::{Direction, Fault, FaultKind, RootCauseKind, Scenario, Topology};

/// A 36-node grid with 40 probe flows, and one fault from 10 s to 40 s of 50 s.
fn grid(name: &str, faults: Vec<Fault>) -> Scenario {
    let mut s = Scenario::from_toml_str(&format!(
        "name = \"{name}\"\nduration = \"50s\"\n[topology]\nshape = \"grid\"\nnodes = 36\nseed = 3\n[traffic]\npairs = 40\nrate_pps = 50\n"
    ))
    .unwrap();
    s.faults = faults;
    s
}

fn fault(kind: FaultKind, target: &str) -> Fault {
    Fault {
        at: std::time::Duration::from_secs(10),
        kind,
        target: target.into(),
        loss: None,
        delay: None,
        period: None,
        direction: Direction::Both,
        duration: Some(std::time::Duration::from_secs(30)),
    }
}

async fn judged(s: &Scenario) -> (judge::RunVerdict, closed_loop::ClosedRun) {
    let run = closed_loop::run(&Config::default(), s).await.unwrap();
    let topo = Topology::generate(&s.topology).unwrap();
    (judge::judge(s, "test", &topo, &run), run)
}

/// The busiest link of the grid (the one a fault hurts most), as `a-b`.
fn busy_link(s: &Scenario) -> String {
    let mut probe = s.clone();
    probe.faults = vec![fault(FaultKind::LinkLoss, "auto")];
    probe.faults[0].loss = Some(0.3);
    let topo = Topology::generate(&s.topology).unwrap();
    let e = topo.resolve_faults(&probe).unwrap().remove(0);
    let x0_schema::Element::Link { a, b } = e else { panic!("{e:?}") };
    format!("{a}-{b}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_liar_on_one_link_or_on_two_moves_no_route() {
    for target in ["n14-n15", "n14-n15,n14-n20"] {
        let mut liar = fault(FaultKind::ByzantineReporter, target);
        liar.loss = Some(0.6);
        let (v, run) = judged(&grid("liar", vec![liar])).await;
        assert_eq!(run.truth.route_changes.len(), 0, "liar {target}: {:?}", run.truth.route_changes.first());
        assert_eq!(v.harmful_commands, 0, "liar {target}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_way_loss_in_either_direction_heals_without_flapping() {
    let link = busy_link(&grid("probe", vec![]));
    for direction in [Direction::Forward, Direction::Reverse] {
        let mut loss = fault(FaultKind::LinkLoss, &link);
        (loss.loss, loss.direction) = (Some(0.3), direction);
        let (v, run) = judged(&grid("one-way", vec![loss])).await;
        let f = &v.faults[0];
        assert_eq!(f.incidents, 1, "{direction:?}: one incident, {:#?}", run.incidents);
        assert_eq!(v.flaps_during_faults, 0, "{direction:?}: no flap while the loss lasts");
        assert!(f.restored_after_ms.is_some_and(|ms| ms <= 3_000), "{direction:?}: restored in time: {f:?}");
        let incident = &run.incidents[0];
        assert!(
            incident.resolved_at.is_none_or(|r| r >= x0_harness::datasets::START_NS + 40_000_000_000),
            "{direction:?}: never cleared while the loss lasted: {}",
            incident.explanation
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_agent_beside_a_lossy_link_is_not_taken_for_a_crash_and_the_link_is_rerouted() {
    let link = busy_link(&grid("probe", vec![]));
    let ends: Vec<&str> = link.split('-').collect();
    for silent_end in [0, 1] {
        let mut loss = fault(FaultKind::LinkLoss, &link);
        loss.loss = Some(0.3);
        let silent = fault(FaultKind::AgentDown, ends[silent_end]);
        let (v, run) = judged(&grid("silent-beside-loss", vec![loss, silent])).await;
        let crashed: Vec<_> = run
            .incidents
            .iter()
            .filter(|i| i.root_cause.as_ref().is_some_and(|rc| rc.kind == RootCauseKind::NodeCrash))
            .collect();
        assert!(crashed.is_empty(), "declared crashed: {crashed:#?}");
        assert_eq!(v.harmful_commands, 0, "nothing moved around the silent node");
        // Only the speaking end can vouch for the loss itself; the silent node's other
        // neighbours, receiving less through it than they used to, are the second witness.
        let on_link: Vec<_> = run
            .incidents
            .iter()
            .filter(|i| i.root_cause.as_ref().is_some_and(|rc| rc.element.to_string() == format!("link {link}")))
            .collect();
        assert_eq!(on_link.len(), 1, "{:#?}", run.incidents);
        assert!(on_link[0].explanation.contains("seen downstream"), "{}", on_link[0].explanation);
        let f = &v.faults[0];
        assert_eq!(f.incidents, 1, "{f:?}");
        assert_eq!(v.flaps_during_faults, 0, "{:?}", v.flap_examples);
        assert!(
            f.restored_after_ms.is_some_and(|ms| ms <= 5_000),
            "silent {}: {f:?}\n{}",
            ends[silent_end],
            on_link[0].explanation
        );
    }
}
