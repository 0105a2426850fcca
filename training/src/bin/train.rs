//! `cargo run --release --bin train`: trains the classifier on MNIST with a validation split,
//! logs to TensorBoard and writes reports under `runs/<exp-name>/`, exports the weights of the
//! best epoch, packs them into the bucket archive and rewrites `sha512sums.txt`.
//!
//! With no flags it reproduces the committed `pretrained-model/` (same weights hash on the
//! same kind of machine).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use max_mnist_core::bucket;
use max_mnist_core::data::{MNIST_FILES, Mnist, mirrors};
use max_mnist_core::download::DownloadPolicy;
use max_mnist_core::network::Architecture;
use max_mnist_core::train::{self, Augmentation, Optimizer, TrainSettings};
use tracing_subscriber::EnvFilter;

/// Train the MNIST classifier, report on it, and publish it to the local bucket.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Name of this run; its TensorBoard files and reports go to `<runs-dir>/<exp-name>/`.
    #[arg(long, env = "EXP_NAME", default_value = "default")]
    exp_name: String,
    /// The network: cnn-bn-8-16-32 or cnn-bn-16-32-64.
    #[arg(long, env = "ARCHITECTURE", default_value = Architecture::default().name(), value_parser = parse_architecture)]
    architecture: Architecture,
    /// Passes over the training set.
    #[arg(long, env = "EPOCHS", default_value_t = 40)]
    epochs: u32,
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
    /// Largest random rotation of a training image, in degrees.
    #[arg(long, default_value_t = 12.0)]
    augment_rotation: f64,
    /// Largest random change of size of a training image, as a fraction.
    #[arg(long, default_value_t = 0.1)]
    augment_scale: f64,
    /// Largest random shift of a training image, as a fraction of its side.
    #[arg(long, default_value_t = 0.075)]
    augment_shift: f64,
    /// Train on the images as they are.
    #[arg(long)]
    no_augment: bool,
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
    /// Directory with the four MNIST IDX files, raw or gzipped (`make data` fills it offline).
    #[arg(long, env = "DATA_DIR", default_value = "data/mnist")]
    data_dir: PathBuf,
    /// Fetch MNIST into `--data-dir` first (verified; files already there and verified are kept).
    #[arg(long)]
    download: bool,
    /// A mirror to fetch MNIST from, tried in the order given (default: the usual public ones).
    #[arg(long = "mirror", value_name = "URL")]
    mirrors: Vec<String>,
    /// Parent directory of the run directories.
    #[arg(long, env = "RUNS_DIR", default_value = "runs")]
    runs_dir: PathBuf,
    /// The local bucket the model archive is written to.
    #[arg(long, env = "MODEL_BUCKET", default_value = "pretrained-model")]
    output: PathBuf,
    /// The archive's file name.
    #[arg(long, env = "MODEL_FILE", default_value = "mnist-classifier.tar.gz")]
    model_file: String,
    /// The checksums file to rewrite.
    #[arg(long, env = "SHA512SUMS", default_value = "sha512sums.txt")]
    checksums: PathBuf,
    /// Export date as Unix seconds, for a byte-identical file (the reproducible-builds
    /// convention); the current time when absent.
    #[arg(long, env = "SOURCE_DATE_EPOCH")]
    source_date_epoch: Option<u64>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OptimizerName {
    Sgd,
    Adam,
    Adamw,
}

/// The weights' file name, inside the archive and in `assets/`.
const WEIGHTS_FILE: &str = "mnist-classifier.safetensors";

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
    if args.download {
        let mirrors: Vec<String> = if args.mirrors.is_empty() {
            mirrors::DEFAULT_MIRRORS.iter().map(|mirror| mirror.to_string()).collect()
        } else {
            args.mirrors.clone()
        };
        let runtime = tokio::runtime::Runtime::new().context("cannot start the download runtime")?;
        runtime.block_on(mirrors::download(&args.data_dir, &MNIST_FILES, &mirrors, &DownloadPolicy::default()))?;
    }
    let data = Mnist::load_dir(&args.data_dir).with_context(|| {
        format!("cannot read MNIST from {} (run `make data`, or pass --download)", args.data_dir.display())
    })?;
    let run_dir = args.runs_dir.join(&args.exp_name);
    let settings = TrainSettings {
        architecture: args.architecture,
        epochs: args.epochs,
        learning_rate: args.lr,
        batch_size: args.batch_size,
        optimizer: optimizer(args),
        augmentation: augmentation(args),
        validation_split: args.validation_split,
        seed: args.seed,
        threads: args.threads,
        device: max_mnist_core::parse_device(&args.device)?,
        run_dir: run_dir.clone(),
        created: args
            .source_date_epoch
            .map_or_else(SystemTime::now, |seconds| SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)),
        progress: true,
    };
    let trained = train::train(&settings, &data)?;
    let metadata = &trained.metadata;
    println!(
        "best epoch {} of {}: validation loss {:.4}, validation accuracy {:.2}%",
        metadata.best_epoch,
        args.epochs,
        metadata.validation_loss,
        metadata.validation_accuracy * 100.0
    );
    println!("test accuracy: {:.2}% on {} images", metadata.test_accuracy * 100.0, data.test.count());
    println!("{}", trained.report.summary());

    let weights = run_dir.join(WEIGHTS_FILE);
    trained.save(&weights)?;
    let archive = bucket::publish(&[&weights], &args.output, &args.model_file, &args.checksums)?;
    println!("weights sha256 (tensors only): {}", trained.weights_sha256());
    println!(
        "reports and TensorBoard files: {}  (tensorboard --logdir {})",
        run_dir.display(),
        args.runs_dir.display()
    );
    println!("weights: {}\narchive: {}\nchecksums: {}", weights.display(), archive.display(), args.checksums.display());
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

fn augmentation(args: &Args) -> Augmentation {
    if args.no_augment {
        return Augmentation::NONE;
    }
    Augmentation {
        max_rotation_degrees: args.augment_rotation,
        max_scale: args.augment_scale,
        max_shift: args.augment_shift,
    }
}
