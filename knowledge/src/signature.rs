//! An incident's signature: the shape of its symptoms as a fixed-length vector, so that
//! "this looks like that one" is a cosine similarity a vector engine can answer.
//!
//! Dimensions: the root-cause kind (one-hot), then per detector feature the largest
//! value (scaled to about 0..1) and the largest robust score (squashed), then how many
//! elements showed symptoms. Where the incident happened is not in the vector: a
//! planner asks for similar incidents *on the same element* with a payload filter.
//!
//! Only the onset counts: the symptoms of the incident's first anomalous window. That is
//! all a new candidate has when the stream job asks "have we seen this before?", so
//! past incidents are stored the same way; a fault that worsens later still matches
//! the way it began.

use x0_schema::{Incident, RootCauseKind};

/// The detector features a signature summarises, in vector order. Counter loss and
/// probe loss share a slot: both are packet loss, and which one a window happens to
/// see first must not make the same fault look different.
const FEATURES: [&[&str]; 5] =
    [&["down_fraction"], &["loss_ratio", "probe_loss"], &["rtt_avg_us"], &["cpu"], &["samples"]];
const KINDS: [RootCauseKind; 6] = [
    RootCauseKind::LinkDown,
    RootCauseKind::LinkLoss,
    RootCauseKind::LinkDelay,
    RootCauseKind::NodeCrash,
    RootCauseKind::NodeOverload,
    RootCauseKind::SuspectReporter,
];

/// Length of every signature.
pub const SIGNATURE_DIM: usize = KINDS.len() + 2 * FEATURES.len() + 1;

/// A feature value scaled to about 0..1: ratios as they are, round-trip time on a log
/// scale (1 ms → 0.1, 1 s → 1.0), sample counts as present or not.
fn scaled(feature: &str, value: f64) -> f32 {
    let v = match feature {
        "rtt_avg_us" => ((1.0 + value.max(0.0) / 1000.0).ln() / 1001f64.ln()).min(1.0),
        "samples" => 1.0,
        _ => value.clamp(0.0, 1.0),
    };
    v as f32
}

/// The signature of an incident (see the module documentation for its dimensions).
pub fn signature(incident: &Incident) -> Vec<f32> {
    let mut v = vec![0f32; SIGNATURE_DIM];
    if let Some(rc) = &incident.root_cause {
        if let Some(k) = KINDS.iter().position(|&k| k == rc.kind) {
            v[k] = 1.0;
        }
    }
    let mut elements = std::collections::BTreeSet::new();
    let onset = incident.symptoms.iter().map(|s| s.window_start).min();
    for s in incident.symptoms.iter().filter(|s| Some(s.window_start) == onset) {
        elements.insert(&s.element);
        let Some(f) = FEATURES.iter().position(|names| names.contains(&s.feature.as_str())) else { continue };
        let (value, score) = (KINDS.len() + 2 * f, KINDS.len() + 2 * f + 1);
        v[value] = v[value].max(scaled(&s.feature, s.value));
        v[score] = v[score].max((s.score.abs() / 20.0).tanh() as f32);
    }
    v[SIGNATURE_DIM - 1] = ((elements.len() as f32).ln_1p() / 16f32.ln_1p()).min(1.0);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use x0_schema::{Element, IncidentState, Outcome, RootCause, Symptom};

    fn incident(kind: RootCauseKind, symptoms: &[(&str, f64, f64)]) -> Incident {
        Incident {
            schema_version: 1,
            incident_id: "i".into(),
            opened_at: 0,
            detected_at: 0,
            diagnosed_at: None,
            mitigated_at: None,
            resolved_at: None,
            state: IncidentState::Opened,
            symptoms: symptoms
                .iter()
                .map(|&(feature, value, score)| Symptom {
                    element: Element::link("n1", "n2"),
                    feature: feature.into(),
                    value,
                    score,
                    window_start: 0,
                })
                .collect(),
            root_cause: Some(RootCause {
                kind,
                element: Element::link("n1", "n2"),
                confidence: 0.9,
                ambiguity: vec![],
                evidence: vec![],
                reporters: vec![],
            }),
            actions: vec![],
            outcome: Outcome::Open,
            mttd_ms: None,
            mttr_ms: None,
            model_version: String::new(),
            explanation: String::new(),
            reopened_at: vec![],
        }
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (norm(a) * norm(b))
    }

    #[test]
    fn the_onset_decides_and_either_kind_of_loss_evidence_matches() {
        let mut first = incident(RootCauseKind::LinkLoss, &[("loss_ratio", 0.2, 40.0), ("probe_loss", 0.6, 12.0)]);
        // Later, worse windows do not change the signature.
        let later = Symptom {
            element: Element::link("n1", "n2"),
            feature: "rtt_avg_us".into(),
            value: 90_000.0,
            score: 30.0,
            window_start: 1,
        };
        let onset = signature(&first);
        first.symptoms.push(later);
        assert_eq!(signature(&first), onset);
        let again = signature(&incident(RootCauseKind::LinkLoss, &[("loss_ratio", 0.16, 32.0)]));
        assert!(cosine(&onset, &again) > 0.95, "{}", cosine(&onset, &again));
    }

    #[test]
    fn like_incidents_are_closer_than_unlike_ones() {
        let loss30 =
            signature(&incident(RootCauseKind::LinkLoss, &[("loss_ratio", 0.3, 12.0), ("probe_loss", 0.3, 9.0)]));
        let loss25 =
            signature(&incident(RootCauseKind::LinkLoss, &[("loss_ratio", 0.25, 10.0), ("probe_loss", 0.2, 8.0)]));
        let delay = signature(&incident(RootCauseKind::LinkDelay, &[("rtt_avg_us", 40_000.0, 15.0)]));
        assert_eq!(loss30.len(), SIGNATURE_DIM);
        assert!(cosine(&loss30, &loss25) > 0.95, "{}", cosine(&loss30, &loss25));
        assert!(cosine(&loss30, &delay) < 0.5, "{}", cosine(&loss30, &delay));
        assert!(loss30.iter().all(|x| (0.0..=1.0).contains(x)));
    }
}
