//! Labelled graph windows on disk: `nodes.parquet` and `links.parquet` per dataset
//! directory, one row per element per window, with the fault ground truth and the
//! statistical detector's verdict (a baseline to compare against). Written by
//! `x0tta6bl4 simulate --out`, read back through DataFusion.

use crate::graph::{GraphWindow, EDGE_FEATURES, EDGE_FEATURE_NAMES, NODE_FEATURE_NAMES};
use arrow::array::{Array, ArrayRef, BooleanArray, Float32Array, Int64Array, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
/// Why a dataset could not be read or written.
pub enum DatasetError {
    #[error("dataset io: {0}")]
    /// A file operation failed.
    Io(#[from] std::io::Error),
    #[error("dataset parquet: {0}")]
    /// A Parquet file is unreadable.
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("dataset arrow: {0}")]
    /// Arrow could not build or read a batch.
    Arrow(#[from] arrow::error::ArrowError),
    #[error("dataset query: {0}")]
    /// DataFusion could not read the dataset.
    Query(#[from] datafusion::error::DataFusionError),
    #[error("dataset {0}: {1}")]
    /// The dataset's contents make no sense (which file, what is wrong).
    Invalid(String, String),
}

/// The truth about one element in one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Label {
    /// The element is the target of an active fault.
    pub faulty: bool,
    /// How much this element counts in training and evaluation: 0 for "do not care"
    /// (a fault's first or last, partial window; an element next to a faulty one).
    pub weight: f32,
    /// The fault's kind when faulty.
    pub kind: Option<String>,
    /// The statistical detector flagged it (a baseline, recorded as the job runs it).
    pub robust_flag: bool,
}

/// One window of one run, with names and labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelledWindow {
    /// `scenario#seed`: the unit datasets are split by.
    pub run: String,
    /// The window's index in its run.
    pub window: i64,
    /// The window's start (ns since the epoch).
    pub start_ns: i64,
    /// Node names, by graph index.
    pub node_names: Vec<String>,
    /// The window as the model's input.
    pub graph: GraphWindow,
    /// One label per node.
    pub nodes: Vec<Label>,
    /// One per link (ends `2k`, `2k + 1` of the graph).
    pub links: Vec<Label>,
}

impl LabelledWindow {
    /// The link's name (`a-b`) for link `k`.
    pub fn link_name(&self, k: usize) -> String {
        let (a, b) = (self.graph.src[2 * k] as usize, self.graph.dst[2 * k] as usize);
        format!("{}-{}", self.node_names[a], self.node_names[b])
    }
}

fn label_columns(labels: &[&Label]) -> Vec<ArrayRef> {
    vec![
        Arc::new(BooleanArray::from(labels.iter().map(|l| l.faulty).collect::<Vec<_>>())),
        Arc::new(Float32Array::from(labels.iter().map(|l| l.weight).collect::<Vec<_>>())),
        Arc::new(StringArray::from(labels.iter().map(|l| l.kind.clone()).collect::<Vec<_>>())),
        Arc::new(BooleanArray::from(labels.iter().map(|l| l.robust_flag).collect::<Vec<_>>())),
    ]
}

fn label_fields() -> Vec<Field> {
    vec![
        Field::new("faulty", DataType::Boolean, false),
        Field::new("weight", DataType::Float32, false),
        Field::new("fault_kind", DataType::Utf8, true),
        Field::new("robust_flag", DataType::Boolean, false),
    ]
}

fn key_fields() -> Vec<Field> {
    vec![
        Field::new("run", DataType::Utf8, false),
        Field::new("window", DataType::Int64, false),
        Field::new("window_start", DataType::Int64, false),
    ]
}

fn feature_columns<const N: usize>(rows: &[[f32; N]]) -> Vec<ArrayRef> {
    (0..N).map(|i| Arc::new(Float32Array::from(rows.iter().map(|r| r[i]).collect::<Vec<_>>())) as ArrayRef).collect()
}

/// Appends windows to a dataset directory's two Parquet files.
pub struct DatasetWriter {
    nodes: parquet::arrow::ArrowWriter<std::fs::File>,
    links: parquet::arrow::ArrowWriter<std::fs::File>,
    node_schema: Arc<Schema>,
    link_schema: Arc<Schema>,
    /// Windows written.
    pub windows: u64,
    /// Node rows written.
    pub node_rows: u64,
}

impl DatasetWriter {
    /// A writer of `nodes.parquet` and `links.parquet` in `dir`.
    pub fn create(dir: &Path) -> Result<Self, DatasetError> {
        std::fs::create_dir_all(dir)?;
        let mut nf = key_fields();
        nf.push(Field::new("node_index", DataType::UInt32, false));
        nf.push(Field::new("node", DataType::Utf8, false));
        nf.extend(NODE_FEATURE_NAMES.iter().map(|n| Field::new(format!("x_{n}"), DataType::Float32, false)));
        nf.extend(label_fields());
        let mut lf = key_fields();
        lf.push(Field::new("link_index", DataType::UInt32, false));
        lf.push(Field::new("a", DataType::UInt32, false));
        lf.push(Field::new("b", DataType::UInt32, false));
        lf.push(Field::new("link", DataType::Utf8, false));
        for end in ["ab", "ba"] {
            lf.extend(EDGE_FEATURE_NAMES.iter().map(|n| Field::new(format!("{end}_{n}"), DataType::Float32, false)));
        }
        lf.extend(label_fields());
        let (node_schema, link_schema) = (Arc::new(Schema::new(nf)), Arc::new(Schema::new(lf)));
        let props = || {
            parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build()
        };
        let open = |name: &str, schema: &Arc<Schema>| -> Result<_, DatasetError> {
            let f = std::fs::File::create(dir.join(name))?;
            Ok(parquet::arrow::ArrowWriter::try_new(f, schema.clone(), Some(props()))?)
        };
        Ok(DatasetWriter {
            nodes: open("nodes.parquet", &node_schema)?,
            links: open("links.parquet", &link_schema)?,
            node_schema,
            link_schema,
            windows: 0,
            node_rows: 0,
        })
    }

    /// Appends one labelled window.
    pub fn write(&mut self, w: &LabelledWindow) -> Result<(), DatasetError> {
        let g = &w.graph;
        let keys = |n: usize| -> Vec<ArrayRef> {
            vec![
                Arc::new(StringArray::from(vec![w.run.as_str(); n])),
                Arc::new(Int64Array::from(vec![w.window; n])),
                Arc::new(Int64Array::from(vec![w.start_ns; n])),
            ]
        };
        let n = g.nodes();
        let mut cols = keys(n);
        cols.push(Arc::new(UInt32Array::from((0..n as u32).collect::<Vec<_>>())));
        cols.push(Arc::new(StringArray::from(w.node_names.clone())));
        cols.extend(feature_columns(&g.node_x));
        cols.extend(label_columns(&w.nodes.iter().collect::<Vec<_>>()));
        self.nodes.write(&RecordBatch::try_new(self.node_schema.clone(), cols)?)?;

        let l = g.links();
        let mut cols = keys(l);
        cols.push(Arc::new(UInt32Array::from((0..l as u32).collect::<Vec<_>>())));
        cols.push(Arc::new(UInt32Array::from((0..l).map(|k| g.src[2 * k]).collect::<Vec<_>>())));
        cols.push(Arc::new(UInt32Array::from((0..l).map(|k| g.dst[2 * k]).collect::<Vec<_>>())));
        cols.push(Arc::new(StringArray::from((0..l).map(|k| w.link_name(k)).collect::<Vec<_>>())));
        let ab: Vec<_> = (0..l).map(|k| g.edge_x[2 * k]).collect();
        let ba: Vec<_> = (0..l).map(|k| g.edge_x[2 * k + 1]).collect();
        cols.extend(feature_columns(&ab));
        cols.extend(feature_columns(&ba));
        cols.extend(label_columns(&w.links.iter().collect::<Vec<_>>()));
        self.links.write(&RecordBatch::try_new(self.link_schema.clone(), cols)?)?;
        self.windows += 1;
        self.node_rows += n as u64;
        Ok(())
    }

    /// Closes the files; returns (windows, node rows) written.
    pub fn finish(self) -> Result<(u64, u64), DatasetError> {
        self.nodes.close()?;
        self.links.close()?;
        Ok((self.windows, self.node_rows))
    }
}

fn column<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> Result<&'a T, DatasetError> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| DatasetError::Invalid(name.into(), "missing or of the wrong type".into()))
}

fn labels(b: &RecordBatch, i: usize) -> Result<Label, DatasetError> {
    let kind = column::<StringArray>(b, "fault_kind")?;
    Ok(Label {
        faulty: column::<BooleanArray>(b, "faulty")?.value(i),
        weight: column::<Float32Array>(b, "weight")?.value(i),
        kind: (!kind.is_null(i)).then(|| kind.value(i).to_string()),
        robust_flag: column::<BooleanArray>(b, "robust_flag")?.value(i),
    })
}

fn features<const N: usize>(
    b: &RecordBatch,
    prefix: &str,
    names: &[&str; N],
    i: usize,
) -> Result<[f32; N], DatasetError> {
    let mut out = [0f32; N];
    for (k, n) in names.iter().enumerate() {
        out[k] = column::<Float32Array>(b, &format!("{prefix}{n}"))?.value(i);
    }
    Ok(out)
}

async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, DatasetError> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// Reads every window of the dataset directories (in run and window order).
pub async fn read_datasets(dirs: &[&Path]) -> Result<Vec<LabelledWindow>, DatasetError> {
    let mut out = Vec::new();
    for dir in dirs {
        // Plain Utf8 columns, as written (not the string views DataFusion reads by default).
        let config = SessionConfig::new().set_bool("datafusion.execution.parquet.schema_force_view_types", false);
        let ctx = SessionContext::new_with_config(config);
        for t in ["nodes", "links"] {
            let path = dir.join(format!("{t}.parquet"));
            if !path.exists() {
                return Err(DatasetError::Invalid(dir.display().to_string(), format!("no {t}.parquet")));
            }
            ctx.register_parquet(t, path.to_string_lossy().as_ref(), ParquetReadOptions::default()).await?;
        }
        let mut windows: BTreeMap<(String, i64), LabelledWindow> = BTreeMap::new();
        for b in query(&ctx, "SELECT * FROM nodes ORDER BY run, window, node_index").await? {
            let (run, win, start) = (
                column::<StringArray>(&b, "run")?,
                column::<Int64Array>(&b, "window")?,
                column::<Int64Array>(&b, "window_start")?,
            );
            let name = column::<StringArray>(&b, "node")?;
            for i in 0..b.num_rows() {
                let w = windows.entry((run.value(i).to_string(), win.value(i))).or_insert_with(|| LabelledWindow {
                    run: run.value(i).to_string(),
                    window: win.value(i),
                    start_ns: start.value(i),
                    ..Default::default()
                });
                w.node_names.push(name.value(i).to_string());
                w.graph.node_x.push(features(&b, "x_", &NODE_FEATURE_NAMES, i)?);
                w.nodes.push(labels(&b, i)?);
            }
        }
        for b in query(&ctx, "SELECT * FROM links ORDER BY run, window, link_index").await? {
            let (run, win) = (column::<StringArray>(&b, "run")?, column::<Int64Array>(&b, "window")?);
            let (a, bb) = (column::<UInt32Array>(&b, "a")?, column::<UInt32Array>(&b, "b")?);
            for i in 0..b.num_rows() {
                let key = (run.value(i).to_string(), win.value(i));
                let w = windows.get_mut(&key).ok_or_else(|| {
                    DatasetError::Invalid(dir.display().to_string(), format!("links of {key:?} without nodes"))
                })?;
                let ab: [f32; EDGE_FEATURES] = features(&b, "ab_", &EDGE_FEATURE_NAMES, i)?;
                let ba: [f32; EDGE_FEATURES] = features(&b, "ba_", &EDGE_FEATURE_NAMES, i)?;
                w.graph.push_link(a.value(i), bb.value(i), ab, ba);
                w.links.push(labels(&b, i)?);
            }
        }
        out.extend(windows.into_values());
    }
    Ok(out)
}
