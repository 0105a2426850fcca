//! The HTTP surface of max-mnist: the MAX routes under `/model`, their request and response
//! types, the OpenAPI document and Swagger UI, the one place errors become status codes, the
//! drawing page at `/app` (a browser client of the same API, embedded in the binary), and the
//! start-up sequence that verifies the weights before a socket is opened.
//!
//! A request reads top to bottom: [`routes`] → [`limits`] (body cap) → `pre_process` on the
//! blocking pool → the inference thread (`predict`, `post_process`) → [`types`] → JSON.

pub mod app;
pub mod error;
pub mod limits;
pub mod routes;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod types;

pub use startup::{Application, StartupError};
