//! The roles that build and judge models: `train` and `eval`.

use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;
use x0_harness::retrain::run_training;
use x0_harness::{eval_rca, stress};
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
    /// Whether healing ever makes things worse: a generated family of meshes (50–300
    /// nodes, every shape) and faults (one/two-way loss, delay, flaps, silent agents,
    /// liars, overlapping faults) through the closed loop, judged on incidents per fault,
    /// route flaps, route changes no real fault asked for, and restoration.
    Stress {
        /// Runs in the family; run i is case i mod 10.
        #[arg(long, default_value_t = 60)]
        runs: usize,
        /// The family's seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Only the runs whose name contains this (e.g. `liar-1-link`, `stress-007`).
        #[arg(long)]
        only: Option<String>,
        /// Write the generated scenarios here as TOML files (and run them).
        #[arg(long)]
        write_scenarios: Option<PathBuf>,
        /// Write each run's incidents here, as `<run>.json`.
        #[arg(long)]
        incidents_dir: Option<PathBuf>,
        /// Write the report (JSON) here.
        #[arg(long)]
        summary_json: Option<PathBuf>,
    },
}

pub(crate) async fn eval(action: EvalAction, mut config: Config) -> Result<()> {
    let (scenarios, seeds, summary_json, fit_calibration) = match action {
        EvalAction::Rca { scenarios, seeds, summary_json, fit_calibration } => {
            (scenarios, seeds, summary_json, fit_calibration)
        }
        EvalAction::Stress { runs, seed, only, write_scenarios, incidents_dir, summary_json } => {
            let outputs = StressOutputs { write_scenarios, incidents_dir, summary_json };
            return eval_stress(&config, runs, seed, only, outputs).await;
        }
    };
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

/// Where `eval stress` writes, besides its table.
struct StressOutputs {
    write_scenarios: Option<PathBuf>,
    incidents_dir: Option<PathBuf>,
    summary_json: Option<PathBuf>,
}

async fn eval_stress(config: &Config, runs: usize, seed: u64, only: Option<String>, out: StressOutputs) -> Result<()> {
    let StressOutputs { write_scenarios, incidents_dir, summary_json } = out;
    let mut family = stress::generate::family(seed, runs)?;
    family.retain(|s| only.as_deref().is_none_or(|o| s.name.contains(o)));
    if let Some(dir) = &write_scenarios {
        std::fs::create_dir_all(dir)?;
        for s in &family {
            std::fs::write(dir.join(format!("{}.toml", s.name)), s.to_toml()?)?;
        }
    }
    let started = std::time::Instant::now();
    let report = stress::eval_stress(config, seed, family, incidents_dir.as_deref(), |v| {
        let ok = if stress::holds_the_bar(v) { "ok" } else { "BROKE THE BAR" };
        eprintln!("{:>6.0} s  {}: {ok}", started.elapsed().as_secs_f64(), v.run);
    })
    .await?;
    print!("{}", stress::table(&report));
    if let Some(path) = summary_json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
        eprintln!("summary written to {}", path.display());
    }
    Ok(())
}
