//! JSON lines telemetry: one sample per line, tagged by `"kind": "link" | "node"`.
//! Meant for third-party producers and `kcat`; Arrow IPC is the default.

use crate::{DecodeError, LinkSample, NodeSample, TelemetryBatch};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Line {
    Link(LinkSample),
    Node(NodeSample),
}

/// Encodes a batch as JSON lines.
pub fn encode_json_lines(batch: &TelemetryBatch) -> Vec<u8> {
    let mut out = Vec::new();
    let links = batch.links.iter().cloned().map(Line::Link);
    let nodes = batch.nodes.iter().cloned().map(Line::Node);
    for line in links.chain(nodes) {
        serde_json::to_writer(&mut out, &line).expect("samples always serialise");
        out.push(b'\n');
    }
    out
}

pub(crate) fn decode_json_lines(bytes: &[u8]) -> Result<TelemetryBatch, DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::Json { line: 0, message: e.to_string() })?;
    let mut batch = TelemetryBatch::default();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match serde_json::from_str::<Line>(line) {
            Ok(Line::Link(s)) => batch.links.push(s),
            Ok(Line::Node(s)) => batch.nodes.push(s),
            Err(e) => return Err(DecodeError::Json { line: i + 1, message: e.to_string() }),
        }
    }
    if batch.is_empty() {
        return Err(DecodeError::Empty);
    }
    Ok(batch)
}
