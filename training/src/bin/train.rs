//! `cargo run --release --bin train`: trains a classifier on MNIST, Fashion-MNIST or any other
//! IDX data set of 28×28 grayscale images with a validation split, logs to TensorBoard and
//! writes reports under `runs/<exp-name>/`, exports the weights of the best epoch, packs them
//! into the data set's bucket archive and rewrites the bucket's `sha512sums.txt`.
//!
//! With no flags it runs the recipe of the committed MNIST model in `pretrained-model/mnist/`
//! (whose weights it gave at commit 87edc9e; the typed letters it trains on have changed
//! since, see README "The committed model"); `--dataset fashion-mnist --seed 3` reproduces
//! the committed Fashion-MNIST model (same weights hash on the same kind of machine).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use max_mnist_artifacts::bucket;
use max_mnist_artifacts::download::DownloadPolicy;
use max_mnist_artifacts::format::Preprocessing;
use max_mnist_core::network::Architecture;
use max_mnist_training::augment::Augmentation;
use max_mnist_training::data::{DatasetCard, IdxDataset, KnownDataset, mirrors};
use max_mnist_training::optimizer::Optimizer;
use max_mnist_training::outliers::{OutlierSet, Outliers};
use max_mnist_training::preset::Preset;
use max_mnist_training::train::{self, TrainOutcome, TrainSettings};
use tracing_subscriber::EnvFilter;

/// Train an image classifier, report on it, and publish it to its local bucket.
///
/// `--dataset` picks the data and, for every flag not given, its defaults:
///
///   mnist          handwritten digits from data/mnist (`make data`); cnn-bn-8-16-32, 40 epochs,
///                  random rotation ±12°, scale ±10% and shift ±7.5%, some digits redrawn
///                  with a marker or as thumbnails; Fashion-MNIST and typed letters as
///                  outliers (`make fashion-data letter-fonts`); run in runs/mnist,
///                  published to pretrained-model/mnist/mnist-classifier.tar.gz.
///
///   fashion-mnist  clothes, shoes and bags from /usr/share/datasets/fashion-mnist (Debian's
///                  dataset-fashion-mnist); cnn-bn-16-32-64, 60 epochs, random horizontal
///                  flip and shift ±5%; MNIST digits and typed letters as outliers, each
///                  also inverted, as its uploads keep their polarity (`make data
///                  letter-fonts`); run in runs/fashion-mnist, published to
///                  pretrained-model/fashion-mnist/fashion-mnist-classifier.tar.gz.
///
///   idx            any four IDX files of 28×28 grayscale images (train-images-idx3-ubyte,
///                  train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte,
///                  raw or .gz) in --data-dir, with --labels (one class name a line, line 1
///                  for label 0) and --dataset-name; normalised by the training images' mean
///                  and spread; cnn-bn-8-16-32, 40 epochs, random shift ±7.5%; run in
///                  runs/<name>, published to pretrained-model/<name>/<name>-classifier.tar.gz
///                  (<name>: the data set's name in lower case, `-` for spaces).
///
/// MNIST's and Fashion-MNIST's files must be the published ones (SHA-256 of each decompressed
/// file); any data set's hash is recorded in the weights' metadata. Every other flag's default
/// is the same for all data sets.
#[derive(Parser, Debug)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// The data set: mnist, fashion-mnist or idx (see above).
    #[arg(long, env = "DATASET", value_enum, default_value_t = DatasetArg::Mnist)]
    dataset: DatasetArg,
    /// idx: the class names, one a line (line 1 names label 0); every label value needs one.
    #[arg(long, env = "LABELS_FILE", value_name = "FILE", required_if_eq("dataset", "idx"))]
    labels: Option<PathBuf>,
    /// idx: the data set's name, as the model card shows it (`Kuzushiji-MNIST`).
    #[arg(long, env = "DATASET_NAME", value_name = "NAME", required_if_eq("dataset", "idx"))]
    dataset_name: Option<String>,
    /// Directory with the four IDX files, raw or gzipped (default: the data set's, see above;
    /// required for idx).
    #[arg(long, env = "DATA_DIR", required_if_eq("dataset", "idx"))]
    data_dir: Option<PathBuf>,
    /// Fetch MNIST or Fashion-MNIST into the data directory first (verified; files already
    /// there and verified are kept).
    #[arg(long)]
    download: bool,
    /// A mirror to fetch the data set from, tried in the order given (default: its public ones).
    #[arg(long = "mirror", value_name = "URL")]
    mirrors: Vec<String>,
    /// Name of this run; its TensorBoard files and reports go to `<runs-dir>/<exp-name>/`
    /// (default: the data set's: mnist, fashion-mnist, or the idx name in lower case).
    #[arg(long, env = "EXP_NAME")]
    exp_name: Option<String>,
    /// The network: cnn-bn-8-16-32 or cnn-bn-16-32-64 (default: the data set's, see above).
    #[arg(long, env = "ARCHITECTURE", value_parser = parse_architecture)]
    architecture: Option<Architecture>,
    /// Passes over the training set (default: the data set's, see above).
    #[arg(long, env = "EPOCHS")]
    epochs: Option<u32>,
    /// Peak learning rate (after a one-epoch linear warm-up; then a cosine decay to 0).
    #[arg(long, env = "LR", default_value_t = 3e-3)]
    lr: f64,
    /// Images per optimisation step.
    #[arg(long, env = "BATCH_SIZE", default_value_t = 128)]
    batch_size: u32,
    /// The optimiser.
    #[arg(long, env = "OPTIMIZER", value_enum, default_value_t = OptimizerName::Adamw)]
    optimizer: OptimizerName,
    /// SGD: momentum factor.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// SGD: use Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// Adam and AdamW: decay of the first-moment estimate.
    #[arg(long, default_value_t = 0.9)]
    beta1: f64,
    /// Adam and AdamW: decay of the second-moment estimate.
    #[arg(long, default_value_t = 0.999)]
    beta2: f64,
    /// Weight decay (L2 for sgd and adam, decoupled for adamw).
    #[arg(long, env = "WEIGHT_DECAY", default_value_t = 1e-4)]
    weight_decay: f64,
    /// Largest random rotation of a training image, in degrees (default: the data set's).
    #[arg(long)]
    augment_rotation: Option<f64>,
    /// Largest random change of size of a training image, as a fraction (default: the data
    /// set's).
    #[arg(long)]
    augment_scale: Option<f64>,
    /// Largest random shift of a training image, as a fraction of its side (default: the data
    /// set's).
    #[arg(long)]
    augment_shift: Option<f64>,
    /// Mirror half of the training images left to right, true or false (default: the data
    /// set's; true only for fashion-mnist).
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    augment_flip: Option<bool>,
    /// Share of the training images redrawn with thicker strokes, as a marker draws them
    /// (default: the data set's).
    #[arg(long, value_name = "SHARE")]
    augment_thick_strokes: Option<f64>,
    /// Share of the training images made thumbnails, shrunk and enlarged back (default: the
    /// data set's).
    #[arg(long, value_name = "SHARE")]
    augment_low_resolution: Option<f64>,
    /// Pictures of no class that the network learns to answer with even probabilities, so
    /// that the "not a digit" score flags such pictures (outlier exposure), drawn evenly from
    /// each set listed: `mnist`'s or `fashion-mnist`'s training images, read from their default
    /// place and verified, `letters` typed in fonts from Debian's packages (`make letter-fonts`)
    /// and made into inputs by the data set's own preprocessing, or `none` (default: the data
    /// set's; fashion-mnist,letters for mnist, mnist,letters for fashion-mnist, none for the
    /// others). A data set whose uploads keep their polarity (all but mnist) gets each outlier
    /// also inverted.
    #[arg(long, value_enum, value_delimiter = ',')]
    outliers: Option<Vec<OutliersArg>>,
    /// Weight of the outliers' loss beside the classes'.
    #[arg(long, env = "OUTLIER_WEIGHT", default_value_t = Outliers::WEIGHT)]
    outlier_weight: f64,
    /// Train on the images as they are.
    #[arg(long)]
    no_augment: bool,
    /// Share of each target's probability spread over the other classes (0 to turn it off).
    #[arg(long, env = "LABEL_SMOOTHING", default_value_t = 0.0)]
    label_smoothing: f64,
    /// Judge and export an exponential moving average of the weights, with this decay per
    /// step (0.999 averages over about the last 1,000 steps); 0 to export the weights
    /// themselves.
    #[arg(long, env = "WEIGHT_AVERAGE", value_name = "DECAY", default_value_t = 0.0)]
    weight_average: f64,
    /// Fraction of the training set held back to pick the best epoch.
    #[arg(long, env = "VALIDATION_SPLIT", default_value_t = 0.1)]
    validation_split: f64,
    /// Seed for the split, initialisation, shuffling, augmentation and dropout.
    #[arg(long, env = "SEED", default_value_t = 1)]
    seed: u64,
    /// libtorch threads. Part of what makes a run reproducible: the committed weights were
    /// trained with 2.
    #[arg(long, env = "THREADS", default_value_t = 2)]
    threads: usize,
    /// Where to train: `cpu`, `cuda` or `cuda:N`.
    #[arg(long, env = "DEVICE", default_value = "cpu")]
    device: String,
    /// Parent directory of the run directories.
    #[arg(long, env = "RUNS_DIR", default_value = "runs")]
    runs_dir: PathBuf,
    /// The local bucket the model archive and its `sha512sums.txt` are written to (default:
    /// pretrained-model/<dataset>).
    #[arg(long, env = "MODEL_BUCKET")]
    output: Option<PathBuf>,
    /// The archive's file name (default: <dataset>-classifier.tar.gz).
    #[arg(long, env = "MODEL_FILE")]
    model_file: Option<String>,
    /// Continue the interrupted or stopped run in RUN_DIR (`runs/mnist`) from its last
    /// checkpoint, instead of starting afresh. Give the flags it was started with: a setting
    /// that differs is named and refused. The result is the uninterrupted run's.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "exp_name")]
    resume: Option<PathBuf>,
    /// End the run cleanly after N epochs, with a checkpoint to `--resume` from (for
    /// time-boxed runs and tests); nothing is published.
    #[arg(long, value_name = "N")]
    stop_after_epochs: Option<u32>,
    /// Export date as Unix seconds, for a byte-identical file (the reproducible-builds
    /// convention); the current time when absent.
    #[arg(long, env = "SOURCE_DATE_EPOCH")]
    source_date_epoch: Option<u64>,
}

/// `--dataset`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum DatasetArg {
    Mnist,
    FashionMnist,
    Idx,
}

/// `--outliers`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum OutliersArg {
    None,
    Mnist,
    FashionMnist,
    Letters,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OptimizerName {
    Sgd,
    Adam,
    Adamw,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    match train_and_publish(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn train_and_publish(args: &Args) -> anyhow::Result<()> {
    let known = match args.dataset {
        DatasetArg::Mnist => Some(KnownDataset::Mnist),
        DatasetArg::FashionMnist => Some(KnownDataset::FashionMnist),
        DatasetArg::Idx => None,
    };
    let preset = match (known, &args.dataset_name) {
        (Some(known), _) => Preset::known(known),
        (None, Some(name)) => Preset::custom(name),
        (None, None) => bail!("--dataset idx needs --dataset-name"),
    };
    if known.is_some() && (args.labels.is_some() || args.dataset_name.is_some()) {
        bail!("--labels and --dataset-name describe a custom data set: use them with --dataset idx");
    }
    let data_dir = args.data_dir.clone().or(preset.data_dir.clone()).context("--dataset idx needs --data-dir")?;
    if args.download {
        let known = known.context("--download fetches MNIST or Fashion-MNIST; a custom data set has no mirror")?;
        let mirrors: Vec<String> = if args.mirrors.is_empty() {
            known.mirrors().iter().map(|mirror| mirror.to_string()).collect()
        } else {
            args.mirrors.clone()
        };
        let runtime = tokio::runtime::Runtime::new().context("cannot start the download runtime")?;
        runtime.block_on(mirrors::download(&data_dir, known.files(), &mirrors, &DownloadPolicy::default()))?;
    }
    let data = IdxDataset::load_dir(&data_dir, known.map(KnownDataset::files)).with_context(|| {
        let what = known.map_or("the data set".to_owned(), |known| known.card().name);
        format!("cannot read {what} from {} ({})", data_dir.display(), preset.data_hint)
    })?;
    let dataset = match (known, &args.labels, &args.dataset_name) {
        (Some(known), _, _) => known.card(),
        (None, Some(labels), Some(name)) => DatasetCard::custom(name, labels, &data)?,
        (None, _, _) => bail!("--dataset idx needs --labels and --dataset-name"),
    };
    let run_dir = match &args.resume {
        Some(run_dir) => run_dir.clone(),
        None => args.runs_dir.join(args.exp_name.as_deref().unwrap_or(&preset.exp_name)),
    };
    let epochs = args.epochs.unwrap_or(preset.epochs);
    let outliers = outliers(args, &preset, dataset.preprocessing)?;
    let settings = TrainSettings {
        dataset,
        architecture: args.architecture.unwrap_or(preset.architecture),
        epochs,
        learning_rate: args.lr,
        batch_size: args.batch_size,
        optimizer: optimizer(args),
        augmentation: augmentation(args, preset.augmentation),
        label_smoothing: args.label_smoothing,
        weight_average: (args.weight_average != 0.0).then_some(args.weight_average),
        outliers,
        validation_split: args.validation_split,
        seed: args.seed,
        threads: args.threads,
        device: max_mnist_core::parse_device(&args.device)?,
        run_dir: run_dir.clone(),
        created: args
            .source_date_epoch
            .map_or_else(SystemTime::now, |seconds| SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)),
        progress: true,
        resume: args.resume.is_some(),
        stop_after_epochs: args.stop_after_epochs,
    };
    let started = Instant::now();
    let trained = match train::train(&settings, &data)? {
        TrainOutcome::Finished(trained) => trained,
        TrainOutcome::Stopped { epoch, checkpoint } => {
            println!("stopped after epoch {epoch} of {epochs}; checkpoint: {}", checkpoint.display());
            println!("to go on: the same command with --resume {}", run_dir.display());
            return Ok(());
        }
    };
    let metadata = &trained.metadata;
    println!(
        "{}, {}: best epoch {} of {epochs}: validation loss {:.4}, validation accuracy {:.2}%",
        metadata.dataset,
        metadata.architecture,
        metadata.best_epoch,
        metadata.validation_loss,
        metadata.validation_accuracy * 100.0
    );
    println!("test accuracy: {:.2}% on {} images", metadata.test_accuracy * 100.0, data.test.count());
    println!("training time: {:.0} s", started.elapsed().as_secs_f64());
    println!("{}", trained.report.summary());
    println!("calibration (reliability_diagram.png in the run directory):\n{}", trained.calibration.to_markdown());

    let weights = run_dir.join(&preset.weights_file);
    trained.save(&weights)?;
    let bucket_dir = args.output.clone().unwrap_or(preset.bucket);
    let archive = bucket::publish(&[&weights], &bucket_dir, args.model_file.as_deref().unwrap_or(&preset.archive))?;
    println!("weights sha256 (tensors only): {}", trained.weights_sha256());
    println!(
        "reports and TensorBoard files: {}  (tensorboard --logdir {})",
        run_dir.display(),
        args.runs_dir.display()
    );
    println!(
        "weights: {}\narchive: {}\nchecksums: {}",
        weights.display(),
        archive.display(),
        bucket_dir.join(bucket::CHECKSUMS_FILE).display()
    );
    Ok(())
}

fn parse_architecture(name: &str) -> Result<Architecture, String> {
    Architecture::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = Architecture::ALL.iter().map(|architecture| architecture.name()).collect();
        format!("unknown architecture (known: {})", known.join(", "))
    })
}

fn optimizer(args: &Args) -> Optimizer {
    let (beta1, beta2, weight_decay) = (args.beta1, args.beta2, args.weight_decay);
    match args.optimizer {
        OptimizerName::Sgd => Optimizer::Sgd { momentum: args.momentum, weight_decay, nesterov: args.nesterov },
        OptimizerName::Adam => Optimizer::Adam { beta1, beta2, weight_decay },
        OptimizerName::Adamw => Optimizer::AdamW { beta1, beta2, weight_decay },
    }
}

/// The outliers `--outliers` names, or the data set's, as a model whose uploads `procedure`
/// prepares sees them.
fn outliers(args: &Args, preset: &Preset, procedure: Preprocessing) -> anyhow::Result<Option<Outliers>> {
    let sets: Vec<OutlierSet> = match &args.outliers {
        Some(listed) => listed
            .iter()
            .filter_map(|set| match set {
                OutliersArg::None => None,
                OutliersArg::Mnist => Some(OutlierSet::Dataset(KnownDataset::Mnist)),
                OutliersArg::FashionMnist => Some(OutlierSet::Dataset(KnownDataset::FashionMnist)),
                OutliersArg::Letters => Some(OutlierSet::Letters),
            })
            .collect(),
        None => preset.outliers.to_vec(),
    };
    if sets.is_empty() {
        return Ok(None);
    }
    let loaded = sets
        .into_iter()
        .map(|set| set.load(procedure).with_context(|| format!("cannot load the outliers ({})", set.hint())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some(Outliers::evenly(loaded, args.outlier_weight)?))
}

/// The data set's augmentation, with each range the flags give instead.
fn augmentation(args: &Args, preset: Augmentation) -> Augmentation {
    if args.no_augment {
        return Augmentation::NONE;
    }
    Augmentation {
        max_rotation_degrees: args.augment_rotation.unwrap_or(preset.max_rotation_degrees),
        max_scale: args.augment_scale.unwrap_or(preset.max_scale),
        max_shift: args.augment_shift.unwrap_or(preset.max_shift),
        flip: args.augment_flip.unwrap_or(preset.flip),
        thick_strokes: args.augment_thick_strokes.unwrap_or(preset.thick_strokes),
        low_resolution: args.augment_low_resolution.unwrap_or(preset.low_resolution),
    }
}
