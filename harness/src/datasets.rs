//! `simulate --scenarios DIR --out DIR`: labelled windows for training and evaluation.
//!
//! Each scenario runs in the simulated mesh, without healing (the fault stays for its
//! whole duration, as a detector must see it), once per seed; its telemetry goes
//! through the stream job's own windows, feature SQL, graph conversion and
//! statistical detector ([`x0_pipeline::OfflineFeaturizer`]), and each window is
//! labelled from the scenario's faults.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;
use x0_lab::{SimMesh, SimOptions};
use x0_pipeline::{Config, FeaturizedWindow, OfflineFeaturizer};
use x0_schema::{Element, Scenario, Topology};
use x0_training::{DatasetWriter, Label, LabelledWindow};

/// Fixed event-time origin of simulated runs (datasets are reproducible to the byte).
pub const START_NS: i64 = 1_700_000_000_000_000_000;
/// Windows at the start of a run that are not labelled (nodes still coming up).
const WARMUP_WINDOWS: i64 = 2;

/// The scenario files of a directory, in name order.
pub fn scenario_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no *.toml scenarios in {}", dir.display());
    Ok(files)
}

/// The runs of a scenario with `seeds` seeds: each with another topology seed (the
/// scenario's own first), named `name#seed`.
pub fn seeded_runs(base: &Scenario, seeds: u64) -> impl Iterator<Item = (Scenario, String)> + '_ {
    (0..seeds).map(move |s| {
        let mut scenario = base.clone();
        scenario.topology.seed = base.topology.seed.wrapping_add(s * 7919);
        let run = format!("{}#{}", scenario.name, scenario.topology.seed);
        (scenario, run)
    })
}

/// One fault as the labeller sees it: where, what, and when (scenario time).
struct PlacedFault {
    element: Element,
    kind: String,
    from: Duration,
    until: Duration,
}

/// How a window relates to a fault: fully inside, partly, or not at all.
fn overlap(f: &PlacedFault, start: Duration, end: Duration) -> Option<bool> {
    if end <= f.from || start >= f.until + (end - start) {
        None // the window after the end still counts as partial: telemetry lags
    } else {
        Some(start >= f.from && end <= f.until)
    }
}

fn label(w: &FeaturizedWindow, index: i64, topo: &Topology, faults: &[PlacedFault], run: &str) -> LabelledWindow {
    let since = |ns: i64| Duration::from_nanos((ns - START_NS).max(0) as u64);
    let (start, end) = (since(w.start), since(w.end));
    let warm = index >= WARMUP_WINDOWS;
    let mut nodes: Vec<Label> = w
        .robust_nodes
        .iter()
        .map(|&f| Label { weight: f32::from(u8::from(warm)), robust_flag: f, ..Default::default() })
        .collect();
    let mut links: Vec<Label> = w
        .robust_links
        .iter()
        .map(|&f| Label { weight: f32::from(u8::from(warm)), robust_flag: f, ..Default::default() })
        .collect();
    let link_elements: Vec<Element> =
        topo.links().iter().map(|&(a, b)| Element::link(topo.name(a), topo.name(b))).collect();
    for f in faults {
        let Some(full) = overlap(f, start, end) else { continue };
        let mark = |l: &mut Label, target: bool| {
            if target && full {
                l.faulty = true;
                l.kind = Some(f.kind.clone());
            } else if !l.faulty {
                l.weight = 0.0; // partial window, or a neighbour of the fault: do not care
            }
        };
        for (i, n) in topo.names().iter().enumerate() {
            let target = matches!(&f.element, Element::Node { id } if id == n);
            if target || f.element.touches(n) {
                mark(&mut nodes[i], target);
            }
        }
        for (k, e) in link_elements.iter().enumerate() {
            let target = *e == f.element;
            let adjacent = match (&f.element, e) {
                (Element::Node { id }, Element::Link { .. }) => e.touches(id),
                _ => false,
            };
            if target || adjacent {
                mark(&mut links[k], target);
            }
        }
    }
    LabelledWindow {
        run: run.to_string(),
        window: index,
        start_ns: w.start,
        node_names: topo.names().to_vec(),
        graph: w.graph.clone(),
        nodes,
        links,
    }
}

/// Runs every scenario of `dir` with `seeds` seeds each into the dataset at `out`;
/// returns (runs, windows, node-windows).
pub async fn write_datasets(
    config: &Config,
    dir: &Path,
    out: &Path,
    seeds: u64,
    mut progress: impl FnMut(&str),
) -> Result<(u64, u64, u64)> {
    let mut writer = DatasetWriter::create(out)?;
    let mut runs = 0;
    for file in scenario_files(dir)? {
        let base = Scenario::from_file(&file)?;
        for (scenario, run) in seeded_runs(&base, seeds) {
            progress(&run);
            let mut mesh = SimMesh::new(&scenario, SimOptions { start_ns: START_NS, ..Default::default() })?;
            let topo = mesh.topology().clone();
            let faults: Vec<PlacedFault> = scenario
                .faults
                .iter()
                .zip(mesh.fault_elements())
                .map(|(f, element)| PlacedFault {
                    element,
                    kind: f.kind.as_str().to_string(),
                    from: f.at,
                    until: f.duration.map_or(scenario.duration, |d| f.at + d),
                })
                .collect();
            let mut featurizer =
                OfflineFeaturizer::new(config, topo.clone(), x0_pipeline::BUILTIN_FEATURES_SQL).await?;
            let mut index = 0i64;
            let mut finished = false;
            while !finished {
                finished = mesh.finished();
                if !finished {
                    for (_, batch) in mesh.step() {
                        featurizer.insert(batch);
                    }
                }
                for w in featurizer.close(finished).await? {
                    writer.write(&label(&w, index, &topo, &faults, &run))?;
                    index += 1;
                }
            }
            runs += 1;
        }
    }
    let (windows, node_windows) = writer.finish()?;
    Ok((runs, windows, node_windows))
}
