//! Request and response bodies of the model routes, as they appear in the OpenAPI document.

use base64::prelude::{BASE64_STANDARD, Engine};
use max_mnist_artifacts::card::{ChannelNormalisation, ModelCard};
use max_mnist_artifacts::format::{Calibration, ModelMetadata, TrainingRecipe};
use max_mnist_config::metadata::{MODEL_LICENSE, MODEL_TYPE};
use max_mnist_core::Error as CoreError;
use max_mnist_core::inference::Classification;
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaMediaType, MetaRequest};
use poem_openapi::types::{Binary, Example, ParseFromJSON, ToJSON};
use poem_openapi::{Multipart, Object};
use serde::Deserialize;

/// How a body that an extractor of ours reads as JSON of type `T` is documented: as poem's
/// `Json<T>` would be. (Register the schema with `<Json<T> as Payload>::register`.)
pub fn json_request_meta<T: ParseFromJSON + ToJSON>(required: bool) -> Option<MetaRequest> {
    Some(MetaRequest {
        description: None,
        content: vec![MetaMediaType {
            content_type: <Json<T> as Payload>::CONTENT_TYPE,
            schema: <Json<T> as Payload>::schema_ref(),
        }],
        required,
    })
}

/// The multipart form of `POST /model/predict` as the OpenAPI document shows it; the
/// parts are read by [`crate::upload::PredictUpload`], which caps their number.
#[derive(Multipart, Debug)]
pub struct PredictForm {
    /// The images, one per part, each PNG, JPEG, GIF, BMP, WebP or TIFF (for a digit model,
    /// with a digit anywhere in it); one prediction per image, in order.
    pub image: Option<Vec<Binary<Vec<u8>>>>,
    /// The same, under the field name older MAX clients send.
    pub file: Option<Vec<Binary<Vec<u8>>>>,
    /// The same, under the field name TorchServe clients send.
    pub data: Option<Vec<Binary<Vec<u8>>>>,
}

/// One classified image.
#[derive(Object, Debug, Clone, PartialEq, Deserialize)]
pub struct PredictionBody {
    /// The predicted class's index (for a digit model, the digit).
    pub prediction: u32,
    /// Its label.
    pub label: String,
    /// The probability of the predicted class, in [0, 1].
    pub probability: f32,
    /// The probability of each class, in label order; they sum to 1. Calibrated: the model's
    /// temperature (`calibration` in its metadata) is applied first.
    pub probabilities: Vec<f32>,
    /// Whether the input looks like one of the model's classes at all (for a digit model:
    /// like a digit), by `domain_score` against the model's threshold; absent for a model
    /// without one.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub in_domain: Option<bool>,
    /// How much the input looks like the model's training data: the log-sum-exp of the
    /// network's scores. Higher is more alike.
    pub domain_score: f32,
    /// The image the network saw (for a digit model, white ink on black after finding,
    /// cropping and centring the digit), as a PNG data URL; only with `include_input=true`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub model_input: Option<String>,
}

impl PredictionBody {
    /// The body for `classification`, with the model's input as a PNG data URL when
    /// `include_input` is set.
    pub fn new(classification: Classification, include_input: bool) -> Result<PredictionBody, CoreError> {
        let model_input = if include_input {
            Some(format!("data:image/png;base64,{}", BASE64_STANDARD.encode(classification.input.to_png()?)))
        } else {
            None
        };
        let prediction = classification.prediction;
        Ok(PredictionBody {
            prediction: prediction.class_index as u32,
            label: prediction.label,
            probability: prediction.probability,
            probabilities: prediction.probabilities,
            in_domain: prediction.in_domain,
            domain_score: prediction.domain_score,
            model_input,
        })
    }
}

/// The answer of `POST /model/predict`.
#[derive(Object, Debug, Clone, PartialEq, Deserialize)]
#[oai(example)]
pub struct PredictResponse {
    /// Always `ok`.
    pub status: String,
    /// One prediction per image.
    pub predictions: Vec<PredictionBody>,
}

impl PredictResponse {
    /// A successful answer with `predictions`.
    pub fn ok(predictions: Vec<PredictionBody>) -> PredictResponse {
        PredictResponse { status: "ok".into(), predictions }
    }
}

impl Example for PredictResponse {
    fn example() -> PredictResponse {
        let mut probabilities = vec![0.0002; 10];
        probabilities[7] = 0.9982;
        PredictResponse::ok(vec![PredictionBody {
            prediction: 7,
            label: "7".into(),
            probability: 0.9982,
            probabilities,
            in_domain: Some(true),
            domain_score: 14.2,
            model_input: None,
        }])
    }
}

/// Input normalisation applied before the network, channel by channel:
/// `(pixel / 255 - mean[c]) / std[c]`.
#[derive(Object, Debug, Clone, PartialEq, Deserialize)]
pub struct NormalisationBody {
    /// Subtracted first, one value per channel.
    pub mean: Vec<f32>,
    /// Then divided by, one value per channel.
    pub std: Vec<f32>,
}

impl From<&ChannelNormalisation> for NormalisationBody {
    fn from(normalisation: &ChannelNormalisation) -> NormalisationBody {
        NormalisationBody { mean: normalisation.mean.clone(), std: normalisation.std.clone() }
    }
}

/// How the served weights were trained.
#[derive(Object, Debug, Clone, PartialEq, Deserialize)]
pub struct RecipeBody {
    /// Optimiser and its settings.
    pub optimizer: String,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// How the learning rate changed over the run.
    pub schedule: String,
    /// Passes over the training set.
    pub epochs: u32,
    /// Images per optimisation step.
    pub batch_size: u32,
    /// How training images were randomly warped.
    pub augmentation: String,
    /// Share of the target probability spread over the other classes (0: none).
    pub label_smoothing: f64,
    /// Whether the weights are an average over training steps (`none`, or an exponential
    /// moving average and its decay).
    pub weight_average: String,
    /// Pictures of no class the network learnt to answer with even probabilities (outlier
    /// exposure), and their weight; `none`.
    pub outliers: String,
    /// Fraction of the training set held back for validation.
    pub validation_split: f64,
    /// Random seed.
    pub seed: u64,
    /// libtorch threads used in training.
    pub threads: usize,
}

impl From<&TrainingRecipe> for RecipeBody {
    fn from(recipe: &TrainingRecipe) -> RecipeBody {
        RecipeBody {
            optimizer: recipe.optimizer.clone(),
            learning_rate: recipe.learning_rate,
            schedule: recipe.schedule.clone(),
            epochs: recipe.epochs,
            batch_size: recipe.batch_size,
            augmentation: recipe.augmentation.clone(),
            label_smoothing: recipe.label_smoothing,
            weight_average: recipe.weight_average.clone(),
            outliers: recipe.outliers.clone(),
            validation_split: recipe.validation_split,
            seed: recipe.seed,
            threads: recipe.threads,
        }
    }
}

/// The answer of `GET /model/metadata` and `/models/{model}/metadata`: the MAX model card
/// plus what a user needs to trust the weights being served.
#[derive(Object, Debug, Clone, PartialEq, Deserialize)]
pub struct ModelMetadataResponse {
    /// The model's name in the routes.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// What the model does.
    pub description: String,
    /// MAX model type.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub model_type: String,
    /// Where the model and its training data come from.
    pub source: String,
    /// Licence of the model.
    pub license: String,
    /// Version of the served network: the first 12 hex digits of its file's SHA-512.
    pub version: String,
    /// SHA-512 of the network file being served (weights or TorchScript module), as verified
    /// against `sha512sums.txt`.
    pub weights_sha512: String,
    /// Network architecture: one of this project's, or `torchscript`.
    pub architecture: String,
    /// Side of the image the network sees (its height).
    pub input_size: u32,
    /// The network's input: channels, height, width.
    pub input_shape: Vec<u32>,
    /// How an upload becomes that input: `digit` (find the handwritten digit and centre it as
    /// MNIST's are) or `image` (resize and centre-crop, as torchvision's transforms do).
    pub preprocessing: String,
    /// Input normalisation.
    pub normalisation: NormalisationBody,
    /// The data set the weights were trained on (models trained here).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub dataset: Option<String>,
    /// Accuracy on the data set's test images, in [0, 1] (models trained here).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub test_accuracy: Option<f64>,
    /// Accuracy on the validation split, in [0, 1] (models trained here).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub validation_accuracy: Option<f64>,
    /// The training epoch these weights come from, the one with the lowest validation loss
    /// (models trained here).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub best_epoch: Option<u32>,
    /// Number of trainable parameters (models trained here).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub parameters: Option<u64>,
    /// SHA-256 of the data set's files the weights were trained on (models trained here).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub training_data_sha256: Option<String>,
    /// SHA-256 of the tensors alone: equal for two training runs with the same recipe, seed,
    /// thread count and machine (models trained here).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub weights_sha256: Option<String>,
    /// How the weights were trained (models trained here).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub recipe: Option<RecipeBody>,
    /// When the weights were exported, RFC 3339 (models trained here).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub created: Option<String>,
    /// How the network's scores become the served probabilities and `in_domain`.
    pub calibration: CalibrationBody,
}

/// The temperature and domain threshold a model serves with.
#[derive(Object, Debug, Clone, PartialEq, Deserialize)]
pub struct CalibrationBody {
    /// The scores are divided by it before the softmax (1: as the network gives them).
    pub temperature: f32,
    /// A `domain_score` below it makes `in_domain` false; absent: no domain check.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub domain_threshold: Option<f32>,
    /// What the two were fitted on (empty when nothing was fitted).
    pub fitted_on: String,
}

impl From<&Calibration> for CalibrationBody {
    fn from(calibration: &Calibration) -> CalibrationBody {
        CalibrationBody {
            temperature: calibration.temperature,
            domain_threshold: calibration.domain_threshold,
            fitted_on: calibration.fitted_on.clone(),
        }
    }
}

impl ModelMetadataResponse {
    /// The card of the model called `name`, described by `card`, with `training` for a model
    /// from the train bin, whose network file has the digest `weights_sha512`.
    pub fn new(
        name: &str,
        card: &ModelCard,
        training: Option<&ModelMetadata>,
        weights_sha512: &str,
    ) -> ModelMetadataResponse {
        let (title, source) = match training {
            Some(training) => (
                format!("{} classifier", training.dataset),
                format!("{} data set; network and weights from this repository's train binary", training.dataset),
            ),
            None => (format!("{name} classifier"), "a TorchScript module packaged with the `package` binary".into()),
        };
        ModelMetadataResponse {
            id: name.into(),
            name: title,
            description: card.description.clone(),
            model_type: MODEL_TYPE.into(),
            source,
            license: MODEL_LICENSE.into(),
            version: weights_sha512.chars().take(12).collect(),
            weights_sha512: weights_sha512.into(),
            architecture: card.architecture.clone(),
            input_size: card.input_shape.height,
            input_shape: vec![card.input_shape.channels, card.input_shape.height, card.input_shape.width],
            preprocessing: card.preprocessing.name().into(),
            normalisation: (&card.normalisation).into(),
            dataset: training.map(|training| training.dataset.clone()),
            test_accuracy: training.map(|training| training.test_accuracy),
            validation_accuracy: training.map(|training| training.validation_accuracy),
            best_epoch: training.map(|training| training.best_epoch),
            parameters: training.map(|training| training.parameters),
            training_data_sha256: training.map(|training| training.training_data_sha256.clone()),
            weights_sha256: training.map(|training| training.weights_sha256.clone()),
            recipe: training.map(|training| (&training.recipe).into()),
            created: training.map(|training| training.created.clone()),
            calibration: (&card.calibration).into(),
        }
    }
}

/// One class the model can predict.
#[derive(Object, Debug, Clone, PartialEq, Deserialize)]
pub struct Label {
    /// Class identifier (the output index).
    pub id: String,
    /// Class name.
    pub name: String,
}

/// The answer of `GET /model/labels` and `/models/{model}/labels`.
#[derive(Object, Debug, Clone, PartialEq, Deserialize)]
pub struct LabelsResponse {
    /// Number of classes.
    pub count: u32,
    /// The classes in output order.
    pub labels: Vec<Label>,
}

impl LabelsResponse {
    /// The labels on `card`.
    pub fn new(card: &ModelCard) -> LabelsResponse {
        let labels: Vec<Label> = card
            .labels
            .iter()
            .enumerate()
            .map(|(index, name)| Label { id: index.to_string(), name: name.clone() })
            .collect();
        LabelsResponse { count: labels.len() as u32, labels }
    }
}

/// One entry of `GET /models`, in TorchServe's list shape.
#[derive(Object, Debug, Clone, PartialEq, Deserialize)]
pub struct ModelListEntry {
    /// The model's name in the routes.
    #[oai(rename = "modelName")]
    #[serde(rename = "modelName")]
    pub model_name: String,
    /// Where its weights came from: the bucket's URL or folder.
    #[oai(rename = "modelUrl")]
    #[serde(rename = "modelUrl")]
    pub model_url: String,
}

/// The answer of `GET /models`: the models served, in TorchServe's list shape.
#[derive(Object, Debug, Clone, PartialEq, Deserialize)]
pub struct ModelListResponse {
    /// The models, in the order they were configured; the first is the default unless
    /// `--default-model` says otherwise.
    pub models: Vec<ModelListEntry>,
}
