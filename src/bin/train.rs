//! `cargo run --release --bin train`: trains the classifier on MNIST, prints its test
//! accuracy, writes the safetensors weights under `runs/<exp-name>/`, packs them into the
//! bucket archive and rewrites `sha512sums.txt`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use max_mnist_core::bucket;
use max_mnist_core::data::Mnist;
use max_mnist_core::train::{self, TrainSettings};
use tracing_subscriber::EnvFilter;

/// Train the MNIST classifier and publish it to the local bucket.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Name of this run; its files go to `runs/<exp-name>/`.
    #[arg(long, env = "EXP_NAME", default_value = "default")]
    exp_name: String,
    /// Passes over the training set.
    #[arg(long, env = "EPOCHS", default_value_t = 5)]
    epochs: u32,
    /// Peak learning rate.
    #[arg(long, env = "LR", default_value_t = 1e-3)]
    lr: f64,
    /// Images per optimisation step.
    #[arg(long, env = "BATCH_SIZE", default_value_t = 64)]
    batch_size: u32,
    /// Random seed for initialisation and shuffling.
    #[arg(long, env = "SEED", default_value_t = 1)]
    seed: u64,
    /// Directory with the four MNIST IDX files, raw or gzipped (`make data` fills it).
    #[arg(long, env = "DATA_DIR", default_value = "data/mnist")]
    data_dir: PathBuf,
    /// Directory for this run's files.
    #[arg(long, env = "RUNS_DIR", default_value = "runs")]
    runs_dir: PathBuf,
    /// The local bucket the archive is written to.
    #[arg(long, env = "MODEL_BUCKET", default_value = "pretrained-model")]
    bucket: PathBuf,
    /// The archive's file name.
    #[arg(long, env = "MODEL_FILE", default_value = "mnist-classifier.tar.gz")]
    model_file: String,
    /// The checksums file to rewrite.
    #[arg(long, env = "SHA512SUMS", default_value = "sha512sums.txt")]
    checksums: PathBuf,
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
    let data = Mnist::load_dir(&args.data_dir)
        .with_context(|| format!("cannot read MNIST from {} (run `make data`)", args.data_dir.display()))?;
    let settings = TrainSettings {
        epochs: args.epochs,
        learning_rate: args.lr,
        batch_size: args.batch_size,
        seed: args.seed,
        progress: true,
    };
    let trained = train::train(&settings, &data)?;
    println!("test accuracy: {:.2}% on {} images", trained.metadata.test_accuracy * 100.0, data.test.count());

    let run_dir = args.runs_dir.join(&args.exp_name);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("cannot create {}", run_dir.display()))?;
    let weights = run_dir.join(WEIGHTS_FILE);
    trained.save(&weights)?;
    let archive = bucket::publish(&[&weights], &args.bucket, &args.model_file, &args.checksums)?;
    println!("weights: {}\narchive: {}\nchecksums: {}", weights.display(), archive.display(), args.checksums.display());
    Ok(())
}
