//! The training loop behind `cargo run --release --bin train`.
//!
//! A seeded split holds back part of the data set's training images for validation; the
//! network trains on the rest with random [`augment`]ation, the chosen [`Optimizer`] and a
//! learning rate that warms up linearly for one epoch and then follows a cosine to zero. After every
//! epoch the validation loss decides which weights are kept: the export is the best epoch,
//! not the last. Everything is logged for TensorBoard under the run directory (see
//! [`crate::monitor`]), and the kept weights are measured on the test images with a
//! per-class [`crate::report`].
//!
//! With the same seed, thread count and machine, two runs give the same weights
//! ([`TrainedModel::weights_sha256`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use sha2::{Digest, Sha256};
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use max_mnist_artifacts::format::{self, ModelMetadata, Normalisation, TrainingRecipe};
use max_mnist_core::network::{Architecture, INPUT_SHAPE, Net};

use crate::augment::Augmentation;
use crate::calibrate::{CalibrationReport, calibrate};
use crate::data::{DatasetCard, IdxDataset, Split};
use crate::monitor::Monitor;
use crate::report::ClassificationReport;
use crate::{Error, Result};

/// The optimiser and its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// Stochastic gradient descent with momentum and (L2) weight decay.
    Sgd {
        /// Momentum factor.
        momentum: f64,
        /// L2 penalty.
        weight_decay: f64,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// Adam with L2 weight decay added to the gradient.
    Adam {
        /// Decay of the first-moment estimate.
        beta1: f64,
        /// Decay of the second-moment estimate.
        beta2: f64,
        /// L2 penalty.
        weight_decay: f64,
    },
    /// Adam with decoupled weight decay (Loshchilov and Hutter).
    AdamW {
        /// Decay of the first-moment estimate.
        beta1: f64,
        /// Decay of the second-moment estimate.
        beta2: f64,
        /// Decoupled weight decay.
        weight_decay: f64,
    },
}

impl Optimizer {
    fn build(&self, store: &nn::VarStore, learning_rate: f64) -> Result<nn::Optimizer> {
        let optimizer = match *self {
            Optimizer::Sgd { momentum, weight_decay, nesterov } => {
                nn::Sgd { momentum, dampening: 0.0, wd: weight_decay, nesterov }.build(store, learning_rate)
            }
            Optimizer::Adam { beta1, beta2, weight_decay } => {
                nn::Adam { beta1, beta2, wd: weight_decay, ..Default::default() }.build(store, learning_rate)
            }
            Optimizer::AdamW { beta1, beta2, weight_decay } => {
                nn::AdamW { beta1, beta2, wd: weight_decay, ..Default::default() }.build(store, learning_rate)
            }
        };
        Ok(optimizer?)
    }

    /// A one-line description for the weights' metadata and TensorBoard.
    pub fn describe(&self) -> String {
        match *self {
            Optimizer::Sgd { momentum, weight_decay, nesterov } => {
                format!("sgd(momentum={momentum}, weight_decay={weight_decay}, nesterov={nesterov})")
            }
            Optimizer::Adam { beta1, beta2, weight_decay } => {
                format!("adam(betas=({beta1}, {beta2}), weight_decay={weight_decay})")
            }
            Optimizer::AdamW { beta1, beta2, weight_decay } => {
                format!("adamw(betas=({beta1}, {beta2}), weight_decay={weight_decay})")
            }
        }
    }

    /// The optimiser's short name.
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd { .. } => "sgd",
            Optimizer::Adam { .. } => "adam",
            Optimizer::AdamW { .. } => "adamw",
        }
    }
}

/// What to train and how.
#[derive(Clone, Debug)]
pub struct TrainSettings {
    /// What the data set is: its name, labels and normalisation.
    pub dataset: DatasetCard,
    /// The network to train.
    pub architecture: Architecture,
    /// Passes over the training set.
    pub epochs: u32,
    /// Peak learning rate, reached after one epoch of linear warm-up.
    pub learning_rate: f64,
    /// Images per optimisation step.
    pub batch_size: u32,
    /// The optimiser.
    pub optimizer: Optimizer,
    /// Random warps of training images.
    pub augmentation: Augmentation,
    /// Fraction of the training set held back to choose the best epoch, in [0, 1).
    pub validation_split: f64,
    /// Seed for the split, initialisation, shuffling, augmentation and dropout.
    pub seed: u64,
    /// libtorch's intra-op threads.
    pub threads: usize,
    /// Where to train.
    pub device: Device,
    /// Where this run's TensorBoard files and reports go.
    pub run_dir: PathBuf,
    /// The export date written into the metadata (pass `SOURCE_DATE_EPOCH` for a byte-identical
    /// file).
    pub created: SystemTime,
    /// Show progress bars.
    pub progress: bool,
}

/// The trained network, its metadata and how it did on the test set.
pub struct TrainedModel {
    /// The variables of the best epoch.
    pub store: nn::VarStore,
    /// Metadata to export with the weights.
    pub metadata: ModelMetadata,
    /// Per-class results on the test set.
    pub report: ClassificationReport,
    /// The fitted temperature and domain threshold, and how they fare on the test set.
    pub calibration: CalibrationReport,
}

impl TrainedModel {
    /// Writes the weights and their metadata to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(format::save(&self.store, &self.metadata, path)?)
    }

    /// The weights' fingerprint, independent of the export date: see [`weights_sha256`].
    pub fn weights_sha256(&self) -> &str {
        &self.metadata.weights_sha256
    }
}

/// The epoch whose weights are kept so far.
struct BestEpoch {
    epoch: u32,
    validation_loss: f64,
    weights: HashMap<String, Tensor>,
}

/// The loss and accuracy of a network on a labelled set, with its predictions.
pub(crate) struct Evaluation {
    pub(crate) loss: f64,
    pub(crate) accuracy: f64,
    pub(crate) predicted: Tensor,
    /// `[N, classes]`, on the CPU.
    pub(crate) logits: Tensor,
}

const EVAL_BATCH: i64 = 1000;
/// How many augmented training images TensorBoard shows.
const SAMPLE_IMAGES: i64 = 64;

/// Trains a fresh network on `data.train` (less the validation split), keeps the epoch with
/// the lowest validation loss and measures it on `data.test`, logging to `settings.run_dir`.
pub fn train(settings: &TrainSettings, data: &IdxDataset) -> Result<TrainedModel> {
    validate(settings)?;
    let classes = settings.dataset.labels.len() as i64;
    for (name, split) in [("training", &data.train), ("test", &data.test)] {
        check_fits_the_network(name, split, classes)?;
    }
    tch::set_num_threads(settings.threads as i32); // Fits: checked by `validate`.
    tch::manual_seed(settings.seed as i64);
    let device = settings.device;
    let normalisation = settings.dataset.normalisation;
    let (training, validation) = split_off_validation(&data.train, settings.validation_split);
    let count = training.count();
    if count == 0 {
        let reason = format!("--validation-split {} leaves no training images", settings.validation_split);
        return Err(Error::InvalidSettings(reason));
    }
    let (images, labels) = (training.images.to_device(device), training.labels.to_device(device));

    let mut store = nn::VarStore::new(device);
    let net = Net::new(&store.root(), settings.architecture, classes);
    let mut optimizer = settings.optimizer.build(&store, settings.learning_rate)?;
    let mut monitor = Monitor::create(&settings.run_dir, settings.progress)?;
    monitor.hyperparameters(settings, count, validation.count())?;
    monitor.graph(&net)?;
    let samples = images.narrow(0, 0, count.min(SAMPLE_IMAGES));
    monitor.sample_images("train/augmented_samples", &settings.augmentation.apply(&samples))?;

    let batch_size = i64::from(settings.batch_size);
    let steps_per_epoch = (count + batch_size - 1) / batch_size;
    let schedule = Schedule {
        peak: settings.learning_rate,
        warmup_steps: steps_per_epoch,
        total_steps: steps_per_epoch * i64::from(settings.epochs),
    };
    let mut best: Option<BestEpoch> = None;
    let mut step = 0;
    for epoch in 1..=settings.epochs {
        let started = Instant::now();
        let mut bar = monitor.epoch_bar(epoch, settings.epochs, steps_per_epoch as u64);
        let order = Tensor::randperm(count, (Kind::Int64, device));
        let mut loss_sum = 0.0;
        for batch in 0..steps_per_epoch {
            let size = batch_size.min(count - batch * batch_size);
            let indices = order.narrow(0, batch * batch_size, size);
            let inputs = normalise(&settings.augmentation.apply(&images.index_select(0, &indices)), normalisation);
            let learning_rate = schedule.at(step);
            optimizer.set_lr(learning_rate);
            let loss = net.forward_t(&inputs, true).cross_entropy_for_logits(&labels.index_select(0, &indices));
            optimizer.backward_step(&loss);
            let loss = loss.double_value(&[]);
            loss_sum += loss * size as f64;
            monitor.step(&mut bar, step, loss, learning_rate, batch * batch_size + size)?;
            step += 1;
        }
        let train_loss = loss_sum / count as f64;
        let seconds = started.elapsed().as_secs_f64();
        let checked = evaluate(&net, &validation, normalisation, device)?;
        monitor.epoch(bar, epoch, train_loss, &checked, seconds, count)?;
        if !(train_loss.is_finite() && checked.loss.is_finite()) {
            return Err(Error::Diverged { epoch, train_loss, validation_loss: checked.loss });
        }
        if best.as_ref().is_none_or(|best| checked.loss < best.validation_loss) {
            best = Some(BestEpoch { epoch, validation_loss: checked.loss, weights: snapshot(&store) });
        }
    }
    let best = best.ok_or_else(|| Error::InvalidSettings("no epoch ran".into()))?;
    restore(&mut store, &best.weights);
    // Measured again on the restored weights, so the metadata describes what is exported.
    let checked = evaluate(&net, &validation, normalisation, device)?;
    let test = evaluate(&net, &data.test, normalisation, device)?;
    let labels = settings.dataset.labels.clone();
    let report = ClassificationReport::new(labels.clone(), &to_vec(&data.test.labels)?, &to_vec(&test.predicted)?);
    // The variants draw from the generator: seeded again, calibration is the same in every run.
    tch::manual_seed(settings.seed as i64);
    let calibration = calibrate(&net, &validation, &data.test, normalisation, device)?;
    monitor.calibration(&calibration, best.epoch)?;
    monitor.finish(&net, &data.test, &test.predicted, &report, normalisation, best.epoch)?;
    let validation = checked;

    let metadata = ModelMetadata {
        architecture: settings.architecture.name().to_owned(),
        input_shape: INPUT_SHAPE,
        preprocessing: settings.dataset.preprocessing,
        normalisation,
        labels,
        dataset: settings.dataset.name.clone(),
        description: settings.dataset.description.clone(),
        test_accuracy: test.accuracy,
        validation_accuracy: validation.accuracy,
        validation_loss: validation.loss,
        best_epoch: best.epoch,
        training_data_sha256: data.sha256.clone(),
        parameters: store.trainable_variables().iter().map(|tensor| tensor.numel() as u64).sum(),
        weights_sha256: weights_sha256(&store)?,
        calibration: calibration.calibration.clone(),
        recipe: TrainingRecipe {
            optimizer: settings.optimizer.describe(),
            learning_rate: settings.learning_rate,
            schedule: Schedule::DESCRIPTION.into(),
            epochs: settings.epochs,
            batch_size: settings.batch_size,
            augmentation: settings.augmentation.describe(),
            validation_split: settings.validation_split,
            seed: settings.seed,
            threads: settings.threads,
        },
        created: humantime::format_rfc3339_seconds(settings.created).to_string(),
    };
    Ok(TrainedModel { store, metadata, report, calibration })
}

fn validate(settings: &TrainSettings) -> Result<()> {
    let invalid = |reason: &str| Err(Error::InvalidSettings(reason.to_owned()));
    if settings.epochs == 0 {
        return invalid("--epochs must be at least 1");
    }
    if settings.batch_size == 0 {
        return invalid("--batch-size must be at least 1");
    }
    if !(settings.validation_split > 0.0 && settings.validation_split < 1.0) {
        return invalid("--validation-split must be between 0 and 1 (exclusive): the best epoch is chosen on it");
    }
    if settings.threads == 0 || i32::try_from(settings.threads).is_err() {
        return invalid("--threads must be between 1 and 2^31 - 1");
    }
    let Augmentation { max_rotation_degrees, max_scale, max_shift, .. } = settings.augmentation;
    if !(0.0..=180.0).contains(&max_rotation_degrees) {
        return invalid("--augment-rotation must be between 0 and 180 degrees");
    }
    if !(0.0..1.0).contains(&max_scale) || !(0.0..1.0).contains(&max_shift) {
        return invalid("--augment-scale and --augment-shift must be in [0, 1)");
    }
    if !(settings.learning_rate > 0.0 && settings.learning_rate.is_finite()) {
        return invalid("--lr must be a positive number");
    }
    Ok(())
}

/// Refuses data the network cannot take: images of another size than its input, labels
/// outside `0..classes` (the data set's card names `classes` labels).
fn check_fits_the_network(name: &str, split: &Split, classes: i64) -> Result<()> {
    let size = split.images.size();
    let side = i64::from(INPUT_SHAPE.height);
    if size[2..] != [side, side] {
        let reason = format!("the {name} images are {}x{}; the network takes {side}x{side}", size[3], size[2]);
        return Err(Error::InvalidSettings(reason));
    }
    let (lowest, highest) = (split.labels.min().int64_value(&[]), split.labels.max().int64_value(&[]));
    if lowest < 0 || highest >= classes {
        let reason = format!(
            "the {name} labels run from {lowest} to {highest}, but the data set names {classes} classes (0 to {})",
            classes - 1
        );
        return Err(Error::InvalidSettings(reason));
    }
    Ok(())
}

/// Linear warm-up to `peak` over `warmup_steps`, then a cosine down to zero at `total_steps`.
struct Schedule {
    peak: f64,
    warmup_steps: i64,
    total_steps: i64,
}

impl Schedule {
    /// What [`Schedule::at`] does, for the weights' metadata.
    const DESCRIPTION: &str = "linear warm-up for 1 epoch, then cosine decay to 0";

    fn at(&self, step: i64) -> f64 {
        if step < self.warmup_steps {
            return self.peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let decay_steps = (self.total_steps - self.warmup_steps).max(1) as f64;
        let progress = (step - self.warmup_steps) as f64 / decay_steps;
        self.peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// Splits off a random `fraction` of `split` (at least one image) for validation, drawn from
/// libtorch's seeded generator, returning (training, validation).
fn split_off_validation(split: &Split, fraction: f64) -> (Split, Split) {
    let count = split.count();
    let held_back = ((count as f64 * fraction).round() as i64).clamp(1, count);
    let order = Tensor::randperm(count, (Kind::Int64, Device::Cpu));
    let pick = |start: i64, length: i64| split.select(&order.narrow(0, start, length));
    (pick(held_back, count - held_back), pick(0, held_back))
}

/// Loss, accuracy and predicted classes of `net` on `split`, in evaluation mode.
pub(crate) fn evaluate(net: &Net, split: &Split, normalisation: Normalisation, device: Device) -> Result<Evaluation> {
    let _no_grad = tch::no_grad_guard();
    let mut loss_sum = 0.0;
    let mut predicted = Vec::new();
    let mut all_logits = Vec::new();
    let mut start = 0;
    while start < split.count() {
        let size = EVAL_BATCH.min(split.count() - start);
        let inputs = normalise(&split.images.narrow(0, start, size).to_device(device), normalisation);
        let targets = split.labels.narrow(0, start, size).to_device(device);
        let logits = net.forward_t(&inputs, false);
        loss_sum += logits.cross_entropy_for_logits(&targets).double_value(&[]) * size as f64;
        predicted.push(logits.argmax(-1, false).to_device(Device::Cpu));
        all_logits.push(logits.to_device(Device::Cpu));
        start += size;
    }
    let predicted = Tensor::f_cat(&predicted, 0)?;
    let count = split.count() as f64;
    let correct = predicted.eq_tensor(&split.labels).sum(Kind::Int64).int64_value(&[]);
    let logits = Tensor::f_cat(&all_logits, 0)?;
    Ok(Evaluation { loss: loss_sum / count, accuracy: correct as f64 / count, predicted, logits })
}

pub(crate) fn normalise(images: &Tensor, normalisation: Normalisation) -> Tensor {
    (images - f64::from(normalisation.mean)) / f64::from(normalisation.std)
}

/// A deep copy of every variable (weights and batch-norm statistics).
fn snapshot(store: &nn::VarStore) -> HashMap<String, Tensor> {
    store.variables().into_iter().map(|(name, tensor)| (name, tensor.detach().copy())).collect()
}

fn restore(store: &mut nn::VarStore, saved: &HashMap<String, Tensor>) {
    let _no_grad = tch::no_grad_guard();
    for (name, mut tensor) in store.variables() {
        if let Some(value) = saved.get(&name) {
            tensor.copy_(value);
        }
    }
}

/// SHA-256 over every variable's name, shape and little-endian f32 values, in name order:
/// the weights' identity, whatever the file's metadata says.
pub fn weights_sha256(store: &nn::VarStore) -> Result<String> {
    let mut variables: Vec<(String, Tensor)> = store.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = Sha256::new();
    for (name, tensor) in variables {
        hasher.update(name.as_bytes());
        hasher.update(format!("{:?}", tensor.size()).as_bytes());
        let values = Vec::<f32>::try_from(&tensor.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1))?;
        values.iter().for_each(|value| hasher.update(value.to_le_bytes()));
    }
    Ok(hex::encode(hasher.finalize()))
}

fn to_vec(tensor: &Tensor) -> Result<Vec<i64>> {
    Ok(Vec::<i64>::try_from(tensor)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_warms_up_then_decays_to_zero() {
        let schedule = Schedule { peak: 1.0, warmup_steps: 10, total_steps: 110 };
        assert!((schedule.at(0) - 0.1).abs() < 1e-12);
        assert!((schedule.at(9) - 1.0).abs() < 1e-12);
        assert!((schedule.at(10) - 1.0).abs() < 1e-12);
        assert!((schedule.at(60) - 0.5).abs() < 1e-12);
        assert!(schedule.at(109) < 0.001);
    }

    #[test]
    fn settings_that_cannot_train_are_refused_before_anything_runs() {
        let split = || Split {
            images: Tensor::zeros([2, 1, 28, 28], tch::kind::FLOAT_CPU),
            labels: Tensor::zeros([2], (Kind::Int64, Device::Cpu)),
        };
        let data = IdxDataset { train: split(), test: split(), sha256: String::new() };
        let run_dir = tempfile::tempdir().unwrap();
        let settings = TrainSettings {
            dataset: DatasetCard::mnist(),
            architecture: Architecture::default(),
            epochs: 1,
            learning_rate: 1e-3,
            batch_size: 8,
            optimizer: Optimizer::Adam { beta1: 0.9, beta2: 0.999, weight_decay: 0.0 },
            augmentation: Augmentation::NONE,
            validation_split: 0.9,
            seed: 1,
            threads: 1,
            device: Device::Cpu,
            run_dir: run_dir.path().to_owned(),
            created: SystemTime::UNIX_EPOCH,
            progress: false,
        };
        let error = train(&settings, &data).err().unwrap().to_string();
        assert!(error.contains("leaves no training images"), "{error}");
        let small_images = Split { images: Tensor::zeros([2, 1, 2, 2], tch::kind::FLOAT_CPU), ..split() };
        let error = train(&settings, &IdxDataset { train: small_images, test: split(), sha256: String::new() })
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("the training images are 2x2; the network takes 28x28"), "{error}");
        let bad_labels = Split { labels: Tensor::from_slice(&[3i64, 12]), ..split() };
        let error = train(&settings, &IdxDataset { train: split(), test: bad_labels, sha256: String::new() })
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("the test labels run from 3 to 12"), "{error}");
        for (broken, expected) in [
            (TrainSettings { epochs: 0, ..settings.clone() }, "--epochs"),
            (TrainSettings { batch_size: 0, ..settings.clone() }, "--batch-size"),
            (TrainSettings { validation_split: 1.0, ..settings.clone() }, "--validation-split"),
            (TrainSettings { validation_split: 0.0, ..settings.clone() }, "--validation-split"),
            (
                TrainSettings {
                    augmentation: Augmentation { max_scale: f64::NAN, ..Augmentation::NONE },
                    ..settings.clone()
                },
                "--augment-scale",
            ),
            (TrainSettings { learning_rate: f64::NAN, ..settings.clone() }, "--lr"),
            (TrainSettings { threads: 0, ..settings.clone() }, "--threads"),
        ] {
            let error = train(&broken, &data).err().unwrap().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn restoring_a_snapshot_brings_back_every_variable() {
        let mut store = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&store.root(), Architecture::default(), 10);
        let saved = snapshot(&store);
        let before = weights_sha256(&store).unwrap();
        // One training-mode forward moves the batch-norm statistics; a step moves the weights.
        let mut optimizer = nn::Sgd::default().build(&store, 0.1).unwrap();
        let inputs = Tensor::randn([4, 1, 28, 28], tch::kind::FLOAT_CPU);
        optimizer.backward_step(&net.forward_t(&inputs, true).sum(Kind::Float));
        assert_ne!(weights_sha256(&store).unwrap(), before);
        restore(&mut store, &saved);
        assert_eq!(weights_sha256(&store).unwrap(), before);
    }

    #[test]
    fn the_validation_split_is_disjoint_and_complete() {
        let split = Split {
            images: Tensor::arange(20, tch::kind::FLOAT_CPU).view([20, 1, 1, 1]),
            labels: Tensor::arange(20, (Kind::Int64, Device::Cpu)),
        };
        let (training, validation) = split_off_validation(&split, 0.25);
        assert_eq!((training.count(), validation.count()), (15, 5));
        let mut all = to_vec(&training.labels).unwrap();
        all.extend(to_vec(&validation.labels).unwrap());
        all.sort();
        assert_eq!(all, (0..20).collect::<Vec<i64>>());
    }
}
