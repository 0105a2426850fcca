//! The training loop behind `cargo run --release --bin train`.
//!
//! A seeded split holds back part of the data set's training images for validation; the
//! network trains on the rest with random [`augment`]ation, the chosen [`Optimizer`] and a
//! learning rate that warms up linearly for one epoch and then follows a cosine to zero; with
//! [`TrainSettings::outliers`], each batch also holds pictures of no class, to be answered
//! with even probabilities. After every
//! epoch the validation loss decides which weights are kept: the export is the best epoch,
//! not the last. Everything is logged for TensorBoard under the run directory (see
//! [`crate::monitor`]), and the kept weights are measured on the test images with a
//! per-class [`crate::report`].
//!
//! Every epoch ends with a [`checkpoint`]; a run stopped after any epoch (interrupted, or by
//! [`TrainSettings::stop_after_epochs`]) and resumed from it ([`TrainSettings::resume`]) ends
//! with the same weights as one that never stopped: each epoch draws its shuffle,
//! augmentation and dropout from a generator seeded for that epoch alone.
//!
//! With the same seed, thread count and machine, two runs give the same weights
//! ([`TrainedModel::weights_sha256`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use sha2::{Digest, Sha256};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use max_mnist_artifacts::format::{self, ModelMetadata, Normalisation, Preprocessing, TrainingRecipe};
use max_mnist_core::network::{Architecture, INPUT_SHAPE, Net};

use crate::augment::Augmentation;
use crate::calibrate::{CalibrationReport, calibrate};
use crate::checkpoint::{self, Progress};
use crate::data::{DatasetCard, IdxDataset, Split};
use crate::monitor::Monitor;
use crate::optimizer::{Optimizer, OptimizerState};
use crate::outliers::{Outliers, loss_towards_even};
use crate::report::ClassificationReport;
use crate::{Error, Result};

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
    /// Share of each target's probability spread evenly over the other classes, in [0, 1).
    pub label_smoothing: f64,
    /// Judge and export an exponential moving average of the weights with this decay per
    /// step, rather than the weights themselves.
    pub weight_average: Option<f64>,
    /// Pictures of none of the classes, half a batch of them beside each batch (outlier
    /// exposure).
    pub outliers: Option<Outliers>,
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
    /// Continue from the checkpoint in `run_dir` instead of starting afresh; the other
    /// settings must be those it was made with.
    pub resume: bool,
    /// End the run cleanly after this epoch, leaving its checkpoint to resume from.
    pub stop_after_epochs: Option<u32>,
}

/// How a run ended.
pub enum TrainOutcome {
    /// All epochs ran: the model of the best one.
    Finished(Box<TrainedModel>),
    /// Stopped by [`TrainSettings::stop_after_epochs`] after `epoch`, with its checkpoint.
    Stopped {
        /// The last epoch that ran.
        epoch: u32,
        /// The checkpoint to resume from.
        checkpoint: std::path::PathBuf,
    },
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

/// Trains a fresh network on `data.train` (less the validation split), or goes on with the
/// one checkpointed in `settings.run_dir`, keeps the epoch with the lowest validation loss and
/// measures it on `data.test`, logging to `settings.run_dir`.
pub fn train(settings: &TrainSettings, data: &IdxDataset) -> Result<TrainOutcome> {
    validate(settings)?;
    let classes = settings.dataset.labels.len() as i64;
    for (name, split) in [("training", &data.train), ("test", &data.test)] {
        check_fits_the_network(name, split, classes)?;
    }
    if let Some(outliers) = &settings.outliers {
        check_side("outlier", &outliers.images)?;
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

    let store = nn::VarStore::new(device);
    let net = Net::new(&store.root(), settings.architecture, classes);
    let mut optimizer = settings.optimizer.start(&store);
    let mut average = settings.weight_average.map(|decay| WeightAverage::start(&store, decay));
    let checkpoint_path = checkpoint::path_in(&settings.run_dir);
    let recipe = recipe(settings, data);
    let mut best: Option<BestEpoch> = None;
    let mut first_epoch = 1;
    let mut monitor = if settings.resume {
        let saved = checkpoint::load(&checkpoint_path)?;
        checkpoint::check_recipe(&checkpoint_path, &saved.progress.recipe, &recipe)?;
        checkpoint::copy_into(&shallow(&store), &saved.model)?;
        optimizer.restore(&saved.optimizer, saved.progress.steps)?;
        if let Some(average) = &average {
            checkpoint::copy_into(&average.averages(), &saved.average)?;
        }
        best = Some(BestEpoch {
            epoch: saved.progress.best_epoch,
            validation_loss: saved.progress.best_validation_loss,
            weights: saved.best,
        });
        first_epoch = saved.progress.epoch + 1;
        tracing::info!(checkpoint = %checkpoint_path.display(), "resuming after epoch {}", saved.progress.epoch);
        Monitor::open(&settings.run_dir, settings.progress)?
    } else {
        checkpoint::discard(&checkpoint_path)?;
        let mut monitor = Monitor::create(&settings.run_dir, settings.progress)?;
        monitor.hyperparameters(settings, &recipe, count, validation.count())?;
        monitor.graph(&net)?;
        let samples = images.narrow(0, 0, count.min(SAMPLE_IMAGES));
        monitor.sample_images("train/augmented_samples", &settings.augmentation.apply(&samples))?;
        monitor
    };

    let batch_size = i64::from(settings.batch_size);
    let steps_per_epoch = (count + batch_size - 1) / batch_size;
    let schedule = Schedule {
        peak: settings.learning_rate,
        warmup_steps: steps_per_epoch,
        total_steps: steps_per_epoch * i64::from(settings.epochs),
    };
    for epoch in first_epoch..=settings.epochs {
        let started = Instant::now();
        tch::manual_seed(epoch_seed(settings.seed, epoch));
        let mut bar = monitor.epoch_bar(epoch, settings.epochs, steps_per_epoch as u64);
        let order = Tensor::randperm(count, (Kind::Int64, device));
        let mut loss_sum = 0.0;
        for batch in 0..steps_per_epoch {
            let size = batch_size.min(count - batch * batch_size);
            let indices = order.narrow(0, batch * batch_size, size);
            let inputs = normalise(&settings.augmentation.apply(&images.index_select(0, &indices)), normalisation);
            let step = optimizer.steps();
            let learning_rate = schedule.at(step);
            let loss = batch_loss(&net, settings, &inputs, &labels.index_select(0, &indices));
            optimizer.backward_step(&loss, learning_rate);
            if let Some(average) = &mut average {
                average.update();
            }
            let loss = loss.double_value(&[]);
            loss_sum += loss * size as f64;
            monitor.step(&mut bar, step, loss, learning_rate, batch * batch_size + size)?;
        }
        let train_loss = loss_sum / count as f64;
        let seconds = started.elapsed().as_secs_f64();
        // The weights judged and kept: the average's, when there is one.
        let trained = average.as_ref().map(|_| snapshot(&store));
        if let Some(average) = &average {
            checkpoint::copy_into(&shallow(&store), &average.averages().into_iter().collect())?;
        }
        let checked = evaluate(&net, &validation, normalisation, device)?;
        monitor.epoch(bar, epoch, train_loss, &checked, seconds, count)?;
        if !(train_loss.is_finite() && checked.loss.is_finite()) {
            return Err(Error::Diverged { epoch, train_loss, validation_loss: checked.loss });
        }
        if best.as_ref().is_none_or(|best| checked.loss < best.validation_loss) {
            best = Some(BestEpoch { epoch, validation_loss: checked.loss, weights: snapshot(&store) });
        }
        if let Some(trained) = &trained {
            checkpoint::copy_into(&shallow(&store), trained)?;
        }
        let kept = best.as_ref().expect("set above");
        save_checkpoint(&checkpoint_path, epoch, &recipe, &store, kept, &optimizer, average.as_ref())?;
        monitor.flush()?;
        if settings.stop_after_epochs == Some(epoch) && epoch < settings.epochs {
            return Ok(TrainOutcome::Stopped { epoch, checkpoint: checkpoint_path });
        }
    }
    let best = best.ok_or_else(|| Error::InvalidSettings("no epoch ran".into()))?;
    checkpoint::copy_into(&shallow(&store), &best.weights)?;
    // Measured again on the restored weights, so the metadata describes what is exported.
    let checked = evaluate(&net, &validation, normalisation, device)?;
    let test = evaluate(&net, &data.test, normalisation, device)?;
    let labels = settings.dataset.labels.clone();
    let report = ClassificationReport::new(labels.clone(), &to_vec(&data.test.labels)?, &to_vec(&test.predicted)?);
    // The variants draw from the generator: seeded again, calibration is the same in every run.
    tch::manual_seed(settings.seed as i64);
    let digits = settings.dataset.preprocessing == Preprocessing::Digit;
    let calibration = calibrate(&net, &validation, &data.test, normalisation, device, digits)?;
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
        recipe: training_recipe(settings),
        created: humantime::format_rfc3339_seconds(settings.created).to_string(),
    };
    Ok(TrainOutcome::Finished(Box::new(TrainedModel { store, metadata, report, calibration })))
}

/// How the weights were trained, for their metadata.
fn training_recipe(settings: &TrainSettings) -> TrainingRecipe {
    TrainingRecipe {
        optimizer: settings.optimizer.describe(),
        learning_rate: settings.learning_rate,
        schedule: Schedule::DESCRIPTION.into(),
        epochs: settings.epochs,
        batch_size: settings.batch_size,
        augmentation: settings.augmentation.describe(),
        label_smoothing: settings.label_smoothing,
        weight_average: describe_weight_average(settings.weight_average),
        outliers: Outliers::describe(settings.outliers.as_ref()),
        validation_split: settings.validation_split,
        seed: settings.seed,
        threads: settings.threads,
    }
}

/// Writes the checkpoint of the run after `epoch`: the network in `store`, the `kept` best
/// epoch, the optimiser's state and the weight average, with the run's `recipe`.
fn save_checkpoint(
    path: &Path,
    epoch: u32,
    recipe: &BTreeMap<String, String>,
    store: &nn::VarStore,
    kept: &BestEpoch,
    optimizer: &OptimizerState,
    average: Option<&WeightAverage>,
) -> Result<()> {
    let progress = Progress {
        epoch,
        steps: optimizer.steps(),
        best_epoch: kept.epoch,
        best_validation_loss: kept.validation_loss,
        recipe: recipe.clone(),
    };
    let tensors = checkpoint::Tensors {
        model: shallow(store),
        best: &kept.weights,
        optimizer: optimizer.state(),
        average: average.map_or_else(Vec::new, WeightAverage::averages),
    };
    checkpoint::save(path, &progress, tensors)
}

/// The loss of one training batch: the cross-entropy of `inputs` (normalised) against
/// `labels`, plus, with outliers, the weighted cross-entropy of half as many outliers (augmented
/// as the inputs are, in the same forward pass) against even probabilities.
fn batch_loss(net: &Net, settings: &TrainSettings, inputs: &Tensor, labels: &Tensor) -> Tensor {
    let count = inputs.size()[0];
    let classes_loss = |logits: &Tensor| {
        logits.cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::Mean, -100, settings.label_smoothing)
    };
    let Some(outliers) = &settings.outliers else {
        return classes_loss(&net.forward_t(inputs, true));
    };
    let drawn = settings.augmentation.apply(&outliers.draw((count / 2).max(1), inputs.device()));
    let logits = net.forward_t(&Tensor::cat(&[inputs, &normalise(&drawn, settings.dataset.normalisation)], 0), true);
    let outlier_logits = logits.narrow(0, count, logits.size()[0] - count);
    classes_loss(&logits.narrow(0, 0, count)) + loss_towards_even(&outlier_logits) * outliers.weight
}

/// Every setting that decides the weights, as a checkpoint records them: resuming with any
/// other value would not give the weights of an uninterrupted run.
fn recipe(settings: &TrainSettings, data: &IdxDataset) -> BTreeMap<String, String> {
    // Taken apart field by field, so that a setting added to the weights' recipe cannot be
    // left out of the checkpoint's.
    let TrainingRecipe {
        optimizer,
        learning_rate,
        schedule: _, // Fixed: the same in every run.
        epochs,
        batch_size,
        augmentation,
        label_smoothing,
        weight_average,
        outliers,
        validation_split,
        seed,
        threads,
    } = training_recipe(settings);
    [
        ("dataset", settings.dataset.name.clone()),
        ("training data sha256", data.sha256.clone()),
        ("architecture", settings.architecture.name().to_owned()),
        ("epochs", epochs.to_string()),
        ("lr", learning_rate.to_string()),
        ("batch size", batch_size.to_string()),
        ("optimizer", optimizer),
        ("augmentation", augmentation),
        ("label smoothing", label_smoothing.to_string()),
        ("weight average", weight_average),
        ("outliers", outliers),
        ("validation split", validation_split.to_string()),
        ("seed", seed.to_string()),
        ("threads", threads.to_string()),
        ("device", format!("{:?}", settings.device)),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// What [`TrainSettings::weight_average`] does, for the metadata.
pub fn describe_weight_average(decay: Option<f64>) -> String {
    decay.map_or_else(|| "none".to_owned(), |decay| format!("exponential moving average, decay {decay} per step"))
}

/// An exponential moving average of every variable of a network (weights and batch-norm
/// statistics), moved towards them after each step.
struct WeightAverage {
    decay: f64,
    /// (name, the network's variable, its average), by name.
    pairs: Vec<(String, Tensor, Tensor)>,
}

impl WeightAverage {
    fn start(store: &nn::VarStore, decay: f64) -> WeightAverage {
        let mut pairs: Vec<_> = store
            .variables()
            .into_iter()
            .map(|(name, variable)| {
                let average = variable.detach().copy();
                (name, variable, average)
            })
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        WeightAverage { decay, pairs }
    }

    fn update(&mut self) {
        let _no_grad = tch::no_grad_guard();
        for (_, variable, average) in &mut self.pairs {
            let _ = average.g_mul_scalar_(self.decay).g_add_(&(&*variable * (1.0 - self.decay)));
        }
    }

    /// The averages by name, sharing their storage.
    fn averages(&self) -> Vec<(String, Tensor)> {
        self.pairs.iter().map(|(name, _, average)| (name.clone(), average.shallow_clone())).collect()
    }
}

/// The generator's seed for one epoch: the run's seed and the epoch mixed by SplitMix64, so
/// that an epoch draws the same numbers whether or not the run stopped before it.
fn epoch_seed(seed: u64, epoch: u32) -> i64 {
    let mut mixed = seed.wrapping_add(u64::from(epoch).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (mixed ^ (mixed >> 31)) as i64
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
    let Augmentation { max_rotation_degrees, max_scale, max_shift, thick_strokes, low_resolution, .. } =
        settings.augmentation;
    if !(0.0..=180.0).contains(&max_rotation_degrees) {
        return invalid("--augment-rotation must be between 0 and 180 degrees");
    }
    if !(0.0..1.0).contains(&max_scale) || !(0.0..1.0).contains(&max_shift) {
        return invalid("--augment-scale and --augment-shift must be in [0, 1)");
    }
    if !(0.0..=1.0).contains(&thick_strokes) || !(0.0..=1.0).contains(&low_resolution) {
        return invalid("--augment-thick-strokes and --augment-low-resolution must be shares in [0, 1]");
    }
    if !(settings.learning_rate > 0.0 && settings.learning_rate.is_finite()) {
        return invalid("--lr must be a positive number");
    }
    if !(0.0..1.0).contains(&settings.label_smoothing) {
        return invalid("--label-smoothing must be in [0, 1)");
    }
    if settings.weight_average.is_some_and(|decay| !(decay > 0.0 && decay < 1.0)) {
        return invalid("--weight-average must be a decay between 0 and 1 (exclusive), or 0 for none");
    }
    if let Some(outliers) = &settings.outliers {
        if !(outliers.weight > 0.0 && outliers.weight.is_finite()) {
            return invalid("--outlier-weight must be a positive number");
        }
    }
    Ok(())
}

/// Refuses data the network cannot take: images of another size than its input, labels
/// outside `0..classes` (the data set's card names `classes` labels).
fn check_fits_the_network(name: &str, split: &Split, classes: i64) -> Result<()> {
    check_side(name, &split.images)?;
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

/// Whether `images` `[N, C, H, W]` are as large as the network's input.
fn check_side(name: &str, images: &Tensor) -> Result<()> {
    let size = images.size();
    let side = i64::from(INPUT_SHAPE.height);
    if size[2..] != [side, side] {
        let reason = format!("the {name} images are {}x{}; the network takes {side}x{side}", size[3], size[2]);
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

/// The variables of `store` by name, sharing their storage.
fn shallow(store: &nn::VarStore) -> Vec<(String, Tensor)> {
    store.variables().into_iter().collect()
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

    /// Settings for a run of one epoch on a few images, on the CPU, with nothing but Adam.
    fn small_run(run_dir: &Path) -> TrainSettings {
        TrainSettings {
            dataset: DatasetCard::mnist(),
            architecture: Architecture::default(),
            epochs: 1,
            learning_rate: 1e-3,
            batch_size: 8,
            optimizer: Optimizer::Adam { beta1: 0.9, beta2: 0.999, weight_decay: 0.0 },
            augmentation: Augmentation::NONE,
            label_smoothing: 0.0,
            weight_average: None,
            outliers: None,
            validation_split: 0.25,
            seed: 1,
            threads: 1,
            device: Device::Cpu,
            run_dir: run_dir.to_owned(),
            created: SystemTime::UNIX_EPOCH,
            progress: false,
            resume: false,
            stop_after_epochs: None,
        }
    }

    #[test]
    fn settings_that_cannot_train_are_refused_before_anything_runs() {
        let split = || Split {
            images: Tensor::zeros([2, 1, 28, 28], tch::kind::FLOAT_CPU),
            labels: Tensor::zeros([2], (Kind::Int64, Device::Cpu)),
        };
        let data = IdxDataset { train: split(), test: split(), sha256: String::new() };
        let run_dir = tempfile::tempdir().unwrap();
        let settings = TrainSettings { validation_split: 0.9, ..small_run(run_dir.path()) };
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
            (
                TrainSettings {
                    augmentation: Augmentation { low_resolution: 1.5, ..Augmentation::NONE },
                    ..settings.clone()
                },
                "--augment-low-resolution",
            ),
            (TrainSettings { learning_rate: f64::NAN, ..settings.clone() }, "--lr"),
            (TrainSettings { threads: 0, ..settings.clone() }, "--threads"),
            (TrainSettings { label_smoothing: 1.0, ..settings.clone() }, "--label-smoothing"),
            (TrainSettings { weight_average: Some(1.0), ..settings.clone() }, "--weight-average"),
            (
                TrainSettings {
                    outliers: Some(
                        Outliers::evenly(
                            vec![("small".into(), Tensor::zeros([3, 1, 8, 8], tch::kind::FLOAT_CPU))],
                            0.5,
                        )
                        .unwrap(),
                    ),
                    ..settings.clone()
                },
                "the outlier images are 8x8",
            ),
        ] {
            let error = train(&broken, &data).err().unwrap().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }

    /// `count` images of bars: a vertical one (label 0) or a horizontal one (label 1) at a
    /// random place.
    fn bars(count: i64) -> Split {
        let images = Tensor::zeros([count, 1, 28, 28], tch::kind::FLOAT_CPU);
        let labels = Tensor::randint(2, [count], (Kind::Int64, Device::Cpu));
        let places = Tensor::randint_low(6, 20, [count], (Kind::Int64, Device::Cpu));
        for index in 0..count {
            let (label, place) = (labels.int64_value(&[index]), places.int64_value(&[index]));
            let (dim, across) = if label == 0 { (2, 1) } else { (1, 2) };
            let _ = images.get(index).narrow(dim, place, 3).narrow(across, 4, 20).fill_(1.0);
        }
        Split { images, labels }
    }

    #[test]
    fn outlier_exposure_makes_the_network_unsure_of_what_is_no_class() {
        let noise = |count: i64| Tensor::rand([count, 1, 28, 28], tch::kind::FLOAT_CPU).gt(0.8).to_kind(Kind::Float);
        tch::manual_seed(11);
        let data = IdxDataset { train: bars(512), test: bars(64), sha256: String::new() };
        let (outlier_images, unseen_noise) = (noise(256), noise(64));
        let run_dir = tempfile::tempdir().unwrap();
        // The highest probability the trained network gives to pictures of noise it never saw.
        let confidence_on_noise = |outliers: Option<Outliers>| {
            let settings = TrainSettings {
                epochs: 3,
                learning_rate: 3e-3,
                batch_size: 32,
                outliers,
                seed: 2,
                ..small_run(run_dir.path())
            };
            let TrainOutcome::Finished(trained) = train(&settings, &data).unwrap() else { panic!("stopped") };
            assert!(trained.metadata.test_accuracy > 0.95, "the bars are learnt: {}", trained.metadata.test_accuracy);
            let weights = run_dir.path().join("weights.safetensors");
            trained.save(&weights).unwrap();
            let net = max_mnist_core::network::load(&weights, &trained.metadata, Device::Cpu).unwrap();
            let logits = net.forward(&normalise(&unseen_noise, settings.dataset.normalisation));
            logits.softmax(1, Kind::Float).max_dim(1, false).0.mean(Kind::Float).double_value(&[])
        };
        let without = confidence_on_noise(None);
        let with = confidence_on_noise(Some(Outliers::evenly(vec![("noise".into(), outlier_images)], 0.5).unwrap()));
        assert!(without > 0.5, "trained on two classes alone, it picks one of them: {without}");
        assert!(with < 0.25, "taught that noise is no class, it spreads its answer over the ten: {with}");
    }

    #[test]
    fn restoring_a_snapshot_brings_back_every_variable() {
        let store = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&store.root(), Architecture::default(), 10);
        let saved = snapshot(&store);
        let before = weights_sha256(&store).unwrap();
        // One training-mode forward moves the batch-norm statistics; a step moves the weights.
        let mut optimizer = Optimizer::Sgd { momentum: 0.0, weight_decay: 0.0, nesterov: false }.start(&store);
        let inputs = Tensor::randn([4, 1, 28, 28], tch::kind::FLOAT_CPU);
        optimizer.backward_step(&net.forward_t(&inputs, true).sum(Kind::Float), 0.1);
        assert_ne!(weights_sha256(&store).unwrap(), before);
        checkpoint::copy_into(&shallow(&store), &saved).unwrap();
        assert_eq!(weights_sha256(&store).unwrap(), before);
    }

    #[test]
    fn the_weight_average_moves_each_variable_a_share_of_the_way() {
        let store = nn::VarStore::new(Device::Cpu);
        let mut weight = store.root().var("weight", &[2], nn::Init::Const(1.0));
        let mut average = WeightAverage::start(&store, 0.75);
        tch::no_grad(|| weight.copy_(&Tensor::from_slice(&[5.0f32, -3.0])));
        average.update();
        let averaged = &average.averages()[0];
        assert_eq!(averaged.0, "weight");
        assert_eq!(Vec::<f32>::try_from(&averaged.1).unwrap(), [2.0, 0.0]);
        assert_eq!(describe_weight_average(Some(0.75)), "exponential moving average, decay 0.75 per step");
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
