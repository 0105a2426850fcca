//! What every route shares: the model repository (each configured model, once it is loaded)
//! and whether the server is ready.
//!
//! The socket opens before any weights are fetched and verified, so that liveness probes and
//! metrics answer during a long download. Each model's routes answer 503 until that model is
//! loaded and warmed up ([`ServerState::serve_model`]); the server as a whole reports ready
//! once every model is. After a shutdown signal readiness says `draining` while in-flight
//! requests finish.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use max_mnist_core::inference::InferenceEngine;

use crate::error::ApiError;
use crate::types::{LabelsResponse, ModelMetadataResponse};

/// Where the server is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Verifying the weights, loading the models or warming them up.
    Starting,
    /// Serving predictions.
    Ready,
    /// A shutdown signal arrived: finishing in-flight requests, taking no new connections.
    Draining,
}

impl Readiness {
    /// The word health responses use: `starting`, `ready` or `draining`.
    pub fn as_str(self) -> &'static str {
        match self {
            Readiness::Starting => "starting",
            Readiness::Ready => "ready",
            Readiness::Draining => "draining",
        }
    }
}

/// A model being served: its name, the engine running it and the answers about it that never
/// change.
pub struct ServedModel {
    /// Its name in the routes.
    pub name: String,
    /// Where it came from (a URL or a folder).
    pub bucket: String,
    /// The inference engine.
    pub engine: InferenceEngine,
    /// The answer of its metadata route.
    pub metadata: ModelMetadataResponse,
    /// The answer of its labels route.
    pub labels: LabelsResponse,
    /// When it was loaded (RFC 3339, UTC).
    pub loaded_at: String,
    /// Whether it runs on a GPU.
    pub on_gpu: bool,
}

/// A configured model: its name and bucket, and the model once it is loaded.
struct Slot {
    bucket: String,
    loaded: OnceLock<Arc<ServedModel>>,
}

/// The models this server serves, in the order they were configured, and the one the MAX
/// routes use by default.
struct Repository {
    names: Vec<String>,
    slots: HashMap<String, Slot>,
    default: String,
}

/// A cheap-to-clone handle on the shared state.
#[derive(Clone)]
pub struct ServerState {
    repository: Arc<Repository>,
    readiness: Arc<AtomicU8>,
}

impl ServerState {
    /// The state of a server that will serve `models` (name and bucket, in order), `default`
    /// being the one the MAX routes use; none is loaded yet.
    pub fn new(models: &[(String, String)], default: &str) -> ServerState {
        let slots = models
            .iter()
            .map(|(name, bucket)| (name.clone(), Slot { bucket: bucket.clone(), loaded: OnceLock::new() }))
            .collect();
        let repository = Repository {
            names: models.iter().map(|(name, _)| name.clone()).collect(),
            slots,
            default: default.to_owned(),
        };
        ServerState { repository: Arc::new(repository), readiness: Arc::new(AtomicU8::new(Readiness::Starting as u8)) }
    }

    /// Where the server is in its life: ready once every model is.
    pub fn readiness(&self) -> Readiness {
        match self.readiness.load(Ordering::Acquire) {
            state if state == Readiness::Ready as u8 => Readiness::Ready,
            state if state == Readiness::Draining as u8 => Readiness::Draining,
            _ => Readiness::Starting,
        }
    }

    /// Whether `name` is loaded and the server is not draining; `None` for an unknown model.
    pub fn model_readiness(&self, name: &str) -> Option<Readiness> {
        let slot = self.repository.slots.get(name)?;
        Some(match self.readiness() {
            Readiness::Draining => Readiness::Draining,
            _ if slot.loaded.get().is_some() => Readiness::Ready,
            _ => Readiness::Starting,
        })
    }

    /// The configured models' names, in order.
    pub fn model_names(&self) -> &[String] {
        &self.repository.names
    }

    /// The name of the model the MAX routes serve.
    pub fn default_model_name(&self) -> &str {
        &self.repository.default
    }

    /// Where `name` comes from, if it is configured.
    pub fn bucket(&self, name: &str) -> Option<&str> {
        self.repository.slots.get(name).map(|slot| slot.bucket.as_str())
    }

    /// The model called `name` (the default model when `None`): a 404 naming the models
    /// served when there is no such model, a 503 while it is still loading.
    pub fn model(&self, name: Option<&str>) -> Result<Arc<ServedModel>, ApiError> {
        let name = name.unwrap_or(&self.repository.default);
        let slot = self.repository.slots.get(name).ok_or_else(|| {
            ApiError::not_found(format!("no model `{name}`; this server serves {}", self.repository.names.join(", ")))
        })?;
        slot.loaded
            .get()
            .cloned()
            .ok_or_else(|| ApiError::unavailable(format!("the model `{name}` is still loading; retry shortly")))
    }

    /// The model called `name` when it serves `version` (the first 12 hex digits of its
    /// network file's SHA-512); as [`ServerState::model`], and a 404 for another version.
    pub fn model_version(&self, name: &str, version: &str) -> Result<Arc<ServedModel>, ApiError> {
        let served = self.model(Some(name))?;
        if served.metadata.version != version {
            return Err(ApiError::not_found(format!(
                "model `{name}` has no version `{version}`; it serves `{}`",
                served.metadata.version
            )));
        }
        Ok(served)
    }

    /// Starts serving `model` (verified, loaded and warmed up); once every model is served, the
    /// server reports ready, unless a shutdown began meanwhile. A model that is not configured
    /// is dropped.
    pub fn serve_model(&self, model: ServedModel) {
        if let Some(slot) = self.repository.slots.get(&model.name) {
            let _ = slot.loaded.set(Arc::new(model));
        }
        if self.repository.slots.values().all(|slot| slot.loaded.get().is_some()) {
            self.mark_ready();
        }
    }

    /// Starting becomes Ready; Draining stays Draining.
    fn mark_ready(&self) {
        let _ = self.readiness.compare_exchange(
            Readiness::Starting as u8,
            Readiness::Ready as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Reports not ready from now on: the server is shutting down.
    pub fn start_draining(&self) {
        self.readiness.store(Readiness::Draining as u8, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> ServerState {
        ServerState::new(&[("a".into(), "bucket-a".into()), ("b".into(), "bucket-b".into())], "b")
    }

    #[test]
    fn readiness_goes_from_starting_to_ready_to_draining() {
        let state = state();
        assert_eq!(state.readiness(), Readiness::Starting);
        state.mark_ready();
        assert_eq!(state.readiness(), Readiness::Ready);
        state.start_draining();
        assert_eq!(state.readiness(), Readiness::Draining);
        assert_eq!(Readiness::Draining.as_str(), "draining");
        assert_eq!(state.model_readiness("a"), Some(Readiness::Draining));
    }

    #[test]
    fn a_model_loaded_after_a_shutdown_began_does_not_make_the_server_ready() {
        let state = state();
        state.start_draining();
        state.mark_ready();
        assert_eq!(state.readiness(), Readiness::Draining);
    }

    #[test]
    fn unknown_models_are_404s_naming_the_served_ones_and_loading_ones_503s() {
        let state = state();
        assert_eq!(state.model_names(), ["a", "b"]);
        assert_eq!(state.default_model_name(), "b");
        assert_eq!(state.bucket("a"), Some("bucket-a"));
        assert_eq!(state.model_readiness("a"), Some(Readiness::Starting));
        assert_eq!(state.model_readiness("c"), None);
        assert!(matches!(state.model(Some("c")), Err(ApiError::NotFound(body)) if body.0.message.contains("a, b")));
        assert!(matches!(state.model(None), Err(ApiError::Unavailable(body, _)) if body.0.message.contains("`b`")));
    }
}
