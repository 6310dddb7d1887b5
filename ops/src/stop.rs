//! When a service stops: SIGINT, SIGTERM (what a service manager sends), or a reason of
//! its own (the stream job and the agent: their SVID files rotated).

use std::future::Future;

/// Waits for SIGINT, SIGTERM or `also`, whichever comes first; true when it was `also`.
pub async fn stop_requested(also: impl Future<Output = ()>) -> bool {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let sigterm = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => false,
        _ = sigterm => false,
        _ = also => true,
    }
}
