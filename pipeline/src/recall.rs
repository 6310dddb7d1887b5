//! The stream job's recall of past incidents: finished incidents go into the knowledge base, and a new
//! candidate incident that matches a past one (same element, same kind, a similar
//! symptom signature, repaired by our reroute) is acted on without waiting for
//! `rca.confirm_windows`: a known fault with a known fix. When the latest such match
//! was instead rolled back (the reroute did not help), the repair is not repeated:
//! that incident ends without action, so the one after it is tried again.
//!
//! Recall is an optimisation, never a dependency: when the knowledge base fails, the
//! job logs it, counts it, and decides as it would without one.

use crate::config::{Config, KnowledgeConfig};
use crate::stats::JobStats;
use std::path::Path;
use x0_knowledge::{signature, KnowledgeBase, KnowledgeError, SimilarIncident};
use x0_schema::{Incident, RootCauseKind};

/// Opens the configured knowledge base (the embedded one under `data_dir` unless
/// configured elsewhere), or `None` when `knowledge.enabled` is false.
pub fn open_knowledge(config: &Config, data_dir: &Path) -> Result<Option<Box<dyn KnowledgeBase>>, KnowledgeError> {
    let k = &config.knowledge;
    if !k.enabled {
        return Ok(None);
    }
    x0_knowledge::open(Some(k.url.as_str()), &k.collection, &config.knowledge_dir(data_dir)).map(Some)
}

pub(crate) struct KnowledgeRecall {
    kb: Box<dyn KnowledgeBase>,
    config: KnowledgeConfig,
}

impl std::fmt::Debug for KnowledgeRecall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnowledgeRecall").field("config", &self.config).finish_non_exhaustive()
    }
}

impl KnowledgeRecall {
    pub(crate) fn new(kb: Box<dyn KnowledgeBase>, config: KnowledgeConfig) -> Self {
        KnowledgeRecall { kb, config }
    }

    /// Stores a finished incident.
    pub(crate) fn remember(&self, incident: &Incident, stats: &JobStats) {
        // Incidents finish rarely: each is made durable at once.
        match self.kb.remember(incident, &signature(incident)).and_then(|()| self.kb.flush()) {
            Ok(()) => JobStats::bump(&stats.kb_remembered),
            Err(e) => {
                JobStats::bump(&stats.kb_errors);
                tracing::warn!(incident = %incident.incident_id, error = %e, "incident not stored in the knowledge base");
            }
        }
    }

    /// Past incidents on the candidate's element, of its kind, at least
    /// `knowledge.recall_similarity` alike, most similar first.
    fn matches(&self, candidate: &Incident, stats: &JobStats) -> Vec<SimilarIncident> {
        let Some(rc) = candidate.root_cause.as_ref() else { return vec![] };
        // Only faults a reroute repairs; a suspect reporter is never acted on.
        if !matches!(rc.kind, RootCauseKind::LinkLoss | RootCauseKind::LinkDelay | RootCauseKind::NodeOverload) {
            return vec![];
        }
        match self.kb.similar(&signature(candidate), 5, Some(&rc.element)) {
            Ok(found) => found
                .into_iter()
                .filter(|s| {
                    s.score >= self.config.recall_similarity
                        && s.past.incident.root_cause.as_ref().is_some_and(|p| p.kind == rc.kind)
                })
                .collect(),
            Err(e) => {
                JobStats::bump(&stats.kb_errors);
                tracing::warn!(error = %e, "knowledge base not consulted");
                vec![]
            }
        }
    }

    /// Why this candidate may be acted on now, if a past incident says so: same element,
    /// same kind, similar symptoms, and our reroute repaired it.
    pub(crate) fn recall(&self, candidate: &Incident, stats: &JobStats) -> Option<String> {
        let rc = candidate.root_cause.as_ref()?;
        let past = self.matches(candidate, stats).into_iter().find(|s| s.past.repaired())?;
        JobStats::bump(&stats.kb_recalls);
        let p = &past.past.incident;
        Some(format!(
            "known incident: {} on {} (similarity {:.2}) was repaired by {} route change(s){}; acting on the first window",
            p.incident_id,
            rc.element,
            past.score,
            p.action_count(),
            p.mttr_ms.map(|m| format!(" in {m} ms")).unwrap_or_default(),
        ))
    }

    /// Why not to repeat the repair, if the latest matching incident's reroute was
    /// rolled back (it did not help).
    pub(crate) fn failed_before(&self, incident: &Incident, stats: &JobStats) -> Option<String> {
        let latest = self.matches(incident, stats).into_iter().max_by_key(|s| s.past.incident.detected_at)?;
        let p = &latest.past.incident;
        latest.past.rolled_back().then(|| {
            format!(
                "not acting: known incident {} on the same element (similarity {:.2}) was rerouted and the repair rolled back (it did not help); not repeating it this time",
                p.incident_id, latest.score
            )
        })
    }
}
