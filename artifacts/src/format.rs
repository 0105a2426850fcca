//! The weights file: a safetensors file whose header metadata carries everything serving
//! must agree on with training (architecture, input shape, preprocessing, normalisation,
//! labels) and what a user needs to trust it (dataset, test accuracy, training-data hash,
//! recipe, date).
//!
//! The `safetensors` crate writes the tensors together with the metadata and reads the
//! metadata back; the serving crate builds the network the metadata names and has tch load
//! the tensors into it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

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

/// The shape of one input image, as the network takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputShape {
    /// Colour channels: 1 (grayscale) or 3 (RGB).
    pub channels: u32,
    /// Rows of pixels.
    pub height: u32,
    /// Columns of pixels.
    pub width: u32,
}

impl InputShape {
    /// A square grayscale input of `side` pixels (MNIST's is 28).
    pub const fn grayscale(side: u32) -> InputShape {
        InputShape { channels: 1, height: side, width: side }
    }

    /// Values in one input: channels × height × width.
    pub fn len(self) -> usize {
        self.channels as usize * self.height as usize * self.width as usize
    }

    /// Whether the shape holds no values at all (a zero dimension).
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// How an uploaded picture becomes the network's input; chosen per model by its weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preprocessing {
    /// Find the handwritten digit in a photo, scan or drawing and fit and centre it as MNIST's
    /// digits are (white ink on black, a 20-pixel box centred by mass in 28×28).
    Digit,
    /// What torchvision's standard classifier transforms do: apply the orientation, convert to
    /// the model's channels, resize the shorter side to the input size and crop the centre.
    Image,
}

impl Preprocessing {
    /// The name stored in the metadata and shown by the metadata routes.
    pub fn name(self) -> &'static str {
        match self {
            Preprocessing::Digit => "digit",
            Preprocessing::Image => "image",
        }
    }
}

/// How a model's raw scores (logits) become what is served: the temperature that turns them
/// into probabilities that mean what they say, and the line below which an input does not look
/// like any of the model's classes. The identity, [`Calibration::NONE`], where none was fitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// The logits are divided by it before the softmax (temperature scaling: above 1 makes
    /// the probabilities less confident, and never changes which class is the most probable).
    pub temperature: f32,
    /// An input whose domain score (the log-sum-exp of its logits, the negative of its free
    /// energy) is below this does not look like one of the classes; none: every input does.
    #[serde(default)]
    pub domain_threshold: Option<f32>,
    /// What the two were fitted on, for the model card.
    #[serde(default)]
    pub fitted_on: String,
}

impl Calibration {
    /// The logits' own softmax, and no domain check.
    pub const NONE: Calibration = Calibration { temperature: 1.0, domain_threshold: None, fitted_on: String::new() };

    /// Why these values cannot be served, if they cannot: a temperature that is not a positive
    /// finite number, or a threshold that is not finite.
    pub fn problem(&self) -> Option<String> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Some(format!("calibration temperature {} must be a positive number", self.temperature));
        }
        match self.domain_threshold {
            Some(threshold) if !threshold.is_finite() => {
                Some(format!("calibration domain_threshold {threshold} must be a finite number"))
            }
            _ => None,
        }
    }
}

impl Default for Calibration {
    fn default() -> Calibration {
        Calibration::NONE
    }
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
    /// Share of the target probability spread over the other classes (0: none; absent in
    /// weights trained before it existed).
    #[serde(default)]
    pub label_smoothing: f64,
    /// Whether the weights are an average over training steps, and which (`none`, or an
    /// exponential moving average and its decay).
    #[serde(default = "none")]
    pub weight_average: String,
    /// Pictures of no class the network learnt to answer with even probabilities (outlier
    /// exposure), and their weight; `none`.
    #[serde(default = "none")]
    pub outliers: String,
    /// Fraction of the training set held back for validation.
    pub validation_split: f64,
    /// Random seed.
    pub seed: u64,
    /// libtorch intra-op threads (part of what makes a run reproducible).
    pub threads: usize,
}

/// What weights trained before a setting existed say of it.
fn none() -> String {
    "none".to_owned()
}

/// Everything the weights carry besides tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// Which network the tensors belong to (`cnn-bn-8-16-32`, ...).
    pub architecture: String,
    /// What one input image is, as the network takes it.
    pub input_shape: InputShape,
    /// How an uploaded picture becomes that input.
    pub preprocessing: Preprocessing,
    /// Input normalisation used in training.
    pub normalisation: Normalisation,
    /// Class labels in output order.
    pub labels: Vec<String>,
    /// The data set the weights were trained on (`MNIST`, `Fashion-MNIST`).
    pub dataset: String,
    /// What the model does, in a sentence for its model card.
    pub description: String,
    /// Accuracy on the data set's test images, in [0, 1].
    pub test_accuracy: f64,
    /// Accuracy on the validation split, in [0, 1].
    pub validation_accuracy: f64,
    /// Mean cross-entropy on the validation split: the lowest of the run.
    pub validation_loss: f64,
    /// The epoch whose weights these are (the one with the lowest validation loss).
    pub best_epoch: u32,
    /// SHA-256 over the four raw IDX files of the data set (train images, train labels, test
    /// images, test labels, in that order).
    pub training_data_sha256: String,
    /// Number of trainable parameters.
    pub parameters: u64,
    /// SHA-256 of the tensors alone (names, shapes, values), independent of this metadata:
    /// equal for two runs with the same recipe, seed, thread count and machine.
    pub weights_sha256: String,
    /// How the weights were trained.
    pub recipe: TrainingRecipe,
    /// The temperature and domain threshold fitted after training ([`Calibration::NONE`] in
    /// weights trained before calibration existed).
    #[serde(default)]
    pub calibration: Calibration,
    /// When the weights were exported (RFC 3339, UTC).
    pub created: String,
}

/// Writes the variables of `store` and `metadata` to a safetensors file at `path`.
pub fn save(store: &VarStore, metadata: &ModelMetadata, path: &Path) -> Result<()> {
    save_tensors(store.variables(), METADATA_KEY, metadata, path)
}

/// Writes named tensors, as f32, to a safetensors file at `path`, with `header` as JSON under
/// `key` in the file's metadata.
pub fn save_tensors(
    tensors: impl IntoIterator<Item = (String, Tensor)>,
    key: &str,
    header: &impl Serialize,
    path: &Path,
) -> Result<()> {
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, tensor) in tensors {
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
    let json = serde_json::to_string(header).map_err(|error| invalid(path, error.to_string()))?;
    let header = HashMap::from([(key.to_owned(), json)]);
    safetensors::serialize_to_file(views, Some(header), path).map_err(|error| invalid(path, error.to_string()))
}

/// Reads only the metadata of a safetensors weights file.
pub fn read_metadata(path: &Path) -> Result<ModelMetadata> {
    read_header(path, METADATA_KEY)
}

/// Reads the JSON under `key` in the metadata of a safetensors file, without its tensors.
pub fn read_header<T: DeserializeOwned>(path: &Path, key: &str) -> Result<T> {
    let bytes = std::fs::read(path).map_err(Error::io("cannot read", path))?;
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|error| invalid(path, error.to_string()))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|entries| entries.get(key))
        .ok_or_else(|| invalid(path, format!("no `{key}` metadata in the header")))?;
    serde_json::from_str(json).map_err(|error| invalid(path, format!("bad `{key}` metadata: {error}")))
}

/// An [`Error::InvalidArtifact`] for `path`.
pub fn invalid(path: &Path, reason: String) -> Error {
    Error::InvalidArtifact { path: PathBuf::from(path), reason }
}
