//! Gzipped tar archives: packing the bucket's model archive reproducibly, and unpacking a
//! downloaded one without trusting it.
//!
//! `tar::Archive::unpack` skips `../` entries but happily creates symlinks pointing anywhere,
//! and trusts header sizes. Here every entry is checked: only regular files and directories
//! with plain relative paths, at most [`UnpackLimits::max_entries`] entries, and bytes are
//! counted as they are written, so a gzip or tar bomb stops at the cap.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::{Error, Result};

/// Caps that bound what unpacking an untrusted archive may cost.
#[derive(Clone, Copy, Debug)]
pub struct UnpackLimits {
    /// Most entries (files and directories) accepted.
    pub max_entries: usize,
    /// Most bytes in one file.
    pub max_file_bytes: u64,
    /// Most bytes in all files together.
    pub max_total_bytes: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits { max_entries: 64, max_file_bytes: 256 << 20, max_total_bytes: 512 << 20 }
    }
}

/// Unpacks the gzipped tar `archive` into the existing, empty directory `destination` and
/// returns the relative paths of the files written. Refuses (with [`Error::HostileArchive`])
/// anything but regular files and directories, absolute paths, `..`, duplicates, and
/// archives over the limits. On error, `destination` may hold partial output: callers unpack
/// into a scratch directory they delete.
pub fn unpack_tar_gz(archive: &Path, destination: &Path, limits: UnpackLimits) -> Result<Vec<PathBuf>> {
    let refuse = |reason: String| Error::HostileArchive { archive: archive.to_owned(), reason };
    let file = File::open(archive).map_err(Error::io("cannot open", archive))?;
    let mut tar = tar::Archive::new(GzDecoder::new(file));
    let mut written = Vec::new();
    let mut total_bytes = 0u64;
    let entries = tar.entries().map_err(|error| refuse(format!("not a gzipped tar: {error}")))?;
    for (index, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|error| refuse(format!("unreadable entry: {error}")))?;
        if index >= limits.max_entries {
            return Err(refuse(format!("more than {} entries", limits.max_entries)));
        }
        let raw_path = entry.path().map_err(|error| refuse(format!("unreadable entry path: {error}")))?;
        let display = raw_path.display().to_string();
        let relative = plain_relative_path(&raw_path)
            .ok_or_else(|| refuse(format!("entry `{display}` is not a plain relative path")))?;
        let target = destination.join(&relative);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                fs::create_dir_all(&target).map_err(Error::io("cannot create", &target))?;
            }
            tar::EntryType::Regular => {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(Error::io("cannot create", parent))?;
                }
                let mut output = OpenOptions::new().write(true).create_new(true).open(&target).map_err(|error| {
                    match error.kind() {
                        io::ErrorKind::AlreadyExists => refuse(format!("entry `{display}` appears twice")),
                        _ => Error::Io { action: "cannot create", path: target.clone(), cause: error },
                    }
                })?;
                let remaining = limits.max_file_bytes.min(limits.max_total_bytes - total_bytes);
                let copied = io::copy(&mut (&mut entry).take(remaining.saturating_add(1)), &mut output)
                    .map_err(|error| refuse(format!("entry `{display}` is truncated or corrupt: {error}")))?;
                if copied > remaining {
                    return Err(refuse(format!(
                        "entry `{display}` exceeds the size limits ({} bytes per file, {} in all)",
                        limits.max_file_bytes, limits.max_total_bytes
                    )));
                }
                total_bytes += copied;
                written.push(relative);
            }
            other => {
                return Err(refuse(format!("entry `{display}` is a {other:?}, not a regular file")));
            }
        }
    }
    Ok(written)
}

/// `path` without `.` components if it is relative and made only of normal names.
fn plain_relative_path(path: &Path) -> Option<PathBuf> {
    let mut plain = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => plain.push(name),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!plain.as_os_str().is_empty()).then_some(plain)
}

/// Packs `files` (each a name inside the archive and the file to read) into a gzipped tar
/// at `archive`. Headers carry no time, owner or permissions from this machine, so the same
/// inputs always give the same bytes.
pub fn pack_tar_gz(files: &[(&str, &Path)], archive: &Path) -> Result<()> {
    let output = File::create(archive).map_err(Error::io("cannot create", archive))?;
    let mut builder = tar::Builder::new(GzEncoder::new(output, Compression::best()));
    for (name, path) in files {
        let data = fs::read(path).map_err(Error::io("cannot read", *path))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append_data(&mut header, name, data.as_slice()).map_err(Error::io("cannot write", archive))?;
    }
    let encoder = builder.into_inner().map_err(Error::io("cannot write", archive))?;
    encoder.finish().and_then(|mut file| file.flush()).map_err(Error::io("cannot write", archive))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive_with(build: impl FnOnce(&mut tar::Builder<GzEncoder<File>>)) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut builder = tar::Builder::new(GzEncoder::new(file.reopen().unwrap(), Compression::fast()));
        build(&mut builder);
        builder.into_inner().unwrap().finish().unwrap();
        file
    }

    fn regular(size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header
    }

    fn unpack(archive: &tempfile::NamedTempFile, limits: UnpackLimits) -> Result<Vec<PathBuf>> {
        let destination = tempfile::tempdir().unwrap();
        unpack_tar_gz(archive.path(), destination.path(), limits)
    }

    #[test]
    fn round_trips_packed_files() {
        let source = tempfile::tempdir().unwrap();
        let input = source.path().join("weights.safetensors");
        fs::write(&input, b"weights").unwrap();
        let archive = source.path().join("model.tar.gz");
        pack_tar_gz(&[("weights.safetensors", &input)], &archive).unwrap();
        let first = fs::read(&archive).unwrap();
        pack_tar_gz(&[("weights.safetensors", &input)], &archive).unwrap();
        assert_eq!(first, fs::read(&archive).unwrap(), "packing is reproducible");

        let destination = tempfile::tempdir().unwrap();
        let files = unpack_tar_gz(&archive, destination.path(), UnpackLimits::default()).unwrap();
        assert_eq!(files, vec![PathBuf::from("weights.safetensors")]);
        assert_eq!(fs::read(destination.path().join("weights.safetensors")).unwrap(), b"weights");
    }

    #[test]
    fn refuses_symlinks() {
        let archive = archive_with(|builder| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, "link", "/etc/passwd").unwrap();
        });
        let error = unpack(&archive, UnpackLimits::default()).unwrap_err().to_string();
        assert!(error.contains("`link` is a Symlink"), "{error}");
    }

    #[test]
    fn refuses_more_entries_than_the_cap() {
        let archive = archive_with(|builder| {
            for index in 0..5 {
                builder.append_data(&mut regular(1), format!("f{index}"), &b"x"[..]).unwrap();
            }
        });
        let limits = UnpackLimits { max_entries: 4, ..UnpackLimits::default() };
        assert!(unpack(&archive, limits).unwrap_err().to_string().contains("more than 4 entries"));
    }

    #[test]
    fn stops_a_bomb_at_the_size_cap() {
        let archive = archive_with(|builder| {
            let zeros = vec![0u8; 1 << 20];
            builder.append_data(&mut regular(zeros.len() as u64), "bomb", zeros.as_slice()).unwrap();
        });
        assert!(fs::metadata(archive.path()).unwrap().len() < 10_000, "a compressed megabyte of zeros");
        let limits = UnpackLimits { max_file_bytes: 1000, ..UnpackLimits::default() };
        assert!(unpack(&archive, limits).unwrap_err().to_string().contains("exceeds the size limits"));
    }

    #[test]
    fn refuses_garbage() {
        let file = tempfile::NamedTempFile::new().unwrap();
        fs::write(file.path(), b"not an archive at all").unwrap();
        let error = unpack(&file, UnpackLimits::default()).unwrap_err();
        assert!(matches!(error, Error::HostileArchive { .. }), "{error}");
    }

    #[test]
    fn plain_relative_paths_only() {
        assert_eq!(plain_relative_path(Path::new("./a/b")), Some(PathBuf::from("a/b")));
        assert_eq!(plain_relative_path(Path::new("../a")), None);
        assert_eq!(plain_relative_path(Path::new("/etc/passwd")), None);
        assert_eq!(plain_relative_path(Path::new("a/../../b")), None);
        assert_eq!(plain_relative_path(Path::new(".")), None);
    }
}
