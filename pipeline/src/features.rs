//! Window features computed by DataFusion from the (user-editable) feature SQL.

use crate::window::ClosedWindow;
use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::sync::Arc;
use thiserror::Error;
use x0_schema::{link_batch, node_batch};

/// The feature SQL that ships with the project.
pub const BUILTIN_FEATURES_SQL: &str = include_str!("../../sql/features.sql");

const LINK_COLUMNS: &[&str] = &[
    "node",
    "peer",
    "samples",
    "tx_packets",
    "lost_packets",
    "loss_ratio",
    "probes_sent",
    "probe_loss",
    "rtt_avg_us",
    "down_fraction",
    "peer_samples",
];
const NODE_COLUMNS: &[&str] = &["node", "samples", "cpu", "mem", "softirq", "queue_pressure"];

#[derive(Debug, Error)]
/// Why a window's features could not be computed.
pub enum FeatureError {
    /// The feature SQL file lacks a `-- name:` block. The user's to fix.
    #[error("feature sql has no `-- name: {0}` query")]
    MissingQuery(&'static str),
    /// A query no longer returns a column the detector reads. The user's to fix.
    #[error("feature query {query} does not return column {column}")]
    MissingColumn {
        /// The query's name.
        query: &'static str,
        /// The column it lacks.
        column: &'static str,
    },
    /// DataFusion could not plan or run a query.
    #[error("feature query {query} failed: {source}")]
    Query {
        /// The query's name.
        query: &'static str,
        #[source]
        /// What DataFusion said.
        source: datafusion::error::DataFusionError,
    },
    #[error("feature column {0} cannot be read as a number or text: {1}")]
    /// A column of an unexpected type.
    Cast(&'static str, arrow::error::ArrowError),
}

/// One link end's features in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkEndFeatures {
    pub node: String,
    pub peer: String,
    pub samples: f64,
    pub tx_packets: f64,
    /// Packets the node received from the peer. `None` when the feature SQL does not
    /// return it (an optional column: it feeds flow conservation around silent nodes).
    pub rx_packets: Option<f64>,
    /// `None` when the peer did not report (nothing to compare with).
    pub lost_packets: Option<f64>,
    pub loss_ratio: Option<f64>,
    pub probes_sent: f64,
    pub probe_loss: Option<f64>,
    pub rtt_avg_us: Option<f64>,
    pub down_fraction: f64,
    pub peer_samples: f64,
}

/// One node's features in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFeatures {
    pub node: String,
    pub samples: f64,
    pub cpu: f64,
    pub mem: f64,
    pub softirq: f64,
    pub queue_pressure: f64,
}

/// Everything computed for one window.
#[derive(Debug, Clone)]
pub struct WindowFeatures {
    /// The window's start (ns since the epoch).
    pub start: i64,
    /// Its end.
    pub end: i64,
    /// One row per link end.
    pub links: Vec<LinkEndFeatures>,
    /// One row per node.
    pub nodes: Vec<NodeFeatures>,
    /// The link feature rows as DataFusion returned them (for the history table).
    pub link_batches: Vec<RecordBatch>,
}

/// Parses `-- name: X` blocks: each runs until the next block or the end.
fn named_query<'a>(sql: &'a str, name: &'static str) -> Result<&'a str, FeatureError> {
    let marker = format!("-- name: {name}");
    let start = sql.find(&marker).ok_or(FeatureError::MissingQuery(name))? + marker.len();
    let rest = &sql[start..];
    let end = rest.find("-- name:").unwrap_or(rest.len());
    Ok(rest[..end].trim().trim_end_matches(';'))
}

/// Runs the feature SQL over closed windows.
pub struct FeatureEngine {
    ctx: SessionContext,
    link_sql: String,
    node_sql: String,
}

impl std::fmt::Debug for FeatureEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureEngine").finish_non_exhaustive()
    }
}

impl FeatureEngine {
    /// Loads the feature SQL and checks, on an empty window, that both queries plan
    /// and return every column the detector reads.
    pub async fn new(sql: &str) -> Result<Self, FeatureError> {
        // One partition: windows are small and a plan per window must start fast.
        let config = SessionConfig::new().with_target_partitions(1).with_batch_size(8192);
        let engine = FeatureEngine {
            ctx: SessionContext::new_with_config(config),
            link_sql: named_query(sql, "link_features")?.to_string(),
            node_sql: named_query(sql, "node_features")?.to_string(),
        };
        let empty = ClosedWindow { start: 0, end: 0, rows: Default::default() };
        engine.run(&empty).await?;
        for (query, sql, required) in
            [("link_features", &engine.link_sql, LINK_COLUMNS), ("node_features", &engine.node_sql, NODE_COLUMNS)]
        {
            let df = engine.ctx.sql(sql).await.map_err(|source| FeatureError::Query { query, source })?;
            for &column in required {
                if df.schema().field_with_unqualified_name(column).is_err() {
                    return Err(FeatureError::MissingColumn { query, column });
                }
            }
        }
        Ok(engine)
    }

    async fn run(&self, window: &ClosedWindow) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>), FeatureError> {
        let q = |query: &'static str| move |source| FeatureError::Query { query, source };
        self.ctx.deregister_table("link_samples").map_err(q("link_samples"))?;
        self.ctx.deregister_table("node_samples").map_err(q("node_samples"))?;
        self.ctx.register_batch("link_samples", link_batch(&window.rows.links)).map_err(q("link_samples"))?;
        self.ctx.register_batch("node_samples", node_batch(&window.rows.nodes)).map_err(q("node_samples"))?;
        Ok((self.collect("link_features", &self.link_sql).await?, self.collect("node_features", &self.node_sql).await?))
    }

    /// Plans and runs one named feature query.
    async fn collect(&self, query: &'static str, sql: &str) -> Result<Vec<RecordBatch>, FeatureError> {
        let q = |source| FeatureError::Query { query, source };
        self.ctx.sql(sql).await.map_err(q)?.collect().await.map_err(q)
    }

    /// Computes one window's features.
    pub async fn compute(&self, window: &ClosedWindow) -> Result<WindowFeatures, FeatureError> {
        let (link_batches, node_batches) = self.run(window).await?;
        let mut links = Vec::new();
        for b in &link_batches {
            let (node, peer) = (text(b, "node")?, text(b, "peer")?);
            let f = |c| num(b, c);
            let rx = b.column_by_name("rx_packets").is_some().then(|| f("rx_packets")).transpose()?;
            let (samples, tx, lost, ratio, sent, ploss, rtt, down, peer_samples) = (
                f("samples")?,
                f("tx_packets")?,
                f("lost_packets")?,
                f("loss_ratio")?,
                f("probes_sent")?,
                f("probe_loss")?,
                f("rtt_avg_us")?,
                f("down_fraction")?,
                f("peer_samples")?,
            );
            for i in 0..b.num_rows() {
                let opt = |a: &Float64Array| (!a.is_null(i)).then(|| a.value(i));
                links.push(LinkEndFeatures {
                    node: node.value(i).to_string(),
                    peer: peer.value(i).to_string(),
                    samples: opt(&samples).unwrap_or(0.0),
                    tx_packets: opt(&tx).unwrap_or(0.0),
                    rx_packets: rx.as_ref().and_then(&opt),
                    lost_packets: opt(&lost),
                    loss_ratio: opt(&ratio),
                    probes_sent: opt(&sent).unwrap_or(0.0),
                    probe_loss: opt(&ploss),
                    rtt_avg_us: opt(&rtt),
                    down_fraction: opt(&down).unwrap_or(0.0),
                    peer_samples: opt(&peer_samples).unwrap_or(0.0),
                });
            }
        }
        let mut nodes = Vec::new();
        for b in &node_batches {
            let node = text(b, "node")?;
            let f = |c| num(b, c);
            let (samples, cpu, mem, softirq, queue) =
                (f("samples")?, f("cpu")?, f("mem")?, f("softirq")?, f("queue_pressure")?);
            for i in 0..b.num_rows() {
                let v = |a: &Float64Array| if a.is_null(i) { 0.0 } else { a.value(i) };
                nodes.push(NodeFeatures {
                    node: node.value(i).to_string(),
                    samples: v(&samples),
                    cpu: v(&cpu),
                    mem: v(&mem),
                    softirq: v(&softirq),
                    queue_pressure: v(&queue),
                });
            }
        }
        Ok(WindowFeatures { start: window.start, end: window.end, links, nodes, link_batches })
    }
}

fn column(b: &RecordBatch, name: &'static str, to: &DataType) -> Result<ArrayRef, FeatureError> {
    let c = b.column_by_name(name).ok_or(FeatureError::MissingColumn { query: "features", column: name })?;
    cast(c, to).map_err(|e| FeatureError::Cast(name, e))
}

fn num(b: &RecordBatch, name: &'static str) -> Result<Float64Array, FeatureError> {
    let a = column(b, name, &DataType::Float64)?;
    Ok(a.as_any().downcast_ref::<Float64Array>().expect("cast to Float64").clone())
}

fn text(b: &RecordBatch, name: &'static str) -> Result<StringArray, FeatureError> {
    let a = column(b, name, &DataType::Utf8)?;
    Ok(a.as_any().downcast_ref::<StringArray>().expect("cast to Utf8").clone())
}

/// Adds `window_start`/`window_end` columns so rows of many windows can share a table.
pub(crate) fn with_window_columns(
    batch: &RecordBatch,
    start: i64,
    end: i64,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    use arrow::datatypes::{Field, Schema};
    let n = batch.num_rows();
    let mut fields: Vec<Field> =
        vec![Field::new("window_start", DataType::Int64, false), Field::new("window_end", DataType::Int64, false)];
    fields.extend(batch.schema().fields().iter().map(|f| f.as_ref().clone()));
    let mut cols: Vec<ArrayRef> =
        vec![Arc::new(Int64Array::from(vec![start; n])), Arc::new(Int64Array::from(vec![end; n]))];
    cols.extend(batch.columns().iter().cloned());
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::WindowRows;
    use x0_schema::{LinkSample, Provenance, SCHEMA_VERSION};

    fn link(node: &str, peer: &str, tx: u64, rx: u64, sent: u64, lost: u64) -> LinkSample {
        LinkSample {
            ts: 1,
            node: node.into(),
            peer: peer.into(),
            iface: "e".into(),
            schema_version: SCHEMA_VERSION,
            provenance: Provenance::Sim,
            oper_up: true,
            tx_packets: tx,
            rx_packets: rx,
            tx_bytes: 0,
            rx_bytes: 0,
            drops: 0,
            errors: 0,
            tcp_retransmits: 0,
            probes_sent: sent,
            probes_lost: lost,
            rtt_avg_us: 1000.0,
            rtt_max_us: 1000.0,
        }
    }

    #[tokio::test]
    async fn loss_is_measured_from_both_ends() {
        let engine = FeatureEngine::new(BUILTIN_FEATURES_SQL).await.unwrap();
        let rows = WindowRows {
            links: vec![link("a", "b", 100, 50, 10, 5), link("b", "a", 60, 70, 10, 0), link("c", "a", 10, 0, 5, 5)],
            nodes: vec![],
        };
        let f = engine.compute(&ClosedWindow { start: 0, end: 10, rows }).await.unwrap();
        let end = |n: &str, p: &str| f.links.iter().find(|l| l.node == n && l.peer == p).unwrap().clone();
        // a sent 100, b received 70 from a.
        assert_eq!(end("a", "b").loss_ratio, Some(0.3));
        assert_eq!(end("a", "b").probe_loss, Some(0.5));
        // b sent 60, a received 50.
        assert_eq!(end("b", "a").lost_packets, Some(10.0));
        // a never reported about c: nothing to compare with.
        assert_eq!((end("c", "a").loss_ratio, end("c", "a").peer_samples), (None, 0.0));
    }

    #[tokio::test]
    async fn a_feature_sql_missing_a_required_column_is_refused() {
        let sql = BUILTIN_FEATURES_SQL.replace("AS probe_loss", "AS probe_loss_renamed");
        let err = FeatureEngine::new(&sql).await.unwrap_err();
        assert!(matches!(err, FeatureError::MissingColumn { column: "probe_loss", .. }), "{err}");
    }
}
