//! The training loop behind `cargo run --bin train`: Adam with a cosine learning-rate decay
//! over shuffled mini-batches, a progress bar with the running loss and throughput, and the
//! test accuracy measured on MNIST's 10,000 test images at the end.

use std::path::Path;
use std::time::{Instant, SystemTime};

use indicatif::{ProgressBar, ProgressStyle};
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::Result;
use crate::artifact::{self, ModelMetadata, Normalisation, TrainingRecipe};
use crate::data::{Mnist, Split};
use crate::network::{Architecture, INPUT_SIZE, MNIST_MEAN, MNIST_STD, Net, digit_labels};

/// What to train and how.
#[derive(Clone, Debug)]
pub struct TrainSettings {
    /// Passes over the training set.
    pub epochs: u32,
    /// Peak learning rate (decayed along a cosine to zero).
    pub learning_rate: f64,
    /// Images per optimisation step.
    pub batch_size: u32,
    /// Seed for initialisation and shuffling.
    pub seed: u64,
    /// Show progress bars.
    pub progress: bool,
}

/// A trained network and what is known about it.
pub struct TrainedModel {
    /// The variables.
    pub store: nn::VarStore,
    /// Metadata to export with the weights.
    pub metadata: ModelMetadata,
}

const ARCHITECTURE: Architecture = Architecture::CnnBn16x32x64;
const EVAL_BATCH: i64 = 1000;

/// Trains a fresh network on `data.train` and measures it on `data.test`.
pub fn train(settings: &TrainSettings, data: &Mnist) -> Result<TrainedModel> {
    tch::manual_seed(settings.seed as i64);
    let normalisation = Normalisation { mean: MNIST_MEAN, std: MNIST_STD };
    let store = nn::VarStore::new(Device::Cpu);
    let net = Net::new(&store.root(), ARCHITECTURE);
    let mut optimizer = nn::Adam::default().build(&store, settings.learning_rate)?;

    let images = normalise(&data.train.images, normalisation);
    let count = data.train.count();
    let batch_size = i64::from(settings.batch_size.max(1));
    let steps_per_epoch = (count + batch_size - 1) / batch_size;
    let total_steps = steps_per_epoch * i64::from(settings.epochs);
    let mut step = 0;
    for epoch in 1..=settings.epochs {
        let started = Instant::now();
        let bar = progress_bar(settings.progress, steps_per_epoch as u64, format!("epoch {epoch}/{}", settings.epochs));
        let order = Tensor::randperm(count, (Kind::Int64, Device::Cpu));
        let mut running_loss = 0.0;
        for batch in 0..steps_per_epoch {
            let indices = order.narrow(0, batch * batch_size, batch_size.min(count - batch * batch_size));
            let inputs = images.index_select(0, &indices);
            let targets = data.train.labels.index_select(0, &indices);
            let progress = step as f64 / total_steps as f64;
            optimizer.set_lr(settings.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
            let loss = net.forward_t(&inputs, true).cross_entropy_for_logits(&targets);
            optimizer.backward_step(&loss);
            step += 1;
            let loss = loss.double_value(&[]);
            running_loss = if batch == 0 { loss } else { 0.98 * running_loss + 0.02 * loss };
            let seen = (batch + 1) * batch_size;
            let throughput = seen as f64 / started.elapsed().as_secs_f64();
            bar.set_message(format!("loss {running_loss:.4}  {throughput:.0} img/s"));
            bar.inc(1);
        }
        bar.finish();
        tracing::info!(epoch, loss = running_loss, seconds = started.elapsed().as_secs_f64(), "epoch done");
    }
    let test_accuracy = accuracy(&net, &data.test, normalisation);
    let parameters = store.trainable_variables().iter().map(|tensor| tensor.numel() as u64).sum();
    let metadata = ModelMetadata {
        architecture: ARCHITECTURE,
        input_size: INPUT_SIZE,
        normalisation,
        labels: digit_labels(),
        test_accuracy,
        training_data_sha256: data.sha256.clone(),
        parameters,
        recipe: TrainingRecipe {
            optimizer: "adam(betas=0.9,0.999), cosine decay".into(),
            learning_rate: settings.learning_rate,
            epochs: settings.epochs,
            batch_size: settings.batch_size,
            seed: settings.seed,
        },
        created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
    };
    Ok(TrainedModel { store, metadata })
}

impl TrainedModel {
    /// Writes the weights and their metadata to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        artifact::save(&self.store, &self.metadata, path)
    }
}

/// Fraction of `split` that `net` classifies correctly.
pub fn accuracy(net: &Net, split: &Split, normalisation: Normalisation) -> f64 {
    let _no_grad = tch::no_grad_guard();
    let mut correct = 0i64;
    let mut start = 0;
    while start < split.count() {
        let size = EVAL_BATCH.min(split.count() - start);
        let inputs = normalise(&split.images.narrow(0, start, size), normalisation);
        let predicted = net.forward_t(&inputs, false).argmax(-1, false);
        correct += predicted.eq_tensor(&split.labels.narrow(0, start, size)).sum(Kind::Int64).int64_value(&[]);
        start += size;
    }
    correct as f64 / split.count().max(1) as f64
}

fn normalise(images: &Tensor, normalisation: Normalisation) -> Tensor {
    (images - f64::from(normalisation.mean)) / f64::from(normalisation.std)
}

fn progress_bar(visible: bool, steps: u64, prefix: String) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps).with_prefix(prefix);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}
