//! A run's checkpoint, `checkpoint.safetensors` in the run directory: everything a run needs
//! to go on after its last completed epoch. The network's variables (`model/...`), those of
//! the best epoch so far (`best/...`), the optimiser's state (`optimizer/...`), the weight
//! average when the run keeps one (`average/...`), and in the
//! header the progress (epoch, step, best epoch and its validation loss) and the settings it
//! was made with. It is written after every epoch, to a file beside it that is renamed over
//! it, so an interruption leaves the previous checkpoint or the new one, never half of one.
//!
//! `train --resume RUN_DIR` reads it back, refuses it if the settings differ (naming each
//! one), and continues with the next epoch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use max_mnist_artifacts::format;

use crate::{Error, Result};

/// The checkpoint's file name in the run directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// The header key of [`Progress`].
const PROGRESS_KEY: &str = "max_mnist_checkpoint";
const MODEL: &str = "model/";
const BEST: &str = "best/";
const OPTIMIZER: &str = "optimizer/";
const AVERAGE: &str = "average/";
/// The prefixes of the tensor groups, in the order [`save`] writes and [`load`] reads them.
const GROUPS: [&str; 4] = [MODEL, BEST, OPTIMIZER, AVERAGE];

/// How far a run got, and with which settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The last completed epoch.
    pub epoch: u32,
    /// Optimisation steps taken.
    pub steps: i64,
    /// The epoch with the lowest validation loss so far.
    pub best_epoch: u32,
    /// Its validation loss.
    pub best_validation_loss: f64,
    /// Every setting that decides the weights, by name, as text.
    pub recipe: BTreeMap<String, String>,
}

/// The tensors a checkpoint is written from.
pub struct Tensors<'a> {
    /// The network's variables after the epoch.
    pub model: Vec<(String, Tensor)>,
    /// The variables of the best epoch.
    pub best: &'a HashMap<String, Tensor>,
    /// The optimiser's state, as [`crate::optimizer::OptimizerState::state`] names it.
    pub optimizer: Vec<(String, Tensor)>,
    /// The weight average's variables; none when the run keeps no average.
    pub average: Vec<(String, Tensor)>,
}

/// A checkpoint read back: the progress and the groups of tensors.
pub struct Checkpoint {
    /// How far the run got.
    pub progress: Progress,
    /// The network's variables after the last completed epoch.
    pub model: HashMap<String, Tensor>,
    /// The variables of the best epoch.
    pub best: HashMap<String, Tensor>,
    /// The optimiser's state, as [`crate::optimizer::OptimizerState::state`] names it.
    pub optimizer: HashMap<String, Tensor>,
    /// The weight average's variables (empty when the run keeps none).
    pub average: HashMap<String, Tensor>,
}

/// The checkpoint's path in `run_dir`.
pub fn path_in(run_dir: &Path) -> PathBuf {
    run_dir.join(CHECKPOINT_FILE)
}

/// Writes a checkpoint to `path` atomically.
pub fn save(path: &Path, progress: &Progress, tensors: Tensors) -> Result<()> {
    let best = tensors.best.iter().map(|(name, tensor)| (name.clone(), tensor.shallow_clone())).collect();
    let tensors = GROUPS
        .into_iter()
        .zip([tensors.model, best, tensors.optimizer, tensors.average])
        .flat_map(|(prefix, group)| group.into_iter().map(move |(name, tensor)| (format!("{prefix}{name}"), tensor)));
    let partial = path.with_extension("safetensors.partial");
    format::save_tensors(tensors, PROGRESS_KEY, progress, &partial)?;
    std::fs::rename(&partial, path).map_err(Error::io("cannot move into place", path))
}

/// Removes the checkpoint at `path` left by an earlier run of the same name, if any, so that
/// a fresh run that stops before its first epoch ends leaves nothing to resume in its name.
pub fn discard(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            tracing::info!(checkpoint = %path.display(), "removed the checkpoint of an earlier run");
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(Error::io("cannot remove", path)(error)),
    }
}

/// Reads the checkpoint at `path`.
pub fn load(path: &Path) -> Result<Checkpoint> {
    if !path.is_file() {
        let reason = format!("{} does not exist: was this run stopped after an epoch?", path.display());
        return Err(Error::InvalidCheckpoint(reason));
    }
    let invalid = |reason: String| Error::InvalidCheckpoint(format!("{}: {reason}", path.display()));
    let progress: Progress = format::read_header(path, PROGRESS_KEY).map_err(|error| invalid(error.to_string()))?;
    let tensors = Tensor::read_safetensors(path).map_err(|error| invalid(error.to_string()))?;
    let mut groups = [HashMap::new(), HashMap::new(), HashMap::new(), HashMap::new()];
    for (name, tensor) in tensors {
        let Some(group) = GROUPS.iter().position(|prefix| name.starts_with(prefix)) else {
            return Err(invalid(format!("unexpected tensor `{name}`")));
        };
        groups[group].insert(name[GROUPS[group].len()..].to_owned(), tensor);
    }
    let [model, best, optimizer, average] = groups;
    Ok(Checkpoint { progress, model, best, optimizer, average })
}

/// Sets each of `targets` (tensors sharing the storage of a network's variables or an
/// optimiser's state) to the saved tensor of the same name, refusing a set that misses one or
/// has another shape (a checkpoint of another network).
pub fn copy_into(targets: &[(String, Tensor)], saved: &HashMap<String, Tensor>) -> Result<()> {
    let _no_grad = tch::no_grad_guard();
    for (name, tensor) in targets {
        let value = saved.get(name).ok_or_else(|| Error::InvalidCheckpoint(format!("no `{name}` tensor")))?;
        if value.size() != tensor.size() {
            let reason = format!("`{name}` is {:?}, the network's is {:?}", value.size(), tensor.size());
            return Err(Error::InvalidCheckpoint(reason));
        }
        tensor.shallow_clone().copy_(value);
    }
    Ok(())
}

/// Refuses to resume with other settings than the checkpoint's, naming each that differs.
pub fn check_recipe(path: &Path, saved: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> Result<()> {
    let names: BTreeSet<&String> = saved.keys().chain(now.keys()).collect();
    let differences: Vec<String> = names
        .into_iter()
        .filter(|name| saved.get(*name) != now.get(*name))
        .map(|name| {
            let shown = |value: Option<&String>| value.map_or("(not set)".to_owned(), Clone::clone);
            format!("{name} was {}, now {}", shown(saved.get(name)), shown(now.get(name)))
        })
        .collect();
    if differences.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidCheckpoint(format!(
        "{} was made with other settings ({}); resume with the flags of the interrupted run",
        path.display(),
        differences.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
    }

    #[test]
    fn a_checkpoint_reads_back_as_written_and_replaces_the_last_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        let progress = |epoch| Progress {
            epoch,
            steps: 40 * i64::from(epoch),
            best_epoch: 1,
            best_validation_loss: 0.25,
            recipe: recipe(&[("seed", "1")]),
        };
        let tensor = |value: f32| Tensor::from_slice(&[value, value + 1.0]).view([1, 2]);
        let best = HashMap::from([("conv.weight".to_owned(), tensor(1.0))]);
        for epoch in [1, 2] {
            let tensors = Tensors {
                model: vec![("conv.weight".to_owned(), tensor(epoch as f32))],
                best: &best,
                optimizer: vec![("first/conv.weight".to_owned(), tensor(-1.0))],
                average: vec![],
            };
            save(&path, &progress(epoch), tensors).unwrap();
        }
        let saved = load(&path).unwrap();
        assert_eq!(saved.progress, progress(2));
        assert_eq!(Vec::<f32>::try_from(saved.model["conv.weight"].flatten(0, -1)).unwrap(), [2.0, 3.0]);
        assert_eq!(Vec::<f32>::try_from(saved.best["conv.weight"].flatten(0, -1)).unwrap(), [1.0, 2.0]);
        assert_eq!(saved.optimizer["first/conv.weight"].size(), [1, 2]);
        assert!(saved.average.is_empty());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(left, [CHECKPOINT_FILE], "no partial file is left behind");
    }

    #[test]
    fn a_fresh_run_discards_an_earlier_checkpoint_and_none_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        std::fs::write(&path, b"an earlier run's").unwrap();
        discard(&path).unwrap();
        assert!(!path.exists());
        discard(&path).unwrap();
    }

    #[test]
    fn resuming_with_other_settings_names_each_one() {
        let path = Path::new("runs/mnist/checkpoint.safetensors");
        let saved = recipe(&[("epochs", "40"), ("lr", "0.003"), ("seed", "1")]);
        check_recipe(path, &saved, &saved).unwrap();
        let now = recipe(&[("epochs", "30"), ("lr", "0.003"), ("seed", "2")]);
        let error = check_recipe(path, &saved, &now).unwrap_err().to_string();
        assert!(error.contains("epochs was 40, now 30; seed was 1, now 2"), "{error}");
        assert!(!error.contains("lr"), "{error}");
    }
}
