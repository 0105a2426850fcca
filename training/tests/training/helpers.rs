//! What the tests share: a tiny IDX data set with a labels file in a scratch directory, and
//! the train bin (and the server bin beside it) started with a clean environment, so that no
//! variable set in the shell changes what a test runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use max_mnist_artifacts::format::{self, ModelMetadata};

pub const TRAIN: &str = env!("CARGO_BIN_EXE_train");

/// The tiny data set's name, and the slug its files are named by.
pub const TINY_NAME: &str = "Bars";
pub const TINY_WEIGHTS: &str = "bars-classifier.safetensors";

/// The repository's root.
pub fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("training/ is inside the repository")
}

/// The server binary, which cargo builds next to the train bin when the whole workspace's
/// binaries are built (`make test` does).
pub fn server_binary() -> PathBuf {
    let server = Path::new(TRAIN).with_file_name("max-mnist");
    assert!(server.is_file(), "{} is missing: run `make test` (or `cargo build --release`) first", server.display());
    server
}

/// Writes a small data set in IDX format (28×28 images whose label is the row of a bright
/// bar): 256 training and 64 test images, raw files.
pub fn write_tiny_idx(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, count) in [("train", 256u32), ("t10k", 64u32)] {
        let mut images =
            [0x0000_0803u32, count, 28, 28].iter().flat_map(|word| word.to_be_bytes()).collect::<Vec<u8>>();
        let mut labels = [0x0000_0801u32, count].iter().flat_map(|word| word.to_be_bytes()).collect::<Vec<u8>>();
        for index in 0..count {
            let label = (index % 10) as usize;
            let mut image = [0u8; 28 * 28];
            image[(2 + label * 2) * 28..(3 + label * 2) * 28].fill(255);
            images.extend(image);
            labels.push(label as u8);
        }
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
    }
}

/// The class names of the tiny data set: `bar 0` to `bar 9`.
pub fn tiny_labels() -> Vec<String> {
    (0..10).map(|row| format!("bar {row}")).collect()
}

/// A scratch directory holding the tiny data set in `data/` and its labels in `labels.txt`.
pub fn scratch_with_tiny_data() -> tempfile::TempDir {
    let scratch = tempfile::tempdir().unwrap();
    write_tiny_idx(&scratch.path().join("data"));
    std::fs::write(scratch.path().join("labels.txt"), tiny_labels().join("\n") + "\n").unwrap();
    scratch
}

/// The train bin with no environment variables, run from `scratch`, so that its relative
/// defaults (`runs/`, `pretrained-model/<dataset>/`) land inside it.
pub fn train_bin(scratch: &Path) -> Command {
    let mut command = Command::new(TRAIN);
    command.env_clear().current_dir(scratch);
    command
}

/// The train bin on the tiny data set of `scratch`, writing only inside `scratch` (runs,
/// bucket), so no test can touch a committed model.
pub fn train_in(scratch: &Path) -> Command {
    let mut command = train_bin(scratch);
    command
        .args(["--dataset", "idx", "--dataset-name", TINY_NAME])
        .arg("--data-dir")
        .arg(scratch.join("data"))
        .arg("--labels")
        .arg(scratch.join("labels.txt"))
        .arg("--runs-dir")
        .arg(scratch.join("runs"))
        .arg("--output")
        .arg(scratch.join("bucket"));
    command
}

/// Runs the train bin on the tiny data set in `scratch` for 2 epochs and returns its stdout.
pub fn train_tiny(scratch: &Path, exp_name: &str, seed: &str) -> String {
    let output = train_in(scratch)
        .args(["--epochs", "2", "--batch-size", "32", "--threads", "1", "--seed", seed, "--exp-name", exp_name])
        .output()
        .unwrap();
    succeeded(&output)
}

/// The stdout of a run that must have succeeded; its output otherwise.
pub fn succeeded(output: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// The stderr of a run that must have failed.
pub fn failed(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{}{stderr}", String::from_utf8_lossy(&output.stdout));
    stderr
}

/// The tensors-only hash the train bin prints.
pub fn weights_hash(stdout: &str) -> &str {
    let line = stdout.lines().find(|line| line.starts_with("weights sha256")).expect("the hash is printed");
    line.rsplit(' ').next().unwrap()
}

pub fn metadata(weights: &Path) -> ModelMetadata {
    format::read_metadata(weights).unwrap()
}
