//! The JSON the page reads: the mesh map, each window's frame (per node and link, or
//! per region on a big mesh), incidents in brief and in full.

use crate::layout::MeshMap;
use serde_json::{json, Value};
use std::collections::HashMap;
use x0_pipeline::{IncidentView, Look, MeshFrame};
use x0_schema::{Action, Element, NodeId, ResultStatus, Topology};

/// Elements listed one by one in a regional frame, most severe first.
const HOT_MAX: usize = 200;
/// Route changes drawn on an incident's map (its table lists more).
const ROUTES_DRAWN: usize = 12;
/// Route changes listed on an incident's page.
const ROUTES_LISTED: usize = 200;

fn look_code(look: Look) -> u8 {
    match look {
        Look::Healthy => 0,
        Look::Anomalous => 1,
        Look::Rerouted => 2,
        Look::Incident => 3,
    }
}

fn round(x: f32, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (f64::from(x) * f).round() / f
}

pub(crate) fn mesh_json(topo: &Topology, map: &MeshMap, instance: &str) -> String {
    let pos: Vec<[f64; 2]> = map.pos.iter().map(|p| [round(p[0], 1), round(p[1], 1)]).collect();
    let v = match &map.region_of {
        None => json!({
            "instance": instance,
            "mode": "nodes",
            "names": topo.names(),
            "pos": pos,
            "links": topo.links(),
        }),
        Some(region_of) => json!({
            "instance": instance,
            "mode": "regions",
            "nodes": topo.len(),
            "link_count": topo.links().len(),
            "names": topo.names(),
            "region_of": region_of,
            "regions": map.region_sizes.iter().zip(&pos).enumerate()
                .map(|(r, (size, p))| json!({"name": format!("region {}", r + 1), "size": size, "pos": p}))
                .collect::<Vec<_>>(),
            "region_links": map.region_links,
        }),
    };
    v.to_string()
}

pub(crate) fn frame_json(f: &MeshFrame, map: &MeshMap, topo: &Topology) -> Value {
    let Some(region_of) = &map.region_of else {
        let links: Vec<Value> = f
            .links
            .iter()
            .map(|l| json!([look_code(l.look), l.loss.map(|x| round(x, 3)), l.rtt_ms.map(|x| round(x, 2))]))
            .collect();
        let nodes: Vec<u8> = f.nodes.iter().map(|&l| look_code(l)).collect();
        return json!({"start": f.window_start, "end": f.window_end, "links": links, "nodes": nodes});
    };
    // Per region: the worst look, how many elements of each look, the worst loss.
    let mut regions = vec![[0u32; 5]; map.region_sizes.len()];
    let mut hot: Vec<(Look, Element, Option<f32>, Option<f32>)> = Vec::new();
    let mut mark = |r: usize, look: Look, loss: Option<f32>| {
        let slot = &mut regions[r];
        slot[0] = slot[0].max(u32::from(look_code(look)));
        if look != Look::Healthy {
            slot[usize::from(look_code(look))] += 1;
        }
        slot[4] = slot[4].max(loss.map_or(0, |l| (l * 1000.0) as u32));
    };
    for (i, l) in f.links.iter().enumerate() {
        let (a, b) = topo.links()[i];
        let (ra, rb) = (region_of[a] as usize, region_of[b] as usize);
        mark(ra, l.look, l.loss);
        if rb != ra {
            mark(rb, l.look, l.loss);
        }
        if l.look != Look::Healthy {
            hot.push((l.look, topo.link_element(a, b), l.loss, l.rtt_ms));
        }
    }
    for (n, &look) in f.nodes.iter().enumerate() {
        mark(region_of[n] as usize, look, None);
        if look != Look::Healthy {
            hot.push((look, Element::node(topo.name(n)), None, None));
        }
    }
    hot.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
    let hot_total = hot.len();
    let hot: Vec<Value> = hot
        .into_iter()
        .take(HOT_MAX)
        .map(|(look, e, loss, rtt)| {
            json!({"element": e.to_string(), "look": look_code(look), "loss": loss.map(|x| round(x, 3)), "rtt": rtt.map(|x| round(x, 2))})
        })
        .collect();
    json!({"start": f.window_start, "end": f.window_end, "regions": regions, "hot": hot, "hot_total": hot_total})
}

pub(crate) fn incident_summary(v: &IncidentView) -> Value {
    let i = &v.incident;
    let applied = i.actions.iter().filter(|a| a.status == Some(ResultStatus::Applied)).count();
    json!({
        "id": i.incident_id,
        "state": i.state.as_str(),
        "outcome": i.outcome.as_str(),
        "kind": i.root_cause.as_ref().map(|rc| rc.kind.as_str()),
        "element": i.root_cause.as_ref().map(|rc| rc.element.to_string()),
        "confidence": i.root_cause.as_ref().map(|rc| rc.confidence),
        "opened_at": i.opened_at,
        "detected_at": i.detected_at,
        "mitigated_at": i.mitigated_at,
        "resolved_at": i.resolved_at,
        "mttd_ms": i.mttd_ms,
        "mttr_ms": i.mttr_ms,
        "actions": i.actions.len(),
        "applied": applied,
        "reopened": i.reopened_at.len(),
    })
}

/// The incident in full, with its route changes as paths (before: the baseline; after:
/// the baseline with this incident's overrides) for the map.
pub(crate) fn incident_detail(v: &IncidentView, topo: &Topology, map: &MeshMap) -> Value {
    let i = &v.incident;
    let mut overrides: HashMap<(NodeId, NodeId), NodeId> = HashMap::new();
    let mut changes = Vec::new();
    for (a, part) in i.actions.iter().flat_map(|a| a.action.parts().iter().map(move |p| (a, p))) {
        if let Action::RouteReplace { destination, primary, backup } = part {
            let ids = (topo.id(&a.target), topo.id(destination), topo.id(primary));
            if let (Some(s), Some(d), Some(p)) = ids {
                if a.status != Some(ResultStatus::RolledBack) {
                    overrides.insert((s, d), p);
                }
                changes.push((s, d, backup.clone()));
            }
        }
    }
    let mut baselines: HashMap<NodeId, Vec<Option<NodeId>>> = HashMap::new();
    let drawn = map.region_of.is_none();
    let routes: Vec<Value> = changes
        .iter()
        .take(ROUTES_LISTED)
        .enumerate()
        .map(|(k, (s, d, backup))| {
            let base = baselines.entry(*d).or_insert_with(|| topo.baseline_next_hops(*d)).clone();
            let walk = |with_overrides: bool| -> Vec<&str> {
                let mut path = vec![topo.name(*s)];
                let mut at = *s;
                while at != *d && path.len() <= topo.len() {
                    let next = if with_overrides { overrides.get(&(at, *d)).copied() } else { None };
                    let Some(next) = next.or(base[at]) else { break };
                    path.push(topo.name(next));
                    at = next;
                }
                path
            };
            json!({
                "target": topo.name(*s),
                "destination": topo.name(*d),
                "backup": backup,
                "before": walk(false),
                "after": walk(true),
                "drawn": drawn && k < ROUTES_DRAWN,
            })
        })
        .collect();
    json!({
        "summary": incident_summary(v),
        "incident": i,
        "deciding": v.deciding,
        "routes": routes,
        "routes_total": changes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::grid;
    use x0_pipeline::LinkLook;

    #[test]
    fn a_regional_frame_names_the_hot_elements_and_marks_their_regions() {
        let topo = grid(30);
        let map = MeshMap::new(&topo);
        let region_of = map.region_of.clone().expect("regions");
        let healthy = LinkLook { look: Look::Healthy, loss: Some(0.0), rtt_ms: Some(1.0) };
        let mut links = vec![healthy; topo.links().len()];
        links[5].look = Look::Incident;
        links[5].loss = Some(1.0);
        let frame = MeshFrame { window_start: 0, window_end: 1, links, nodes: vec![Look::Healthy; topo.len()] };
        let v = frame_json(&frame, &map, &topo);
        assert_eq!(v["hot_total"], 1);
        let (a, b) = topo.links()[5];
        assert_eq!(v["hot"][0]["element"], topo.link_element(a, b).to_string());
        assert_eq!(v["hot"][0]["look"], 3);
        let r = region_of[a] as usize;
        assert_eq!(v["regions"][r][0], 3);
        assert_eq!(v["regions"][r][3], 1);
        assert_eq!(v["regions"][r][4], 1000);
    }
}
