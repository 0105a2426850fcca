//! The MAX model wrapper: `pre_process` (bytes → tensor), `predict` (forward pass) and
//! `post_process` (logits → predictions), the three steps every request goes through. The
//! inference engine runs exactly these: step 1 on its preprocessing threads (through the
//! wrapper's [`Preprocessor`], which can be shared between threads where the network cannot),
//! steps 2 and 3 on the thread that owns the wrapper.

use std::path::Path;

use max_mnist_artifacts::format::{self, ModelMetadata};
use tch::{Device, Kind, Tensor};

use crate::network::{self, ServingNet};
use crate::preprocess::{ModelInput, Prepared, Preprocessor};
use crate::{LoadError, Result};

/// One classified image.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Index of the most probable class (for MNIST, the digit itself).
    pub class_index: usize,
    /// Its label.
    pub label: String,
    /// Its probability, in [0, 1].
    pub probability: f32,
    /// The probability of every class, in label order; they sum to 1.
    pub probabilities: Vec<f32>,
}

/// A loaded model and the three steps of inference.
pub struct ModelWrapper {
    preprocessor: Preprocessor,
    net: ServingNet,
    metadata: ModelMetadata,
}

impl ModelWrapper {
    /// Loads verified weights from `path` onto `device`, with the preprocessing their metadata
    /// asks for; images over `max_pixels` pixels will be refused by
    /// [`ModelWrapper::pre_process`]. Before it is accepted, a forward pass of a blank input
    /// must give one score per label.
    pub fn load(path: &Path, device: Device, max_pixels: u64) -> Result<ModelWrapper, LoadError> {
        let metadata = format::read_metadata(path)?;
        let preprocessor =
            Preprocessor::new(metadata.preprocessing, metadata.input_shape, metadata.normalisation, max_pixels)?;
        let net = network::load(path, &metadata, device)?;
        let model = ModelWrapper { preprocessor, net, metadata };
        let blank = model.preprocessor.prepare(ModelInput::blank(model.metadata.input_shape));
        let scores = model.predict(&blank.tensor.unsqueeze(0)).size();
        if scores != [1, model.metadata.labels.len() as i64] {
            return Err(LoadError::InvalidModel {
                path: path.to_owned(),
                reason: format!(
                    "a forward pass gives scores of shape {scores:?} for {} labels",
                    model.metadata.labels.len()
                ),
            });
        }
        Ok(model)
    }

    /// What came with the weights.
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// The `pre_process` step as a standalone value, so that decoding can run on other
    /// threads while the thread that owns the model runs forwards.
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.preprocessor
    }

    /// Step 1: encoded image bytes → the input the model sees and its normalised
    /// `[channels, height, width]` tensor.
    pub fn pre_process(&self, image: &[u8]) -> Result<Prepared> {
        self.preprocessor.pre_process(image)
    }

    /// Step 2: a `[N, channels, height, width]` batch → `[N, classes]` logits, through the network
    /// prepared for serving (batch norm folded in, oneDNN on CPU), without gradients.
    pub fn predict(&self, batch: &Tensor) -> Tensor {
        self.net.forward(batch)
    }

    /// Step 3: logits → one [`Prediction`] per row (softmax, then the most probable class).
    pub fn post_process(&self, logits: &Tensor) -> Result<Vec<Prediction>> {
        let probabilities = logits.softmax(-1, Kind::Float).to_device(Device::Cpu);
        let rows = Vec::<Vec<f32>>::try_from(&probabilities)?;
        Ok(rows
            .into_iter()
            .map(|probabilities| {
                let (class_index, &probability) = probabilities
                    .iter()
                    .enumerate()
                    .max_by(|(_, left), (_, right)| left.total_cmp(right))
                    .expect("a model has at least one class");
                let label = self.metadata.labels.get(class_index).cloned().unwrap_or_else(|| class_index.to_string());
                Prediction { class_index, label, probability, probabilities }
            })
            .collect())
    }
}
