//! `sha512sums.txt`: the coreutils checksum format (`<hex digest>  <path>`), so that
//! `sha512sum -c sha512sums.txt` checks the same files the server checks.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha512};

use crate::{Error, Result};

/// One line of a checksums file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChecksumEntry {
    /// Lowercase hex SHA-512.
    pub sha512: String,
    /// The path as written in the file, relative to the file's directory (`assets/x`).
    pub path: String,
}

/// A parsed checksums file.
#[derive(Clone, Debug)]
pub struct Checksums {
    /// Where it was read from (for error messages).
    pub source: PathBuf,
    /// Its lines, in order.
    pub entries: Vec<ChecksumEntry>,
}

impl Checksums {
    /// Reads and parses a coreutils-format SHA-512 checksums file. Blank lines and `#`
    /// comments are skipped; anything else that is not `<128 hex>  <path>` is an error.
    pub fn read(path: &Path) -> Result<Checksums> {
        let text = std::fs::read_to_string(path).map_err(Error::io("cannot read", path))?;
        let invalid = |reason: String| Error::InvalidChecksums { path: path.to_owned(), reason };
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (digest, rest) = line
                .split_once(' ')
                .ok_or_else(|| invalid(format!("line {}: expected `<sha512>  <path>`", index + 1)))?;
            // Text mode is "  path", binary mode is " *path".
            let file = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*')).unwrap_or(rest);
            let is_sha512 = digest.len() == 128 && digest.bytes().all(|byte| byte.is_ascii_hexdigit());
            if !is_sha512 || file.is_empty() {
                return Err(invalid(format!("line {}: expected `<128 hex digits>  <path>`", index + 1)));
            }
            entries.push(ChecksumEntry { sha512: digest.to_ascii_lowercase(), path: file.to_owned() });
        }
        if entries.is_empty() {
            return Err(invalid("it lists no files".into()));
        }
        Ok(Checksums { source: path.to_owned(), entries })
    }

    /// Writes entries in coreutils text mode, one per line.
    pub fn write(path: &Path, entries: &[ChecksumEntry]) -> Result<()> {
        let text: String = entries.iter().map(|entry| format!("{}  {}\n", entry.sha512, entry.path)).collect();
        std::fs::write(path, text).map_err(Error::io("cannot write", path))
    }
}

/// Hex digest of a file's contents with any `sha2` hash (SHA-512 for weights, SHA-256 for
/// datasets), read in chunks so that large files need little memory.
pub fn file_digest<D: Digest>(path: &Path) -> Result<String> {
    let file = File::open(path).map_err(Error::io("cannot open", path))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut hasher = D::new();
    let mut buffer = [0u8; 1 << 16];
    loop {
        let read = reader.read(&mut buffer).map_err(Error::io("cannot read", path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Checks that `file` has the digest recorded in `entry`.
pub fn verify(file: &Path, entry: &ChecksumEntry) -> Result<()> {
    let actual = file_digest::<Sha512>(file)?;
    if actual == entry.sha512 {
        Ok(())
    } else {
        Err(Error::ChecksumMismatch {
            file: entry.path.clone(),
            algorithm: "sha512",
            expected: entry.sha512.clone(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_verifies_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("weights.bin");
        std::fs::write(&data, b"hello").unwrap();
        let entry = ChecksumEntry { sha512: file_digest::<Sha512>(&data).unwrap(), path: "assets/weights.bin".into() };
        let sums = dir.path().join("sha512sums.txt");
        Checksums::write(&sums, std::slice::from_ref(&entry)).unwrap();
        assert_eq!(Checksums::read(&sums).unwrap().entries, vec![entry.clone()]);
        verify(&data, &entry).unwrap();

        std::fs::write(&data, b"hellO").unwrap();
        let error = verify(&data, &entry).unwrap_err().to_string();
        assert!(error.contains("checksum mismatch for assets/weights.bin"), "{error}");
        assert!(error.contains(&entry.sha512), "{error}");
    }

    #[test]
    fn refuses_malformed_lines_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let sums = dir.path().join("sha512sums.txt");
        std::fs::write(&sums, "abc  assets/x\n").unwrap();
        assert!(Checksums::read(&sums).unwrap_err().to_string().contains("line 1"));
        std::fs::write(&sums, "# nothing\n\n").unwrap();
        assert!(Checksums::read(&sums).unwrap_err().to_string().contains("lists no files"));
    }
}
