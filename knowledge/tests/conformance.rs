//! One suite, every backend: the embedded shard always, a Qdrant server when
//! `X0_QDRANT_URL` is set (e.g. `http://localhost:6334`).

use x0_knowledge::{signature, EdgeKnowledge, KnowledgeBase, KnowledgeError, ServerKnowledge};
use x0_schema::{
    Action, ActionRecord, Element, Incident, IncidentState, Outcome, ResultStatus, RootCause, RootCauseKind, Symptom,
};

fn incident(id: &str, kind: RootCauseKind, element: Element, feature: &str, value: f64, repaired: bool) -> Incident {
    let action = ActionRecord {
        command_id: format!("{id}-c1"),
        target: "n1".into(),
        action: Action::RouteReplace { destination: "n9".into(), primary: "n2".into(), backup: None },
        issued_at: 10,
        status: Some(if repaired { ResultStatus::Applied } else { ResultStatus::RolledBack }),
        reason: None,
        acked_at: Some(11),
    };
    Incident {
        schema_version: x0_schema::SCHEMA_VERSION,
        incident_id: id.into(),
        opened_at: 0,
        detected_at: 1,
        diagnosed_at: Some(1),
        mitigated_at: repaired.then_some(12),
        resolved_at: Some(100),
        state: IncidentState::Resolved,
        symptoms: vec![Symptom {
            element: element.clone(),
            feature: feature.into(),
            value,
            score: 12.0,
            window_start: 0,
        }],
        root_cause: Some(RootCause {
            kind,
            element,
            confidence: 0.9,
            ambiguity: vec![],
            evidence: vec!["e".into()],
            reporters: vec![],
        }),
        actions: vec![action],
        outcome: if repaired { Outcome::Recovered } else { Outcome::Failed },
        mttd_ms: Some(1),
        mttr_ms: repaired.then_some(12),
        model_version: "test".into(),
        explanation: "why".into(),
        reopened_at: vec![],
    }
}

fn conformance(kb: &dyn KnowledgeBase) {
    let l12 = Element::link("n1", "n2");
    let l34 = Element::link("n3", "n4");
    let a = incident("inc-a", RootCauseKind::LinkLoss, l12.clone(), "loss_ratio", 0.3, true);
    let b = incident("inc-b", RootCauseKind::LinkLoss, l34.clone(), "loss_ratio", 0.28, false);
    let c = incident("inc-c", RootCauseKind::LinkDelay, l12.clone(), "rtt_avg_us", 50_000.0, true);
    for i in [&a, &b, &c] {
        kb.remember(i, &signature(i)).expect("remember");
    }
    // Storing again replaces: a replayed incident is not counted twice.
    kb.remember(&a, &signature(&a)).expect("remember again");
    kb.flush().expect("flush");

    let stats = kb.stats().expect("stats");
    assert_eq!(stats.incidents, 3, "{stats:?}");
    assert_eq!(stats.by_kind.get("link-loss"), Some(&2));
    assert_eq!(stats.by_outcome.get("failed"), Some(&1));
    assert_eq!(stats.repaired, 2);

    let (got, stored) = kb.get("inc-a").expect("get").expect("inc-a is stored");
    assert_eq!(got.incident, a, "the whole incident comes back");
    assert!(got.repaired());
    assert_eq!(stored.len(), signature(&a).len());
    assert!(kb.get("never-stored").expect("get").is_none());

    // Closest first: another loss incident before the delay incident.
    let near = kb.similar(&signature(&a), 3, None).expect("similar");
    assert_eq!(near.len(), 3);
    assert_eq!(near[0].past.incident.incident_id, "inc-a");
    assert!(near[0].score > 0.99, "{}", near[0].score);
    assert_eq!(near[1].past.incident.incident_id, "inc-b");
    assert!(near[1].score > near[2].score);

    // Only incidents on the asked element.
    let on = kb.similar(&signature(&b), 5, Some(&l12)).expect("similar on element");
    assert_eq!(on.len(), 2);
    assert!(on.iter().all(|s| s.past.incident.root_cause.as_ref().is_some_and(|rc| rc.element == l12)));
    assert_eq!(on[0].past.incident.incident_id, "inc-a");

    assert!(matches!(kb.remember(&a, &[1.0, 2.0]), Err(KnowledgeError::Dimension { got: 2, .. })));
    assert!(matches!(kb.similar(&[1.0], 1, None), Err(KnowledgeError::Dimension { .. })));
}

#[test]
fn embedded_backend_conforms_and_persists() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let kb = EdgeKnowledge::open(dir.path()).expect("open");
        conformance(&kb);
    }
    // Reopened from disk, everything is still there.
    let kb = EdgeKnowledge::open(dir.path()).expect("reopen");
    assert_eq!(kb.stats().expect("stats").incidents, 3);
    assert!(kb.get("inc-b").expect("get").is_some());
}

#[test]
fn server_backend_conforms() {
    let Ok(url) = std::env::var("X0_QDRANT_URL") else {
        println!("SKIPPED: X0_QDRANT_URL is not set (no Qdrant server to test against)");
        return;
    };
    let collection = format!("x0_conformance_{}", std::process::id());
    let kb = ServerKnowledge::connect(&url, &collection).expect("connect");
    conformance(&kb);
}
