//! A node that lies changes no route: whether it lies about all of its links, two of
//! them or one, its word alone never crosses the action bar (a claim one reporter makes
//! is not evidence enough). Run offline through the healing loop: no command sent means
//! no route changed.
#![allow(clippy::unwrap_used)]

mod common;

use x0_schema::Scenario;

fn liar_toml(target: &str) -> String {
    format!(
        r#"
name = "grid16-liar"
duration = "40s"
telemetry_interval = "100ms"
[topology]
shape = "grid"
nodes = 16
seed = 7
[traffic]
pairs = 24
rate_pps = 50
[[fault]]
at = "10s"
kind = "byzantine-reporter"
target = "{target}"
loss = 0.5
"#
    )
}

fn grid16_liar(target: &str) -> Scenario {
    Scenario::from_toml_str(&liar_toml(target)).unwrap()
}

async fn commands_for(target: &str) -> usize {
    let (healing, sent) = common::run_offline(&grid16_liar(target)).await;
    let n: usize = sent.iter().map(Vec::len).sum();
    if n > 0 {
        for i in healing.incidents() {
            eprintln!(
                "{}: {:?} — {}",
                i.incident_id,
                i.root_cause.map(|c| (c.kind, c.element, c.confidence)),
                i.explanation
            );
        }
    }
    n
}

#[tokio::test]
async fn a_liar_on_all_its_links_changes_no_route() {
    assert_eq!(commands_for("n5").await, 0);
}

#[tokio::test]
async fn a_liar_on_one_link_changes_no_route() {
    assert_eq!(commands_for("n5-n6").await, 0);
}

#[tokio::test]
async fn a_liar_on_two_links_changes_no_route() {
    assert_eq!(commands_for("n5-n6,n5-n9").await, 0);
}

#[test]
fn a_liar_must_name_links_it_has() {
    let s = grid16_liar("n5-n15");
    assert!(x0_schema::Topology::generate(&s.topology).unwrap().resolve_faults(&s).is_err(), "n5-n15 is no link");
    let err = Scenario::from_toml_str(&liar_toml("n5-n6,n6-n7")).unwrap_err();
    assert!(err.to_string().contains("one liar"), "{err}");
}
