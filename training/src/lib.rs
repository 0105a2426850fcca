//! Training: the [`data`] sets (IDX files and their mirrors, MNIST, Fashion-MNIST or any other
//! with a labels file), each with its [`preset`] recipe, the [`train`] loop with its
//! [`augment`]ation, [`optimizer`] and [`outliers`] (clothes, and [`letters`] typed in fonts),
//! resumable from its [`checkpoint`], and what a run
//! leaves behind: a per-class [`report`], the pictures in it ([`render`]) and TensorBoard files
//! ([`tensorboard`], written through [`monitor`]). The `train` bin (`cargo run --release --bin
//! train`) drives it and publishes the weights through the artifacts crate. The `predict` bin
//! classifies image files offline through the serving wrapper and reports on the labelled ones
//! ([`predict`]).
//!
//! The server links none of this.

pub mod augment;
pub mod calibrate;
pub mod checkpoint;
pub mod data;
mod error;
pub mod letters;
mod monitor;
pub mod optimizer;
pub mod outliers;
pub mod predict;
pub mod preset;
pub mod render;
pub mod report;
pub mod tensorboard;
pub mod train;

pub use error::{Error, Result};
