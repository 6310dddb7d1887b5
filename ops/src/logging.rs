//! Logs on stderr: text for a person at a terminal, JSON lines for a log pipeline.
//!
//! JSON lines carry, at the top level: `timestamp` (RFC 3339), `level`, `target` (the
//! module), `message`, and the event's own fields under stable names: `incident_id`,
//! `command_id`, `node`, `job_id`, `error`, … (see docs/ARCHITECTURE.md, "Operating").

use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; warnings and errors only unless `RUST_LOG` says more.
    #[default]
    Text,
    /// One JSON object per line, from `info` up unless `RUST_LOG` says otherwise.
    Json,
}

/// Noisy libraries kept quiet either way (qdrant-edge warns about process-wide flags
/// its public API cannot set).
const QUIET: &str = "netlink_packet_route=error,qdrant_edge=error,hyper=warn,h2=warn,datafusion=warn";

static JSON: AtomicBool = AtomicBool::new(false);

/// Installs the process's logger, filtered by `RUST_LOG` when set.
pub fn init_logging(format: LogFormat) {
    let default = match format {
        LogFormat::Text => format!("warn,{QUIET}"),
        LogFormat::Json => format!("info,{QUIET}"),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => {
            JSON.store(true, Ordering::Relaxed);
            builder.json().flatten_event(true).with_current_span(false).with_span_list(false).init()
        }
    }
}

/// Whether logs are JSON lines: then a process says what it would print to a person
/// as a log event instead (stderr stays one JSON object per line).
pub fn json_logs() -> bool {
    JSON.load(Ordering::Relaxed)
}
