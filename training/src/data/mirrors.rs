//! `train --download`: fetching the four gzipped files of a known data set (MNIST,
//! Fashion-MNIST) from its public mirrors, tried in order. A file counts as fetched only when its compressed size and the size and
//! SHA-256 of its decompressed bytes are the ones published here; the raw file then takes
//! its final name atomically. A partial, corrupt or tampered copy is never kept, and a mirror
//! that fails in any way hands over to the next one.

use std::io::{Read, Write};
use std::path::Path;

use flate2::read::GzDecoder;

use super::ExpectedFile;
use crate::{Error, Result};
use max_mnist_artifacts::Error as ArtifactError;
use max_mnist_artifacts::download::{self, DownloadPolicy};

/// The mirrors `--download` tries for MNIST, in order: torchvision's and TensorFlow's copies,
/// then the original site.
pub const MNIST_MIRRORS: [&str; 3] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
];

/// The mirror `--download` tries for Fashion-MNIST: Zalando's own, the one torchvision uses.
/// It is plain HTTP, which the SHA-256 of every decompressed file makes safe to use.
pub const FASHION_MNIST_MIRRORS: [&str; 1] = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"];

/// Makes sure `dir` holds every file of `files`, raw and verified: a file already there with
/// the right digest is kept, any other is fetched from the first of `mirrors` that serves a
/// verified copy. Fails with [`Error::MirrorsExhausted`] (listing every mirror's failure)
/// when none does.
pub async fn download(dir: &Path, files: &[ExpectedFile], mirrors: &[String], policy: &DownloadPolicy) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io("cannot create", dir))?;
    for file in files {
        let destination = dir.join(file.name);
        if verify_raw(file, &destination).is_ok() {
            tracing::info!(file = file.name, "already present and verified");
            continue;
        }
        let mut attempts = Vec::new();
        let mut fetched = false;
        for mirror in mirrors {
            let url = format!("{}/{}.gz", mirror.trim_end_matches('/'), file.name);
            match fetch_verified(file, &url, &destination, policy).await {
                Ok(()) => {
                    tracing::info!(%url, "fetched and verified");
                    fetched = true;
                    break;
                }
                Err(error) => {
                    tracing::warn!(%url, %error, "mirror failed, trying the next one");
                    attempts.push(error.to_string());
                }
            }
        }
        if !fetched {
            if attempts.is_empty() {
                attempts.push("no mirror was given".to_owned());
            }
            return Err(Error::MirrorsExhausted { file: file.name.to_owned(), attempts });
        }
    }
    Ok(())
}

/// Fetches `url` beside `destination`, checks it against `file`, and only then writes the
/// decompressed bytes under `destination`'s name.
async fn fetch_verified(file: &ExpectedFile, url: &str, destination: &Path, policy: &DownloadPolicy) -> Result<()> {
    let directory = destination.parent().unwrap_or(Path::new("."));
    let scratch = tempfile::tempdir_in(directory).map_err(Error::io("cannot create a directory in", directory))?;
    let gzipped = scratch.path().join(format!("{}.gz", file.name));
    let policy = DownloadPolicy { max_bytes: file.gzip_bytes, ..policy.clone() };
    download::fetch_to_file(url, &gzipped, &policy).await?;
    let size = std::fs::metadata(&gzipped).map_err(Error::io("cannot read", &gzipped))?.len();
    if size != file.gzip_bytes {
        let reason = format!("{size} bytes, expected {}", file.gzip_bytes);
        return Err(ArtifactError::Download { url: url.to_owned(), reason }.into());
    }
    let raw = decompress_capped(&gzipped, file.raw_bytes, url)?;
    check_raw(file, &raw, url)?;
    let mut partial =
        tempfile::NamedTempFile::new_in(directory).map_err(Error::io("cannot create a file in", directory))?;
    partial.write_all(&raw).map_err(Error::io("cannot write", partial.path()))?;
    partial.as_file().sync_all().map_err(Error::io("cannot write", partial.path()))?;
    partial.persist(destination).map_err(|error| Error::io("cannot create", destination)(error.error))?;
    Ok(())
}

/// Decompresses at most one byte more than `limit`, so a gzip bomb costs nothing.
fn decompress_capped(gzipped: &Path, limit: u64, url: &str) -> Result<Vec<u8>> {
    let reader = std::fs::File::open(gzipped).map_err(Error::io("cannot read", gzipped))?;
    let mut raw = Vec::new();
    GzDecoder::new(reader).take(limit + 1).read_to_end(&mut raw).map_err(|error| {
        Error::from(ArtifactError::Download { url: url.to_owned(), reason: format!("bad gzip data: {error}") })
    })?;
    Ok(raw)
}

fn verify_raw(file: &ExpectedFile, path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(Error::io("cannot read", path))?;
    check_raw(file, &bytes, &path.display().to_string())
}

/// Checks the decompressed size and digest; `source` names where the bytes came from.
fn check_raw(file: &ExpectedFile, raw: &[u8], source: &str) -> Result<()> {
    if raw.len() as u64 != file.raw_bytes {
        let reason = format!("decompressed to {} bytes, expected {}", raw.len(), file.raw_bytes);
        return Err(ArtifactError::Download { url: source.to_owned(), reason }.into());
    }
    file.verify(raw, source)
}
