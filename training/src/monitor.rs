//! What a training run shows, while it trains and after: a progress bar per epoch with the
//! running loss and throughput, TensorBoard event files in the run directory (losses, learning
//! rate, validation accuracy, sample images, hyperparameters, the embedding projector), and the
//! report files (per-class metrics, the confusion matrix as JSON, Markdown and a PNG heat map,
//! and a PNG grid of the misclassified test images, captioned with the data set's labels).
//!
//! The files, under `runs/<exp-name>/`:
//! `events.out.tfevents.*`, `classification_report.json`, `classification_report.md`,
//! `confusion_matrix.json`, `confusion_matrix.png`, `misclassified.png`, `calibration.json`,
//! `calibration.md`, `reliability_diagram.png`, `projector_config.pbtxt` and `projector/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use max_mnist_artifacts::format::Normalisation;
use max_mnist_core::network::{INPUT_SHAPE, Net};

use crate::calibrate::{CalibrationReport, ReliabilityBin};
use crate::data::Split;
use crate::render::{self, GridTile};
use crate::report::ClassificationReport;
use crate::tensorboard::{self, EventWriter, GraphNode, HParam};
use crate::train::{Evaluation, TrainSettings, normalise};
use crate::{Error, Result};

/// Side of the square images the network takes.
const INPUT_SIZE: u32 = INPUT_SHAPE.height;

/// How many test images go to the embedding projector.
const PROJECTOR_POINTS: i64 = 1000;
/// How many misclassified images the grid shows at most.
const MISCLASSIFIED_SHOWN: usize = 100;
/// The scalars the HPARAMS tab compares runs by.
const METRICS: [&str; 3] = ["validation/loss", "validation/accuracy", "test/accuracy"];

/// The run directory's writer and the terminal's progress bars.
pub(super) struct Monitor {
    run_dir: PathBuf,
    events: EventWriter,
    progress: bool,
}

/// One epoch's progress bar and the running figures it shows.
pub(super) struct EpochProgress {
    bar: ProgressBar,
    started: Instant,
    running_loss: Option<f64>,
}

impl Monitor {
    /// Starts a fresh run in `run_dir`: event files of an earlier run with the same name are
    /// removed, so TensorBoard does not draw two runs as one.
    pub(super) fn create(run_dir: &Path, progress: bool) -> Result<Monitor> {
        std::fs::create_dir_all(run_dir).map_err(Error::io("cannot create", run_dir))?;
        for entry in std::fs::read_dir(run_dir).map_err(Error::io("cannot read", run_dir))? {
            let path = entry.map_err(Error::io("cannot read", run_dir))?.path();
            if path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("events.out.tfevents.")) {
                tracing::info!(file = %path.display(), "removing the event file of an earlier run");
                std::fs::remove_file(&path).map_err(Error::io("cannot remove", &path))?;
            }
        }
        Monitor::open(run_dir, progress)
    }

    /// Goes on with the run in `run_dir` in an event file of its own, beside the earlier
    /// ones: TensorBoard reads all of a run directory's files as one run.
    pub(super) fn open(run_dir: &Path, progress: bool) -> Result<Monitor> {
        let events = EventWriter::create(run_dir)?;
        tracing::info!(events = %events.path().display(), "TensorBoard: tensorboard --logdir {}", parent_or_self(run_dir));
        Ok(Monitor { run_dir: run_dir.to_owned(), events, progress })
    }

    /// Writes out what is buffered, so that what a checkpoint holds is also in TensorBoard.
    pub(super) fn flush(&mut self) -> Result<()> {
        self.events.flush()
    }

    /// Records the settings in the HPARAMS tab, and as text every setting of the run's
    /// `recipe` (as its checkpoint records them) with its `training` and `validation` image
    /// counts.
    pub(super) fn hyperparameters(
        &mut self,
        settings: &TrainSettings,
        recipe: &BTreeMap<String, String>,
        training: i64,
        validation: i64,
    ) -> Result<()> {
        let hparams = [
            ("dataset", HParam::Text(settings.dataset.name.clone())),
            ("architecture", HParam::Text(settings.architecture.name().to_owned())),
            ("optimizer", HParam::Text(settings.optimizer.name().to_owned())),
            ("lr", HParam::Number(settings.learning_rate)),
            ("batch_size", HParam::Number(f64::from(settings.batch_size))),
            ("epochs", HParam::Number(f64::from(settings.epochs))),
            ("validation_split", HParam::Number(settings.validation_split)),
            ("augmentation", HParam::Bool(settings.augmentation.is_enabled())),
            ("label_smoothing", HParam::Number(settings.label_smoothing)),
            ("weight_average", HParam::Number(settings.weight_average.unwrap_or(0.0))),
            ("outliers", HParam::Text(recipe.get("outliers").cloned().unwrap_or_default())),
            ("seed", HParam::Number(settings.seed as f64)),
            ("threads", HParam::Number(settings.threads as f64)),
        ];
        self.events.hparams(&hparams, &METRICS)?;
        let counts = [("training images", training.to_string()), ("validation images", validation.to_string())];
        let rows = recipe.iter().map(|(name, value)| (name.as_str(), value.clone())).chain(counts);
        let table: String = rows.map(|(name, value)| format!("| {name} | {value} |\n")).collect();
        self.events.text("recipe", 0, &format!("| setting | value |\n|---|---|\n{table}"))
    }

    /// Logs the network's graph for the Graphs tab: its operations, each fed by the one
    /// before, with the shapes they give for one image.
    pub(super) fn graph(&mut self, net: &Net) -> Result<()> {
        let one_image = Tensor::zeros([1, 1, INPUT_SIZE as i64, INPUT_SIZE as i64], (Kind::Float, net.device()));
        let (ops, _) = net.trace(&one_image);
        let nodes: Vec<GraphNode> = ops
            .iter()
            .enumerate()
            .map(|(index, op)| GraphNode {
                name: op.name.clone(),
                op: op.op.to_owned(),
                inputs: index.checked_sub(1).map(|previous| ops[previous].name.clone()).into_iter().collect(),
                shape: op.shape.clone(),
            })
            .collect();
        self.events.graph(&nodes)
    }

    /// Logs a grid of images `[N, 1, 28, 28]` with values in [0, 1].
    pub(super) fn sample_images(&mut self, tag: &str, images: &Tensor) -> Result<()> {
        let tiles: Vec<GridTile> =
            to_pixels(images)?.into_iter().map(|pixels| GridTile { pixels, caption: String::new() }).collect();
        self.image(tag, 0, &render::image_grid(&tiles, INPUT_SIZE, 8, 2))
    }

    /// A progress bar for one epoch (hidden when progress is off).
    pub(super) fn epoch_bar(&self, epoch: u32, epochs: u32, steps: u64) -> EpochProgress {
        let bar = if self.progress {
            let bar = ProgressBar::new(steps).with_prefix(format!("epoch {epoch}/{epochs}"));
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        EpochProgress { bar, started: Instant::now(), running_loss: None }
    }

    /// Records one optimisation step: `seen` is how many images this epoch has used so far.
    pub(super) fn step(
        &mut self,
        epoch: &mut EpochProgress,
        step: i64,
        loss: f64,
        learning_rate: f64,
        seen: i64,
    ) -> Result<()> {
        self.events.scalar("train/loss_per_step", step, loss as f32)?;
        self.events.scalar("train/learning_rate", step, learning_rate as f32)?;
        let running = epoch.running_loss.map_or(loss, |running| 0.98 * running + 0.02 * loss);
        epoch.running_loss = Some(running);
        let throughput = seen as f64 / epoch.started.elapsed().as_secs_f64();
        epoch.bar.set_message(format!("loss {running:.4}  {throughput:.0} img/s"));
        epoch.bar.inc(1);
        Ok(())
    }

    /// Records the end of an epoch and its validation; `training_seconds` timed the `images`
    /// of its optimisation steps (validation excluded), as the benchmark compares.
    pub(super) fn epoch(
        &mut self,
        progress: EpochProgress,
        epoch: u32,
        train_loss: f64,
        validation: &Evaluation,
        training_seconds: f64,
        images: i64,
    ) -> Result<()> {
        let images_per_second = images as f64 / training_seconds;
        progress.bar.finish_and_clear();
        let step = i64::from(epoch);
        self.events.scalar("train/loss", step, train_loss as f32)?;
        self.events.scalar("train/images_per_second", step, images_per_second as f32)?;
        self.events.scalar("validation/loss", step, validation.loss as f32)?;
        self.events.scalar("validation/accuracy", step, validation.accuracy as f32)?;
        self.events.flush()?;
        let line = format!(
            "epoch {epoch}: train loss {train_loss:.4}, validation loss {:.4}, validation accuracy {:.2}%, \
             {training_seconds:.1} s, {images_per_second:.0} img/s",
            validation.loss,
            validation.accuracy * 100.0
        );
        if self.progress {
            println!("{line}");
        } else {
            tracing::info!("{line}");
        }
        Ok(())
    }

    /// Writes the test-set report files, the misclassified images, the embedding projector,
    /// and closes the TensorBoard session. `step` is the exported (best) epoch: the test
    /// results go there on the x-axis.
    pub(super) fn finish(
        &mut self,
        net: &Net,
        test: &Split,
        predicted: &Tensor,
        report: &ClassificationReport,
        normalisation: Normalisation,
        step: u32,
    ) -> Result<()> {
        let step = i64::from(step);
        let heat_map = save_report(report, &self.run_dir, "test set: true vs predicted")?;
        self.image("test/confusion_matrix", step, &heat_map)?;

        let misclassified = misclassified_tiles(test, predicted, &report.labels)?;
        let grid = render::image_grid(&misclassified, INPUT_SIZE, 10, 2);
        render::save_png(&grid, &self.run_dir.join("misclassified.png"))?;
        self.image("test/misclassified", step, &grid)?;

        self.events.scalar("test/accuracy", step, report.accuracy as f32)?;
        self.events.text("test/report", step, &report.to_markdown())?;
        self.projector(net, test, &report.labels, normalisation)?;
        self.events.end_session()?;
        self.events.flush()
    }

    /// Writes what calibration fitted and how it fares: `calibration.json` and `.md`, and
    /// `reliability_diagram.png` (the test set and its user-like variants, before and after),
    /// also in TensorBoard with the expected calibration errors.
    pub(super) fn calibration(&mut self, report: &CalibrationReport, step: u32) -> Result<()> {
        let step = i64::from(step);
        write_text(&self.run_dir, "calibration.json", report.to_json())?;
        write_text(&self.run_dir, "calibration.md", report.to_markdown())?;
        let shown = report.sets.iter().filter(|set| set.name == "test" || set.name == "test, all variants");
        let panels: Vec<(String, Vec<ReliabilityBin>)> = shown
            .flat_map(|set| {
                [
                    (format!("{}: before, ECE {:.2}%", set.name, set.ece_before * 100.0), set.bins_before.clone()),
                    (format!("{}: after, ECE {:.2}%", set.name, set.ece_after * 100.0), set.bins_after.clone()),
                ]
            })
            .collect();
        let diagram = render::reliability_diagram(&panels);
        render::save_png(&diagram, &self.run_dir.join("reliability_diagram.png"))?;
        self.image("calibration/reliability_diagram", step, &diagram)?;
        for set in &report.sets {
            let tag = set.name.replace(", ", "_").replace(' ', "_");
            self.events.scalar(&format!("calibration/ece_before/{tag}"), step, set.ece_before as f32)?;
            self.events.scalar(&format!("calibration/ece_after/{tag}"), step, set.ece_after as f32)?;
        }
        self.events.scalar("calibration/temperature", step, report.calibration.temperature)?;
        self.events.text("calibration/report", step, &report.to_markdown())
    }

    /// The last hidden layer's activations for the first test images, with their true class's
    /// label and thumbnails, for TensorBoard's embedding projector.
    fn projector(&mut self, net: &Net, test: &Split, labels: &[String], normalisation: Normalisation) -> Result<()> {
        let count = PROJECTOR_POINTS.min(test.count());
        if count == 0 {
            return Ok(());
        }
        let images = test.images.narrow(0, 0, count);
        let embeddings = {
            let _no_grad = tch::no_grad_guard();
            net.embed(&normalise(&images.to_device(net.device()), normalisation)).to_device(Device::Cpu)
        };
        let embeddings: Vec<Vec<f32>> = Vec::<Vec<f32>>::try_from(&embeddings)?;
        let labels: Vec<String> = Vec::<i64>::try_from(&test.labels.narrow(0, 0, count))?
            .into_iter()
            .map(|class| label_of(labels, class))
            .collect();
        let sprite = render::encode_png(&render::sprite(&to_pixels(&images)?, INPUT_SIZE))
            .map_err(Error::io("cannot encode", self.run_dir.join("projector")))?;
        tensorboard::write_projector(&self.run_dir, "hidden_layer", &embeddings, &labels, Some((&sprite, INPUT_SIZE)))
    }

    fn image(&mut self, tag: &str, step: i64, image: &image::RgbImage) -> Result<()> {
        let png = render::encode_png(image).map_err(Error::io("cannot encode", &self.run_dir))?;
        self.events.image_png(tag, step, &png, image.width(), image.height(), 3)
    }
}

/// Writes `contents` to the file `name` in `dir`.
fn write_text(dir: &Path, name: &str, contents: String) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, contents).map_err(Error::io("cannot write", &path))
}

/// Writes `report` into `dir` as the train bin leaves it: `classification_report.json` and
/// `.md`, `confusion_matrix.json`, and `confusion_matrix.png`, a heat map titled `title`,
/// which is returned.
pub(crate) fn save_report(report: &ClassificationReport, dir: &Path, title: &str) -> Result<RgbImage> {
    let write = |name: &str, contents: String| write_text(dir, name, contents);
    write("classification_report.json", report.to_json())?;
    write("classification_report.md", report.to_markdown())?;
    let confusion = ConfusionMatrix {
        labels: &report.labels,
        rows_are: "true class",
        columns_are: "predicted class",
        counts: &report.confusion,
    };
    let path = dir.join("confusion_matrix.json");
    write(
        "confusion_matrix.json",
        serde_json::to_string_pretty(&confusion)
            .map_err(std::io::Error::other)
            .map_err(Error::io("cannot encode", path))?,
    )?;
    let heat_map = render::heat_map(&report.labels, &report.confusion, title);
    render::save_png(&heat_map, &dir.join("confusion_matrix.png"))?;
    Ok(heat_map)
}

/// `confusion_matrix.json`: the counts with what their axes mean.
#[derive(Serialize)]
struct ConfusionMatrix<'a> {
    labels: &'a [String],
    rows_are: &'static str,
    columns_are: &'static str,
    counts: &'a [Vec<u64>],
}

/// The misclassified test images, captioned `true>predicted` with the classes' labels.
fn misclassified_tiles(test: &Split, predicted: &Tensor, labels: &[String]) -> Result<Vec<GridTile>> {
    let wrong = predicted.ne_tensor(&test.labels).nonzero().flatten(0, -1);
    let shown = wrong.narrow(0, 0, wrong.size()[0].min(MISCLASSIFIED_SHOWN as i64));
    let actual = Vec::<i64>::try_from(&test.labels.index_select(0, &shown))?;
    let guessed = Vec::<i64>::try_from(&predicted.index_select(0, &shown))?;
    Ok(to_pixels(&test.images.index_select(0, &shown))?
        .into_iter()
        .zip(actual.iter().zip(&guessed))
        .map(|(pixels, (&actual, &guessed))| GridTile {
            pixels,
            caption: format!("{}>{}", label_of(labels, actual), label_of(labels, guessed)),
        })
        .collect())
}

/// The label of class `class`, or its number for a class the labels do not name (which
/// training refuses before it starts).
fn label_of(labels: &[String], class: i64) -> String {
    usize::try_from(class).ok().and_then(|index| labels.get(index)).cloned().unwrap_or_else(|| class.to_string())
}

/// Images `[N, 1, H, W]` in [0, 1] as N rows of 8-bit pixels.
fn to_pixels(images: &Tensor) -> Result<Vec<Vec<u8>>> {
    let bytes = (images.to_device(Device::Cpu) * 255.0).round().clamp(0.0, 255.0).to_kind(Kind::Uint8);
    let count = bytes.size()[0];
    Ok((0..count).map(|index| Vec::<u8>::try_from(&bytes.get(index).flatten(0, -1))).collect::<Result<_, _>>()?)
}

fn parent_or_self(run_dir: &Path) -> String {
    run_dir.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(run_dir).display().to_string()
}
