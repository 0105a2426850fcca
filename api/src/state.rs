//! What every route shares: the model once it is loaded, and whether the server is ready.
//!
//! The socket opens before the weights are fetched and verified, so that liveness probes and
//! metrics answer during a long download. Until [`ServerState::serve_model`] is called the
//! model routes answer 503 and readiness says `starting`; after a shutdown signal readiness
//! says `draining` while in-flight requests finish.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use max_mnist_core::inference::InferenceEngine;

use crate::error::ApiError;
use crate::types::{LabelsResponse, ModelMetadataResponse};

/// Where the server is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Verifying the weights, loading the model or warming it up.
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

/// The loaded model: the engine running it and the answers about it that never change.
pub struct LoadedModel {
    /// The inference engine.
    pub engine: InferenceEngine,
    /// The answer of `/model/metadata`.
    pub metadata: ModelMetadataResponse,
    /// The answer of `/model/labels`.
    pub labels: LabelsResponse,
}

/// A cheap-to-clone handle on the shared state.
#[derive(Clone)]
pub struct ServerState {
    model: Arc<OnceLock<LoadedModel>>,
    readiness: Arc<AtomicU8>,
}

impl Default for ServerState {
    fn default() -> ServerState {
        ServerState { model: Arc::default(), readiness: Arc::new(AtomicU8::new(Readiness::Starting as u8)) }
    }
}

impl ServerState {
    /// Where the server is in its life.
    pub fn readiness(&self) -> Readiness {
        match self.readiness.load(Ordering::Acquire) {
            state if state == Readiness::Ready as u8 => Readiness::Ready,
            state if state == Readiness::Draining as u8 => Readiness::Draining,
            _ => Readiness::Starting,
        }
    }

    /// The model, or the 503 that model routes answer while it is loading.
    pub fn model(&self) -> Result<&LoadedModel, ApiError> {
        self.model.get().ok_or_else(|| ApiError::unavailable("the model is still loading; retry shortly"))
    }

    /// Starts serving `model` (verified, loaded and warmed up) and reports ready, unless a
    /// shutdown began meanwhile.
    pub fn serve_model(&self, model: LoadedModel) {
        if self.model.set(model).is_ok() {
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

    #[test]
    fn readiness_goes_from_starting_to_ready_to_draining() {
        let state = ServerState::default();
        assert_eq!(state.readiness(), Readiness::Starting);
        state.mark_ready();
        assert_eq!(state.readiness(), Readiness::Ready);
        state.start_draining();
        assert_eq!(state.readiness(), Readiness::Draining);
        assert_eq!(Readiness::Draining.as_str(), "draining");
    }

    #[test]
    fn a_model_loaded_after_a_shutdown_began_does_not_make_the_server_ready() {
        let state = ServerState::default();
        state.start_draining();
        state.mark_ready();
        assert_eq!(state.readiness(), Readiness::Draining);
    }
}
