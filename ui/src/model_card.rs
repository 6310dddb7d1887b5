//! The model view: the version in service, its report card (the evaluation written
//! when it was trained: held-out scores per fault kind against the baselines) and its
//! PR curve.

use serde_json::{json, Value};
use std::path::Path;

/// The report of the model shipped inside the binary (`model.registry = "builtin"`).
const BUILTIN_REPORT: &str = include_str!("../../models/default/report.json");
const BUILTIN_PR: &[u8] = include_bytes!("../../models/default/pr.png");

/// The graph model's own version in a served version (`<model>+<detector>`), if any.
fn graph_version(served: &str) -> Option<&str> {
    served.split_once('+').map(|(model, _)| model)
}

/// What the view shows for `served` (the job's model version) from `registry`.
pub(crate) fn card(registry: &str, served: &str) -> Value {
    let (source, report) = match (registry.trim(), graph_version(served)) {
        ("", _) | (_, None) => {
            return json!({
                "served": served,
                "source": "none",
                "note": "no graph model in service: the statistical detector (robust median/MAD per element) alone flags anomalies",
            })
        }
        ("builtin", Some(_)) => ("built into the binary (models/default)", serde_json::from_str(BUILTIN_REPORT).ok()),
        (dir, Some(version)) => {
            let file = Path::new(dir).join(version).join("report.json");
            let report = std::fs::read_to_string(&file).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok());
            ("registry", report)
        }
    };
    json!({
        "served": served,
        "source": source,
        "registry": registry,
        "report": report,
        "note": if report.is_none() { "this model's registry entry has no report.json" } else { "" },
    })
}

/// The PR curve image of the served model, if its registry entry has one.
pub(crate) fn pr_png(registry: &str, served: &str) -> Option<Vec<u8>> {
    let version = graph_version(served)?;
    match registry.trim() {
        "" => None,
        "builtin" => Some(BUILTIN_PR.to_vec()),
        dir => std::fs::read(Path::new(dir).join(version).join("pr.png")).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_card_is_the_shipped_report() {
        let v = card("builtin", "gsage-s7-7ce8ef1a+robust-mad-v1");
        assert_eq!(v["report"]["version"], "gsage-s7-7ce8ef1a");
        assert!(pr_png("builtin", "gsage-s7-7ce8ef1a+robust-mad-v1").is_some_and(|p| p.starts_with(b"\x89PNG")));
        assert_eq!(card("", "robust-mad-v1")["source"], "none");
        assert!(pr_png("", "robust-mad-v1").is_none());
    }
}
