//! The HTTP surface of max-mnist: the MAX routes under `/model`, their request and response
//! types, the OpenAPI document and Swagger UI, the one place errors become status codes, the
//! drawing page at `/app` (a browser client of the same API, embedded in the binary), and the
//! start-up sequence that verifies the weights before a socket is opened.
//!
//! A request reads top to bottom: [`routes`] → [`limits`] (body cap) → [`upload`] (the images
//! of a multipart form or a raw body) → `pre_process` on the preprocessing threads → the
//! inference thread (`predict`, `post_process`, batched across requests) → [`types`] → JSON.

pub mod app;
pub mod auth;
pub mod error;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod routes;
pub mod server;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod types;
pub mod upload;
pub mod v2;

pub use startup::{Application, StartupError};
