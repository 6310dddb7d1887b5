//! Rendering a run summary for people.

use x0_schema::RunSummary;

fn ms(v: Option<i64>) -> String {
    v.map_or("-".into(), |v| format!("{:.2} s", v as f64 / 1000.0))
}

/// The per-fault table and the headline numbers.
pub fn fault_table(s: &RunSummary, incidents_recorded: usize) -> String {
    let mut out = String::new();
    out.push_str(&format!("\nscenario {} ({} mode, seed {})\n\n", s.scenario, s.mode, s.seed));
    out.push_str(&format!(
        "{:<3} {:<19} {:<10} {:>9} {:>10} {:<16} {:>5} {:>10} {:>8} {:>12}\n",
        "#", "fault", "target", "injected", "detected", "root cause", "ok", "confidence", "actions", "restored"
    ));
    for f in &s.faults {
        out.push_str(&format!(
            "{:<3} {:<19} {:<10} {:>9} {:>10} {:<16} {:>5} {:>10} {:>8} {:>12}\n",
            f.id,
            f.kind,
            f.target,
            ms(Some(f.injected_at_ms)),
            f.mttd_ms.map_or("missed".into(), |v| format!("+{:.2} s", v as f64 / 1000.0)),
            f.root_cause.clone().unwrap_or_else(|| "-".into()),
            if f.root_cause_correct { "yes" } else { "no" },
            f.confidence.map_or("-".into(), |c| format!("{c:.2}")),
            f.actions,
            f.mttr_ms.map_or("-".into(), |v| format!("+{:.2} s", v as f64 / 1000.0)),
        ));
    }
    if s.faults.is_empty() {
        out.push_str("(no faults injected)\n");
    }
    out.push_str(&format!(
        "\nincidents recorded {incidents_recorded} · false incidents {} · MTTD p50 {} p95 {} · MTTR p50 {} p95 {} · RCA AC@1 {:.2} AC@3 {:.2} · routes changed {} · route flaps {}\n",
        s.false_incidents,
        ms(Some(s.mttd_ms.p50)),
        ms(Some(s.mttd_ms.p95)),
        ms(Some(s.mttr_ms.p50)),
        ms(Some(s.mttr_ms.p95)),
        s.rca.ac1,
        s.rca.ac3,
        s.routes_changed,
        s.route_flaps
    ));
    out
}
