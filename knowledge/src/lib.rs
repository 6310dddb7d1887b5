//! The incident knowledge base: resolved incidents stored with a signature vector so
//! that the planner can find similar past incidents and prefer what worked.
//!
//! This crate holds the contract every backend implements ([`KnowledgeBase`]); the
//! embedded qdrant-edge backend and the Qdrant server backend arrive with their own
//! issue, each checked by one conformance suite. The stream job does not consult a
//! knowledge base yet.

use thiserror::Error;
use x0_schema::Incident;

/// Errors of a knowledge-base backend.
#[derive(Debug, Error)]
pub enum KnowledgeError {
    /// The backend (embedded store or server) failed; a retry may help.
    #[error("knowledge base backend: {0}")]
    Backend(String),
}

/// A past incident found similar to a query, with its similarity (higher is closer).
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarIncident {
    pub incident: Incident,
    pub score: f32,
}

/// What every knowledge-base backend does.
pub trait KnowledgeBase {
    /// Stores a resolved incident under its signature vector.
    fn remember(&mut self, incident: &Incident, signature: &[f32]) -> Result<(), KnowledgeError>;
    /// The `k` stored incidents whose signatures are closest to `signature`.
    fn similar(&self, signature: &[f32], k: usize) -> Result<Vec<SimilarIncident>, KnowledgeError>;
    /// How many incidents are stored.
    fn len(&self) -> Result<usize, KnowledgeError>;
    /// Whether nothing is stored yet.
    fn is_empty(&self) -> Result<bool, KnowledgeError> {
        Ok(self.len()? == 0)
    }
}
