//! The repository on disk, `<assets>/repository.json`: which versions each model serves, where
//! their files are (relative to the assets folder) and the SHA-512 each file was verified
//! against, written after every change made through the management API. A restart serves the
//! same versions again, each file verified again against its recorded digest before it loads
//! (see `startup`). A record is read as untrusted: every folder must be one of the model's own
//! (see [`crate::loader::is_version_folder`]) and every file a plain name inside it.
//!
//! The file is replaced atomically: written beside itself, flushed to disk, renamed over the
//! old one, and the folder flushed; a crash leaves either the old record or the new.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use max_mnist_artifacts::bucket::VerifiedAsset;
use max_mnist_config::settings::check_model_name;
use serde::{Deserialize, Serialize};

use crate::loader::is_version_folder;
use crate::state::{Origin, ServerState};

/// The record's name in the assets folder.
pub const RECORD_FILE: &str = "repository.json";

/// The format written, and the only one read.
const FORMAT: u32 = 1;

/// What the repository served when it was last changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryRecord {
    /// The format of this file.
    pub format: u32,
    /// The models served, in order.
    pub models: Vec<ModelRecord>,
    /// Configured (`--model`) names that were unloaded, and stay so after a restart.
    pub unloaded: Vec<String>,
}

/// One model's versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// The model's name.
    pub name: String,
    /// The version its name serves.
    pub default_version: String,
    /// Its loaded versions, oldest first.
    pub versions: Vec<VersionRecord>,
}

/// One version, and how to serve it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// The version's name.
    pub version: String,
    /// The bucket it came from.
    pub bucket: String,
    /// Who named that bucket.
    pub origin: Origin,
    /// The folder holding its files, relative to the assets folder.
    pub folder: PathBuf,
    /// Each file with the SHA-512 it was verified against.
    pub files: Vec<FileRecord>,
}

/// A verified file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Its path inside the version's folder.
    pub name: PathBuf,
    /// Its SHA-512, lowercase hex.
    pub sha512: String,
}

impl VersionRecord {
    /// The version's folder below the assets folder `root`.
    pub fn assets_dir(&self, root: &Path) -> PathBuf {
        root.join(&self.folder)
    }

    /// The files as verified assets below the assets folder `root`, to check again.
    pub fn assets(&self, root: &Path) -> Vec<VerifiedAsset> {
        let folder = self.assets_dir(root);
        let asset = |file: &FileRecord| VerifiedAsset { path: folder.join(&file.name), sha512: file.sha512.clone() };
        self.files.iter().map(asset).collect()
    }
}

/// Why the record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Reading, writing or renaming failed.
    #[error("{action} {path}: {cause}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error (in the message, so not a `source`).
        cause: std::io::Error,
    },
    /// The file is not a record this server wrote.
    #[error("{path} is not a repository record: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RecordError {
    let path = path.to_owned();
    move |cause| RecordError::Io { action, path, cause }
}

/// The record of what `state` serves now, its folders relative to the assets folder `root`,
/// `unloaded` naming the configured models it left out.
pub fn of(state: &ServerState, unloaded: &[String], root: &Path) -> RepositoryRecord {
    let relative = |path: &Path, base: &Path| path.strip_prefix(base).unwrap_or(path).to_owned();
    let models = state.entries().into_iter().filter_map(|entry| {
        let versions = entry.versions.iter().map(|served| VersionRecord {
            version: served.version().to_owned(),
            bucket: served.bucket.clone(),
            origin: served.origin,
            folder: relative(&served.assets_dir, root),
            files: served
                .files
                .iter()
                .map(|file| FileRecord { name: relative(&file.path, &served.assets_dir), sha512: file.sha512.clone() })
                .collect(),
        });
        Some(ModelRecord { name: entry.name, default_version: entry.default_version?, versions: versions.collect() })
    });
    RepositoryRecord { format: FORMAT, models: models.collect(), unloaded: unloaded.to_vec() }
}

/// Replaces the record at `path` with what `state` serves now, atomically.
pub fn write(path: &Path, state: &ServerState, unloaded: &[String], root: &Path) -> Result<(), RecordError> {
    let text = serde_json::to_vec_pretty(&of(state, unloaded, root)).expect("a record serialises");
    let folder = path.parent().filter(|folder| !folder.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).map_err(io("cannot create", folder))?;
    let mut partial = tempfile::NamedTempFile::new_in(folder).map_err(io("cannot create a file in", folder))?;
    partial.write_all(&text).map_err(io("cannot write", partial.path()))?;
    partial.as_file().sync_all().map_err(io("cannot write", partial.path()))?;
    partial.persist(path).map_err(|error| RecordError::Io {
        action: "cannot replace",
        path: path.to_owned(),
        cause: error.error,
    })?;
    std::fs::File::open(folder).and_then(|folder| folder.sync_all()).map_err(io("cannot flush", folder))?;
    Ok(())
}

/// The record at `path`, or `None` when there is none yet.
pub fn read(path: &Path) -> Result<Option<RepositoryRecord>, RecordError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io("cannot read", path)(error)),
    };
    let invalid = |reason: String| RecordError::Invalid { path: path.to_owned(), reason };
    let record: RepositoryRecord = serde_json::from_slice(&text).map_err(|error| invalid(error.to_string()))?;
    if record.format != FORMAT {
        return Err(invalid(format!("format {} (this server reads {FORMAT})", record.format)));
    }
    let plain = |name: &Path| {
        name.components().next().is_some() && name.components().all(|part| matches!(part, Component::Normal(_)))
    };
    for model in &record.models {
        check_model_name(&model.name).map_err(invalid)?;
        if !model.versions.iter().any(|version| version.version == model.default_version) {
            return Err(invalid(format!("model `{}` serves a version it does not list", model.name)));
        }
        for version in &model.versions {
            if !is_version_folder(&model.name, &version.folder) {
                let folder = version.folder.display();
                return Err(invalid(format!(
                    "model `{}` has a version in {folder}, not a folder of its own",
                    model.name
                )));
            }
            if let Some(file) = version.files.iter().find(|file| !plain(&file.name)) {
                let file = file.name.display();
                return Err(invalid(format!("model `{}` names a file {file} outside its folder", model.name)));
            }
        }
    }
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_written_atomically_and_read_back() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join(RECORD_FILE);
        assert_eq!(read(&path).unwrap(), None);
        let state = ServerState::new(&[("a".into(), "bucket-a".into())], "a");
        write(&path, &state, &["fashion".to_owned()], folder.path()).unwrap();
        let record = read(&path).unwrap().unwrap();
        // `a` serves nothing yet, so it is not recorded.
        assert_eq!(record, RepositoryRecord { format: FORMAT, models: vec![], unloaded: vec!["fashion".into()] });
        let leftovers: Vec<_> =
            std::fs::read_dir(folder.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(leftovers, [RECORD_FILE]);
    }

    /// A record of model `x` whose one version lives in `folder` with one file `file`.
    fn version_in(folder: &str, file: &str) -> String {
        let version = serde_json::json!({
            "version": "v", "bucket": "b", "origin": "registered", "folder": folder,
            "files": [{"name": file, "sha512": "00"}],
        });
        let model = serde_json::json!({"name": "x", "default_version": "v", "versions": [version]});
        serde_json::json!({"format": 1, "models": [model], "unloaded": []}).to_string()
    }

    #[test]
    fn a_record_this_server_did_not_write_is_refused_by_name() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join(RECORD_FILE);
        for (text, expected) in [
            ("not json", "expected"),
            (r#"{"format": 2, "models": [], "unloaded": []}"#, "format 2"),
            (
                r#"{"format": 1, "models": [{"name": "../x", "default_version": "v", "versions": []}], "unloaded": []}"#,
                "model name",
            ),
            (
                r#"{"format": 1, "models": [{"name": "x", "default_version": "v", "versions": []}], "unloaded": []}"#,
                "does not list",
            ),
            (version_in("/etc", "passwd").as_str(), "not a folder of its own"),
            (version_in("x/versions/../../y", "w").as_str(), "not a folder of its own"),
            (version_in("y/versions/a", "w").as_str(), "not a folder of its own"),
            (version_in("x/versions/a", "../../secret").as_str(), "outside its folder"),
            (version_in("x", "/etc/passwd").as_str(), "outside its folder"),
        ] {
            std::fs::write(&path, text).unwrap();
            let error = read(&path).unwrap_err().to_string();
            assert!(error.contains(expected) && error.contains(RECORD_FILE), "{text}: {error}");
        }
    }
}
