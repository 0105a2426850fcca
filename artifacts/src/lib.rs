//! Verified model artifacts, MAX style: a model lives as a gzipped tar in a [`bucket`] (an
//! http(s) URL, a `file://` URL or a local folder) beside a `sha512sums.txt` ([`checksums`]);
//! start-up [`download`]s it, unpacks it with caps against hostile [`archive`]s, verifies every
//! file and only then lets anyone read it. [`format`] is the weights file the train bin writes:
//! safetensors with the metadata that serving and training must agree on; [`card`] is what
//! serving needs of any model, ours or a user's TorchScript module, and which files make one.
//! [`access`] is the operator's list of trusted buckets, for models loaded at a caller's
//! request: URLs outside it, and downloads that redirect or resolve out of it, are refused.
//!
//! Nothing here runs a model or knows about HTTP routes: the serving crate loads what this
//! crate verified, and the training crate publishes through it.

pub mod access;
pub mod archive;
pub mod bucket;
pub mod card;
pub mod checksums;
pub mod download;
mod error;
pub mod format;

pub use error::{Error, Result};
