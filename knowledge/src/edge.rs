//! The embedded backend: a real Qdrant shard (qdrant-edge) in this process, stored in a
//! local directory. No server to run; the default.

use crate::record::{from_payload, payload, point_id, KbStats, PastIncident};
use crate::{check_dim, KnowledgeBase, KnowledgeError, SimilarIncident, SIGNATURE_DIM};
use qdrant_edge::{
    Condition, Distance, EdgeConfigBuilder, EdgeShard, EdgeVectorParamsBuilder, FieldCondition, Filter, Match,
    NamedQuery, PointId, PointInsertOperations, PointOperations, PointStruct, QueryEnum, QueryRequest, ScoringQuery,
    ScrollRequest, UpdateOperation, VectorStructInternal, WithPayloadInterface, WithVector,
};
use std::path::Path;
use x0_schema::{Element, Incident};

/// The vector name signatures are stored under.
const VECTOR: &str = "signature";

/// The embedded backend: a Qdrant shard (qdrant-edge) in a local directory.
pub struct EdgeKnowledge {
    shard: EdgeShard,
}

impl std::fmt::Debug for EdgeKnowledge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeKnowledge").field("path", &self.shard.path()).finish()
    }
}

fn backend(e: impl std::fmt::Display) -> KnowledgeError {
    KnowledgeError::Backend(e.to_string())
}

fn on_element(element: &Element) -> Filter {
    let key = "element".try_into().expect("a plain key is a valid JSON path");
    Filter::new_must(Condition::Field(FieldCondition::new_match(key, Match::from(element.to_string()))))
}

impl EdgeKnowledge {
    /// Opens the shard in `dir`, creating it (and the directory) on first use.
    pub fn open(dir: &Path) -> Result<Self, KnowledgeError> {
        std::fs::create_dir_all(dir).map_err(|e| backend(format!("{}: {e}", dir.display())))?;
        let config = EdgeConfigBuilder::new()
            .vector(VECTOR, EdgeVectorParamsBuilder::new(SIGNATURE_DIM, Distance::Cosine).build())
            .build();
        let existing = dir.join("edge_config.json").exists();
        let shard = if existing { EdgeShard::load(dir, None) } else { EdgeShard::new(dir, config) }
            .map_err(|e| backend(format!("{}: {e}", dir.display())))?;
        Ok(EdgeKnowledge { shard })
    }

    fn past(id: PointId, payload: Option<qdrant_edge::Payload>) -> Result<PastIncident, KnowledgeError> {
        let payload =
            payload.ok_or_else(|| KnowledgeError::Corrupt { id: id.to_string(), reason: "no payload".into() })?;
        from_payload(id.to_string(), &payload.0)
    }
}

impl KnowledgeBase for EdgeKnowledge {
    fn remember(&self, incident: &Incident, signature: &[f32]) -> Result<(), KnowledgeError> {
        check_dim(signature)?;
        let vectors = qdrant_edge::Vectors::new_named([(VECTOR, signature.to_vec())]);
        let point = PointStruct::new(point_id(&incident.incident_id), vectors, payload(incident).into());
        let op = PointOperations::UpsertPoints(PointInsertOperations::PointsList(vec![point.into()]));
        self.shard.update(UpdateOperation::PointOperation(op)).map_err(backend)
    }

    fn similar(
        &self,
        signature: &[f32],
        k: usize,
        on: Option<&Element>,
    ) -> Result<Vec<SimilarIncident>, KnowledgeError> {
        check_dim(signature)?;
        let request = QueryRequest {
            prefetches: vec![],
            query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                query: signature.to_vec().into(),
                using: Some(VECTOR.into()),
            }))),
            filter: on.map(on_element),
            score_threshold: None,
            limit: k,
            offset: 0,
            params: None,
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Bool(true),
        };
        let points = self.shard.query(request).map_err(backend)?;
        points.into_iter().map(|p| Ok(SimilarIncident { score: p.score, past: Self::past(p.id, p.payload)? })).collect()
    }

    fn get(&self, incident_id: &str) -> Result<Option<(PastIncident, Vec<f32>)>, KnowledgeError> {
        let id = PointId::from(point_id(incident_id));
        let found = self
            .shard
            .retrieve(&[id], Some(WithPayloadInterface::Bool(true)), Some(WithVector::Bool(true)))
            .map_err(backend)?;
        let Some(record) = found.into_iter().next() else { return Ok(None) };
        let vector = match record.vector {
            Some(VectorStructInternal::Named(mut named)) => match named.remove(VECTOR) {
                Some(qdrant_edge::VectorInternal::Dense(v)) => v,
                _ => vec![],
            },
            Some(VectorStructInternal::Single(v)) => v,
            _ => vec![],
        };
        Ok(Some((Self::past(record.id, record.payload)?, vector)))
    }

    fn stats(&self) -> Result<KbStats, KnowledgeError> {
        let mut stats = KbStats::default();
        let mut offset = None;
        loop {
            let (page, next) = self
                .shard
                .scroll(ScrollRequest {
                    offset,
                    limit: Some(256),
                    filter: None,
                    with_payload: Some(WithPayloadInterface::Bool(true)),
                    with_vector: WithVector::Bool(false),
                    order_by: None,
                })
                .map_err(backend)?;
            for r in page {
                stats.add(&Self::past(r.id, r.payload)?);
            }
            match next {
                Some(n) => offset = Some(n),
                None => return Ok(stats),
            }
        }
    }

    fn flush(&self) -> Result<(), KnowledgeError> {
        self.shard.flush();
        Ok(())
    }
}
