//! The graph model in service, and its hot reload.
//!
//! `model.registry` names where the model comes from: `builtin` (the default model
//! shipped inside the binary), a registry directory (its champion, re-read at every
//! window so that a promotion is in service by the next one, without a restart), or
//! empty (the statistical detector alone). A champion that fails to load is reported
//! and the model in service stays.

use std::path::PathBuf;
use x0_training::{champion, GraphDetector};

#[derive(Debug)]
enum Source {
    Off,
    Builtin,
    Registry(PathBuf),
}

#[derive(Debug)]
pub(crate) struct ModelSlot {
    source: Source,
    current: Option<GraphDetector>,
    /// The champion name we last tried, so a broken one is reported once.
    tried: Option<String>,
}

impl ModelSlot {
    pub(crate) fn new(registry: &str) -> Self {
        let source = match registry.trim() {
            "" => Source::Off,
            "builtin" => Source::Builtin,
            dir => Source::Registry(PathBuf::from(dir)),
        };
        let current = match source {
            Source::Builtin => GraphDetector::builtin(),
            _ => None,
        };
        let mut slot = ModelSlot { source, current, tried: None };
        slot.refresh();
        slot
    }

    /// Picks up a newly promoted champion; returns its version when one came into service.
    pub(crate) fn refresh(&mut self) -> Option<String> {
        let Source::Registry(dir) = &self.source else { return None };
        let name = match champion(dir) {
            Ok(Some(name)) => name,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the model registry; keeping the model in service");
                return None;
            }
        };
        if self.current.as_ref().is_some_and(|m| m.version() == name) || self.tried.as_deref() == Some(&name) {
            return None;
        }
        self.tried = Some(name.clone());
        match GraphDetector::load(&dir.join(&name)) {
            Ok(m) => {
                tracing::info!(version = %name, "model in service");
                self.current = Some(m);
                Some(name)
            }
            Err(e) => {
                tracing::warn!(error = %e, version = %name, "champion does not load; keeping the model in service");
                None
            }
        }
    }

    pub(crate) fn current(&self) -> Option<&GraphDetector> {
        self.current.as_ref()
    }
}
