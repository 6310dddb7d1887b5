//! `x0tta6bl4 train`: datasets in, a versioned model, its evaluation report and (when
//! it beats the champion on the same held-out set) a promotion out.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use x0_training::{
    better, evaluate, load_champion, promote, read_datasets, score_windows, train, GraphDetector, LabelledWindow,
    ModelCard, Quality, Scores, TrainOptions,
};

/// Quality per detector ("graphsage", "robust", "rules"), per fault type.
pub type Comparison = BTreeMap<String, BTreeMap<String, Quality>>;

/// What a training run produced.
#[derive(Debug)]
pub struct TrainOutcome {
    /// The new model's version.
    pub version: String,
    /// Its directory in the registry.
    pub dir: PathBuf,
    /// Whether it became the champion.
    pub promoted: bool,
    /// It and the baselines on the held-out set.
    pub comparison: Comparison,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Scores the held-out set with the model and both baselines.
pub fn compare(model: &GraphDetector, held_out: &[LabelledWindow]) -> Comparison {
    let model_scores = score_windows(model.graph(), &model.card.normaliser, held_out);
    let mut c = Comparison::new();
    c.insert("graphsage".into(), evaluate(held_out, &model_scores, model.threshold()));
    c.insert("robust".into(), evaluate(held_out, &Scores::robust(held_out), 0.5));
    c.insert("rules".into(), evaluate(held_out, &Scores::rules(held_out), 0.5));
    c
}

/// Trains a model on `data` (and the history), compares it with the champion and the
/// baselines on `held_out`, writes it and its report to `registry`, and promotes it if
/// it is better (or `force_promote`).
pub async fn run_training(
    data: &[PathBuf],
    history: Option<(&Path, std::time::Duration)>,
    held_out: &Path,
    registry: &Path,
    opts: &TrainOptions,
    force_promote: bool,
) -> Result<TrainOutcome> {
    let dirs: Vec<&Path> = data.iter().map(PathBuf::as_path).collect();
    let mut windows = read_datasets(&dirs).await.context("reading the training datasets")?;
    let mut sources: Vec<String> = data.iter().map(|d| d.display().to_string()).collect();
    if let Some((dir, since)) = history {
        let h = crate::history_labels::read_history(dir, since).await?;
        eprintln!(
            "history {}: {} windows of the last {}, {} incidents ({} confirmed, {} false positives, the rest not counted)",
            dir.display(),
            h.windows.len(),
            humantime::format_duration(since),
            h.incidents,
            h.confirmed,
            h.false_positives
        );
        sources.push(format!("history:{} (last {})", dir.display(), humantime::format_duration(since)));
        windows.extend(h.windows);
    }
    let held = read_datasets(&[held_out]).await.context("reading the held-out dataset")?;
    anyhow::ensure!(!windows.is_empty(), "the training datasets hold no windows");
    anyhow::ensure!(!held.is_empty(), "the held-out dataset holds no windows");
    let train_runs: std::collections::HashSet<&str> = windows.iter().map(|w| w.run.as_str()).collect();
    if let Some(w) = held.iter().find(|w| train_runs.contains(w.run.as_str())) {
        anyhow::bail!("run {} is in both the training and the held-out data", w.run);
    }
    let node_windows: usize = windows.iter().map(|w| w.graph.nodes()).sum();
    eprintln!("training on {} windows ({node_windows} node-windows), held out: {} windows", windows.len(), held.len());

    let bar = ProgressBar::new((opts.epochs) as u64);
    bar.set_style(ProgressStyle::with_template("{elapsed_precise} [{bar:30}] epoch {pos}/{len} {msg}")?);
    let started = std::time::Instant::now();
    let trained = train(&windows, opts, |epoch, step, steps, loss| {
        bar.set_position(epoch as u64);
        bar.set_message(format!("step {step}/{steps} loss {loss:.4}"));
    });
    bar.finish_and_clear();
    let train_secs = started.elapsed().as_secs_f64();

    let mut card = ModelCard {
        version: String::new(),
        shape: opts.shape,
        normaliser: trained.normaliser.clone(),
        threshold: trained.threshold,
        options: opts.clone(),
        datasets: sources,
        train_runs: trained.train_runs,
        train_node_windows: trained.train_node_windows,
        losses: trained.losses.clone(),
        best_epoch: trained.best_epoch,
        held_out: BTreeMap::new(),
    };
    let mut detector = GraphDetector::new(card.clone(), trained.model);
    let comparison = compare(&detector, &held);
    card.held_out = comparison["graphsage"].clone();
    let fingerprint = serde_json::to_vec(&(&card.normaliser, &card.losses, card.threshold))?;
    card.version = format!("gsage-s{}-{:08x}", opts.seed, fnv1a(&fingerprint) as u32);
    detector.card = card.clone();
    let dir = detector.save(registry)?;

    let champion = load_champion(registry)?;
    let (promoted, verdict) = match &champion {
        None => (true, "no champion yet: promoted".to_string()),
        Some(ch) if ch.version() == card.version => (false, "identical to the champion".to_string()),
        Some(ch) => {
            let theirs = compare(ch, &held).remove("graphsage").and_then(|mut m| m.remove("all")).unwrap_or_default();
            let ours = &card.held_out["all"];
            let wins = better(ours, &theirs, opts.max_window_fpr);
            let v = format!(
                "champion {} on this held-out set: F1 {:.3}, window FPR {:.4}; challenger: F1 {:.3}, window FPR {:.4}: {}",
                ch.version(),
                theirs.f1,
                theirs.window_fpr,
                ours.f1,
                ours.window_fpr,
                if wins { "challenger promoted" } else { "champion kept" }
            );
            (wins, v)
        }
    };
    let promoted = promoted || force_promote;
    if promoted {
        promote(registry, &card.version)?;
    }
    write_plots(&dir, &card, &comparison).with_context(|| format!("writing the plots into {}", dir.display()))?;
    let report = report_markdown(&card, &comparison, &verdict, train_secs, held_out);
    std::fs::write(dir.join("report.md"), &report)?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_vec_pretty(&serde_json::json!({
            "version": card.version, "threshold": card.threshold, "train_seconds": train_secs,
            "train_node_windows": card.train_node_windows, "losses": card.losses,
            "held_out": held_out.display().to_string(), "comparison": comparison, "promotion": verdict,
        }))?,
    )?;
    println!("{report}");
    println!("model {} written to {}", card.version, dir.display());
    Ok(TrainOutcome { version: card.version, dir, promoted, comparison })
}

/// `pr.png` (precision–recall over all held-out element-windows, per detector) and
/// `loss.png` (training and validation loss per epoch).
fn write_plots(dir: &Path, card: &ModelCard, c: &Comparison) -> std::io::Result<()> {
    use x0_training::plot::{line_chart, BLUE, GREY, ORANGE};
    let curve = |name: &str| c.get(name).and_then(|m| m.get("all")).map(|q| q.curve.clone()).unwrap_or_default();
    let (g, r, rules) = (curve("graphsage"), curve("robust"), curve("rules"));
    line_chart(&dir.join("pr.png"), &[(&rules, GREY), (&r, ORANGE), (&g, BLUE)], (0.0, 1.0), (0.0, 1.0), 5)?;
    let train: Vec<(f64, f64)> = card.losses.iter().map(|l| (l.epoch as f64, l.train)).collect();
    let validation: Vec<(f64, f64)> = card.losses.iter().map(|l| (l.epoch as f64, l.validation)).collect();
    let top = train.iter().chain(&validation).map(|p| p.1).fold(0.0, f64::max);
    let epochs = (card.losses.first().map_or(0, |l| l.epoch) as f64, card.losses.last().map_or(1, |l| l.epoch) as f64);
    // One grid line per epoch while they fit.
    let ticks = ((epochs.1 - epochs.0) as usize).clamp(1, 12);
    line_chart(&dir.join("loss.png"), &[(&train, BLUE), (&validation, ORANGE)], epochs, (0.0, top), ticks)
}

fn report_markdown(card: &ModelCard, c: &Comparison, verdict: &str, secs: f64, held_out: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Detector {}\n", card.version);
    let _ = writeln!(
        s,
        "Trained on {} runs ({} node-windows) in {secs:.0} s, {} epochs (weights of epoch {}, the lowest validation loss), seed {}; threshold {:.2} chosen on validation runs \
         (best event F1 with a per-window false-positive rate of at most {:.1}%).\n",
        card.train_runs,
        card.train_node_windows,
        card.options.epochs,
        card.best_epoch,
        card.options.seed,
        card.threshold,
        card.options.max_window_fpr * 100.0
    );
    let _ = writeln!(
        s,
        "Held-out set: `{}` (scenarios, topologies, seeds and fault parameters absent from training).\n",
        held_out.display()
    );
    let _ = writeln!(s, "| fault type | detector | runs | events | detected | precision | recall | F1 | window FPR | PR-AUC | mean windows to detect |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
    let types: std::collections::BTreeSet<&String> = c.values().flat_map(|m| m.keys()).collect();
    for t in types {
        for (name, m) in c {
            if let Some(q) = m.get(t) {
                let _ = writeln!(
                    s,
                    "| {t} | {name} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.4} | {:.3} | {:.1} |",
                    q.runs,
                    q.events,
                    q.detected,
                    q.precision,
                    q.recall,
                    q.f1,
                    q.window_fpr,
                    q.pr_auc,
                    q.mean_detection_windows
                );
            }
        }
    }
    let _ = writeln!(s, "\nWhere the model loses to a baseline (F1, per fault type):");
    let mut losses = 0;
    for (t, q) in &c["graphsage"] {
        for base in ["robust", "rules"] {
            if let Some(b) = c[base].get(t) {
                if b.f1 > q.f1 + 1e-9 {
                    losses += 1;
                    let _ = writeln!(s, "- {t}: {base} {:.3} > graphsage {:.3}", b.f1, q.f1);
                }
            }
        }
    }
    if losses == 0 {
        let _ = writeln!(s, "- nowhere on this held-out set.");
    }
    let _ = writeln!(s, "\nDefinitions: an alarm is a run of consecutive windows flagging one element; it is true when one of its windows has that element faulty, false when none does (windows marked \"do not care\" for the element, a fault's partial first and last windows and the fault's neighbours, are not counted). An event is a fault on one element; it is detected when the element is flagged while faulty. Window FPR: share of quiet windows (nothing faulty, nothing \"do not care\") with any flag. PR-AUC: average precision over element-windows. The statistical detector's flags are recorded as the stream job computes them; the rule set is CPU > 90%, loss > 5% or RTT > 200 ms at either end of a link.");
    let _ = writeln!(s, "\nPromotion: {verdict}.");
    let _ = writeln!(
        s,
        "\n![precision-recall](pr.png)\n\nPrecision (vertical) against recall (horizontal) over all held-out element-windows: \
         the model in blue, the statistical detector in orange, the rule set in grey.\n\n![loss](loss.png)\n\n\
         Loss per epoch: training in blue, validation in orange (the weights of epoch {} are kept).",
        card.best_epoch
    );
    let _ = writeln!(
        s,
        "\nLoss per epoch (train / validation): {}",
        card.losses.iter().map(|l| format!("{:.4}/{:.4}", l.train, l.validation)).collect::<Vec<_>>().join(", ")
    );
    s
}
