//! Rendering query results as a table, CSV or JSON.

use crate::SqlError;
use arrow::array::RecordBatch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// How query results are printed.
pub enum OutputFormat {
    /// An aligned text table.
    Table,
    /// Comma-separated values with a header row.
    Csv,
    /// A JSON array of objects.
    Json,
}

impl std::str::FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(OutputFormat::Table),
            "csv" => Ok(OutputFormat::Csv),
            "json" => Ok(OutputFormat::Json),
            other => Err(format!("unknown format {other:?} (table, csv, json)")),
        }
    }
}

/// The batches in `format`.
pub fn format_batches(batches: &[RecordBatch], format: OutputFormat) -> Result<String, SqlError> {
    match format {
        OutputFormat::Table => Ok(arrow::util::pretty::pretty_format_batches(batches)?.to_string()),
        OutputFormat::Csv => {
            let mut out = Vec::new();
            {
                let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
                for b in batches {
                    w.write(b)?;
                }
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        }
        OutputFormat::Json => {
            let mut w = arrow::json::ArrayWriter::new(Vec::new());
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs)?;
            w.finish()?;
            Ok(String::from_utf8_lossy(&w.into_inner()).into_owned())
        }
    }
}
