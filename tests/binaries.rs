//! The two binaries as a user runs them: the server fails closed on a bad bucket, the train
//! bin's output (weights, archive, checksums) is what the server then serves, its runs are
//! reproducible, and its TensorBoard files and reports say what TensorBoard itself reads.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const SERVER: &str = env!("CARGO_BIN_EXE_max-mnist");
const TRAIN: &str = env!("CARGO_BIN_EXE_train");

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn server(bucket: &Path, checksums: &Path, assets: &Path) -> Command {
    let mut command = Command::new(SERVER);
    command
        .args(["--host", "127.0.0.1", "--port", "0", "--log-format", "json", "--download-retries", "0"])
        .arg("--model-bucket")
        .arg(bucket)
        .arg("--checksums")
        .arg(checksums)
        .arg("--assets-dir")
        .arg(assets);
    command
}

#[test]
fn a_tampered_archive_stops_start_up_with_one_clear_message() {
    let scratch = tempfile::tempdir().unwrap();
    let bucket = scratch.path().join("bucket");
    std::fs::create_dir(&bucket).unwrap();
    let weights = scratch.path().join("mnist-classifier.safetensors");
    std::fs::write(&weights, b"not the published weights").unwrap();
    let archive = std::fs::File::create(bucket.join("mnist-classifier.tar.gz")).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(archive, flate2::Compression::fast()));
    tar.append_path_with_name(&weights, "mnist-classifier.safetensors").unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    let assets = scratch.path().join("assets");

    let output = server(&bucket, &repository().join("sha512sums.txt"), &assets).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("checksum mismatch for assets/mnist-classifier.safetensors"), "{stderr}");
    let published = std::fs::read_to_string(repository().join("sha512sums.txt")).unwrap();
    assert!(stderr.contains(&published[..128]), "the expected digest is named: {stderr}");
    let unverified = std::fs::read_dir(&assets).map(|entries| entries.count()).unwrap_or(0);
    assert_eq!(unverified, 0, "nothing unverified is left in assets/");
}

#[test]
fn a_missing_bucket_stops_start_up() {
    let scratch = tempfile::tempdir().unwrap();
    let output =
        server(&scratch.path().join("nowhere"), &repository().join("sha512sums.txt"), &scratch.path().join("assets"))
            .output()
            .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("nowhere/mnist-classifier.tar.gz"));
}

/// Writes a small MNIST-shaped data set (28×28 images whose label is the row of a bright bar).
fn write_tiny_mnist(dir: &Path) {
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

/// A scratch directory holding the tiny data set in `data/`.
fn scratch_with_tiny_mnist() -> tempfile::TempDir {
    let scratch = tempfile::tempdir().unwrap();
    std::fs::create_dir(scratch.path().join("data")).unwrap();
    write_tiny_mnist(&scratch.path().join("data"));
    scratch
}

/// The train bin reading `scratch/data` and writing only inside `scratch` (runs, bucket,
/// checksums), so no test can touch the committed model.
fn train_in(scratch: &Path) -> Command {
    let mut command = Command::new(TRAIN);
    command
        .arg("--data-dir")
        .arg(scratch.join("data"))
        .arg("--runs-dir")
        .arg(scratch.join("runs"))
        .arg("--output")
        .arg(scratch.join("bucket"))
        .arg("--checksums")
        .arg(scratch.join("sha512sums.txt"));
    command
}

#[test]
fn the_train_bin_publishes_weights_the_server_then_serves() {
    let scratch = scratch_with_tiny_mnist();
    let bucket = scratch.path().join("bucket");
    let checksums = scratch.path().join("sha512sums.txt");
    let status =
        train_in(scratch.path()).args(["--epochs", "1", "--batch-size", "32", "--exp-name", "tiny"]).status().unwrap();
    assert!(status.success());
    assert!(scratch.path().join("runs/tiny/mnist-classifier.safetensors").is_file());
    assert!(bucket.join("mnist-classifier.tar.gz").is_file());
    let sums = std::fs::read_to_string(&checksums).unwrap();
    assert!(sums.ends_with("  assets/mnist-classifier.safetensors\n"), "{sums}");

    let mut child = server(&bucket, &checksums, &scratch.path().join("assets")).stderr(Stdio::piped()).spawn().unwrap();
    let started = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("model loaded and warmed up: ready"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(started, "the server starts on the freshly trained weights");
    assert_eq!(
        std::fs::read(scratch.path().join("assets/mnist-classifier.safetensors")).unwrap(),
        std::fs::read(scratch.path().join("runs/tiny/mnist-classifier.safetensors")).unwrap()
    );
}

/// Runs the train bin on the tiny data set in `scratch` and returns its stdout.
fn train_tiny(scratch: &Path, exp_name: &str, seed: &str) -> String {
    let output = train_in(scratch)
        .args(["--epochs", "2", "--batch-size", "32", "--threads", "1", "--seed", seed, "--exp-name", exp_name])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

fn weights_hash(stdout: &str) -> &str {
    let line = stdout.lines().find(|line| line.starts_with("weights sha256")).expect("the hash is printed");
    line.rsplit(' ').next().unwrap()
}

#[test]
fn the_same_seed_and_threads_give_the_same_weights_and_another_seed_does_not() {
    let scratch = scratch_with_tiny_mnist();
    let first = train_tiny(scratch.path(), "first", "5");
    let again = train_tiny(scratch.path(), "again", "5");
    let other = train_tiny(scratch.path(), "other", "6");
    assert_eq!(weights_hash(&first), weights_hash(&again));
    assert_ne!(weights_hash(&first), weights_hash(&other));
    let metadata =
        max_mnist_core::artifact::read_metadata(&scratch.path().join("runs/again/mnist-classifier.safetensors"))
            .unwrap();
    assert_eq!(metadata.weights_sha256, weights_hash(&first));
}

#[test]
fn tensorboard_reads_back_what_the_run_logged_and_the_reports_agree() {
    let scratch = scratch_with_tiny_mnist();
    train_tiny(scratch.path(), "logged", "3");
    let run = scratch.path().join("runs/logged");
    let metadata = max_mnist_core::artifact::read_metadata(&run.join("mnist-classifier.safetensors")).unwrap();

    // TensorBoard's own reader (scripts/read_tensorboard.py, with the tensorboard package that
    // the project's set-up installs into .venv).
    let python = repository().join(".venv/bin/python");
    assert!(python.is_file(), "run `make test`: it installs tensorboard into .venv");
    let output = Command::new(python).arg(repository().join("scripts/read_tensorboard.py")).arg(&run).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let logged: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    // 256 images less a 10% validation split (26) leave 230: 8 steps of 32 per epoch.
    let steps: Vec<i64> =
        logged["scalars"]["train/loss_per_step"].as_array().unwrap().iter().map(|p| p[0].as_i64().unwrap()).collect();
    assert_eq!(steps, (0..16).collect::<Vec<i64>>());
    let curve = |tag: &str| -> Vec<(i64, f64)> {
        let points = logged["scalars"][tag].as_array().unwrap_or_else(|| panic!("{tag} missing: {logged}"));
        points.iter().map(|point| (point[0].as_i64().unwrap(), point[1].as_f64().unwrap())).collect()
    };
    for tag in ["train/loss", "validation/loss", "validation/accuracy", "train/images_per_second"] {
        assert_eq!(curve(tag).iter().map(|point| point.0).collect::<Vec<_>>(), [1, 2], "{tag} once per epoch");
    }
    let lowest = curve("validation/loss").iter().map(|point| point.1).fold(f64::INFINITY, f64::min);
    assert!((lowest - metadata.validation_loss).abs() < 1e-5, "the export is the best epoch: {lowest} vs {metadata:?}");
    let peak = curve("train/learning_rate").iter().map(|point| point.1).fold(0.0, f64::max);
    assert!((peak - metadata.recipe.learning_rate).abs() < 1e-6, "{peak}");
    let best = i64::from(metadata.best_epoch);
    assert_eq!(curve("test/accuracy"), [(best, metadata.test_accuracy as f32 as f64)], "logged at the exported epoch");
    let at_best = curve("validation/accuracy").into_iter().find(|point| point.0 == best).unwrap().1;
    assert_eq!(at_best, metadata.validation_accuracy as f32 as f64, "the restored weights are the best epoch's");
    for tag in ["train/augmented_samples", "test/confusion_matrix", "test/misclassified"] {
        assert!(logged["images"][tag][0]["width"].as_u64().unwrap() > 0, "{tag}: {logged}");
    }
    assert!(logged["texts"]["recipe"][0][1].as_str().unwrap().contains("adamw"));
    assert!(logged["texts"]["test/report"][0][1].as_str().unwrap().contains("| 9 |"));
    assert_eq!(logged["hparams"]["batch_size"], 32.0);
    assert_eq!(logged["hparams"]["optimizer"], "adamw");
    assert!(logged["metrics"].as_array().unwrap().contains(&"test/accuracy".into()));
    assert_eq!(logged["session_status"], "STATUS_SUCCESS");
    let projector = &logged["projector"]["embeddings"][0];
    assert_eq!(
        (projector["rows"].as_u64(), projector["cols"].as_u64(), projector["labels"].as_u64()),
        (Some(64), Some(128), Some(64)),
        "{logged}"
    );

    // The report files.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("classification_report.json")).unwrap()).unwrap();
    assert_eq!(report["accuracy"].as_f64().unwrap(), metadata.test_accuracy);
    assert_eq!(report["classes"].as_array().unwrap().len(), 10);
    let confusion: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("confusion_matrix.json")).unwrap()).unwrap();
    let counted: u64 = confusion["counts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(counted, 64, "every test image is in the matrix once");
    let markdown = std::fs::read_to_string(run.join("classification_report.md")).unwrap();
    assert!(markdown.contains("precision") && markdown.contains("true \\ predicted"), "{markdown}");
    for picture in ["confusion_matrix.png", "misclassified.png", "projector/hidden_layer-sprite.png"] {
        let bytes = std::fs::read(run.join(picture)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{picture} is a PNG");
    }
}

#[test]
fn bad_training_data_is_named_in_one_clear_message() {
    let scratch = scratch_with_tiny_mnist();
    let images = scratch.path().join("data/train-images-idx3-ubyte");
    let truncated = std::fs::read(&images).unwrap();
    std::fs::write(&images, &truncated[..truncated.len() - 100]).unwrap();
    // One epoch in scratch: even if the data were accepted, nothing committed changes.
    let output = train_in(scratch.path()).args(["--epochs", "1"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("invalid IDX file") && stderr.contains("train-images-idx3-ubyte"), "{stderr}");
}
