//! The MAX model wrapper: `pre_process` (bytes → tensor), `predict` (forward pass) and
//! `post_process` (logits → predictions), the three steps every request goes through.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::Result;
use crate::artifact::{self, ModelMetadata};
use crate::network::ServingNet;
use crate::preprocess::Preprocessor;

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
    /// Loads verified weights from `path` onto `device`; images over `max_pixels` pixels
    /// will be refused by [`ModelWrapper::pre_process`].
    pub fn load(path: &Path, device: Device, max_pixels: u64) -> Result<ModelWrapper> {
        let loaded = artifact::load(path, device)?;
        Ok(ModelWrapper {
            preprocessor: Preprocessor::new(loaded.metadata.input_size, loaded.metadata.normalisation, max_pixels),
            net: loaded.net.for_serving(),
            metadata: loaded.metadata,
        })
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

    /// Step 1: encoded image bytes → normalised `[1, 28, 28]` tensor.
    pub fn pre_process(&self, image: &[u8]) -> Result<Tensor> {
        self.preprocessor.pre_process(image)
    }

    /// Step 2: a `[N, 1, 28, 28]` batch → `[N, classes]` logits, through the network
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
