//! The server binary as a user runs it: it fails closed, with one line that names the model,
//! on a bad bucket, and the repository's `sha512sums.txt` pins the committed buckets. (The
//! train bin's own tests, and the one that serves what it publishes, are in `training/`.)

mod common;

use common::server_command;

use std::path::Path;
use std::process::Command;

use sha2::Digest;

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The server serving the committed `mnist` model and `name` from `bucket`.
fn server(name: &str, bucket: &Path, assets: &Path) -> Command {
    let mut command = server_command();
    command
        .args(["--host", "127.0.0.1", "--port", "0", "--log-format", "json", "--download-retries", "0"])
        .arg("--model")
        .arg(format!("mnist={}", repository().join("pretrained-model/mnist").display()))
        .arg("--model")
        .arg(format!("{name}={}", bucket.display()))
        .arg("--assets-dir")
        .arg(assets);
    command
}

#[test]
fn a_tampered_archive_stops_start_up_with_one_line_naming_the_model() {
    let scratch = tempfile::tempdir().unwrap();
    let bucket = scratch.path().join("bucket");
    std::fs::create_dir(&bucket).unwrap();
    let committed = repository().join("pretrained-model/fashion-mnist");
    std::fs::copy(committed.join("sha512sums.txt"), bucket.join("sha512sums.txt")).unwrap();
    // The bucket's checksums, but an archive with other weights in it.
    let weights = scratch.path().join("fashion-mnist-classifier.safetensors");
    std::fs::write(&weights, b"not the published weights").unwrap();
    let archive = std::fs::File::create(bucket.join("fashion-mnist-classifier.tar.gz")).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(archive, flate2::Compression::fast()));
    tar.append_path_with_name(&weights, "fashion-mnist-classifier.safetensors").unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    let assets = scratch.path().join("assets");

    let output = server("clothes", &bucket, &assets).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    // One line says what went wrong; the log lines around it come from the log's own thread.
    let errors: Vec<&str> = stderr.lines().filter(|line| line.starts_with("error:")).collect();
    let [error] = errors[..] else { panic!("one error line: {stderr}") };
    assert!(
        error.starts_with("error: model `clothes`: checksum mismatch for fashion-mnist-classifier.tar.gz"),
        "{error}"
    );
    let published = std::fs::read_to_string(bucket.join("sha512sums.txt")).unwrap();
    assert!(error.contains(&published[..128]), "the expected digest is named: {error}");
    let unverified = std::fs::read_dir(assets.join("clothes")).map(|entries| entries.count()).unwrap_or(0);
    assert_eq!(unverified, 0, "nothing unverified is left in assets/");
}

#[test]
fn a_missing_bucket_stops_start_up_naming_the_model() {
    let scratch = tempfile::tempdir().unwrap();
    let output = server("elsewhere", &scratch.path().join("nowhere"), &scratch.path().join("assets")).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("model `elsewhere`") && stderr.contains("nowhere/sha512sums.txt"), "{stderr}");
}

#[test]
fn the_repository_checksums_pin_every_committed_bucket_file() {
    let manifest = std::fs::read_to_string(repository().join("sha512sums.txt")).unwrap();
    let mut pinned = Vec::new();
    for line in manifest.lines() {
        let (digest, path) = line.split_once("  ").unwrap();
        let bytes = std::fs::read(repository().join(path)).unwrap();
        assert_eq!(hex::encode(sha2::Sha512::digest(&bytes)), digest, "{path}");
        pinned.push(path.to_owned());
    }
    let mut committed = Vec::new();
    for bucket in std::fs::read_dir(repository().join("pretrained-model")).unwrap() {
        for file in std::fs::read_dir(bucket.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            committed.push(path.strip_prefix(repository()).unwrap().display().to_string());
        }
    }
    pinned.sort();
    committed.sort();
    assert_eq!(pinned, committed);
}
