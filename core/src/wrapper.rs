//! The MAX model wrapper: `pre_process` (bytes → tensor), `predict` (forward pass) and
//! `post_process` (logits → predictions), the three steps every request goes through. The
//! inference engine runs exactly these: step 1 on its preprocessing threads (through the
//! wrapper's [`Preprocessor`], which can be shared between threads where the network cannot),
//! steps 2 and 3 on the thread that owns the wrapper.

use max_mnist_artifacts::card::{ModelCard, ModelFiles};
use max_mnist_artifacts::format::{self, ModelMetadata};
use tch::{Device, Kind, Tensor};

use crate::network::{self, Network, TorchScriptNet};
use crate::preprocess::{ModelInput, Prepared, Preprocessor};
use crate::{Error, LoadError, Result};

/// One classified image.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Index of the most probable class (for MNIST, the digit itself).
    pub class_index: usize,
    /// Its label.
    pub label: String,
    /// Its probability, in [0, 1].
    pub probability: f32,
    /// The probability of every class, in label order; they sum to 1. Calibrated: the
    /// softmax of the logits divided by the card's temperature.
    pub probabilities: Vec<f32>,
    /// How much the input looks like any of the classes at all: the log-sum-exp of the logits
    /// (the negative of their free energy). Higher is more like the training data.
    pub domain_score: f32,
    /// Whether the domain score reaches the card's threshold; none for a model without one.
    pub in_domain: Option<bool>,
}

/// A loaded model and the three steps of inference.
pub struct ModelWrapper {
    preprocessor: Preprocessor,
    net: Network,
    card: ModelCard,
    training: Option<ModelMetadata>,
}

impl ModelWrapper {
    /// Loads a model from its verified `files` onto `device`: weights from the train bin
    /// (their card and training report in their metadata), or a TorchScript module with its
    /// card. Images over `max_pixels` pixels will be refused by [`ModelWrapper::pre_process`].
    /// The card is validated first; then, before the model is accepted, a forward pass of a
    /// blank batch must give one score per label.
    pub fn load(files: &ModelFiles, device: Device, max_pixels: u64) -> Result<ModelWrapper, LoadError> {
        let (card, training, net) = match files {
            ModelFiles::Trained { weights } => {
                let metadata = format::read_metadata(weights)?;
                let net = Network::Trained(network::load(weights, &metadata, device)?);
                (ModelCard::of_trained(&metadata), Some(metadata), net)
            }
            // The card is read and validated before libtorch sees the module.
            ModelFiles::TorchScript { module, card } => {
                let card = ModelCard::read(card)?;
                (card, None, Network::TorchScript(TorchScriptNet::load(module, device)?))
            }
        };
        let preprocessor = Preprocessor::new(&card, max_pixels)?;
        let model = ModelWrapper { preprocessor, net, card, training };
        model.check_output(files.network_file())?;
        Ok(model)
    }

    /// Refuses a network that does not give one score per label for each image of a blank
    /// batch of two.
    fn check_output(&self, path: &std::path::Path) -> Result<(), LoadError> {
        let invalid = |reason: String| LoadError::InvalidModel { path: path.to_owned(), reason };
        let blank = self.preprocessor.prepare(ModelInput::blank(self.card.input_shape)).tensor;
        let labels = self.card.labels.len();
        let scores = self.net.forward(&Tensor::stack(&[&blank, &blank], 0)).map_err(|error| {
            let shape = self.card.input_shape;
            invalid(format!(
                "a forward pass of a [2, {}, {}, {}] input fails: {}",
                shape.channels,
                shape.height,
                shape.width,
                network::torch_reason(&error.to_string())
            ))
        })?;
        if scores.size() != [2, labels as i64] {
            let per_image = scores.size().get(1).map_or("no".into(), i64::to_string);
            return Err(invalid(format!(
                "it gives {per_image} scores per image (shape {:?} for a batch of 2), but {labels} labels: one score \
                 per label is needed",
                scores.size()
            )));
        }
        Ok(())
    }

    /// What serving needs to know about the model.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// How the weights were trained, for a model from this project's train bin.
    pub fn training(&self) -> Option<&ModelMetadata> {
        self.training.as_ref()
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

    /// Step 2: a `[N, channels, height, width]` batch → `[N, classes]` logits, without
    /// gradients (for our networks, through the network prepared for serving: batch norm
    /// folded in, oneDNN on CPU). Scores of any other shape are an error.
    pub fn predict(&self, batch: &Tensor) -> Result<Tensor> {
        let scores = self.net.forward(batch)?;
        let expected = [batch.size().first().copied().unwrap_or(0), self.card.labels.len() as i64];
        if scores.size() != expected {
            tracing::error!(shape = ?scores.size(), ?expected, "the network's scores have the wrong shape");
            return Err(Error::InferenceFailed);
        }
        Ok(scores)
    }

    /// Step 3: logits → one [`Prediction`] per row: the softmax of the logits over the card's
    /// temperature, the most probable class, and the domain score against the card's
    /// threshold.
    pub fn post_process(&self, logits: &Tensor) -> Result<Vec<Prediction>> {
        let calibration = &self.card.calibration;
        let logits = logits.to_device(Device::Cpu);
        let rows = Vec::<Vec<f32>>::try_from(&calibrated_probabilities(&logits, f64::from(calibration.temperature)))?;
        let domain_scores = Vec::<f32>::try_from(&domain_scores(&logits))?;
        Ok(rows
            .into_iter()
            .zip(domain_scores)
            .map(|(probabilities, domain_score)| {
                let (class_index, &probability) = probabilities
                    .iter()
                    .enumerate()
                    .max_by(|(_, left), (_, right)| left.total_cmp(right))
                    .expect("a model has at least one class");
                let label = self.card.labels.get(class_index).cloned().unwrap_or_else(|| class_index.to_string());
                let in_domain = calibration.domain_threshold.map(|threshold| domain_score >= threshold);
                Prediction { class_index, label, probability, probabilities, domain_score, in_domain }
            })
            .collect())
    }
}

/// The probabilities served for `logits` (`[N, classes]`) at `temperature`: the softmax of the
/// logits divided by it.
pub fn calibrated_probabilities(logits: &Tensor, temperature: f64) -> Tensor {
    (logits.to_kind(Kind::Float) / temperature).softmax(-1, Kind::Float)
}

/// The domain score of each row of `logits`: their log-sum-exp (the negative of their free
/// energy).
pub fn domain_scores(logits: &Tensor) -> Tensor {
    logits.to_kind(Kind::Float).logsumexp([-1], false)
}
