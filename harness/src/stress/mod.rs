//! `eval stress`: does healing ever make things worse, on meshes and faults nobody
//! hand-picked?
//!
//! [`generate`] draws a family of scenarios (50–300 nodes, every generated shape,
//! one- and two-way loss, delay, flapping links, silent agents beside real faults,
//! liars on one, two or all of their links, two and three overlapping faults).
//! [`closed_loop`] runs each through the whole healing loop with real actuators on
//! the simulated mesh; [`judge`] scores it from the packets' and routes' ground
//! truth. The report counts, per case and per fault kind, the failures of the bar:
//! more than one incident for a fault, route flaps while a fault lasts, route changes
//! no real fault asked for, and repairable faults whose traffic was not restored while
//! they lasted.

pub mod closed_loop;
pub mod generate;
pub mod judge;

use anyhow::{Context, Result};
use judge::RunVerdict;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use x0_pipeline::Config;
use x0_schema::{Scenario, Topology};

/// Totals over a set of runs or faults.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    /// Runs.
    pub runs: usize,
    /// Faults (liars and silent agents included).
    pub faults: usize,
    /// Real faults with no incident about them.
    pub missed: usize,
    /// Incidents beyond the first about one fault.
    pub extra_incidents: usize,
    /// Route flaps while a fault lasted.
    pub flaps_during_faults: usize,
    /// Of those, forced by a later fault's repair (the route left its detour because
    /// the detour crossed the new fault).
    pub flaps_forced: usize,
    /// Route-moving commands no real fault asked for.
    pub harmful_commands: usize,
    /// Of those, on a liar's or a silent agent's word.
    pub commands_on_liars_or_silence: usize,
    /// Incidents about nothing injected.
    pub false_incidents: usize,
    /// Faults a reroute can restore.
    pub repairable: usize,
    /// Of those, restored while they lasted.
    pub restored: usize,
    /// Median time to restore, ms after injection.
    pub restored_p50_ms: Option<i64>,
    /// 95th percentile.
    pub restored_p95_ms: Option<i64>,
}

/// What `eval stress` reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StressReport {
    /// The family's seed.
    pub seed: u64,
    /// Everything.
    pub total: Tally,
    /// By generated case.
    pub per_case: BTreeMap<String, Tally>,
    /// By fault kind (one-way loss apart).
    pub per_fault_kind: BTreeMap<String, Tally>,
    /// Every run.
    pub runs: Vec<RunVerdict>,
}

/// Runs the family of `runs` scenarios drawn from `seed` (or the given `scenarios`),
/// judging each; `progress` hears of each run as it ends.
/// With `incidents_dir`, each run's incidents are written there as `<run>.json`.
pub async fn eval_stress(
    config: &Config,
    seed: u64,
    scenarios: Vec<Scenario>,
    incidents_dir: Option<&std::path::Path>,
    mut progress: impl FnMut(&RunVerdict),
) -> Result<StressReport> {
    let mut report = StressReport { seed, ..Default::default() };
    for scenario in scenarios {
        let case = generate::CASES.iter().find(|c| scenario.name.contains(*c)).copied().unwrap_or("given");
        let topo = Topology::generate(&scenario.topology)?;
        let run = closed_loop::run(config, &scenario).await.with_context(|| format!("run {}", scenario.name))?;
        let verdict = judge::judge(&scenario, case, &topo, &run);
        if let Some(dir) = incidents_dir {
            std::fs::create_dir_all(dir)?;
            std::fs::write(dir.join(format!("{}.json", scenario.name)), serde_json::to_vec_pretty(&run.incidents)?)?;
        }
        progress(&verdict);
        report.runs.push(verdict);
    }
    report.total = tally(report.runs.iter().map(|r| (r, None)));
    let cases: std::collections::BTreeSet<&str> = report.runs.iter().map(|r| r.case.as_str()).collect();
    for case in cases {
        report.per_case.insert(case.into(), tally(report.runs.iter().filter(|r| r.case == case).map(|r| (r, None))));
    }
    let kinds: std::collections::BTreeSet<&str> =
        report.runs.iter().flat_map(|r| r.faults.iter().map(|f| f.kind.as_str())).collect();
    for kind in kinds {
        let of_kind = report.runs.iter().filter(|r| r.faults.iter().any(|f| f.kind == kind)).map(|r| (r, Some(kind)));
        report.per_fault_kind.insert(kind.into(), tally(of_kind));
    }
    Ok(report)
}

/// Sums runs; with a kind, only that kind's faults count (run-level figures such as
/// flaps count whole, for every kind the run had).
fn tally<'a>(runs: impl Iterator<Item = (&'a RunVerdict, Option<&'a str>)>) -> Tally {
    let mut t = Tally::default();
    let mut times = Vec::new();
    for (r, kind) in runs {
        t.runs += 1;
        t.flaps_during_faults += r.flaps_during_faults;
        t.flaps_forced += r.flaps_forced_by_later_fault;
        t.harmful_commands += r.harmful_commands;
        t.commands_on_liars_or_silence += r.commands_on_liars_or_silence;
        t.false_incidents += r.false_incidents;
        for f in r.faults.iter().filter(|f| kind.is_none_or(|k| f.kind == k)) {
            t.faults += 1;
            t.missed += usize::from(f.real && f.incidents == 0);
            t.extra_incidents += f.incidents.saturating_sub(1);
            if f.repairable {
                t.repairable += 1;
                if let Some(ms) = f.restored_after_ms {
                    t.restored += 1;
                    times.push(ms);
                }
            }
        }
    }
    if !times.is_empty() {
        let p = x0_schema::Percentiles::of(&times);
        (t.restored_p50_ms, t.restored_p95_ms) = (Some(p.p50), Some(p.p95));
    }
    t
}

/// The report as a table: one line per case, then per fault kind, then the runs that
/// broke the bar.
pub fn table(r: &StressReport) -> String {
    let mut out = String::new();
    let header = format!(
        "{:<26} {:>4} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7} {:>6} {:>9} {:>9} {:>8}\n",
        "", "runs", "faults", "missed", "extra", "flaps", "forced", "harmful", "false", "restored", "p50 ms", "p95 ms"
    );
    let line = |out: &mut String, name: &str, t: &Tally| {
        let ms = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
        let _ = writeln!(
            out,
            "{name:<26} {:>4} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7} {:>6} {:>9} {:>9} {:>8}",
            t.runs,
            t.faults,
            t.missed,
            t.extra_incidents,
            t.flaps_during_faults,
            t.flaps_forced,
            t.harmful_commands,
            t.false_incidents,
            format!("{}/{}", t.restored, t.repairable),
            ms(t.restored_p50_ms),
            ms(t.restored_p95_ms),
        );
    };
    out.push_str("by case\n");
    out.push_str(&header);
    for (case, t) in &r.per_case {
        line(&mut out, case, t);
    }
    line(&mut out, "all", &r.total);
    out.push_str("\nby fault kind (flaps, forced, harmful, false: of the runs with that kind)\n");
    out.push_str(&header);
    for (kind, t) in &r.per_fault_kind {
        line(&mut out, kind, t);
    }
    let broken: Vec<&RunVerdict> = r.runs.iter().filter(|v| !holds_the_bar(v)).collect();
    let _ = writeln!(out, "\n{} of {} runs broke the bar", broken.len(), r.runs.len());
    for v in broken {
        let faults: Vec<String> = v
            .faults
            .iter()
            .map(|f| {
                let restored = match (f.repairable, f.restored_after_ms) {
                    (false, _) => String::new(),
                    (true, Some(ms)) => format!(" restored +{ms} ms"),
                    (true, None) => {
                        let at = |v: Option<i64>| v.map_or("never".to_string(), |ms| format!("+{ms} ms"));
                        let (e, r) = f.last_impaired_after_ms;
                        format!(" NOT restored: last hit at it {}, by routing {}", at(e), at(r))
                    }
                };
                format!("{} {} ({} incidents{restored})", f.kind, f.target, f.incidents)
            })
            .collect();
        let _ = writeln!(
            out,
            "  {}: {}; flaps {} ({} forced by a later fault), harmful {}, false {}",
            v.run,
            faults.join(", "),
            v.flaps_during_faults,
            v.flaps_forced_by_later_fault,
            v.harmful_commands,
            v.false_incidents
        );
        for flap in &v.flap_examples {
            let _ = writeln!(out, "    flap: {flap}");
        }
    }
    out
}

/// Whether a run met the bar: one incident per real fault, no flap while a fault
/// lasts (but those a later fault forced: a detour that crosses a new fault must
/// move, and may land where it came from), no route moved without a real fault,
/// every repairable fault restored.
pub fn holds_the_bar(v: &RunVerdict) -> bool {
    v.flaps_during_faults == v.flaps_forced_by_later_fault
        && v.harmful_commands == 0
        && v.faults.iter().all(|f| !f.real || f.incidents == 1)
        && v.faults.iter().all(|f| !f.repairable || f.restored_after_ms.is_some())
}
