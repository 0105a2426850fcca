//! `cargo run --release --bin predict -- FILES|DIRS`: classifies images offline, with no
//! server, through the same wrapper as the server, and prints one line per file.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use max_mnist_artifacts::archive::UnpackLimits;
use max_mnist_artifacts::bucket::ModelSource;
use max_mnist_artifacts::card::ModelFiles;
use max_mnist_artifacts::download::DownloadPolicy;
use max_mnist_core::wrapper::ModelWrapper;
use max_mnist_training::predict::{self, Row};

/// Classify image files with a model, offline, through the server's own preprocessing and
/// network.
///
/// Folders are searched recursively for images. A file whose path names its class
/// (DIR/7/x.png, or x_7.png) is labelled: with labelled files, the accuracy is printed and the
/// training report (per-class F1, confusion matrix PNG) is written into --report-dir. A file
/// that cannot be read or classified is named in its own line, the others are still done,
/// and the exit code is 1.
#[derive(Parser, Debug)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// Image files and folders.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The model's bucket (a folder, a file:// or http(s) URL holding its archive and
    /// sha512sums.txt), verified before use.
    #[arg(long, default_value = "pretrained-model/mnist")]
    model: String,
    /// Where the model's verified files are unpacked (default: a temporary folder).
    #[arg(long)]
    assets_dir: Option<PathBuf>,
    /// The output: JSON Lines, or CSV with a header.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
    /// Where the report on labelled files goes.
    #[arg(long, default_value = "runs/predict")]
    report_dir: PathBuf,
    /// Images per forward pass.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    batch_size: u16,
}

/// The output format.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// One JSON object a line.
    Jsonl,
    /// Comma-separated values, with a header.
    Csv,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let scratch = tempfile::tempdir().context("cannot make a temporary folder")?;
    let source = ModelSource {
        bucket: args.model.clone(),
        assets_dir: args.assets_dir.clone().unwrap_or_else(|| scratch.path().join("model")),
        download: DownloadPolicy::default(),
        unpack: UnpackLimits::default(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let verified = runtime.block_on(ModelFiles::verified(&source)).with_context(|| format!("model {}", args.model))?;
    let model = ModelWrapper::load(&verified.files, max_mnist_core::best_device(), u64::from(u32::MAX))
        .with_context(|| format!("model {}", args.model))?;
    let labels = model.card().labels.clone();
    let inputs = predict::collect(&args.paths)?;

    let progress = ProgressBar::new(inputs.len() as u64)
        .with_style(ProgressStyle::with_template("{bar:40} {pos}/{len} images, {per_sec}, {eta} left")?);
    let mut stdout = std::io::stdout().lock();
    if let Format::Csv = args.format {
        writeln!(stdout, "{}", predict::csv_header(&labels))?;
    }
    let mut rows: Vec<Row> = Vec::with_capacity(inputs.len());
    for batch in inputs.chunks(usize::from(args.batch_size)) {
        for row in predict::classify(&model, batch)? {
            match args.format {
                Format::Jsonl => writeln!(stdout, "{}", row.to_json_line())?,
                Format::Csv => writeln!(stdout, "{}", row.to_csv(labels.len()))?,
            }
            rows.push(row);
        }
        progress.inc(batch.len() as u64);
    }
    progress.finish_and_clear();

    let failed: Vec<&Row> = rows.iter().filter(|row| row.error.is_some()).collect();
    for row in &failed {
        eprintln!("{}: {}", row.file, row.error.as_deref().unwrap_or_default());
    }
    eprintln!("{} images classified, {} could not be", rows.len() - failed.len(), failed.len());
    if let Some(report) = predict::report(&rows, &labels, &args.report_dir)? {
        eprintln!("{}", report.summary());
        eprintln!("report in {}", args.report_dir.display());
    }
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
