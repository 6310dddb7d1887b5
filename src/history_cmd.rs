//! The roles that read and annotate the incident history: `sql`, `incident`, `kb`.

use crate::args::FormatArg;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use x0_harness::history_labels::{label_incident, OperatorVerdict};
use x0_harness::kb_view::{self, KbView};
use x0_pipeline::Config;
use x0_sql::{format_batches, saved_queries, saved_query, HistoryEngine, OutputFormat};

/// `sql`'s flags.
#[derive(clap::Args)]
pub(crate) struct SqlArgs {
    /// The query; or use --file / --saved.
    query: Option<String>,
    /// Read the query from this file.
    #[arg(long)]
    file: Option<PathBuf>,
    /// A saved query by name (see --list).
    #[arg(long)]
    saved: Option<String>,
    /// List the saved queries.
    #[arg(long)]
    list: bool,
    /// History directory (default: the configured data_dir).
    #[arg(long)]
    data_dir: Option<String>,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    format: FormatArg,
}

pub(crate) async fn sql(args: SqlArgs, config: Config) -> Result<()> {
    if args.list {
        for q in saved_queries() {
            println!("{:<22} {}", q.name, q.description);
        }
        return Ok(());
    }
    let sql = match (args.query, args.file, args.saved) {
        (Some(q), None, None) => q,
        (None, Some(f), None) => std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?,
        (None, None, Some(name)) => {
            saved_query(&name).with_context(|| format!("no saved query {name:?}; see --list"))?.sql.to_string()
        }
        _ => bail!("give exactly one of QUERY, --file or --saved"),
    };
    let engine = HistoryEngine::open(&args.data_dir.unwrap_or(config.data_dir)).await?;
    let batches = engine.query(&sql).await?;
    let format = OutputFormat::from(args.format);
    print!("{}", format_batches(&batches, format)?);
    if format == OutputFormat::Table {
        println!();
    }
    Ok(())
}

#[derive(clap::Subcommand)]
pub(crate) enum IncidentAction {
    /// Record a verdict on an incident: it was real (optionally naming the real cause)
    /// or a false positive. `train --history` learns from it.
    Label {
        /// The incident's id (`SELECT incident_id FROM incidents`).
        id: String,
        /// confirmed or false-positive.
        #[arg(long)]
        verdict: OperatorVerdict,
        /// The real cause when it was not the one the job named: `link A-B` or `node N`.
        #[arg(long)]
        cause: Option<String>,
        /// Free text kept with the verdict.
        #[arg(long)]
        note: Option<String>,
        /// History directory (default: the configured data_dir).
        #[arg(long)]
        data_dir: Option<String>,
    },
}

pub(crate) async fn incident(action: IncidentAction, config: Config) -> Result<()> {
    let IncidentAction::Label { id, verdict, cause, note, data_dir } = action;
    let data_dir = data_dir.unwrap_or(config.data_dir);
    let row = label_incident(&data_dir, &id, verdict, cause.as_deref(), note.as_deref()).await?;
    println!(
        "incident {} labelled {}{} by {}; the next `train --history {data_dir}` learns from it",
        row.incident_id,
        row.verdict,
        row.cause.as_deref().map(|c| format!(" (cause: {c})")).unwrap_or_default(),
        row.labelled_by
    );
    Ok(())
}

#[derive(clap::Subcommand)]
pub(crate) enum KbAction {
    /// The stored incidents most like incident ID (cosine similarity of their symptom
    /// signatures): what was done then and whether it worked.
    Similar {
        /// The incident to compare with.
        id: String,
        /// How many to show.
        #[arg(long, default_value_t = 5)]
        k: usize,
        /// Only incidents blamed on the same link or node.
        #[arg(long)]
        same_element: bool,
        /// History directory whose knowledge/ to read (default: the configured data_dir).
        #[arg(long)]
        data_dir: Option<String>,
    },
    /// How many incidents are stored, by root cause and outcome.
    Stats {
        /// History directory whose knowledge/ to read (default: the configured data_dir).
        #[arg(long)]
        data_dir: Option<String>,
    },
}

pub(crate) fn kb(action: KbAction, config: Config) -> Result<()> {
    let dir = |d: Option<String>| -> PathBuf {
        d.map(|d| PathBuf::from(d.strip_prefix("file://").unwrap_or(&d))).unwrap_or_else(|| config.data_dir())
    };
    match action {
        KbAction::Similar { id, k, same_element, data_dir } => {
            let view = KbView::open(&config, &dir(data_dir))?;
            print!("{}", kb_view::similar(&view, &id, k, same_element)?);
        }
        KbAction::Stats { data_dir } => {
            let view = KbView::open(&config, &dir(data_dir))?;
            print!("{}", kb_view::stats(&view)?);
        }
    }
    Ok(())
}
