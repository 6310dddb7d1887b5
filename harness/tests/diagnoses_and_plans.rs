//! What the healing loop concludes on each bundled scenario, held as snapshots
//! (`harness/tests/snapshots/`): every incident's root cause with its evidence and
//! explanation, and the plan it sent (the commands, in order). A change to localisation,
//! calibration or planning shows up here as a reviewable diff; accept an intended one
//! with `INSTA_UPDATE=always cargo test -p x0-harness --test diagnoses_and_plans`.
//!
//! The scenarios run offline through `HealingLoop` (no Kafka, no actuators: the plan is
//! what the decisions sent, before any result could change it), with simulated event
//! time, so every run is the same.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::Path;
use x0_harness::datasets::START_NS;
use x0_schema::{Action, HealingCommand, Scenario};

mod common;

/// One line per action (each route of a batch), without the command's random id and
/// signature.
fn command_lines(c: &HealingCommand) -> Vec<String> {
    let line = |a: &Action| match a {
        Action::RouteReplace { destination, primary, backup } => {
            format!("route {destination} via {primary}, backup {}", backup.as_deref().unwrap_or("none"))
        }
        Action::RouteWithdraw { destination } => format!("withdraw {destination}"),
        other => format!("{other:?}"),
    };
    c.action.parts().iter().map(|a| format!("{}: {}", c.target, line(a))).collect()
}

/// The actions each incident sent and in how many commands, in the order of the
/// decisions that sent them.
type Plans = Vec<(String, Vec<String>, usize)>;

async fn conclusions(scenario: &Scenario) -> String {
    let (healing, sent) = common::run_offline(scenario).await;
    let mut plans = Plans::new();
    for window in sent {
        let mut lines: Vec<(String, String)> =
            window.iter().flat_map(|c| command_lines(c).into_iter().map(|l| (c.incident_id.clone(), l))).collect();
        // Commands of one decision go out together: their order among themselves is not
        // part of the plan.
        lines.sort();
        for (incident, line) in lines {
            match plans.iter_mut().find(|(i, _, _)| *i == incident) {
                Some((_, lines, _)) => lines.push(line),
                None => plans.push((incident, vec![line], 0)),
            }
        }
        for c in &window {
            if let Some((_, _, commands)) = plans.iter_mut().find(|(i, _, _)| *i == c.incident_id) {
                *commands += 1;
            }
        }
    }
    let at = |ns: i64| format!("{:.1}s", (ns - START_NS) as f64 / 1e9);
    let mut out = String::new();
    for i in healing.incidents() {
        let (opened, detected) = (at(i.opened_at), at(i.detected_at));
        writeln!(out, "incident {} opened {opened} detected {detected} state {:?}", i.incident_id, i.state).unwrap();
        if let Some(rc) = &i.root_cause {
            writeln!(out, "  cause {} {} confidence {:.2}", rc.kind.as_str(), rc.element, rc.confidence).unwrap();
            if !rc.ambiguity.is_empty() {
                let alternatives: Vec<String> = rc.ambiguity.iter().map(|e| e.to_string()).collect();
                writeln!(out, "  alternatives {}", alternatives.join(", ")).unwrap();
            }
            for e in &rc.evidence {
                writeln!(out, "  evidence: {e}").unwrap();
            }
        }
        for line in i.explanation.lines() {
            writeln!(out, "  explanation: {line}").unwrap();
        }
        if let Some((_, lines, commands)) = plans.iter().find(|(id, _, _)| *id == i.incident_id) {
            writeln!(out, "  plan ({} actions in {commands} commands):", lines.len()).unwrap();
            for l in lines {
                writeln!(out, "    {l}").unwrap();
            }
        }
    }
    if out.is_empty() {
        out.push_str("no incident\n");
    }
    out
}

fn bundled(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/scenarios").join(format!("{name}.toml"));
    Scenario::from_file(&path).unwrap()
}

macro_rules! snapshot_tests {
    ($($test:ident => $scenario:literal),* $(,)?) => {$(
        #[tokio::test]
        async fn $test() {
            insta::assert_snapshot!(conclusions(&bundled($scenario)).await);
        }
    )*};
}

snapshot_tests! {
    grid16_link_down => "grid16-link-down",
    grid16_gray_loss => "grid16-gray-loss",
    grid16_link_flap => "grid16-link-flap",
    grid16_node_overload => "grid16-node-overload",
    grid16_byzantine => "grid16-byzantine",
    ring_of_rings_node_crash => "ring-of-rings-node-crash",
    rgg50_two_faults => "rgg50-two-faults",
}
