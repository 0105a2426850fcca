//! What serving needs to know about a model, whoever made it: its [`ModelCard`] (labels, input
//! shape, per-channel normalisation, preprocessing), and which verified files of a bucket make
//! the model ([`ModelFiles`]).
//!
//! Two kinds of model can be served:
//!
//! - **trained here**: one safetensors file from the train bin, whose header metadata
//!   ([`crate::format::ModelMetadata`]) holds the card and the training report;
//! - **brought by a user**: a TorchScript module (`torch.jit.trace` or `torch.jit.script`,
//!   then `.save`) beside a `model-card.json`, as the `package` bin writes them.
//!
//! A card is validated when it is read, before any network sees it: a model whose card could
//! not make an input, or could not name its outputs, is refused.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bucket::{self, ModelSource, VerifiedAsset};
use crate::format::{Calibration, InputShape, ModelMetadata, Preprocessing};
use crate::{Error, Result};

/// The card's file name inside a TorchScript model's bucket.
pub const CARD_FILE: &str = "model-card.json";
/// The file endings taken for a TorchScript module.
pub const TORCHSCRIPT_EXTENSIONS: [&str; 2] = ["pt", "pth"];
/// The file ending of weights from the train bin.
pub const SAFETENSORS_EXTENSION: &str = "safetensors";
/// The longest side of an input image a card may ask for (a 3×1024×1024 input is 12 MiB of
/// floats per image).
pub const MAX_INPUT_SIDE: u32 = 1024;
/// The most labels a card may list.
pub const MAX_LABELS: usize = 100_000;
/// The largest card file read.
const MAX_CARD_BYTES: u64 = 16 << 20;

/// How pixels in [0, 1] are normalised, channel by channel: `(x - mean[c]) / std[c]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelNormalisation {
    /// Subtracted first, one value per channel.
    pub mean: Vec<f32>,
    /// Then divided by, one value per channel.
    pub std: Vec<f32>,
}

impl ChannelNormalisation {
    /// The same `mean` and `std` for each of `channels` channels.
    pub fn uniform(channels: u32, mean: f32, std: f32) -> ChannelNormalisation {
        let channels = channels as usize;
        ChannelNormalisation { mean: vec![mean; channels], std: vec![std; channels] }
    }

    /// Why these values cannot normalise an input of `channels` channels, if they cannot.
    pub fn problem(&self, channels: u32) -> Option<String> {
        let channels = channels as usize;
        if self.mean.len() != channels || self.std.len() != channels {
            return Some(format!(
                "{} means and {} stds for {channels} channels (give one of each per channel)",
                self.mean.len(),
                self.std.len()
            ));
        }
        let usable =
            self.mean.iter().all(|mean| mean.is_finite()) && self.std.iter().all(|std| std.is_finite() && *std > 0.0);
        (!usable).then(|| format!("normalisation {self:?} needs finite means and positive stds"))
    }
}

/// What serving needs to know about a model, whoever made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// What the model does, in a sentence.
    pub description: String,
    /// The network: one of this project's architectures, or `torchscript`.
    pub architecture: String,
    /// Class labels, in output order.
    pub labels: Vec<String>,
    /// One input image, as the network takes it.
    pub input_shape: InputShape,
    /// How pixels in [0, 1] are normalised.
    pub normalisation: ChannelNormalisation,
    /// How an uploaded picture becomes the input.
    pub preprocessing: Preprocessing,
    /// How the logits become served probabilities and the domain check (none when absent).
    #[serde(default)]
    pub calibration: Calibration,
}

/// The architecture name on the cards of TorchScript modules.
pub const TORCHSCRIPT_ARCHITECTURE: &str = "torchscript";

impl ModelCard {
    /// The card of weights trained here, from their metadata.
    pub fn of_trained(metadata: &ModelMetadata) -> ModelCard {
        ModelCard {
            description: metadata.description.clone(),
            architecture: metadata.architecture.clone(),
            labels: metadata.labels.clone(),
            input_shape: metadata.input_shape,
            normalisation: ChannelNormalisation::uniform(
                metadata.input_shape.channels,
                metadata.normalisation.mean,
                metadata.normalisation.std,
            ),
            preprocessing: metadata.preprocessing,
            calibration: metadata.calibration.clone(),
        }
    }

    /// Why this card cannot describe a servable model, if it cannot: no labels (or too many,
    /// or an empty one), an input that is not 1 or 3 channels of 1 to [`MAX_INPUT_SIDE`]
    /// pixels a side, digit preprocessing of a non-square input, or normalisation values that
    /// do not fit the channels.
    pub fn problem(&self) -> Option<String> {
        let InputShape { channels, height, width } = self.input_shape;
        if self.labels.is_empty() {
            return Some("it lists no labels".into());
        }
        if self.labels.len() > MAX_LABELS {
            return Some(format!("it lists {} labels, over the limit of {MAX_LABELS}", self.labels.len()));
        }
        if let Some(index) = self.labels.iter().position(|label| label.trim().is_empty()) {
            return Some(format!("label {index} is empty"));
        }
        if !matches!(channels, 1 | 3) {
            return Some(format!("an input of {channels} channels (1 for grayscale, 3 for RGB)"));
        }
        if !(1..=MAX_INPUT_SIDE).contains(&height) || !(1..=MAX_INPUT_SIDE).contains(&width) {
            return Some(format!("an input of {height}×{width} pixels (each side 1 to {MAX_INPUT_SIDE})"));
        }
        if self.preprocessing == Preprocessing::Digit && height != width {
            return Some(format!("digit preprocessing makes square inputs, not {height}×{width}"));
        }
        self.normalisation.problem(channels).or_else(|| self.calibration.problem())
    }

    /// Reads and validates the card at `path` (JSON, at most 16 MiB, no unknown fields).
    pub fn read(path: &Path) -> Result<ModelCard> {
        let size = std::fs::metadata(path).map_err(Error::io("cannot read", path))?.len();
        if size > MAX_CARD_BYTES {
            return Err(invalid_card(path, format!("{size} bytes, over the limit of {MAX_CARD_BYTES}")));
        }
        let bytes = std::fs::read(path).map_err(Error::io("cannot read", path))?;
        let card: ModelCard = serde_json::from_slice(&bytes).map_err(|error| invalid_card(path, error.to_string()))?;
        match card.problem() {
            Some(problem) => Err(invalid_card(path, problem)),
            None => Ok(card),
        }
    }

    /// Writes the card to `path` as pretty JSON, after validating it.
    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(problem) = self.problem() {
            return Err(invalid_card(path, problem));
        }
        let json = serde_json::to_vec_pretty(self).map_err(|error| invalid_card(path, error.to_string()))?;
        std::fs::write(path, json).map_err(Error::io("cannot write", path))
    }
}

fn invalid_card(path: &Path, reason: String) -> Error {
    Error::InvalidArtifact { path: path.to_owned(), reason: format!("bad model card: {reason}") }
}

/// A model's verified files: which make the model, and every file with its digest.
#[derive(Clone, Debug)]
pub struct VerifiedModel {
    /// Which files make the model.
    pub files: ModelFiles,
    /// Every file, with the SHA-512 it was verified against.
    pub assets: Vec<VerifiedAsset>,
    /// The SHA-512 of the network file (weights or module): what names the version.
    pub network_sha512: String,
}

impl VerifiedModel {
    /// The model that verified `assets` make; `bucket` names where they came from in errors.
    pub fn of(assets: Vec<VerifiedAsset>, bucket: &str) -> Result<VerifiedModel> {
        let files = ModelFiles::identify(assets.iter().map(|asset| asset.path.as_path()), bucket)?;
        let network = assets.iter().find(|asset| asset.path == files.network_file());
        let network_sha512 = network.map(|asset| asset.sha512.clone()).unwrap_or_default();
        Ok(VerifiedModel { files, assets, network_sha512 })
    }
}

/// The verified files that make one model, by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelFiles {
    /// Weights from this project's train bin, their card in the safetensors header.
    Trained {
        /// The `.safetensors` file.
        weights: PathBuf,
    },
    /// A user's TorchScript module and its card.
    TorchScript {
        /// The `.pt` file.
        module: PathBuf,
        /// The `model-card.json`.
        card: PathBuf,
    },
}

impl ModelFiles {
    /// Makes sure the model's files are in `source`'s assets folder, verified against its
    /// bucket's checksums (fetching them when needed), and returns which files make the model.
    pub async fn verified(source: &ModelSource) -> Result<VerifiedModel> {
        let assets = bucket::ensure_verified_assets(source).await?;
        VerifiedModel::of(assets, &source.bucket)
    }

    /// Which kind of model the files at `paths` make: one `.safetensors` file, or one
    /// TorchScript module (`.pt`, `.pth`) with a `model-card.json`. Anything else, or both,
    /// is refused with what was found; `bucket` names the bucket in the message.
    pub fn identify<'a>(paths: impl IntoIterator<Item = &'a Path>, bucket: &str) -> Result<ModelFiles> {
        let (mut weights, mut modules, mut cards) = (Vec::new(), Vec::new(), Vec::new());
        for path in paths {
            let extension = path.extension().and_then(|extension| extension.to_str()).unwrap_or_default();
            if path.file_name().is_some_and(|name| name == CARD_FILE) {
                cards.push(path.to_owned());
            } else if extension == SAFETENSORS_EXTENSION {
                weights.push(path.to_owned());
            } else if TORCHSCRIPT_EXTENSIONS.contains(&extension) {
                modules.push(path.to_owned());
            }
        }
        let refuse = |found: String| Error::InvalidArtifact {
            path: PathBuf::from(bucket),
            reason: format!(
                "a model is one `.{SAFETENSORS_EXTENSION}` weights file, or one TorchScript module (`.pt`) with a \
                 `{CARD_FILE}`; the bucket holds {found}"
            ),
        };
        match (weights.len(), modules.len(), cards.len()) {
            (1, 0, 0) => Ok(ModelFiles::Trained { weights: weights.remove(0) }),
            (0, 1, 1) => Ok(ModelFiles::TorchScript { module: modules.remove(0), card: cards.remove(0) }),
            (weights, modules, cards) => {
                Err(refuse(format!("{weights} weights files, {modules} TorchScript modules and {cards} cards")))
            }
        }
    }

    /// The file that holds the network: its digest is the model's version.
    pub fn network_file(&self) -> &Path {
        match self {
            ModelFiles::Trained { weights } => weights,
            ModelFiles::TorchScript { module, .. } => module,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> ModelCard {
        ModelCard {
            description: "LeNet".into(),
            architecture: TORCHSCRIPT_ARCHITECTURE.into(),
            labels: (0..10).map(|digit| digit.to_string()).collect(),
            input_shape: InputShape::grayscale(28),
            normalisation: ChannelNormalisation::uniform(1, 0.1307, 0.3081),
            preprocessing: Preprocessing::Digit,
            calibration: Calibration::NONE,
        }
    }

    #[test]
    fn a_card_round_trips_and_unknown_fields_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CARD_FILE);
        card().write(&path).unwrap();
        assert_eq!(ModelCard::read(&path).unwrap(), card());
        let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        json["pickle"] = "yes".into();
        std::fs::write(&path, json.to_string()).unwrap();
        let error = ModelCard::read(&path).unwrap_err().to_string();
        assert!(error.contains("unknown field `pickle`"), "{error}");
    }

    #[test]
    fn a_card_may_carry_a_calibration_and_one_without_is_served_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CARD_FILE);
        let mut json = serde_json::to_value(card()).unwrap();
        json.as_object_mut().unwrap().remove("calibration");
        std::fs::write(&path, json.to_string()).unwrap();
        assert_eq!(ModelCard::read(&path).unwrap().calibration, Calibration::NONE, "an older card");
        json["calibration"] = serde_json::json!({"temperature": 1.5, "domain_threshold": 7.0});
        std::fs::write(&path, json.to_string()).unwrap();
        let calibration = ModelCard::read(&path).unwrap().calibration;
        assert_eq!((calibration.temperature, calibration.domain_threshold), (1.5, Some(7.0)));
    }

    #[test]
    fn cards_that_cannot_make_an_input_or_name_an_output_are_refused() {
        /// A change to a valid card, and what the refusal must say.
        type Case = (fn(&mut ModelCard), &'static str);
        let cases: [Case; 9] = [
            (|card| card.labels.clear(), "no labels"),
            (|card| card.labels[3] = " ".into(), "label 3 is empty"),
            (|card| card.input_shape.channels = 4, "4 channels"),
            (|card| card.input_shape.height = 0, "each side 1 to 1024"),
            (|card| card.input_shape.width = 5000, "each side 1 to 1024"),
            (|card| card.input_shape.width = 32, "square inputs"),
            (|card| card.normalisation.std = vec![0.0], "positive stds"),
            (|card| card.calibration.temperature = 0.0, "temperature 0 must be a positive number"),
            (|card| card.calibration.domain_threshold = Some(f32::NAN), "domain_threshold NaN must be a finite"),
        ];
        for (spoil, expected) in cases {
            let mut spoiled = card();
            spoil(&mut spoiled);
            let problem = spoiled.problem().unwrap_or_default();
            assert!(problem.contains(expected), "{problem} should say {expected}");
        }
        let mut rgb = card();
        rgb.input_shape.channels = 3;
        assert!(rgb.problem().unwrap().contains("1 means and 1 stds for 3 channels"));
        rgb.normalisation = ChannelNormalisation { mean: vec![0.485, 0.456, 0.406], std: vec![0.229, 0.224, 0.225] };
        assert_eq!(rgb.problem(), None);
    }

    #[test]
    fn files_are_identified_by_kind() {
        let paths = |names: &[&str]| names.iter().map(PathBuf::from).collect::<Vec<_>>();
        let identify = |names: &[&str]| {
            let paths = paths(names);
            ModelFiles::identify(paths.iter().map(PathBuf::as_path), "bucket")
        };
        assert_eq!(identify(&["a/m.safetensors"]).unwrap(), ModelFiles::Trained { weights: "a/m.safetensors".into() });
        let torchscript = identify(&["a/lenet.pt", "a/model-card.json"]).unwrap();
        assert_eq!(torchscript.network_file(), Path::new("a/lenet.pt"));
        for wrong in
            [&["a/lenet.pt"][..], &["a/x.pt", "a/y.pt", "a/model-card.json"], &["a/m.safetensors", "a/x.pt"], &[]]
        {
            let error = identify(wrong).unwrap_err().to_string();
            assert!(error.contains("one TorchScript module"), "{error}");
        }
    }
}
