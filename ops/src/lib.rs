//! What an operator watches a running x0tta6bl4 process through, the same for the
//! stream job and every node agent:
//!
//! - [`Endpoint`]: one HTTP listener serving Prometheus `/metrics` (the OpenMetrics
//!   text of a `prometheus-client` registry), `/healthz` (the process answers) and
//!   `/readyz` (the process's own [`ReadyCheck`]: 200, or 503 with its reasons);
//! - [`init_logging`]: logs on stderr, as text for people or as JSON lines with
//!   stable field names ([`LogFormat`]) for a log pipeline;
//! - [`stop_requested`]: SIGINT, SIGTERM or the process's own reason to stop.
//!
//! Each process builds its own registry (its metrics are its crate's business); this
//! crate only serves them.

mod endpoint;
mod logging;
mod stop;

pub use endpoint::{http_get, Endpoint, ReadyCheck};
pub use logging::{init_logging, json_logs, LogFormat};
pub use prometheus_client;
pub use stop::stop_requested;
