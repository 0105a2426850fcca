//! The HTTP surface of max-mnist: the MAX routes under `/model` (the default model) and
//! `/models/{model}` (every model), the Open Inference Protocol under `/v2`, TorchServe's
//! inference API ([`torchserve`]: `/predictions/{model}`, `/ping`), health and metrics, their request and response types, the OpenAPI document (with the served models'
//! names) and Swagger UI, the one place errors become status codes, the drawing page at `/app`
//! (a browser client of the same API, embedded in the binary), the accept loop, and the
//! start-up sequence that serves the probes at once and each model once its weights are
//! verified.
//!
//! A request reads top to bottom: [`server`] (the connection: header timeout, connection cap)
//! → [`telemetry`] (request id, log line, metrics, labelled by the documented [`paths`]) → the
//! deadline ([`limits`]) → [`auth`] → the body cap ([`limits`]) → [`routes`], [`v2`] or [`torchserve`] → the
//! model, looked up by name in the repository ([`state`]) → [`upload`] (the images of a
//! multipart form or a raw body) → that model's engine: `pre_process` on its preprocessing
//! threads, then its inference thread (`predict`, `post_process`, batched across requests) →
//! [`types`] → JSON.

pub mod app;
pub mod auth;
pub mod error;
pub mod health;
pub mod limits;
pub mod loader;
pub mod management;
pub mod metrics;
pub mod model_version;
pub mod paths;
pub mod routes;
pub mod server;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod torchserve;
pub mod types;
pub mod upload;
pub mod v2;

pub use startup::{Application, StartupError};
