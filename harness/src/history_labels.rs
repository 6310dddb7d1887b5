//! Training from the incident history: the stream job's recorded model inputs
//! (`<data-dir>/model_inputs`), labelled from its incidents and the operators'
//! verdicts on them (`x0tta6bl4 incident label`, the `labels` table).
//!
//! How a window's element is labelled, strongest first:
//! - **confirmed** incident: its cause (the operator's `--cause`, else the root cause
//!   the job named) is faulty while the incident lasted; its other symptoms are "do
//!   not care" (a fault's neighbours suffer too, as the simulator labels them);
//! - **false positive**: every element the incident flagged is healthy, counted;
//! - **unlabelled** incident: the elements it flagged are "do not care" (nobody knows);
//! - everything else in the recorded windows is healthy.
//!
//! An incident lasts from its first symptom's window to its resolution (to the end of
//! the record while it is open).

use anyhow::{bail, Context, Result};
use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampNanosecondType;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use x0_schema::{Element, Symptom};
use x0_sql::{labels_batch, local_root, write_partitioned, HistoryEngine, LabelRow};
use x0_training::{read_datasets, LabelledWindow};

/// An operator's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OperatorVerdict {
    /// The incident was real (its cause as named, or the one the operator gives).
    Confirmed,
    /// Nothing was wrong.
    FalsePositive,
}

impl OperatorVerdict {
    /// The verdict's name in the labels table.
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorVerdict::Confirmed => "confirmed",
            OperatorVerdict::FalsePositive => "false-positive",
        }
    }
}

/// An incident as training needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryIncident {
    /// Its id.
    pub incident_id: String,
    /// When it opened (ns since the epoch).
    pub start_ns: i64,
    /// When it ended; None: still open.
    pub end_ns: Option<i64>,
    /// Its root-cause kind.
    pub kind: Option<String>,
    /// What it blamed.
    pub root_cause: Option<Element>,
    /// Where it saw symptoms.
    pub symptoms: Vec<Element>,
    /// The latest label, if any: verdict and the cause the operator named.
    pub verdict: Option<(OperatorVerdict, Option<Element>)>,
}

/// Records an operator's verdict on an incident of the history at `data_dir`.
pub async fn label_incident(
    data_dir: &str,
    incident_id: &str,
    verdict: OperatorVerdict,
    cause: Option<&str>,
    note: Option<&str>,
) -> Result<LabelRow> {
    let cause = match cause {
        Some(c) => Some(
            Element::parse(c).with_context(|| format!("--cause {c:?}: expected `link A-B` or `node N`"))?.to_string(),
        ),
        None => None,
    };
    if cause.is_some() && verdict == OperatorVerdict::FalsePositive {
        bail!("--cause names the real cause of a confirmed incident; a false positive has none");
    }
    let engine = HistoryEngine::open(data_dir).await?;
    let found = engine
        .query(&format!(
            "SELECT count(*) AS n FROM incidents WHERE incident_id = '{}'",
            incident_id.replace('\'', "''")
        ))
        .await?;
    let n = found.first().map_or(0, |b| b.column(0).as_primitive::<arrow::datatypes::Int64Type>().value(0));
    if n == 0 {
        bail!("no incident {incident_id} in {data_dir} (list them: x0tta6bl4 sql --data-dir {data_dir} \"SELECT incident_id, root_cause_element FROM incidents\")");
    }
    let now = x0_schema::wall_clock_ns();
    let row = LabelRow {
        incident_id: incident_id.to_string(),
        verdict: verdict.as_str().to_string(),
        cause,
        note: note.map(str::to_string),
        labelled_at: now,
        labelled_by: std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| format!("uid {}", nix::unistd::getuid())),
    };
    let root = local_root(data_dir)?;
    let name = format!("label-{}", uuid::Uuid::new_v4().simple());
    write_partitioned(&root, "labels", now, &name, &labels_batch(std::slice::from_ref(&row)))?;
    Ok(row)
}

/// The incidents of the history with their latest label.
pub async fn read_incidents(data_dir: &str) -> Result<Vec<HistoryIncident>> {
    let engine = HistoryEngine::open(data_dir).await?;
    let batches = engine
        .query(
            "SELECT i.incident_id, i.opened_at, i.resolved_at, i.root_cause_kind, i.root_cause_element, i.symptoms, \
                    l.verdict, l.cause \
             FROM incidents i LEFT JOIN ( \
                SELECT incident_id, verdict, cause, \
                       row_number() OVER (PARTITION BY incident_id ORDER BY labelled_at DESC) AS latest \
                FROM labels) l ON i.incident_id = l.incident_id AND l.latest = 1 \
             ORDER BY i.opened_at",
        )
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let text = |i: usize| b.column(i).as_string::<i32>();
        let time = |i: usize| b.column(i).as_primitive::<TimestampNanosecondType>();
        let opt = |i: usize, r: usize| (!b.column(i).is_null(r)).then(|| text(i).value(r).to_string());
        for r in 0..b.num_rows() {
            let symptoms: Vec<Symptom> = serde_json::from_str(text(5).value(r))
                .with_context(|| format!("incident {}: symptoms", text(0).value(r)))?;
            let first = symptoms.iter().map(|s| s.window_start).min();
            let opened = time(1).value(r);
            let verdict = match opt(6, r).as_deref() {
                Some("confirmed") => Some((OperatorVerdict::Confirmed, opt(7, r).and_then(|c| Element::parse(&c)))),
                Some("false-positive") => Some((OperatorVerdict::FalsePositive, None)),
                _ => None,
            };
            out.push(HistoryIncident {
                incident_id: text(0).value(r).to_string(),
                start_ns: first.map_or(opened, |f| f.min(opened)),
                end_ns: (!time(2).is_null(r)).then(|| time(2).value(r)),
                kind: opt(3, r),
                root_cause: opt(4, r).and_then(|e| Element::parse(&e)),
                symptoms: symptoms.into_iter().map(|s| s.element).collect(),
                verdict,
            });
        }
    }
    Ok(out)
}

/// The dataset directories of `<data_dir>/model_inputs` from partitions of the last
/// `since` (complete ones only: a directory still being written ends in `.tmp`).
pub fn model_input_dirs(data_dir: &Path, since: Duration, now_ns: i64) -> Vec<PathBuf> {
    let oldest =
        chrono::DateTime::from_timestamp_nanos(now_ns - since.as_nanos() as i64).format("%Y-%m-%d").to_string();
    let mut dirs = Vec::new();
    let Ok(parts) = std::fs::read_dir(data_dir.join(x0_pipeline::MODEL_INPUTS)) else { return dirs };
    for part in parts.flatten() {
        let name = part.file_name().to_string_lossy().to_string();
        if name.strip_prefix("date=").is_none_or(|d| d < oldest.as_str()) {
            continue;
        }
        for set in std::fs::read_dir(part.path()).into_iter().flatten().flatten() {
            if set.path().is_dir() && !set.file_name().to_string_lossy().ends_with(".tmp") {
                dirs.push(set.path());
            }
        }
    }
    dirs.sort();
    dirs
}

#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Mark {
    DoNotCare,
    Healthy,
    Faulty,
}

/// Applies the incidents to the recorded windows (rules in the module docs).
pub fn label_windows(windows: &mut [LabelledWindow], incidents: &[HistoryIncident]) {
    for w in windows.iter_mut() {
        let mut marks: BTreeMap<String, (Mark, Option<String>)> = BTreeMap::new();
        let mut mark = |e: &Element, m: Mark, kind: Option<&String>| {
            let slot = marks.entry(e.to_string()).or_insert((m, kind.cloned()));
            if m > slot.0 {
                *slot = (m, kind.cloned());
            }
        };
        for i in incidents {
            if w.start_ns < i.start_ns || i.end_ns.is_some_and(|end| w.start_ns >= end) {
                continue;
            }
            let flagged = i.symptoms.iter().chain(&i.root_cause);
            match &i.verdict {
                None => flagged.for_each(|e| mark(e, Mark::DoNotCare, None)),
                Some((OperatorVerdict::FalsePositive, _)) => flagged.for_each(|e| mark(e, Mark::Healthy, None)),
                Some((OperatorVerdict::Confirmed, cause)) => {
                    let cause = cause.as_ref().or(i.root_cause.as_ref());
                    for e in flagged {
                        if Some(e) != cause {
                            mark(e, Mark::DoNotCare, None);
                        }
                    }
                    if let Some(c) = cause {
                        mark(c, Mark::Faulty, i.kind.as_ref());
                    }
                }
            }
        }
        let apply = |label: &mut x0_training::Label, m: Option<&(Mark, Option<String>)>| match m {
            Some((Mark::Faulty, kind)) => {
                label.faulty = true;
                label.weight = 1.0;
                label.kind = Some(kind.clone().unwrap_or_else(|| "confirmed".into()));
            }
            Some((Mark::DoNotCare, _)) => label.weight = 0.0,
            Some((Mark::Healthy, _)) | None => {}
        };
        for (v, name) in w.node_names.iter().enumerate() {
            apply(&mut w.nodes[v], marks.get(&Element::node(name).to_string()));
        }
        for k in 0..w.links.len() {
            let (a, b) = (w.graph.src[2 * k] as usize, w.graph.dst[2 * k] as usize);
            let e = Element::link(&w.node_names[a], &w.node_names[b]);
            apply(&mut w.links[k], marks.get(&e.to_string()));
        }
    }
}

/// What the history adds to a training run.
#[derive(Debug, Default)]
pub struct HistorySet {
    /// The recorded windows, labelled.
    pub windows: Vec<LabelledWindow>,
    /// Incidents read.
    pub incidents: usize,
    /// Of those, confirmed by an operator.
    pub confirmed: usize,
    /// Of those, marked false positives.
    pub false_positives: usize,
}

/// Reads and labels the last `since` of the history at `data_dir`.
pub async fn read_history(data_dir: &Path, since: Duration) -> Result<HistorySet> {
    let dirs = model_input_dirs(data_dir, since, x0_schema::wall_clock_ns());
    let refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let mut windows = read_datasets(&refs).await.context("reading the recorded model inputs")?;
    let incidents = read_incidents(&data_dir.to_string_lossy()).await?;
    label_windows(&mut windows, &incidents);
    let count =
        |v: OperatorVerdict| incidents.iter().filter(|i| i.verdict.as_ref().is_some_and(|(x, _)| *x == v)).count();
    Ok(HistorySet {
        incidents: incidents.len(),
        confirmed: count(OperatorVerdict::Confirmed),
        false_positives: count(OperatorVerdict::FalsePositive),
        windows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use x0_training::{GraphWindow, Label};

    fn window(start_ns: i64) -> LabelledWindow {
        let mut graph = GraphWindow { node_x: vec![[0.0; x0_training::NODE_FEATURES]; 3], ..Default::default() };
        let end = [0.0; x0_training::EDGE_FEATURES];
        graph.push_link(0, 1, end, end);
        graph.push_link(1, 2, end, end);
        let healthy = Label { weight: 1.0, ..Default::default() };
        LabelledWindow {
            run: "job".into(),
            window: start_ns,
            start_ns,
            node_names: vec!["n1".into(), "n2".into(), "n3".into()],
            graph,
            nodes: vec![healthy.clone(); 3],
            links: vec![healthy; 2],
        }
    }

    fn incident(verdict: Option<(OperatorVerdict, Option<Element>)>) -> HistoryIncident {
        HistoryIncident {
            incident_id: "i1".into(),
            start_ns: 10,
            end_ns: Some(30),
            kind: Some("link".into()),
            root_cause: Some(Element::link("n1", "n2")),
            symptoms: vec![Element::link("n1", "n2"), Element::node("n2")],
            verdict,
        }
    }

    fn labelled(verdict: Option<(OperatorVerdict, Option<Element>)>) -> Vec<LabelledWindow> {
        let mut w: Vec<_> = [0, 10, 20, 30].into_iter().map(window).collect();
        label_windows(&mut w, &[incident(verdict)]);
        w
    }

    #[test]
    fn confirmed_incidents_label_their_cause_faulty_only_while_they_last() {
        let w = labelled(Some((OperatorVerdict::Confirmed, None)));
        let faulty: Vec<bool> = w.iter().map(|w| w.links[0].faulty).collect();
        assert_eq!(faulty, [false, true, true, false]);
        assert_eq!(w[1].links[0].kind.as_deref(), Some("link"));
        // The other symptom is "do not care"; the untouched link stays healthy.
        assert_eq!((w[1].nodes[1].weight, w[1].links[1].weight, w[1].links[1].faulty), (0.0, 1.0, false));
    }

    #[test]
    fn an_operator_named_cause_replaces_the_jobs_root_cause() {
        let w = labelled(Some((OperatorVerdict::Confirmed, Some(Element::link("n2", "n3")))));
        assert!(w[1].links[1].faulty);
        assert!(!w[1].links[0].faulty);
        assert_eq!(w[1].links[0].weight, 0.0);
    }

    #[test]
    fn false_positives_are_counted_healthy_and_unlabelled_incidents_are_not_counted() {
        let w = labelled(Some((OperatorVerdict::FalsePositive, None)));
        assert!(w.iter().all(|w| w.links.iter().chain(&w.nodes).all(|l| !l.faulty && l.weight == 1.0)));
        let w = labelled(None);
        assert_eq!((w[1].links[0].weight, w[1].nodes[1].weight, w[0].links[0].weight), (0.0, 0.0, 1.0));
        assert!(w.iter().all(|w| w.links.iter().all(|l| !l.faulty)));
    }
}
