//! Serving a model: the [`network`]s (this project's own, and users' TorchScript modules), the MAX-style
//! [`wrapper::ModelWrapper`] (`pre_process` → `predict` → `post_process`), the
//! [`preprocess`]ing each model's weights ask for, and the [`inference`] engine that runs the
//! three steps for the server, one dedicated thread per model. [`package`] turns a user's
//! TorchScript module into a bucket the server can verify and load.
//!
//! Nothing here knows about HTTP, and nothing here fetches or verifies files: the `artifacts`
//! crate hands over weights it verified, and the `api` crate maps [`Error`] to status codes.

mod device;
mod error;
pub mod inference;
pub mod network;
pub mod package;
pub mod preprocess;
pub mod wrapper;

pub use device::{best_device, enable_cuda, parse_device};
pub use error::{Error, LoadError, Result};
/// Where tensors live (CPU or a CUDA GPU); re-exported so callers need no direct tch dependency.
pub use tch::Device;
