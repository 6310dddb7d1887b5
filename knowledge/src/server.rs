//! The server backend: a Qdrant server over gRPC (qdrant-client), for fleets that run
//! one knowledge base for many stream jobs.
//!
//! The client is async and the [`KnowledgeBase`] contract is blocking (the stream job
//! decides synchronously), so the client lives on its own thread with its own runtime
//! and each call is one round trip handed to that thread. Blocking a tokio worker for
//! a round trip would stall the job; a thread of its own keeps the two apart.

use crate::record::{from_payload, payload, point_id, KbStats, PastIncident};
use crate::{check_dim, KnowledgeBase, KnowledgeError, SimilarIncident, SIGNATURE_DIM};
use qdrant_client::qdrant::{
    point_id::PointIdOptions, vector_output::Vector, Condition, CreateCollectionBuilder, Distance, Filter,
    GetPointsBuilder, PointId, PointStruct, Query, QueryPointsBuilder, ScrollPointsBuilder, UpsertPointsBuilder,
    VectorParamsBuilder,
};
use qdrant_client::{Payload, Qdrant};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::mpsc;
use x0_schema::{Element, Incident};

type Job = Box<dyn FnOnce(&tokio::runtime::Runtime, &Qdrant) + Send>;

/// The server backend: a Qdrant server over gRPC (qdrant-client).
pub struct ServerKnowledge {
    jobs: mpsc::Sender<Job>,
    collection: String,
    url: String,
}

impl std::fmt::Debug for ServerKnowledge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKnowledge").field("url", &self.url).field("collection", &self.collection).finish()
    }
}

fn backend(e: impl std::fmt::Display) -> KnowledgeError {
    KnowledgeError::Backend(e.to_string())
}

fn id_string(id: Option<PointId>) -> String {
    match id.and_then(|p| p.point_id_options) {
        Some(PointIdOptions::Num(n)) => n.to_string(),
        Some(PointIdOptions::Uuid(u)) => u,
        None => "?".into(),
    }
}

fn past(
    id: Option<PointId>,
    payload: HashMap<String, qdrant_client::qdrant::Value>,
) -> Result<PastIncident, KnowledgeError> {
    let map: Map<String, Value> = payload.into_iter().map(|(k, v)| (k, v.into_json())).collect();
    from_payload(id_string(id), &map)
}

impl ServerKnowledge {
    /// Connects to the server at `url` (gRPC, e.g. `http://qdrant:6334`) and creates
    /// `collection` when it does not exist yet.
    pub fn connect(url: &str, collection: &str) -> Result<Self, KnowledgeError> {
        let client = Qdrant::from_url(url).build().map_err(backend)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(backend)?;
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("x0-knowledge".into())
            .spawn(move || {
                for job in rx {
                    job(&runtime, &client);
                }
            })
            .map_err(backend)?;
        let kb = ServerKnowledge { jobs, collection: collection.into(), url: url.into() };
        let name = kb.collection.clone();
        kb.call(move |c| async move {
            if !c.collection_exists(name.as_str()).await.map_err(backend)? {
                c.create_collection(
                    CreateCollectionBuilder::new(name.as_str())
                        .vectors_config(VectorParamsBuilder::new(SIGNATURE_DIM as u64, Distance::Cosine)),
                )
                .await
                .map_err(backend)?;
            }
            Ok(())
        })?;
        Ok(kb)
    }

    /// Runs one request on the client's thread and waits for its answer.
    fn call<T, F, Fut>(&self, request: F) -> Result<T, KnowledgeError>
    where
        T: Send + 'static,
        F: FnOnce(Qdrant) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, KnowledgeError>>,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |rt, client| {
            let _ = tx.send(rt.block_on(request(client.clone())));
        });
        self.jobs.send(job).map_err(|_| backend("the knowledge-base client thread has stopped"))?;
        rx.recv().map_err(|_| backend("the knowledge-base client thread has stopped"))?
    }
}

impl KnowledgeBase for ServerKnowledge {
    fn remember(&self, incident: &Incident, signature: &[f32]) -> Result<(), KnowledgeError> {
        check_dim(signature)?;
        let point =
            PointStruct::new(point_id(&incident.incident_id), signature.to_vec(), Payload::from(payload(incident)));
        let name = self.collection.clone();
        self.call(move |c| async move {
            c.upsert_points(UpsertPointsBuilder::new(name, vec![point]).wait(true)).await.map_err(backend)?;
            Ok(())
        })
    }

    fn similar(
        &self,
        signature: &[f32],
        k: usize,
        on: Option<&Element>,
    ) -> Result<Vec<SimilarIncident>, KnowledgeError> {
        check_dim(signature)?;
        let mut query = QueryPointsBuilder::new(self.collection.as_str())
            .query(Query::new_nearest(signature.to_vec()))
            .limit(k as u64)
            .with_payload(true);
        if let Some(e) = on {
            query = query.filter(Filter::must([Condition::matches("element", e.to_string())]));
        }
        let points = self.call(move |c| async move { Ok(c.query(query).await.map_err(backend)?.result) })?;
        points.into_iter().map(|p| Ok(SimilarIncident { score: p.score, past: past(p.id, p.payload)? })).collect()
    }

    fn get(&self, incident_id: &str) -> Result<Option<(PastIncident, Vec<f32>)>, KnowledgeError> {
        let request = GetPointsBuilder::new(self.collection.as_str(), vec![PointId::from(point_id(incident_id))])
            .with_payload(true)
            .with_vectors(true);
        let found = self.call(move |c| async move { Ok(c.get_points(request).await.map_err(backend)?.result) })?;
        let Some(p) = found.into_iter().next() else { return Ok(None) };
        let vector = match p.vectors.as_ref().and_then(|v| v.get_vector()) {
            Some(Vector::Dense(d)) => d.data,
            _ => vec![],
        };
        Ok(Some((past(p.id, p.payload)?, vector)))
    }

    fn stats(&self) -> Result<KbStats, KnowledgeError> {
        let mut stats = KbStats::default();
        let mut offset: Option<PointId> = None;
        loop {
            let mut request = ScrollPointsBuilder::new(self.collection.as_str()).limit(256).with_payload(true);
            if let Some(o) = offset.take() {
                request = request.offset(o);
            }
            let page = self.call(move |c| async move { c.scroll(request).await.map_err(backend) })?;
            for p in page.result {
                stats.add(&past(p.id, p.payload)?);
            }
            match page.next_page_offset {
                Some(next) => offset = Some(next),
                None => return Ok(stats),
            }
        }
    }

    /// Every write already waited for the server to apply it.
    fn flush(&self) -> Result<(), KnowledgeError> {
        Ok(())
    }
}
