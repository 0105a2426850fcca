//! The model bucket, MAX style: the weights live as a gzipped tar in a bucket (an http(s)
//! URL, a `file://` URL or a local directory) and `sha512sums.txt` says what every file in
//! `assets/` must hash to.
//!
//! [`ensure_verified_assets`] is what start-up calls: when `assets/` already holds every
//! listed file with the right digest nothing is fetched; otherwise the archive is fetched,
//! unpacked into a scratch directory inside `assets/`, every listed file is verified, and
//! only then are the files renamed into place (atomic per file). Any failure leaves nothing
//! unverified in `assets/`. [`publish`] is the other direction, used by the train bin.

use std::path::{Path, PathBuf};

use sha2::Sha512;

use crate::archive::{self, UnpackLimits};
use crate::checksums::{self, ChecksumEntry, Checksums};
use crate::download::{self, DownloadPolicy};
use crate::{Error, Result};

/// The directory prefix every entry of the checksums file carries.
pub const ASSETS_PREFIX: &str = "assets/";

/// Name prefix of the scratch directory a fetch unpacks into, inside the assets directory.
const SCRATCH_PREFIX: &str = ".incoming-";

/// Where the model comes from and where it goes.
#[derive(Clone, Debug)]
pub struct ModelSource {
    /// `http://…`, `https://…`, `file:///…` or a local directory.
    pub bucket: String,
    /// The archive's name inside the bucket.
    pub file: String,
    /// Where verified files live.
    pub assets_dir: PathBuf,
    /// The coreutils-format SHA-512 list (`<digest>  assets/<file>`).
    pub checksums: PathBuf,
    /// Timeouts, retries and size cap for remote buckets.
    pub download: DownloadPolicy,
    /// Caps for unpacking the archive.
    pub unpack: UnpackLimits,
}

/// A file in `assets/` whose digest matched the checksums file.
#[derive(Clone, Debug)]
pub struct VerifiedAsset {
    /// Its path on disk.
    pub path: PathBuf,
    /// Its SHA-512, lowercase hex.
    pub sha512: String,
}

impl ModelSource {
    /// The archive's location: `<bucket>/<file>`.
    pub fn archive_location(&self) -> String {
        format!("{}/{}", self.bucket.trim_end_matches('/'), self.file)
    }
}

/// Makes sure every file listed in the checksums file is in the assets directory with the
/// listed digest, fetching and unpacking the bucket's archive when it is not. Fails closed.
pub async fn ensure_verified_assets(source: &ModelSource) -> Result<Vec<VerifiedAsset>> {
    let listed = Checksums::read(&source.checksums)?;
    let wanted = listed
        .entries
        .iter()
        .map(|entry| asset_name(entry, &listed.source).map(|name| (name, entry)))
        .collect::<Result<Vec<_>>>()?;

    let in_place: Vec<_> = wanted.iter().map(|(name, entry)| (source.assets_dir.join(name), *entry)).collect();
    if remove_unverified(&in_place)? {
        tracing::info!(assets = %source.assets_dir.display(), "assets already verified; not fetching");
        return Ok(verified(in_place));
    }

    std::fs::create_dir_all(&source.assets_dir).map_err(Error::io("cannot create", &source.assets_dir))?;
    remove_stale_scratch(&source.assets_dir)?;
    let scratch = tempfile::Builder::new()
        .prefix(SCRATCH_PREFIX)
        .tempdir_in(&source.assets_dir)
        .map_err(Error::io("cannot create a directory in", &source.assets_dir))?;
    let archive = fetch_archive(source, scratch.path()).await?;
    let unpacked = scratch.path().join("unpacked");
    std::fs::create_dir(&unpacked).map_err(Error::io("cannot create", &unpacked))?;
    archive::unpack_tar_gz(&archive, &unpacked, source.unpack)?;

    for (name, entry) in &wanted {
        let candidate = unpacked.join(name);
        if !candidate.is_file() {
            return Err(Error::MissingAsset {
                file: entry.path.clone(),
                checksums: listed.source.clone(),
                place: format!("the archive {}", source.archive_location()),
            });
        }
        checksums::verify(&candidate, entry)?;
    }
    for (name, _) in &wanted {
        let target = source.assets_dir.join(name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("cannot create", parent))?;
        }
        std::fs::rename(unpacked.join(name), &target).map_err(Error::io("cannot move into place", &target))?;
    }
    tracing::info!(files = wanted.len(), assets = %source.assets_dir.display(), "model assets fetched and verified");
    Ok(verified(in_place))
}

/// The path below `assets/` that a checksums entry names, refusing anything that could
/// point outside the assets directory.
fn asset_name(entry: &ChecksumEntry, checksums: &Path) -> Result<PathBuf> {
    let invalid = |reason: String| Error::InvalidChecksums { path: checksums.to_owned(), reason };
    let name = entry
        .path
        .strip_prefix(ASSETS_PREFIX)
        .ok_or_else(|| invalid(format!("`{}` is not under {ASSETS_PREFIX}", entry.path)))?;
    let plain = Path::new(name).components().all(|part| matches!(part, std::path::Component::Normal(_)));
    if name.is_empty() || !plain {
        return Err(invalid(format!("`{}` is not a plain path under {ASSETS_PREFIX}", entry.path)));
    }
    Ok(PathBuf::from(name))
}

/// Deletes scratch directories left by a start-up that was killed mid-fetch.
fn remove_stale_scratch(assets_dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(assets_dir).map_err(Error::io("cannot read", assets_dir))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(SCRATCH_PREFIX) {
            let path = entry.path();
            tracing::warn!(path = %path.display(), "removing an unfinished download");
            std::fs::remove_dir_all(&path).map_err(Error::io("cannot remove", &path))?;
        }
    }
    Ok(())
}

/// Whether every listed file is in place with its digest. Files that are present with the
/// wrong digest are deleted, so that nothing unverified stays in the assets directory.
fn remove_unverified(in_place: &[(PathBuf, &ChecksumEntry)]) -> Result<bool> {
    let mut all_verified = true;
    for (path, entry) in in_place {
        match checksums::verify(path, entry) {
            Ok(()) => {}
            Err(Error::ChecksumMismatch { .. }) => {
                tracing::warn!(path = %path.display(), "removing an asset that does not match the checksums file");
                std::fs::remove_file(path).map_err(Error::io("cannot remove", path))?;
                all_verified = false;
            }
            Err(_) => all_verified = false,
        }
    }
    Ok(all_verified)
}

fn verified(files: Vec<(PathBuf, &ChecksumEntry)>) -> Vec<VerifiedAsset> {
    files.into_iter().map(|(path, entry)| VerifiedAsset { path, sha512: entry.sha512.clone() }).collect()
}

/// Puts the bucket's archive in `scratch` and returns its path: downloaded for http(s),
/// used in place for a local file.
async fn fetch_archive(source: &ModelSource, scratch: &Path) -> Result<PathBuf> {
    let location = source.archive_location();
    if location.starts_with("http://") || location.starts_with("https://") {
        let destination = scratch.join("archive.tar.gz");
        tracing::info!(url = %location, "fetching model archive");
        download::fetch_to_file(&location, &destination, &source.download).await?;
        return Ok(destination);
    }
    let local = PathBuf::from(location.strip_prefix("file://").unwrap_or(&location));
    tracing::info!(path = %local.display(), "using local model archive");
    if !local.is_file() {
        return Err(Error::Download { url: location, reason: "no such file".into() });
    }
    Ok(local)
}

/// Publishes freshly trained files to a local bucket: packs them into `<bucket>/<file>` and
/// rewrites the checksums file so that each is listed as `assets/<name>`.
pub fn publish(files: &[&Path], bucket: &Path, file: &str, checksums_path: &Path) -> Result<PathBuf> {
    let mut members = Vec::with_capacity(files.len());
    let mut entries = Vec::with_capacity(files.len());
    for path in files {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| Error::InvalidArtifact { path: path.to_path_buf(), reason: "no file name".into() })?;
        members.push((name, *path));
        entries.push(ChecksumEntry {
            sha512: checksums::file_digest::<Sha512>(path)?,
            path: format!("{ASSETS_PREFIX}{name}"),
        });
    }
    std::fs::create_dir_all(bucket).map_err(Error::io("cannot create", bucket))?;
    let archive = bucket.join(file);
    archive::pack_tar_gz(&members, &archive)?;
    Checksums::write(checksums_path, &entries)?;
    Ok(archive)
}
