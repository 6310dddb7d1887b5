//! The knowledge base from the outside: the `kb similar` / `kb stats` commands.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use x0_knowledge::KnowledgeBase;
use x0_pipeline::Config;

/// A read view of the configured knowledge base. The embedded shard belongs to the
/// job that writes it, so the commands read a copy of its directory (its WAL included:
/// nothing acknowledged is missed) and never touch the original.
pub struct KbView {
    kb: Box<dyn KnowledgeBase>,
    _copy: Option<tempfile::TempDir>,
    /// Where the knowledge base lives (directory or server and collection).
    pub location: String,
}

impl KbView {
    /// Opens a read view of the configured knowledge base for `data_dir`.
    pub fn open(config: &Config, data_dir: &Path) -> Result<Self> {
        let k = &config.knowledge;
        let (copy, location) = if k.url.is_empty() {
            let dir = config.knowledge_dir(data_dir);
            anyhow::ensure!(
                dir.join("edge_config.json").is_file(),
                "no knowledge base in {} yet (the stream job creates it when its first incident finishes)",
                dir.display()
            );
            let copy = tempfile::tempdir().context("making a temporary directory")?;
            copy_dir(&dir, copy.path()).with_context(|| format!("copying {}", dir.display()))?;
            (Some(copy), dir.display().to_string())
        } else {
            (None, format!("{} ({})", k.url, k.collection))
        };
        let dir = copy.as_ref().map_or(data_dir, |c| c.path());
        let kb = x0_knowledge::open(Some(&k.url), &k.collection, dir)?;
        Ok(KbView { kb, _copy: copy, location })
    }

    /// The knowledge base.
    pub fn kb(&self) -> &dyn KnowledgeBase {
        self.kb.as_ref()
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// `kb similar ID`: the stored incidents closest to incident `id`, as a table.
pub fn similar(view: &KbView, id: &str, k: usize, same_element: bool) -> Result<String> {
    let (me, signature) = view.kb().get(id)?.with_context(|| {
        format!("incident {id} is not in the knowledge base at {} (finished incidents are stored)", view.location)
    })?;
    let element = me.incident.root_cause.as_ref().map(|rc| rc.element.clone());
    let on = element.as_ref().filter(|_| same_element);
    let found = view.kb().similar(&signature, k + 1, on)?;
    let mut out = String::new();
    let cause = |i: &x0_schema::Incident| {
        i.root_cause
            .as_ref()
            .map_or("-".into(), |rc| format!("{} {} ({:.2})", rc.kind.as_str(), rc.element, rc.confidence))
    };
    out.push_str(&format!("{id}: {}, outcome {}\n", cause(&me.incident), me.incident.outcome.as_str()));
    out.push_str(&format!(
        "{:<8} {:<24} {:<38} {:<10} {:>7} {:>7} {:>8}\n",
        "similar", "incident", "cause", "outcome", "actions", "failed", "mttr_ms"
    ));
    for s in found.iter().filter(|s| s.past.incident.incident_id != id).take(k) {
        let i = &s.past.incident;
        out.push_str(&format!(
            "{:<8.3} {:<24} {:<38} {:<10} {:>7} {:>7} {:>8}\n",
            s.score,
            i.incident_id,
            cause(i),
            i.outcome.as_str(),
            i.actions.len(),
            s.past.failed_actions(),
            i.mttr_ms.map_or("-".into(), |m| m.to_string()),
        ));
    }
    Ok(out)
}

/// `kb stats`: how many incidents, of which kinds and outcomes.
pub fn stats(view: &KbView) -> Result<String> {
    let s = view.kb().stats()?;
    let mut out = format!(
        "knowledge base {}: {} incident(s), {} repaired by their reroute\n",
        view.location, s.incidents, s.repaired
    );
    for (title, map) in [("by root cause", &s.by_kind), ("by outcome", &s.by_outcome)] {
        out.push_str(&format!("{title}:\n"));
        for (k, v) in map {
            out.push_str(&format!("  {k:<18} {v}\n"));
        }
    }
    Ok(out)
}
