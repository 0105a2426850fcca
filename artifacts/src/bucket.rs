//! A model's bucket, MAX style: an http(s) URL, a `file://` URL or a local folder holding the
//! model's gzipped tar and a `sha512sums.txt` (coreutils format) that lists the archive itself
//! and every file it unpacks to, as `assets/<name>`:
//!
//! ```text
//! 3b1f…  mnist-classifier.tar.gz
//! 9c4e…  assets/mnist-classifier.safetensors
//! ```
//!
//! [`ensure_verified_assets`] is what start-up calls for each model: it reads the bucket's
//! checksums; when the model's assets folder already holds every listed file with the right
//! digest nothing else is fetched; otherwise the archive is fetched into a scratch folder
//! inside the assets folder, its own digest is checked before a byte of it is decompressed,
//! it is unpacked under caps, every listed file is verified, and only then are the files
//! renamed into place (atomic per file). Any failure leaves nothing unverified in the assets
//! folder. [`publish`] is the other direction, used by the train bin.

use std::path::{Path, PathBuf};

use sha2::Sha512;

use crate::archive::{self, UnpackLimits};
use crate::checksums::{self, ChecksumEntry, Checksums};
use crate::download::{self, DownloadPolicy};
use crate::{Error, Result};

/// The directory prefix of the checksums entries that name unpacked files.
pub const ASSETS_PREFIX: &str = "assets/";
/// The checksums file's name inside a bucket.
pub const CHECKSUMS_FILE: &str = "sha512sums.txt";
/// The ending of the archive's name.
pub const ARCHIVE_SUFFIX: &str = ".tar.gz";
/// The largest checksums file fetched from a remote bucket.
const MAX_CHECKSUMS_BYTES: u64 = 64 << 10;

/// Name prefix of the scratch directory a fetch unpacks into, inside the assets directory.
const SCRATCH_PREFIX: &str = ".incoming-";

/// Where a model comes from and where its verified files go.
#[derive(Clone, Debug)]
pub struct ModelSource {
    /// `http://…`, `https://…`, `file:///…` or a local folder, holding the archive and
    /// `sha512sums.txt`.
    pub bucket: String,
    /// Where the model's verified files live.
    pub assets_dir: PathBuf,
    /// Timeouts, retries and size cap for remote buckets, and the allow-list (if any) that
    /// the bucket itself must pass, local or remote.
    pub download: DownloadPolicy,
    /// Caps for unpacking the archive.
    pub unpack: UnpackLimits,
}

/// A file in the assets folder whose digest matched the bucket's checksums file.
#[derive(Clone, Debug)]
pub struct VerifiedAsset {
    /// Its path on disk.
    pub path: PathBuf,
    /// Its SHA-512, lowercase hex.
    pub sha512: String,
}

impl ModelSource {
    /// The location of `name` in the bucket: `<bucket>/<name>`.
    pub fn location(&self, name: &str) -> String {
        format!("{}/{name}", self.bucket.trim_end_matches('/'))
    }

    /// Whether the bucket is reached over HTTP. URL schemes are case-insensitive: an
    /// `HTTP://` bucket that passed the allow-list must not be read as a local path.
    fn is_remote(&self) -> bool {
        let has_scheme =
            |scheme: &str| self.bucket.get(..scheme.len()).is_some_and(|start| start.eq_ignore_ascii_case(scheme));
        has_scheme("http://") || has_scheme("https://")
    }
}

/// What a bucket's checksums file lists: its archive and the files the archive unpacks to.
struct Listing {
    checksums: Checksums,
    archive: ChecksumEntry,
    /// Each asset's path below the assets folder, with its entry.
    assets: Vec<(PathBuf, ChecksumEntry)>,
}

impl Listing {
    fn parse(checksums: Checksums) -> Result<Listing> {
        let invalid = |reason: String| Error::InvalidChecksums { path: checksums.source.clone(), reason };
        let mut archives = Vec::new();
        let mut assets = Vec::new();
        for entry in &checksums.entries {
            if entry.path.starts_with(ASSETS_PREFIX) {
                assets.push((asset_name(entry, &checksums.source)?, entry.clone()));
            } else if is_plain_name(&entry.path) && entry.path.ends_with(ARCHIVE_SUFFIX) {
                archives.push(entry.clone());
            } else {
                return Err(invalid(format!(
                    "`{}` is neither the archive (`<name>{ARCHIVE_SUFFIX}`) nor a file under {ASSETS_PREFIX}",
                    entry.path
                )));
            }
        }
        let [archive] = <[ChecksumEntry; 1]>::try_from(archives).map_err(|archives| {
            invalid(format!("it must list exactly one `<name>{ARCHIVE_SUFFIX}` archive, not {}", archives.len()))
        })?;
        if assets.is_empty() {
            return Err(invalid(format!("it lists no files under {ASSETS_PREFIX}")));
        }
        Ok(Listing { checksums, archive, assets })
    }
}

/// Makes sure every file listed in the bucket's checksums file is in the assets folder with
/// the listed digest, fetching, verifying and unpacking the bucket's archive when it is not.
/// Fails closed. When the download policy carries an allow-list, a bucket outside it is
/// refused ([`Error::Refused`]) before anything is read, fetched or created.
///
/// With a local bucket whose files are already verified in place, nothing is written: a
/// read-only assets folder prepared beforehand works.
pub async fn ensure_verified_assets(source: &ModelSource) -> Result<Vec<VerifiedAsset>> {
    let mut scratch = None;
    let listing = read_listing(source, &mut scratch).await?;

    let in_place: Vec<_> =
        listing.assets.iter().map(|(name, entry)| (source.assets_dir.join(name), entry.clone())).collect();
    if remove_unverified(&in_place)? {
        tracing::info!(assets = %source.assets_dir.display(), "assets already verified; not fetching");
        return Ok(verified(in_place));
    }

    let scratch = match scratch {
        Some(scratch) => scratch,
        None => new_scratch(&source.assets_dir)?,
    };
    let archive = fetch_archive(source, &listing.archive.path, scratch.path()).await?;
    // Verified before a byte is decompressed: a tampered archive is never unpacked.
    checksums::verify(&archive, &listing.archive)?;
    let unpacked = scratch.path().join("unpacked");
    std::fs::create_dir(&unpacked).map_err(Error::io("cannot create", &unpacked))?;
    archive::unpack_tar_gz(&archive, &unpacked, source.unpack)?;

    for (name, entry) in &listing.assets {
        let candidate = unpacked.join(name);
        if !candidate.is_file() {
            return Err(Error::MissingAsset {
                file: entry.path.clone(),
                checksums: listing.checksums.source.clone(),
                place: format!("the archive {}", source.location(&listing.archive.path)),
            });
        }
        checksums::verify(&candidate, entry)?;
    }
    for (name, _) in &listing.assets {
        let target = source.assets_dir.join(name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("cannot create", parent))?;
        }
        std::fs::rename(unpacked.join(name), &target).map_err(Error::io("cannot move into place", &target))?;
    }
    tracing::info!(files = listing.assets.len(), assets = %source.assets_dir.display(), "model assets fetched and verified");
    Ok(verified(in_place))
}

/// The bucket's checksums file, checked against the allow-list first when the policy has
/// one. A remote bucket's is downloaded into a scratch folder, put in `scratch`; a local one's
/// is read where it is, and the scratch folder is made only if something must be fetched.
async fn read_listing(source: &ModelSource, scratch: &mut Option<tempfile::TempDir>) -> Result<Listing> {
    if let Some(allowed) = &source.download.allowed {
        allowed.check(&source.bucket)?;
    }
    let checksums = if source.is_remote() {
        let folder = scratch.insert(new_scratch(&source.assets_dir)?);
        fetch_remote_checksums(source, folder.path()).await?
    } else {
        Checksums::read(&checked_local_path(source, CHECKSUMS_FILE)?)?
    };
    Listing::parse(checksums)
}

/// The SHA-512 of every file the bucket's checksums file lists under `assets/`, sorted: what
/// tells, without fetching the archive, whether the bucket holds other files than a served
/// version's (poll mode). Only the checksums file is read.
pub async fn listed_digests(source: &ModelSource) -> Result<Vec<String>> {
    let listing = read_listing(source, &mut None).await?;
    let mut digests: Vec<String> = listing.assets.into_iter().map(|(_, entry)| entry.sha512).collect();
    digests.sort_unstable();
    Ok(digests)
}

/// A fresh scratch folder inside `assets_dir` (made if missing), after removing any that a
/// killed start-up left behind. It is deleted when dropped.
fn new_scratch(assets_dir: &Path) -> Result<tempfile::TempDir> {
    std::fs::create_dir_all(assets_dir).map_err(Error::io("cannot create", assets_dir))?;
    remove_stale_scratch(assets_dir)?;
    tempfile::Builder::new()
        .prefix(SCRATCH_PREFIX)
        .tempdir_in(assets_dir)
        .map_err(Error::io("cannot create a directory in", assets_dir))
}

/// A remote bucket's checksums file, downloaded (at most 64 KiB) into `scratch`.
async fn fetch_remote_checksums(source: &ModelSource, scratch: &Path) -> Result<Checksums> {
    let location = source.location(CHECKSUMS_FILE);
    let destination = scratch.join(CHECKSUMS_FILE);
    let policy = DownloadPolicy { max_bytes: MAX_CHECKSUMS_BYTES, ..source.download.clone() };
    download::fetch_to_file(&location, &destination, &policy).await?;
    let mut checksums = Checksums::read(&destination)?;
    checksums.source = PathBuf::from(location);
    Ok(checksums)
}

/// Whether `name` is a single plain file name (no folders, no `..`).
fn is_plain_name(name: &str) -> bool {
    let mut parts = Path::new(name).components();
    matches!((parts.next(), parts.next()), (Some(std::path::Component::Normal(_)), None))
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
fn remove_unverified(in_place: &[(PathBuf, ChecksumEntry)]) -> Result<bool> {
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

fn verified(files: Vec<(PathBuf, ChecksumEntry)>) -> Vec<VerifiedAsset> {
    files.into_iter().map(|(path, entry)| VerifiedAsset { path, sha512: entry.sha512 }).collect()
}

/// Puts the bucket's archive `name` in `scratch` and returns its path: downloaded for
/// http(s), used in place for a local file.
async fn fetch_archive(source: &ModelSource, name: &str, scratch: &Path) -> Result<PathBuf> {
    let location = source.location(name);
    if source.is_remote() {
        let destination = scratch.join(name);
        tracing::info!(url = %location, "fetching model archive");
        download::fetch_to_file(&location, &destination, &source.download).await?;
        return Ok(destination);
    }
    let local = checked_local_path(source, name)?;
    tracing::info!(path = %local.display(), "using local model archive");
    if !local.is_file() {
        return Err(Error::Download { url: location, reason: "no such file".into() });
    }
    Ok(local)
}

/// The path of the local bucket's file `name`. Under an allow-list the file itself is checked
/// too, so that a symbolic link in an allowed bucket cannot lead out of it.
fn checked_local_path(source: &ModelSource, name: &str) -> Result<PathBuf> {
    let location = source.location(name);
    if let Some(allowed) = &source.download.allowed {
        allowed.check(&location)?;
    }
    Ok(local_path(&location))
}

/// The path of a `file://` URL or a plain path.
fn local_path(location: &str) -> PathBuf {
    PathBuf::from(location.strip_prefix("file://").unwrap_or(location))
}

/// Publishes freshly trained files to a local bucket: packs them into `<bucket>/<archive>`
/// and writes `<bucket>/sha512sums.txt`, listing the archive and each file as
/// `assets/<name>`. Returns the archive's path.
pub fn publish(files: &[&Path], bucket: &Path, archive: &str) -> Result<PathBuf> {
    let mut members = Vec::with_capacity(files.len());
    let mut entries = Vec::with_capacity(files.len() + 1);
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
    if !is_plain_name(archive) || !archive.ends_with(ARCHIVE_SUFFIX) {
        return Err(Error::InvalidArtifact {
            path: PathBuf::from(archive),
            reason: format!("an archive's name is a plain `<name>{ARCHIVE_SUFFIX}`"),
        });
    }
    std::fs::create_dir_all(bucket).map_err(Error::io("cannot create", bucket))?;
    let archive_path = bucket.join(archive);
    archive::pack_tar_gz(&members, &archive_path)?;
    entries.insert(
        0,
        ChecksumEntry { sha512: checksums::file_digest::<Sha512>(&archive_path)?, path: archive.to_owned() },
    );
    Checksums::write(&bucket.join(CHECKSUMS_FILE), &entries)?;
    Ok(archive_path)
}
