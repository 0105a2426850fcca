//! The one error type of the artifacts crate: everything that can stop a model file from
//! being fetched, unpacked, verified, read or written. Each variant says what went wrong in
//! words an operator can act on.

use std::path::PathBuf;

/// Everything that can go wrong with an artifact.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file does not have the digest recorded for it (in a checksums file, or for a
    /// dataset in the code).
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
    /// A bucket or a file in one is outside the operator's allow-list
    /// ([`crate::access::BucketAllowList`]), or a download left it: through a redirect, or
    /// through a host name that resolves to a refused address.
    #[error("refused bucket {url}: {reason}")]
    Refused {
        /// The bucket or file, as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// An entry of a bucket allow-list is not a usable URL prefix.
    #[error("invalid bucket allow-list entry {prefix}: {reason}")]
    InvalidAllowList {
        /// The entry, as given.
        prefix: String,
        /// What is wrong with it.
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
    /// A model file is not a valid safetensors artifact with its metadata.
    #[error("invalid model artifact {path}: {reason}")]
    InvalidArtifact {
        /// The artifact.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
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
    /// libtorch reported an error while reading tensors to save them.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

impl Error {
    /// Wraps an I/O error with what we were doing and on which path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |cause| Error::Io { action, path, cause }
    }
}

/// The artifacts crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
