//! `/health/live` and `/health/ready`, for load balancers and Kubernetes probes.
//!
//! Live means the process serves HTTP (restart it if not). Ready means it should get traffic:
//! every model's weights are verified, each model loaded and warmed up by a forward pass, and no
//! shutdown has begun.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::state::{Readiness, ServerState};

#[derive(Tags)]
enum Tag {
    /// Probes for load balancers and Kubernetes.
    Health,
}

/// The body of a health answer.
#[derive(Object, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HealthBody {
    /// `live`, or the readiness: `starting`, `ready` or `draining`.
    pub status: String,
}

impl HealthBody {
    fn new(status: &str) -> Json<HealthBody> {
        Json(HealthBody { status: status.to_owned() })
    }
}

/// The answer of `/health/ready`.
#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// Ready for traffic.
    #[oai(status = 200)]
    Ready(Json<HealthBody>),
    /// Starting (loading the models) or draining (shutting down): send traffic elsewhere.
    #[oai(status = 503)]
    NotReady(Json<HealthBody>),
}

impl ReadyResponse {
    fn of(readiness: Readiness) -> ReadyResponse {
        match readiness {
            Readiness::Ready => ReadyResponse::Ready(HealthBody::new(readiness.as_str())),
            _ => ReadyResponse::NotReady(HealthBody::new(readiness.as_str())),
        }
    }
}

/// The health routes.
pub struct HealthApi {
    state: ServerState,
}

impl HealthApi {
    /// Health routes reporting on `state`.
    pub fn new(state: ServerState) -> HealthApi {
        HealthApi { state }
    }
}

#[OpenApi(tag = "Tag::Health")]
impl HealthApi {
    /// Liveness
    ///
    /// 200 as long as the process answers HTTP, from before the models are loaded until it exits.
    #[oai(path = "/health/live", method = "get")]
    async fn live(&self) -> Json<HealthBody> {
        HealthBody::new("live")
    }

    /// Readiness
    ///
    /// 200 once every model's weights are verified, and each model loaded and warmed up (each
    /// model's own readiness is at `/v2/models/{model}/ready`); 503 while starting
    /// and after a shutdown signal, while in-flight requests finish.
    #[oai(path = "/health/ready", method = "get")]
    async fn ready(&self) -> ReadyResponse {
        ReadyResponse::of(self.state.readiness())
    }
}
