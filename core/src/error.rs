//! The serving crate's two error types. [`Error`] is everything that can go wrong on the
//! request path, each variant in words a client can act on; the `api` crate maps each one to
//! an HTTP status code in one exhaustive `match`. [`LoadError`] is what can stop a model from
//! being loaded; it never reaches a client.

use std::path::PathBuf;

/// Everything that can go wrong with one request's images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The uploaded image has no bytes.
    #[error("the image is empty")]
    EmptyImage,
    /// The bytes are not one of the supported image formats.
    #[error("the file is not a supported image (send PNG, JPEG, GIF, BMP, WebP or TIFF)")]
    UnsupportedImageFormat,
    /// The image decoded, but no ink stands out from its background.
    #[error("no digit found: the image is blank (nothing stands out from the background)")]
    NoDigit,
    /// Preprocessing stopped unexpectedly (a bug); the request fails, the server goes on.
    #[error("preprocessing the image failed unexpectedly")]
    PreprocessingFailed,
    /// The image the model saw could not be encoded for the client.
    #[error("could not encode the model's input as PNG: {0}")]
    EncodeImage(String),
    /// The bytes look like a supported format but cannot be decoded (truncated, corrupt).
    #[error("the image could not be decoded: {0}")]
    UndecodableImage(String),
    /// Pixels given as numbers (not an encoded image) that cannot be an input: a wrong count,
    /// or values outside [0, 1].
    #[error("invalid pixels: {0}")]
    InvalidPixels(String),
    /// The image header declares more pixels than the configured limit; nothing was decoded.
    #[error("the image is {width}x{height} pixels, over the limit of {limit} pixels")]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The configured maximum of width × height.
        limit: u64,
    },

    /// The image header declares a size too large for the decoder even to represent.
    #[error("the image declares a size too large to decode, over the limit of {limit} pixels")]
    SizeBeyondDecoding {
        /// The configured maximum of width × height.
        limit: u64,
    },

    /// libtorch reported an error while reading a forward pass's output.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    /// The inference queue is full; the client should retry later.
    #[error("the server is busy; retry shortly")]
    Overloaded,
    /// A forward pass failed (a bug or a libtorch fault); its images fail, the server goes on.
    #[error("inference failed unexpectedly")]
    InferenceFailed,
    /// The inference thread is gone (the engine was shut down or crashed).
    #[error("the inference thread has stopped")]
    InferenceStopped,
}

/// Why a model could not be loaded and started.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Its files could not be fetched, verified or read.
    #[error(transparent)]
    Artifact(#[from] max_mnist_artifacts::Error),
    /// Its files were verified but do not make a model this server can run.
    #[error("invalid model {path}: {reason}")]
    InvalidModel {
        /// The weights file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The weights ask for preprocessing that cannot make their input.
    #[error("invalid preprocessing: {0}")]
    Preprocessing(String),
    /// An unknown or unavailable device was asked for.
    #[error("invalid device: {0}")]
    Device(String),
    /// A GPU driver is present but libtorch's CUDA library would not load.
    #[error("cannot load libtorch's CUDA support: {0}")]
    CudaLibrary(String),
    /// libtorch refused the weights.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    /// The engine's threads could not be started (the system refused a thread).
    #[error("cannot start the inference engine's threads: {0}")]
    EngineThreads(String),
    /// The warm-up forward pass failed.
    #[error("the warm-up forward pass failed: {0}")]
    WarmUp(#[source] Error),
}

/// The request path's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
