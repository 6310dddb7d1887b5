//! The stream job's memory: finished incidents go into the knowledge base, and a new
//! candidate incident that matches a past one (same element, same kind, a similar
//! symptom signature, repaired by our reroute) is acted on without waiting for
//! `rca.confirm_windows`: a known fault with a known fix.
//!
//! Memory is an optimisation, never a dependency: when the knowledge base fails, the
//! job logs it, counts it, and decides as it would without one.

use crate::config::{Config, KnowledgeConfig};
use crate::stats::JobStats;
use std::path::Path;
use x0_knowledge::{signature, KnowledgeBase, KnowledgeError};
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

pub struct Memory {
    kb: Box<dyn KnowledgeBase>,
    config: KnowledgeConfig,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Memory {
    pub fn new(kb: Box<dyn KnowledgeBase>, config: KnowledgeConfig) -> Self {
        Memory { kb, config }
    }

    /// Stores a finished incident.
    pub fn remember(&self, incident: &Incident, stats: &JobStats) {
        // Incidents finish rarely: each is made durable at once.
        match self.kb.remember(incident, &signature(incident)).and_then(|()| self.kb.flush()) {
            Ok(()) => JobStats::bump(&stats.kb_remembered),
            Err(e) => {
                JobStats::bump(&stats.kb_errors);
                tracing::warn!(incident = %incident.incident_id, error = %e, "incident not stored in the knowledge base");
            }
        }
    }

    /// Why this candidate may be acted on now, if a past incident says so: same element,
    /// same kind, similar symptoms, and our reroute repaired it.
    pub fn recall(&self, candidate: &Incident, stats: &JobStats) -> Option<String> {
        let rc = candidate.root_cause.as_ref()?;
        // Only faults a reroute repairs; a suspect reporter is never acted on.
        if !matches!(rc.kind, RootCauseKind::LinkLoss | RootCauseKind::LinkDelay | RootCauseKind::NodeOverload) {
            return None;
        }
        let found = match self.kb.similar(&signature(candidate), 5, Some(&rc.element)) {
            Ok(found) => found,
            Err(e) => {
                JobStats::bump(&stats.kb_errors);
                tracing::warn!(error = %e, "knowledge base not consulted");
                return None;
            }
        };
        let past = found.into_iter().find(|s| {
            s.score >= self.config.recall_similarity
                && s.past.repaired()
                && s.past.incident.root_cause.as_ref().is_some_and(|p| p.kind == rc.kind)
        })?;
        JobStats::bump(&stats.kb_recalls);
        let p = &past.past.incident;
        Some(format!(
            "known incident: {} on {} (similarity {:.2}) was repaired by {} route change(s){}; acting on the first window",
            p.incident_id,
            rc.element,
            past.score,
            p.actions.len(),
            p.mttr_ms.map(|m| format!(" in {m} ms")).unwrap_or_default(),
        ))
    }
}
