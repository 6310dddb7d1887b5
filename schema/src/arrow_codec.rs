//! Arrow schemas for telemetry and the Arrow IPC stream encoding (the default on the wire).
//!
//! A telemetry message carries one IPC stream per sample kind present; the stream's
//! schema metadata `x0.kind` says which (`link` or `node`) and `x0.schema_version`
//! its layout version. The same schemas name the tables the feature SQL reads.

use crate::{DecodeError, LinkSample, NodeSample, Provenance, TelemetryBatch, SCHEMA_VERSION};
use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt16Array, UInt64Array,
};
use arrow::buffer::Buffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamWriter;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

const KIND_KEY: &str = "x0.kind";
const VERSION_KEY: &str = "x0.schema_version";

fn with_meta(fields: Vec<Field>, kind: &str) -> SchemaRef {
    let meta = HashMap::from([
        (KIND_KEY.to_string(), kind.to_string()),
        (VERSION_KEY.to_string(), SCHEMA_VERSION.to_string()),
    ]);
    Arc::new(Schema::new_with_metadata(fields, meta))
}

/// The Arrow schema of link samples (the `link_samples` table of the feature SQL).
pub fn link_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        let u = |n: &str| Field::new(n, DataType::UInt64, false);
        with_meta(
            vec![
                Field::new("ts", DataType::Int64, false),
                Field::new("node", DataType::Utf8, false),
                Field::new("peer", DataType::Utf8, false),
                Field::new("iface", DataType::Utf8, false),
                Field::new("schema_version", DataType::UInt16, false),
                Field::new("provenance", DataType::Utf8, false),
                Field::new("oper_up", DataType::Boolean, false),
                u("tx_packets"),
                u("rx_packets"),
                u("tx_bytes"),
                u("rx_bytes"),
                u("drops"),
                u("errors"),
                u("tcp_retransmits"),
                u("probes_sent"),
                u("probes_lost"),
                Field::new("rtt_avg_us", DataType::Float64, false),
                Field::new("rtt_max_us", DataType::Float64, false),
            ],
            "link",
        )
    })
    .clone()
}

/// The Arrow schema of node samples (the `node_samples` table of the feature SQL).
pub fn node_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        let f = |n: &str| Field::new(n, DataType::Float64, false);
        with_meta(
            vec![
                Field::new("ts", DataType::Int64, false),
                Field::new("node", DataType::Utf8, false),
                Field::new("schema_version", DataType::UInt16, false),
                Field::new("provenance", DataType::Utf8, false),
                f("cpu"),
                f("mem"),
                f("softirq"),
                f("queue_pressure"),
                Field::new("agent_ok", DataType::Boolean, false),
            ],
            "node",
        )
    })
    .clone()
}

impl TelemetryBatch {
    /// The link samples as one record batch of [`link_schema`].
    pub fn link_record_batch(&self) -> RecordBatch {
        link_batch(&self.links)
    }

    /// The node samples as one record batch of [`node_schema`].
    pub fn node_record_batch(&self) -> RecordBatch {
        node_batch(&self.nodes)
    }
}

/// Link samples as one record batch of [`link_schema`] (zero rows is a valid batch).
pub fn link_batch(l: &[LinkSample]) -> RecordBatch {
    let u = |f: fn(&LinkSample) -> u64| -> ArrayRef { Arc::new(UInt64Array::from_iter_values(l.iter().map(f))) };
    let s = |f: fn(&LinkSample) -> &str| -> ArrayRef { Arc::new(StringArray::from_iter_values(l.iter().map(f))) };
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(l.iter().map(|x| x.ts))),
        s(|x| &x.node),
        s(|x| &x.peer),
        s(|x| &x.iface),
        Arc::new(UInt16Array::from_iter_values(l.iter().map(|x| x.schema_version))),
        s(|x| x.provenance.as_str()),
        Arc::new(BooleanArray::from(l.iter().map(|x| x.oper_up).collect::<Vec<_>>())),
        u(|x| x.tx_packets),
        u(|x| x.rx_packets),
        u(|x| x.tx_bytes),
        u(|x| x.rx_bytes),
        u(|x| x.drops),
        u(|x| x.errors),
        u(|x| x.tcp_retransmits),
        u(|x| x.probes_sent),
        u(|x| x.probes_lost),
        Arc::new(Float64Array::from_iter_values(l.iter().map(|x| x.rtt_avg_us))),
        Arc::new(Float64Array::from_iter_values(l.iter().map(|x| x.rtt_max_us))),
    ];
    RecordBatch::try_new(link_schema(), cols).expect("columns built to match link_schema")
}

/// Node samples as one record batch of [`node_schema`] (zero rows is a valid batch).
pub fn node_batch(n: &[NodeSample]) -> RecordBatch {
    let f = |g: fn(&NodeSample) -> f64| -> ArrayRef { Arc::new(Float64Array::from_iter_values(n.iter().map(g))) };
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(n.iter().map(|x| x.ts))),
        Arc::new(StringArray::from_iter_values(n.iter().map(|x| x.node.as_str()))),
        Arc::new(UInt16Array::from_iter_values(n.iter().map(|x| x.schema_version))),
        Arc::new(StringArray::from_iter_values(n.iter().map(|x| x.provenance.as_str()))),
        f(|x| x.cpu),
        f(|x| x.mem),
        f(|x| x.softirq),
        f(|x| x.queue_pressure),
        Arc::new(BooleanArray::from(n.iter().map(|x| x.agent_ok).collect::<Vec<_>>())),
    ];
    RecordBatch::try_new(node_schema(), cols).expect("columns built to match node_schema")
}

/// Encodes a batch as Arrow IPC: one stream for link samples (if any) followed by one
/// for node samples (if any), each self-describing.
pub fn encode_arrow(batch: &TelemetryBatch) -> Vec<u8> {
    let mut out = Vec::new();
    let mut write = |rb: RecordBatch| {
        let mut w = StreamWriter::try_new(&mut out, &rb.schema()).expect("writing to a Vec cannot fail");
        w.write(&rb).expect("writing to a Vec cannot fail");
        w.finish().expect("writing to a Vec cannot fail");
    };
    if !batch.links.is_empty() {
        write(batch.link_record_batch());
    }
    if !batch.nodes.is_empty() {
        write(batch.node_record_batch());
    }
    out
}

/// Decodes what [`encode_arrow`] wrote (or any producer writing the same schemas).
///
/// Uses the push-based `StreamDecoder`, which only ever buffers bytes it was given: a
/// garbage length prefix cannot make it allocate gigabytes (the pull-based reader
/// does, which makes random input a denial of service).
pub(crate) fn decode_arrow(bytes: &[u8]) -> Result<TelemetryBatch, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut batch = TelemetryBatch::default();
    let mut buf = Buffer::from(bytes.to_vec());
    while !buf.is_empty() {
        let mut decoder = StreamDecoder::new();
        let mut records = Vec::new();
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(rb)) => records.push(rb),
                Ok(None) => break,
                // The end-of-stream marker was read and another stream follows.
                Err(_) if decoder.finish().is_ok() => break,
                Err(e) => return Err(DecodeError::Arrow(e.to_string())),
            }
        }
        decoder.finish().map_err(|e| DecodeError::Arrow(e.to_string()))?;
        let schema = decoder.schema().ok_or_else(|| DecodeError::Arrow("stream without a schema".into()))?;
        let kind = schema.metadata().get(KIND_KEY).cloned().ok_or(DecodeError::MissingColumn("x0.kind metadata"))?;
        if let Some(v) = schema.metadata().get(VERSION_KEY) {
            let found: u16 =
                v.parse().map_err(|_| DecodeError::BadValue { field: "x0.schema_version", reason: v.clone() })?;
            if found != SCHEMA_VERSION {
                return Err(DecodeError::SchemaVersion { found, supported: SCHEMA_VERSION });
            }
        }
        for rb in &records {
            match kind.as_str() {
                "link" => batch.links.extend(links_from(rb)?),
                "node" => batch.nodes.extend(nodes_from(rb)?),
                other => return Err(DecodeError::BadValue { field: "x0.kind", reason: other.to_string() }),
            }
        }
    }
    Ok(batch)
}

fn col<'a, T: Array + 'static>(rb: &'a RecordBatch, name: &'static str) -> Result<&'a T, DecodeError> {
    let c = rb.column_by_name(name).ok_or(DecodeError::MissingColumn(name))?;
    if c.null_count() > 0 {
        return Err(DecodeError::BadValue { field: name, reason: "null values".into() });
    }
    c.as_any().downcast_ref::<T>().ok_or(DecodeError::WrongType(name))
}

fn provenance(s: &str) -> Result<Provenance, DecodeError> {
    Provenance::parse(s).ok_or_else(|| DecodeError::BadValue { field: "provenance", reason: s.to_string() })
}

fn links_from(rb: &RecordBatch) -> Result<Vec<LinkSample>, DecodeError> {
    let ts = col::<Int64Array>(rb, "ts")?;
    let node = col::<StringArray>(rb, "node")?;
    let peer = col::<StringArray>(rb, "peer")?;
    let iface = col::<StringArray>(rb, "iface")?;
    let ver = col::<UInt16Array>(rb, "schema_version")?;
    let prov = col::<StringArray>(rb, "provenance")?;
    let up = col::<BooleanArray>(rb, "oper_up")?;
    let u = |n| col::<UInt64Array>(rb, n);
    let (txp, rxp, txb, rxb) = (u("tx_packets")?, u("rx_packets")?, u("tx_bytes")?, u("rx_bytes")?);
    let (drops, errors, retx, sent, lost) =
        (u("drops")?, u("errors")?, u("tcp_retransmits")?, u("probes_sent")?, u("probes_lost")?);
    let rtt_avg = col::<Float64Array>(rb, "rtt_avg_us")?;
    let rtt_max = col::<Float64Array>(rb, "rtt_max_us")?;
    (0..rb.num_rows())
        .map(|i| {
            Ok(LinkSample {
                ts: ts.value(i),
                node: node.value(i).to_string(),
                peer: peer.value(i).to_string(),
                iface: iface.value(i).to_string(),
                schema_version: ver.value(i),
                provenance: provenance(prov.value(i))?,
                oper_up: up.value(i),
                tx_packets: txp.value(i),
                rx_packets: rxp.value(i),
                tx_bytes: txb.value(i),
                rx_bytes: rxb.value(i),
                drops: drops.value(i),
                errors: errors.value(i),
                tcp_retransmits: retx.value(i),
                probes_sent: sent.value(i),
                probes_lost: lost.value(i),
                rtt_avg_us: rtt_avg.value(i),
                rtt_max_us: rtt_max.value(i),
            })
        })
        .collect()
}

fn nodes_from(rb: &RecordBatch) -> Result<Vec<NodeSample>, DecodeError> {
    let ts = col::<Int64Array>(rb, "ts")?;
    let node = col::<StringArray>(rb, "node")?;
    let ver = col::<UInt16Array>(rb, "schema_version")?;
    let prov = col::<StringArray>(rb, "provenance")?;
    let f = |n| col::<Float64Array>(rb, n);
    let (cpu, mem, softirq, queue) = (f("cpu")?, f("mem")?, f("softirq")?, f("queue_pressure")?);
    let ok = col::<BooleanArray>(rb, "agent_ok")?;
    (0..rb.num_rows())
        .map(|i| {
            Ok(NodeSample {
                ts: ts.value(i),
                node: node.value(i).to_string(),
                schema_version: ver.value(i),
                provenance: provenance(prov.value(i))?,
                cpu: cpu.value(i),
                mem: mem.value(i),
                softirq: softirq.value(i),
                queue_pressure: queue.value(i),
                agent_ok: ok.value(i),
            })
        })
        .collect()
}
