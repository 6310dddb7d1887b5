//! The incident knowledge base: resolved incidents stored with a signature vector so
//! that the planner can find similar past incidents and prefer what worked.
//!
//! One contract ([`KnowledgeBase`]), two backends: [`EdgeKnowledge`], a Qdrant shard
//! embedded in the process and kept in a local directory (qdrant-edge, the default),
//! and [`ServerKnowledge`], a Qdrant server over gRPC (qdrant-client, when
//! `knowledge.url` is set). `tests/conformance.rs` runs one suite against both.

mod edge;
mod record;
mod server;
mod signature;

pub use edge::EdgeKnowledge;
pub use record::{point_id, KbStats, PastIncident};
pub use server::ServerKnowledge;
pub use signature::{signature, SIGNATURE_DIM};

use thiserror::Error;
use x0_schema::{Element, Incident};

/// Errors of a knowledge-base backend.
#[derive(Debug, Error)]
pub enum KnowledgeError {
    /// The backend (embedded store or server) failed; a retry may help.
    #[error("knowledge base backend: {0}")]
    Backend(String),
    /// A stored point's payload is not an incident this version understands.
    #[error("knowledge base record {id}: {reason}")]
    Corrupt {
        /// The point's id.
        id: String,
        /// What is wrong with its payload.
        reason: String,
    },
    /// A signature of the wrong length.
    #[error("signature has {got} dimensions, the knowledge base stores {want}")]
    Dimension {
        /// The signature's length.
        got: usize,
        /// The length the collection stores.
        want: usize,
    },
}

/// A past incident found similar to a query, with its cosine similarity (1 is identical).
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarIncident {
    /// The stored incident.
    pub past: PastIncident,
    /// Cosine similarity of its signature to the query's.
    pub score: f32,
}

/// What every knowledge-base backend does. Calls block; each is one small request.
pub trait KnowledgeBase: Send + Sync {
    /// Stores an incident under its signature. Storing the same incident again replaces
    /// it (the id is derived from the incident id), so a replay stores nothing twice.
    fn remember(&self, incident: &Incident, signature: &[f32]) -> Result<(), KnowledgeError>;
    /// The `k` stored incidents closest to `signature`, closest first; only those whose
    /// root cause is `on` when given.
    fn similar(
        &self,
        signature: &[f32],
        k: usize,
        on: Option<&Element>,
    ) -> Result<Vec<SimilarIncident>, KnowledgeError>;
    /// A stored incident and its signature as stored (normalised to unit length).
    fn get(&self, incident_id: &str) -> Result<Option<(PastIncident, Vec<f32>)>, KnowledgeError>;
    /// Counts by root-cause kind and outcome.
    fn stats(&self) -> Result<KbStats, KnowledgeError>;
    /// Writes pending changes to durable storage.
    fn flush(&self) -> Result<(), KnowledgeError>;
}

/// Opens the configured knowledge base: a Qdrant server when `url` is set, otherwise
/// the embedded shard in `dir` (created on first use).
pub fn open(
    url: Option<&str>,
    collection: &str,
    dir: &std::path::Path,
) -> Result<Box<dyn KnowledgeBase>, KnowledgeError> {
    match url.filter(|u| !u.is_empty()) {
        Some(url) => Ok(Box::new(ServerKnowledge::connect(url, collection)?)),
        None => Ok(Box::new(EdgeKnowledge::open(dir)?)),
    }
}

fn check_dim(signature: &[f32]) -> Result<(), KnowledgeError> {
    if signature.len() == SIGNATURE_DIM {
        Ok(())
    } else {
        Err(KnowledgeError::Dimension { got: signature.len(), want: SIGNATURE_DIM })
    }
}
