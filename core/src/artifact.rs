//! The weights file: a safetensors file whose header metadata carries everything serving
//! must agree on with training (architecture, input size, normalisation, labels) and what a
//! user needs to trust it (test accuracy, training-data hash, recipe, date).
//!
//! tch loads the tensors; the `safetensors` crate writes them together with the metadata
//! and reads the metadata back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind};

use crate::network::{Architecture, Net};
use crate::{Error, Result};

/// The header key under which [`ModelMetadata`] is stored, as JSON.
pub const METADATA_KEY: &str = "max_mnist";

/// How pixels in [0, 1] are normalised before the network sees them: `(x - mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    /// Subtracted first.
    pub mean: f32,
    /// Then divided by.
    pub std: f32,
}

/// How the weights were trained, as recorded in their metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecipe {
    /// Optimiser name and its settings, e.g. `adamw(betas=(0.9, 0.999), weight_decay=0.0001)`.
    pub optimizer: String,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// How the learning rate changes over the run.
    pub schedule: String,
    /// Passes over the training set.
    pub epochs: u32,
    /// Images per optimisation step.
    pub batch_size: u32,
    /// How training images were randomly warped.
    pub augmentation: String,
    /// Fraction of the training set held back for validation.
    pub validation_split: f64,
    /// Random seed.
    pub seed: u64,
    /// libtorch intra-op threads (part of what makes a run reproducible).
    pub threads: usize,
}

/// Everything the weights carry besides tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// Which [`Net`] the tensors belong to.
    pub architecture: Architecture,
    /// Side of the square input image.
    pub input_size: u32,
    /// Input normalisation used in training.
    pub normalisation: Normalisation,
    /// Class labels in output order.
    pub labels: Vec<String>,
    /// Accuracy on the 10,000 MNIST test images, in [0, 1].
    pub test_accuracy: f64,
    /// Accuracy on the validation split, in [0, 1].
    pub validation_accuracy: f64,
    /// Mean cross-entropy on the validation split: the lowest of the run.
    pub validation_loss: f64,
    /// The epoch whose weights these are (the one with the lowest validation loss).
    pub best_epoch: u32,
    /// SHA-256 over the four raw MNIST IDX files (train images, train labels, test images,
    /// test labels, in that order).
    pub training_data_sha256: String,
    /// Number of trainable parameters.
    pub parameters: u64,
    /// SHA-256 of the tensors alone (names, shapes, values), independent of this metadata:
    /// equal for two runs with the same recipe, seed, thread count and machine.
    pub weights_sha256: String,
    /// How the weights were trained.
    pub recipe: TrainingRecipe,
    /// When the weights were exported (RFC 3339, UTC).
    pub created: String,
}

/// A network with its weights loaded, ready for inference.
pub struct LoadedModel {
    /// The network.
    pub net: Net,
    /// Its variables (kept alive for as long as the network is used).
    pub store: VarStore,
    /// The metadata that came with the weights.
    pub metadata: ModelMetadata,
}

/// Writes the variables of `store` and `metadata` to a safetensors file at `path`.
pub fn save(store: &VarStore, metadata: &ModelMetadata, path: &Path) -> Result<()> {
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, tensor) in store.variables() {
        let values = tensor.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().flatten(0, -1);
        let values = Vec::<f32>::try_from(&values)?;
        let shape = tensor.size().iter().map(|&dim| dim as usize).collect();
        named.push((name, shape, values.iter().flat_map(|value| value.to_le_bytes()).collect()));
    }
    let views = named
        .iter()
        .map(|(name, shape, bytes)| TensorView::new(Dtype::F32, shape.clone(), bytes).map(|view| (name.as_str(), view)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(path, error.to_string()))?;
    let json = serde_json::to_string(metadata).map_err(|error| invalid(path, error.to_string()))?;
    let header = HashMap::from([(METADATA_KEY.to_owned(), json)]);
    safetensors::serialize_to_file(views, Some(header), path).map_err(|error| invalid(path, error.to_string()))
}

/// Reads only the metadata of a safetensors weights file.
pub fn read_metadata(path: &Path) -> Result<ModelMetadata> {
    let bytes = std::fs::read(path).map_err(Error::io("cannot read", path))?;
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|error| invalid(path, error.to_string()))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|entries| entries.get(METADATA_KEY))
        .ok_or_else(|| invalid(path, format!("no `{METADATA_KEY}` metadata in the header")))?;
    serde_json::from_str(json).map_err(|error| invalid(path, format!("bad `{METADATA_KEY}` metadata: {error}")))
}

/// Builds the network named in the file's metadata and loads its weights onto `device`.
pub fn load(path: &Path, device: Device) -> Result<LoadedModel> {
    let metadata = read_metadata(path)?;
    let mut store = VarStore::new(device);
    let net = Net::new(&store.root(), metadata.architecture);
    store.load(path).map_err(|error| invalid(path, error.to_string()))?;
    Ok(LoadedModel { net, store, metadata })
}

fn invalid(path: &Path, reason: String) -> Error {
    Error::InvalidArtifact { path: PathBuf::from(path), reason }
}
