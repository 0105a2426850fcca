//! The one error type of the training crate: bad data, bad settings, a run that diverged, and
//! what the crates it builds on report.

use std::path::PathBuf;

/// Everything that can go wrong while preparing data, training or reporting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No mirror served a verified copy of a data set's file.
    #[error("no mirror served a verified {file}: {}", attempts.join("; "))]
    MirrorsExhausted {
        /// The file's name.
        file: String,
        /// What went wrong with each mirror, in the order they were tried.
        attempts: Vec<String>,
    },
    /// An IDX file is malformed.
    #[error("invalid IDX file {path}: {reason}")]
    InvalidIdx {
        /// The IDX file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A labels file that cannot name a data set's classes.
    #[error("invalid labels file {path}: {reason}")]
    InvalidLabels {
        /// The labels file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Training settings that cannot work (zero epochs, a validation split of 1, ...).
    #[error("invalid training settings: {0}")]
    InvalidSettings(String),
    /// A checkpoint that cannot continue this run: missing, unreadable, or made with other
    /// settings.
    #[error("cannot resume: {0}")]
    InvalidCheckpoint(String),
    /// Training produced a loss that is not a number; a lower learning rate usually helps.
    #[error(
        "training diverged at epoch {epoch} (train loss {train_loss}, validation loss {validation_loss}); \
         try a lower --lr"
    )]
    Diverged {
        /// The epoch that diverged.
        epoch: u32,
        /// Its mean training loss.
        train_loss: f64,
        /// Its validation loss.
        validation_loss: f64,
    },
    /// A filesystem operation failed.
    #[error("{action} {path}: {cause}")]
    Io {
        /// What we were doing ("cannot read", "cannot create", ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error (named `cause`, not `source`: the message already says it).
        cause: std::io::Error,
    },
    /// libtorch reported an error.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    /// Downloading, verifying, writing or publishing an artifact failed.
    #[error(transparent)]
    Artifact(#[from] max_mnist_artifacts::Error),
    /// The device asked for cannot be used, or a model cannot be loaded.
    #[error(transparent)]
    Device(#[from] max_mnist_core::LoadError),
    /// Classifying images through the serving wrapper failed.
    #[error(transparent)]
    Inference(#[from] max_mnist_core::Error),
}

impl Error {
    /// Wraps an I/O error with what we were doing and on which path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |cause| Error::Io { action, path, cause }
    }
}

/// The training crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
