//! The model side of max-mnist: the network, the MAX-style [`wrapper::ModelWrapper`]
//! (`pre_process` → `predict` → `post_process`), the dedicated [`inference`] thread,
//! the verified weights ([`bucket`], [`checksums`], [`archive`], [`artifact`]), the
//! MNIST [`data`] and the [`train`]ing loop.
//!
//! Nothing here knows about HTTP: the `api` crate maps [`Error`] to status codes.

pub mod archive;
pub mod artifact;
pub mod bucket;
pub mod checksums;
pub mod data;
mod device;
pub mod download;
mod error;
pub mod inference;
pub mod network;
pub mod preprocess;
pub mod train;
pub mod wrapper;

pub use device::{best_device, enable_cuda, parse_device};
pub use error::{Error, Result};
/// Where tensors live (CPU or a CUDA GPU); re-exported so callers need no direct tch dependency.
pub use tch::Device;
