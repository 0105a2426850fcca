//! The one error type of the core crate. Each variant says what went wrong in words a user
//! can act on; the `api` crate decides which HTTP status each kind becomes.

use std::path::PathBuf;

/// Everything that can go wrong in the core crate.
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

    /// A file does not have the digest recorded for it (in the checksums file, or for MNIST
    /// in the code).
    #[error("checksum mismatch for {file}: expected {algorithm} {expected}, got {actual}")]
    ChecksumMismatch {
        /// The file as named in the checksums file or by its URL.
        file: String,
        /// The digest algorithm ("sha512", "sha256").
        algorithm: &'static str,
        /// The recorded digest.
        expected: String,
        /// The digest of the bytes we have.
        actual: String,
    },
    /// A file listed in the checksums file is absent.
    #[error("{file} is listed in {checksums} but is missing from {place}")]
    MissingAsset {
        /// The file as named in the checksums file.
        file: String,
        /// The checksums file.
        checksums: PathBuf,
        /// Where it was looked for (the archive, the assets directory).
        place: String,
    },
    /// The checksums file cannot be parsed or lists nothing usable.
    #[error("invalid checksums file {path}: {reason}")]
    InvalidChecksums {
        /// The checksums file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The server answered a download with an error status.
    #[error("download of {url} failed: HTTP {status}")]
    HttpStatus {
        /// The URL that was fetched.
        url: String,
        /// The HTTP status received.
        status: u16,
    },
    /// A download failed for another reason (connection, timeout, truncated body, size cap).
    #[error("download of {url} failed: {reason}")]
    Download {
        /// The URL that was fetched.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// An archive was refused: an unsafe entry, too many entries, too many bytes, or not a
    /// gzipped tar at all.
    #[error("refused archive {archive}: {reason}")]
    HostileArchive {
        /// The archive.
        archive: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// A model file is not a valid safetensors artifact of a known architecture.
    #[error("invalid model artifact {path}: {reason}")]
    InvalidArtifact {
        /// The artifact.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No mirror served a verified copy of an MNIST file.
    #[error("no mirror served a verified {file}: {}", attempts.join("; "))]
    MirrorsExhausted {
        /// The file's name.
        file: String,
        /// What went wrong with each mirror, in the order they were tried.
        attempts: Vec<String>,
    },
    /// An MNIST IDX file is malformed.
    #[error("invalid IDX file {path}: {reason}")]
    InvalidIdx {
        /// The IDX file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A GPU driver is present but libtorch's CUDA library would not load.
    #[error("cannot load libtorch's CUDA support: {0}")]
    CudaLibrary(String),
    /// Training settings that cannot work (zero epochs, a validation split of 1, ...).
    #[error("invalid training settings: {0}")]
    InvalidSettings(String),
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
    /// The inference queue is full; the client should retry later.
    #[error("the server is busy; retry shortly")]
    Overloaded,
    /// The engine's threads could not be started (the system refused a thread).
    #[error("cannot start the inference engine's threads: {0}")]
    EngineThreads(String),
    /// A forward pass failed (a bug or a libtorch fault); its images fail, the server goes on.
    #[error("inference failed unexpectedly")]
    InferenceFailed,
    /// The inference thread is gone (the engine was shut down or crashed).
    #[error("the inference thread has stopped")]
    InferenceStopped,
}

impl Error {
    /// Wraps an I/O error with what we were doing and on which path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |cause| Error::Io { action, path, cause }
    }
}

/// The core crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
