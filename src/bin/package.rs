//! `package`: makes a user's TorchScript module a model this server serves, as
//! `torch-model-archiver` does for TorchServe.
//!
//! ```sh
//! cargo run --release --bin package -- --torchscript model.pt --labels labels.txt \
//!     --input-shape 1,28,28 --mean 0.5 --std 0.5 --preprocess digit --name lenet --output DIR
//! ```
//!
//! writes `DIR/lenet.tar.gz` and `DIR/sha512sums.txt`, ready for `--model lenet=DIR`. The
//! module is loaded and run first, exactly as the server will (see
//! `max_mnist_core::package`): a file that is not TorchScript, labels that do not match the
//! output size, or a shape that does not run are refused with a message saying which.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use max_mnist_artifacts::card::{ChannelNormalisation, ModelCard, TORCHSCRIPT_ARCHITECTURE};
use max_mnist_artifacts::format::{Calibration, InputShape, Preprocessing};
use max_mnist_core::package;

/// Package a TorchScript module (torch.jit.trace or torch.jit.script, then .save) with its
/// labels and input card into a verified bucket for `--model NAME=DIR`.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The TorchScript file.
    #[arg(long, value_name = "FILE")]
    torchscript: PathBuf,
    /// The class labels in output order: one per line, or JSON (a list, or TorchServe's
    /// index_to_name.json).
    #[arg(long, value_name = "FILE")]
    labels: PathBuf,
    /// The input the module takes: channels (1 or 3), height, width.
    #[arg(long, value_name = "C,H,W", value_parser = parse_shape)]
    input_shape: InputShape,
    /// Subtracted from pixels in [0, 1]: one value for every channel, or one per channel.
    #[arg(long, value_name = "MEAN[,MEAN,MEAN]", value_delimiter = ',', required = true)]
    mean: Vec<f32>,
    /// Then divided by: one value for every channel, or one per channel.
    #[arg(long, value_name = "STD[,STD,STD]", value_delimiter = ',', required = true)]
    std: Vec<f32>,
    /// How an upload becomes the input: `digit` (find a handwritten digit and centre it as
    /// MNIST's are) or `image` (resize and centre-crop, as torchvision's transforms do).
    #[arg(long, value_enum)]
    preprocess: Procedure,
    /// The model's name in the routes (`/models/NAME/predict`).
    #[arg(long)]
    name: String,
    /// What the model does, for its model card.
    #[arg(long)]
    description: Option<String>,
    /// The bucket folder to write (made if missing).
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
}

/// The preprocessing procedures, as the command line names them.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Procedure {
    Digit,
    Image,
}

/// `C,H,W` → the input shape.
fn parse_shape(text: &str) -> Result<InputShape, String> {
    let sides: Vec<u32> = text
        .split(',')
        .map(|side| side.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|error| format!("`{text}` is not three whole numbers C,H,W: {error}"))?;
    match sides.as_slice() {
        &[channels, height, width] => Ok(InputShape { channels, height, width }),
        _ => Err(format!("`{text}` is not three numbers C,H,W (for example 1,28,28 or 3,224,224)")),
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("package: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    max_mnist_config::settings::check_model_name(&args.name).map_err(anyhow::Error::msg)?;
    let InputShape { channels, height, width } = args.input_shape;
    let labels = package::read_labels(&args.labels)?;
    let per_channel = |values: Vec<f32>| match values.as_slice() {
        [one] => vec![*one; channels as usize],
        _ => values,
    };
    let card = ModelCard {
        description: args
            .description
            .unwrap_or_else(|| format!("{}: a TorchScript classifier of {} classes", args.name, labels.len())),
        architecture: TORCHSCRIPT_ARCHITECTURE.into(),
        labels,
        input_shape: args.input_shape,
        normalisation: ChannelNormalisation { mean: per_channel(args.mean), std: per_channel(args.std) },
        preprocessing: match args.preprocess {
            Procedure::Digit => Preprocessing::Digit,
            Procedure::Image => Preprocessing::Image,
        },
        calibration: Calibration::NONE,
    };
    let archive = package::package(&args.torchscript, &card, &args.name, &args.output)?;
    println!("{}", archive.display());
    println!(
        "packaged `{}` ({} labels, input {channels}x{height}x{width}); serve it with --model {}={}",
        args.name,
        card.labels.len(),
        args.name,
        args.output.display()
    );
    Ok(())
}
