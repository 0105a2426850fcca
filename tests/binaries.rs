//! The two binaries as a user runs them: the server fails closed on a bad bucket, and the
//! train bin's output (weights, archive, checksums) is what the server then serves.

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

#[test]
fn the_train_bin_publishes_weights_the_server_then_serves() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_tiny_mnist(&data);
    let bucket = scratch.path().join("bucket");
    let checksums = scratch.path().join("sha512sums.txt");
    let status = Command::new(TRAIN)
        .args(["--epochs", "1", "--batch-size", "32", "--exp-name", "tiny"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--runs-dir")
        .arg(scratch.path().join("runs"))
        .arg("--bucket")
        .arg(&bucket)
        .arg("--checksums")
        .arg(&checksums)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(scratch.path().join("runs/tiny/mnist-classifier.safetensors").is_file());
    assert!(bucket.join("mnist-classifier.tar.gz").is_file());
    let sums = std::fs::read_to_string(&checksums).unwrap();
    assert!(sums.ends_with("  assets/mnist-classifier.safetensors\n"), "{sums}");

    let mut child = server(&bucket, &checksums, &scratch.path().join("assets")).stderr(Stdio::piped()).spawn().unwrap();
    let started = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("serving; Swagger UI at /"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(started, "the server starts on the freshly trained weights");
    assert_eq!(
        std::fs::read(scratch.path().join("assets/mnist-classifier.safetensors")).unwrap(),
        std::fs::read(scratch.path().join("runs/tiny/mnist-classifier.safetensors")).unwrap()
    );
}
