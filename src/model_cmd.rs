//! The roles that build and judge models: `train` and `eval`.

use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;
use x0_harness::eval_rca;
use x0_harness::retrain::run_training;
use x0_pipeline::Config;

/// `train`'s flags.
#[derive(clap::Args)]
pub(crate) struct TrainArgs {
    /// Training dataset directories (from `simulate --out`); runs are split into
    /// training and validation by run.
    #[arg(long, required = true, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Held-out dataset directory: scenarios, seeds and parameters never trained on.
    #[arg(long)]
    held_out: PathBuf,
    /// Model registry directory.
    #[arg(long, default_value = "models")]
    registry: PathBuf,
    /// Passes over the training set.
    #[arg(long, default_value_t = 12)]
    epochs: usize,
    /// Seed of initialisation and shuffling.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Width of the model's node states (cost of scoring grows with it).
    #[arg(long, default_value_t = x0_training::ModelShape::default().hidden)]
    hidden: usize,
    /// Promote the new model even if it does not beat the champion.
    #[arg(long)]
    force_promote: bool,
    /// Also train on the incident history of this data directory: the job's
    /// recorded model inputs, labelled from its incidents and operators' verdicts.
    #[arg(long)]
    history: Option<PathBuf>,
    /// How far back the history goes.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30d")]
    since: Duration,
    /// Retrain on this schedule (e.g. 6h) until stopped, instead of once.
    #[arg(long, value_parser = humantime::parse_duration)]
    every: Option<Duration>,
}

pub(crate) async fn train(a: TrainArgs) -> Result<()> {
    let shape = x0_training::ModelShape { hidden: a.hidden };
    let opts = x0_training::TrainOptions { epochs: a.epochs, seed: a.seed, shape, ..Default::default() };
    let history = a.history.as_deref().map(|h| (h, a.since));
    let once = || run_training(&a.data, history, &a.held_out, &a.registry, &opts, a.force_promote);
    let Some(every) = a.every else {
        once().await?;
        return Ok(());
    };
    // On a schedule: a failed round is reported and the next one still runs.
    loop {
        if let Err(e) = once().await {
            eprintln!("training failed: {e:#}");
        }
        eprintln!("next training in {}", humantime::format_duration(every));
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

#[derive(clap::Subcommand)]
pub(crate) enum EvalAction {
    /// Root-cause analysis: AC@1, AC@3 and Avg@5 per fault type, blamed-set precision
    /// and recall with several faults, and calibration error of the confidences.
    Rca {
        /// A directory of scenario files (e.g. examples/training/held-out); repeatable.
        #[arg(long, required = true)]
        scenarios: Vec<PathBuf>,
        /// Runs per scenario, each with another topology seed.
        #[arg(long, default_value_t = 1)]
        seeds: u64,
        /// Write the report (JSON) here.
        #[arg(long)]
        summary_json: Option<PathBuf>,
        /// Score with raw evidence scores (no calibration), fit a calibration on these
        /// scenarios and write it here (`rca.calibration` reads it).
        #[arg(long)]
        fit_calibration: Option<PathBuf>,
    },
}

pub(crate) async fn eval(action: EvalAction, mut config: Config) -> Result<()> {
    let EvalAction::Rca { scenarios, seeds, summary_json, fit_calibration } = action;
    if fit_calibration.is_some() {
        config.rca.calibration = String::new();
    }
    let (report, points) = eval_rca::eval_rca(&config, &scenarios, seeds, |run| eprintln!("running {run}")).await?;
    print!("{}", eval_rca::table(&report));
    if let Some(path) = fit_calibration {
        let dirs: Vec<String> = scenarios.iter().map(|d| d.display().to_string()).collect();
        let on = format!("{} ({} runs, {} incidents)", dirs.join(" + "), report.runs, points.len());
        let fitted = x0_pipeline::Calibration::fit(&points, &on);
        std::fs::write(&path, serde_json::to_string_pretty(&fitted)? + "\n")?;
        eprintln!("calibration fitted on {on} written to {}", path.display());
    }
    if let Some(path) = summary_json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
        eprintln!("summary written to {}", path.display());
    }
    Ok(())
}
