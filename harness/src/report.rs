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
    // Percentiles of nothing are zeros in the JSON contract; say "-" to people.
    let some = |f: fn(&x0_schema::FaultOutcome) -> Option<i64>| s.faults.iter().any(|x| f(x).is_some());
    let (d, r) = (some(|f| f.mttd_ms), some(|f| f.mttr_ms));
    out.push_str(&format!(
        "\nincidents recorded {incidents_recorded} · false incidents {} · MTTD p50 {} p95 {} · MTTR p50 {} p95 {} · RCA AC@1 {:.2} AC@3 {:.2} · routes changed {} · route flaps {}\n",
        s.false_incidents,
        ms(d.then_some(s.mttd_ms.p50)),
        ms(d.then_some(s.mttd_ms.p95)),
        ms(r.then_some(s.mttr_ms.p50)),
        ms(r.then_some(s.mttr_ms.p95)),
        s.rca.ac1,
        s.rca.ac3,
        s.routes_changed,
        s.route_flaps
    ));
    out
}

/// One line per scenario and the totals across them.
pub fn aggregate_table(runs: &[(RunSummary, usize)]) -> String {
    let mut out = format!(
        "\n{:<28} {:>6} {:>9} {:>8} {:>13} {:>9} {:>6} {:>9} {:>9} {:>6}\n",
        "scenario",
        "faults",
        "detected",
        "rca ok",
        "link restored",
        "incidents",
        "false",
        "mttd p50",
        "mttr p50",
        "flaps"
    );
    let (mut faults, mut detected, mut correct, mut links, mut restored, mut false_inc, mut flaps) =
        (0, 0, 0, 0, 0, 0, 0);
    for (s, incidents) in runs {
        let d = s.faults.iter().filter(|f| f.detected_at_ms.is_some()).count();
        let c = s.faults.iter().filter(|f| f.root_cause_correct).count();
        let link_faults: Vec<_> = s.faults.iter().filter(|f| f.kind.starts_with("link-")).collect();
        let r = link_faults.iter().filter(|f| f.traffic_restored_at_ms.is_some()).count();
        out.push_str(&format!(
            "{:<28} {:>6} {:>9} {:>8} {:>13} {:>9} {:>6} {:>9} {:>9} {:>6}\n",
            s.scenario,
            s.faults.len(),
            d,
            c,
            format!("{r}/{}", link_faults.len()),
            incidents,
            s.false_incidents,
            ms((d > 0).then_some(s.mttd_ms.p50)),
            ms(s.faults.iter().any(|f| f.mttr_ms.is_some()).then_some(s.mttr_ms.p50)),
            s.route_flaps
        ));
        faults += s.faults.len();
        detected += d;
        correct += c;
        links += link_faults.len();
        restored += r;
        false_inc += s.false_incidents;
        flaps += s.route_flaps;
    }
    out.push_str(&format!(
        "\ntotal: {detected}/{faults} faults detected · right root cause {correct}/{faults} ({:.0}%) · traffic restored after {restored}/{links} link faults · {false_inc} false incidents · {flaps} route flaps\n",
        100.0 * correct as f64 / faults.max(1) as f64
    ));
    out
}

/// The kernel lab's result, one line per fault.
pub fn lab_table(s: &crate::lab_run::LabSummary) -> String {
    let mut out = format!(
        "\n{} on real kernels, routing {:?}: {} nodes, {} links, {} probe flows every {:.0} ms\n",
        s.scenario, s.routing, s.nodes, s.links, s.flows, s.flow_interval_ms
    );
    out += &format!(
        "{:<12} {:<14} {:>8} {:>8} {:>9} {:>9} {:>9} {:>6}\n",
        "fault", "element", "trials", "restored", "p50 ms", "p95 ms", "max ms", "flaps"
    );
    for f in &s.faults {
        out += &format!(
            "{:<12} {:<14} {:>8} {:>8} {:>9} {:>9} {:>9} {:>6}\n",
            f.kind,
            f.element,
            format!("{}/{}", f.trials_with_traffic, f.trials.len()),
            f.restored,
            f.restored_ms.p50,
            f.restored_ms.p95,
            f.restored_ms.max,
            f.route_flaps
        );
    }
    if s.faults.iter().any(|f| f.trials_with_traffic < f.trials.len()) {
        out += "trials = those whose fault hit traffic / all (the others failed a link no flow crossed)\n";
    }
    for r in &s.agent_restarts {
        out += &match &r.node {
            None => format!("trial {}: no agent killed: no node held an override of the job then\n", r.trial + 1),
            Some(node) => format!(
                "trial {}: agent of {node} killed (holding {} overrides) and restarted: back in its kernel after {}; {} routes disagree with the job afterwards\n",
                r.trial + 1,
                r.overrides,
                r.back_ms.map_or("never (10 s)".into(), |ms| format!("{ms:.0} ms")),
                r.disagreements.len()
            ),
        };
    }
    if let Some(c) = &s.agent_cost_quiet {
        out += &format!(
            "agents, mesh quiet (10 s): CPU mean {:.2}% max {:.2}% of a core, RSS max {:.1} MB\n",
            c.cpu_percent_mean, c.cpu_percent_max, c.rss_mb_max
        );
    }
    if let Some(c) = &s.agent_cost {
        out += &format!(
            "agents: {} processes, CPU mean {:.2}% max {:.2}% of a core, RSS max {:.1} MB (peak {:.1} MB); telemetry from {}\n",
            c.agents,
            c.cpu_percent_mean,
            c.cpu_percent_max,
            c.rss_mb_max,
            c.rss_mb_peak_max,
            s.telemetry.as_deref().unwrap_or("-")
        );
    }
    if s.routing == crate::lab_run::Routing::X0 {
        out += &format!(
            "stream job: {} incidents ({} false during the trials, {} at startup), {} commands\n",
            s.incidents, s.false_incidents, s.false_incidents_at_startup, s.commands
        );
    }
    out
}
