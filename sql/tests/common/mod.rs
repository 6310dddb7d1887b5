//! What both sqllogictest suites share: results as text rows, fixtures read from JSON
//! lines, and running a file or (with `X0_SLT_COMPLETE=1`) rewriting its results.

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use sqllogictest::{AsyncDB, MakeConnection, Runner};
use std::path::Path;

/// Rows as sqllogictest compares them: NULL spelled out; with `round`, decimals to 4
/// places (pinning the arithmetic, not the last bits of a summation order).
pub(crate) fn rows(batches: &[RecordBatch], round: bool) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for b in batches {
        let cols: Vec<ArrayFormatter> =
            b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
        for r in 0..b.num_rows() {
            let cell = |c: &ArrayFormatter| {
                let v = c.value(r).to_string();
                match v.parse::<f64>() {
                    Ok(x) if round && v.contains('.') => format!("{x:.4}"),
                    _ => v,
                }
            };
            rows.push(cols.iter().map(cell).collect());
        }
    }
    rows
}

/// The JSON-lines fixture `name` of `sql/tests/fixtures`.
pub(crate) fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> Vec<T> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Runs `file`, or rewrites its expected results when `X0_SLT_COMPLETE=1`.
pub(crate) async fn run_or_complete<D: AsyncDB, M: MakeConnection<Conn = D>>(mut runner: Runner<D, M>, file: &Path) {
    if std::env::var("X0_SLT_COMPLETE").as_deref() == Ok("1") {
        runner
            .update_test_file(
                file,
                " ",
                sqllogictest::default_validator,
                sqllogictest::default_normalizer,
                sqllogictest::default_column_validator,
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    } else {
        runner.run_file_async(file).await.unwrap_or_else(|e| panic!("{}: {}", file.display(), e.display(false)));
    }
}
