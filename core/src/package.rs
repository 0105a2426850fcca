//! Packaging a user's TorchScript module as a model this server serves, as
//! `torch-model-archiver` does for TorchServe: [`package`] checks the module, its labels and
//! its card by loading them exactly as the server will (a forward pass of a blank batch must
//! give one score per label), then writes the bucket: `<name>.tar.gz` holding the module
//! and `model-card.json`, and `sha512sums.txt` listing all three.

use std::path::{Path, PathBuf};

use max_mnist_artifacts::archive::UnpackLimits;
use max_mnist_artifacts::bucket::{self, ARCHIVE_SUFFIX};
use max_mnist_artifacts::card::{CARD_FILE, ModelCard, ModelFiles};

use crate::wrapper::ModelWrapper;
use crate::{Device, LoadError};

/// Why a module could not be packaged.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The labels file cannot be read or lists no usable labels.
    #[error("labels {path}: {reason}")]
    Labels {
        /// The labels file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The TorchScript file cannot be used.
    #[error("TorchScript file {path}: {reason}")]
    Module {
        /// The file given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The card made from the options cannot describe a model.
    #[error("model card: {0}")]
    Card(String),
    /// The module, with that card, is not a model the server can run.
    #[error(transparent)]
    Model(#[from] LoadError),
    /// Writing the bucket failed.
    #[error(transparent)]
    Artifact(#[from] max_mnist_artifacts::Error),
}

/// Reads class labels in output order: a JSON file (`.json`) holding a list of names or
/// TorchServe's `index_to_name.json` object (`{"0": "cat", "1": "dog"}`, every index from 0),
/// or else a text file with one label per line (blank lines at the end ignored).
pub fn read_labels(path: &Path) -> Result<Vec<String>, PackageError> {
    let refuse = |reason: String| PackageError::Labels { path: path.to_owned(), reason };
    let text = std::fs::read_to_string(path).map_err(|error| refuse(error.to_string()))?;
    let labels = if path.extension().is_some_and(|extension| extension == "json") {
        labels_from_json(&text).map_err(refuse)?
    } else {
        let mut lines: Vec<String> = text.lines().map(|line| line.trim().to_owned()).collect();
        while lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        lines
    };
    if labels.is_empty() {
        return Err(refuse("no labels in it".into()));
    }
    Ok(labels)
}

fn labels_from_json(text: &str) -> Result<Vec<String>, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|error| error.to_string())?;
    let name = |value: &serde_json::Value| match value {
        serde_json::Value::String(name) => Ok(name.clone()),
        // TorchServe's ImageNet map gives ["n01440764", "tench"]: the name is the last entry.
        serde_json::Value::Array(parts) => parts.last().and_then(|part| part.as_str()).map(str::to_owned).ok_or(()),
        _ => Err(()),
    };
    let not_a_name = |value: &serde_json::Value| format!("{value} is not a label name");
    match &value {
        serde_json::Value::Array(names) => {
            names.iter().map(|value| name(value).map_err(|()| not_a_name(value))).collect()
        }
        serde_json::Value::Object(map) => (0..map.len())
            .map(|index| {
                let value = map.get(&index.to_string()).ok_or_else(|| format!("no label for index {index}"))?;
                name(value).map_err(|()| not_a_name(value))
            })
            .collect(),
        _ => Err("expected a list of names or an object from index to name".into()),
    }
}

/// Checks the TorchScript module at `module` with `card` and writes the model `name` into the
/// bucket folder `output` (made if missing). Returns the archive's path.
pub fn package(module: &Path, card: &ModelCard, name: &str, output: &Path) -> Result<PathBuf, PackageError> {
    if let Some(problem) = card.problem() {
        return Err(PackageError::Card(problem));
    }
    let unusable = |reason: String| PackageError::Module { path: module.to_owned(), reason };
    let size = std::fs::metadata(module).map_err(|error| unusable(error.to_string()))?.len();
    let limit = UnpackLimits::default().max_file_bytes;
    if size > limit {
        return Err(unusable(format!("{size} bytes, over the {limit} bytes a server unpacks")));
    }
    let scratch = tempfile::tempdir().map_err(|error| unusable(format!("cannot make a scratch folder: {error}")))?;
    let staged_module = scratch.path().join(format!("{name}.pt"));
    let staged_card = scratch.path().join(CARD_FILE);
    std::fs::copy(module, &staged_module).map_err(|error| unusable(error.to_string()))?;
    card.write(&staged_card)?;
    // Loaded exactly as the server will load it, so that what passes here serves there.
    let staged = ModelFiles::TorchScript { module: staged_module.clone(), card: staged_card.clone() };
    // Its errors name the user's file, not the staged copy.
    ModelWrapper::load(&staged, Device::Cpu, 1).map_err(|error| match error {
        LoadError::InvalidModel { reason, .. } => unusable(reason),
        other => PackageError::Model(other),
    })?;
    let archive = format!("{name}{ARCHIVE_SUFFIX}");
    Ok(bucket::publish(&[&staged_module, &staged_card], output, &archive)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels_in(name: &str, text: &str) -> Result<Vec<String>, PackageError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        read_labels(&path)
    }

    #[test]
    fn labels_come_from_lines_or_torchserve_s_json() {
        assert_eq!(labels_in("labels.txt", "cat\n dog \n\n").unwrap(), ["cat", "dog"]);
        assert_eq!(labels_in("labels.json", r#"["cat", "dog"]"#).unwrap(), ["cat", "dog"]);
        let index_to_name = r#"{"1": ["n02", "dog"], "0": ["n01", "cat"]}"#;
        assert_eq!(labels_in("index_to_name.json", index_to_name).unwrap(), ["cat", "dog"]);
        for (name, text, expected) in [
            ("labels.txt", "\n\n", "no labels"),
            ("labels.json", r#"{"0": "cat", "2": "dog"}"#, "no label for index 1"),
            ("labels.json", "[1, 2]", "1 is not a label name"),
            ("labels.json", "{", "EOF"),
        ] {
            let error = labels_in(name, text).unwrap_err().to_string();
            assert!(error.contains(expected), "{error} should say {expected}");
        }
    }
}
