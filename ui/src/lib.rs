//! The web dashboard of a running stream job: the mesh as it looks window by window,
//! the incidents with their evidence, hypotheses, plan, commands and verification,
//! the history (MTTD, MTTR, flapping links, by the saved DataFusion queries) and the
//! model in service.
//!
//! Data enters from the job's [`LiveView`] (each window's look of the mesh, each
//! incident as it changes) and from the history files; it leaves as a single page
//! (hand-written SVG and JavaScript, embedded in the binary, nothing fetched from
//! elsewhere) and a small JSON API, with live updates as Server-Sent Events. It is
//! served by the job's own `/metrics` listener (`x0_ops::Endpoint::serve_with`):
//!
//! ```no_run
//! # async fn serve(job: x0_pipeline::StreamJob, config: x0_pipeline::Config) {
//! let live = x0_pipeline::LiveView::new(job.topology());
//! let ui = x0_ui::Dashboard::new(job.topology(), live.clone(), job.stats(), config.data_dir(), &config.model.registry);
//! let job = job.live(live);
//! // Endpoint::serve_with(addr, registry, ready, ui.router()) ...
//! # }
//! ```

mod assets;
mod history;
mod layout;
mod model_card;
mod wire;

pub use layout::DETAIL_MAX;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::Stream;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use x0_pipeline::{JobStats, LiveEvent, LiveView};
use x0_schema::Topology;

/// The dashboard of one job: build it once, serve its [`router`](Self::router).
#[derive(Debug, Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    topo: Topology,
    map: layout::MeshMap,
    /// `/api/mesh`, computed once (the inventory does not change while the job runs).
    mesh_json: String,
    live: Arc<LiveView>,
    stats: Arc<JobStats>,
    data_dir: PathBuf,
    registry: String,
    /// Tells a reconnecting page whether it still talks to the same job.
    instance: String,
}

impl Dashboard {
    /// The dashboard of a job over `topo`, fed by `live`, with its history in `data_dir`
    /// and its model from `registry` (`model.registry`: "builtin", a directory, or "").
    pub fn new(topo: &Topology, live: Arc<LiveView>, stats: Arc<JobStats>, data_dir: PathBuf, registry: &str) -> Self {
        let map = layout::MeshMap::new(topo);
        let instance = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let mesh_json = wire::mesh_json(topo, &map, &instance);
        Dashboard {
            inner: Arc::new(Inner {
                topo: topo.clone(),
                map,
                mesh_json,
                live,
                stats,
                data_dir,
                registry: registry.to_string(),
                instance,
            }),
        }
    }

    /// The page and its API, to merge into the job's listener.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(|| async { assets::page("index.html") }))
            .route("/ui/{file}", get(|Path(file): Path<String>| async move { assets::page(&file) }))
            .route("/api/mesh", get(mesh))
            .route("/api/state", get(state))
            .route("/api/events", get(events))
            .route("/api/routes", get(routes))
            .route("/api/incidents/{id}", get(incident))
            .route("/api/history", get(history))
            .route("/api/model", get(model))
            .route("/api/model/pr.png", get(pr_curve))
            .with_state(self.clone())
    }
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body).into_response()
}

async fn mesh(State(d): State<Dashboard>) -> Response {
    json(d.inner.mesh_json.clone())
}

/// What a page needs on (re)connecting: the last frame and every incident kept.
async fn state(State(d): State<Dashboard>) -> Response {
    let i = &d.inner;
    let frame = i.live.latest_frame().map(|f| wire::frame_json(&f, &i.map, &i.topo));
    let incidents: Vec<serde_json::Value> = i.live.incidents().iter().map(|v| wire::incident_summary(v)).collect();
    json(
        serde_json::json!({
            "instance": i.instance,
            "frame": frame,
            "incidents": incidents,
            "windows_closed": JobStats::get(&i.stats.windows_closed),
        })
        .to_string(),
    )
}

/// Live updates: a `window` event per closed window, an `incident` event per change.
async fn events(State(d): State<Dashboard>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = d.inner.live.subscribe();
    let stream = futures::stream::unfold((rx, d), |(mut rx, d)| async move {
        let event = match rx.recv().await {
            Ok(LiveEvent::Window(f)) => {
                Event::default().event("window").data(wire::frame_json(&f, &d.inner.map, &d.inner.topo).to_string())
            }
            Ok(LiveEvent::Incident(v)) => {
                Event::default().event("incident").data(wire::incident_summary(&v).to_string())
            }
            // A page too slow for the job skips frames; it is told how many.
            Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), (rx, d)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The routes the job wants on the nodes beyond their baselines (what their kernels
/// should hold), by node and destination.
async fn routes(State(d): State<Dashboard>) -> Response {
    json(serde_json::to_string(&*d.inner.live.wanted_routes()).unwrap_or_else(|_| "[]".into()))
}

async fn incident(State(d): State<Dashboard>, Path(id): Path<String>) -> Response {
    match d.inner.live.incident(&id) {
        Some(v) => json(wire::incident_detail(&v, &d.inner.topo, &d.inner.map).to_string()),
        None => {
            (StatusCode::NOT_FOUND, format!("no incident {id} in this job's memory; see the history\n")).into_response()
        }
    }
}

async fn history(State(d): State<Dashboard>) -> Response {
    match history::report(&d.inner.data_dir).await {
        Ok(v) => json(v.to_string()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("history: {e}\n")).into_response(),
    }
}

async fn model(State(d): State<Dashboard>) -> Response {
    json(model_card::card(&d.inner.registry, &d.inner.stats.model_version()).to_string())
}

async fn pr_curve(State(d): State<Dashboard>) -> Response {
    match model_card::pr_png(&d.inner.registry, &d.inner.stats.model_version()) {
        Some(png) => ([(header::CONTENT_TYPE, "image/png")], png).into_response(),
        None => (StatusCode::NOT_FOUND, "no PR curve for the model in service\n").into_response(),
    }
}
