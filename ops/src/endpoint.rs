//! The HTTP listener of `/metrics`, `/healthz` and `/readyz` (axum: a kept HTTP
//! stack, the one the web UI will share).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Whether the process is ready for its work: `Ok`, or the reasons it is not (each one
/// line of `/readyz`'s 503 body).
pub type ReadyCheck = Arc<dyn Fn() -> Result<(), Vec<String>> + Send + Sync>;

/// The OpenMetrics text exposition, which Prometheus negotiates and accepts.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone)]
struct Served {
    registry: Arc<Registry>,
    ready: ReadyCheck,
}

/// A running listener; dropping it stops serving.
#[derive(Debug)]
pub struct Endpoint {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Endpoint {
    /// Binds `addr` (port 0: any free port) and serves `registry` and `ready` there
    /// on the current runtime until dropped.
    pub async fn serve(addr: &str, registry: Registry, ready: ReadyCheck) -> std::io::Result<Endpoint> {
        Self::serve_with(addr, registry, ready, Router::new()).await
    }

    /// As [`serve`](Self::serve), with `more` routes (the web UI) on the same listener.
    pub async fn serve_with(
        addr: &str,
        registry: Registry,
        ready: ReadyCheck,
        more: Router,
    ) -> std::io::Result<Endpoint> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .with_state(Served { registry: Arc::new(registry), ready })
            .merge(more);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics endpoint stopped");
            }
        });
        Ok(Endpoint { addr, task })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits until the listener is closed (the address can be bound
    /// again at once, which dropping does not promise).
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn metrics(State(s): State<Served>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        Ok(()) => (StatusCode::OK, [(header::CONTENT_TYPE, OPENMETRICS)], body),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain")], format!("{e}\n")),
    }
}

async fn readyz(State(s): State<Served>) -> impl IntoResponse {
    match (s.ready)() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(reasons) => {
            (StatusCode::SERVICE_UNAVAILABLE, reasons.iter().map(|r| format!("not ready: {r}\n")).collect())
        }
    }
}

/// One blocking HTTP/1.0 GET of `path` on `addr`: the status and the body. Enough
/// to scrape an endpoint of ours from a test or a script (no TLS, no redirects).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        http_get(addr, path).expect("GET")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_metrics_health_and_readiness() {
        let mut registry = Registry::default();
        let c = Counter::<u64>::default();
        registry.register("x0_test_things", "Things counted", c.clone());
        c.inc_by(3);
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let ready: ReadyCheck =
            Arc::new(move || if f.load(Ordering::Relaxed) { Ok(()) } else { Err(vec!["warming up".into()]) });
        let ep = Endpoint::serve("127.0.0.1:0", registry, ready).await.expect("serve");
        let addr = ep.addr();
        let (m, h, r1) =
            tokio::task::spawn_blocking(move || (get(addr, "/metrics"), get(addr, "/healthz"), get(addr, "/readyz")))
                .await
                .expect("join");
        assert_eq!(m.0, 200);
        assert!(m.1.contains("x0_test_things_total 3"), "{}", m.1);
        assert_eq!(h, (200, "ok\n".into()));
        assert_eq!(r1, (503, "not ready: warming up\n".into()));
        flag.store(true, Ordering::Relaxed);
        let r2 = tokio::task::spawn_blocking(move || get(addr, "/readyz")).await.expect("join");
        assert_eq!(r2, (200, "ready\n".into()));
    }
}
