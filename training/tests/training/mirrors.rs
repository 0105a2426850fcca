//! `train --download` end to end against mirrors on 127.0.0.1: a dead mirror hands over to
//! the next, a wrong checksum, a truncated body or a gzip bomb is refused and leaves nothing
//! behind, verified files already on disk are not fetched again, and Fashion-MNIST's files as
//! its mirror serves them pass.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use max_mnist_artifacts::download::DownloadPolicy;
use max_mnist_test_support::{Answer, LoopbackServer};
use max_mnist_training::Error;
use max_mnist_training::data::{ExpectedFile, FASHION_MNIST_FILES, IdxDataset, KnownDataset, MNIST_FILES, mirrors};
use sha2::{Digest, Sha256};

/// A tiny but well-formed MNIST: `count` 2×2 images per split.
fn tiny_mnist() -> Vec<(&'static str, Vec<u8>)> {
    let idx = |magic: u32, dims: &[u32], payload: Vec<u8>| {
        let mut bytes = magic.to_be_bytes().to_vec();
        dims.iter().for_each(|dim| bytes.extend(dim.to_be_bytes()));
        bytes.extend(payload);
        bytes
    };
    let split = |count: u32| {
        let images = idx(0x803, &[count, 2, 2], (0..4 * count).map(|value| (value * 7 % 256) as u8).collect());
        let labels = idx(0x801, &[count], (0..count).map(|value| (value % 10) as u8).collect());
        (images, labels)
    };
    let (train_images, train_labels) = split(6);
    let (test_images, test_labels) = split(3);
    vec![
        ("train-images-idx3-ubyte", train_images),
        ("train-labels-idx1-ubyte", train_labels),
        ("t10k-images-idx3-ubyte", test_images),
        ("t10k-labels-idx1-ubyte", test_labels),
    ]
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// What the download code must check each file against, as the real manifest does.
fn manifest(files: &[(&'static str, Vec<u8>)]) -> Vec<ExpectedFile> {
    files
        .iter()
        .map(|(name, raw)| ExpectedFile {
            name,
            gzip_bytes: gzip(raw).len() as u64,
            raw_bytes: raw.len() as u64,
            raw_sha256: hex::encode(Sha256::digest(raw)).leak(),
        })
        .collect()
}

/// Serves `files` gzipped under `/<prefix>/<name>.gz`, each answer shaped by `answer`.
fn mirror_answers(
    prefix: &'static str,
    files: &[(&'static str, Vec<u8>)],
    answer: impl Fn(Vec<u8>) -> Answer,
) -> Vec<(&'static str, Answer)> {
    files.iter().map(|(name, raw)| (format!("{prefix}/{name}.gz").leak() as &str, answer(gzip(raw)))).collect()
}

fn policy() -> DownloadPolicy {
    DownloadPolicy { retries: 0, backoff: Duration::from_millis(10), ..DownloadPolicy::default() }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[tokio::test]
async fn a_dead_mirror_falls_through_to_the_next_and_the_files_load() {
    let files = tiny_mnist();
    let server = LoopbackServer::serve(HashMap::from_iter(mirror_answers("good", &files, Answer::Body))).await;
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1 of the loopback interface: the connection is refused.
    let mirrors = ["http://127.0.0.1:1/mnist".to_owned(), format!("{}/good/", server.url)];

    mirrors::download(dir.path(), &manifest(&files), &mirrors, &policy()).await.unwrap();

    let mut expected: Vec<String> = files.iter().map(|(name, _)| name.to_string()).collect();
    expected.sort();
    assert_eq!(listing(dir.path()), expected, "raw files only, no scratch left behind");
    for (name, raw) in &files {
        assert_eq!(&std::fs::read(dir.path().join(name)).unwrap(), raw, "{name}");
        assert_eq!(server.hits(&format!("good/{name}.gz")), 1, "{name}");
    }
    let mnist = IdxDataset::load_dir(dir.path(), None).unwrap();
    assert_eq!((mnist.train.count(), mnist.test.count()), (6, 3));
}

#[tokio::test]
async fn a_wrong_checksum_is_refused_and_the_next_mirror_is_used() {
    let files = tiny_mnist();
    let mut tampered = files.clone();
    tampered[0].1[20] ^= 0xff; // Same size, different pixels.
    let mut answers = mirror_answers("tampered", &tampered, Answer::Body);
    answers.extend(mirror_answers("good", &files, Answer::Body));
    let server = LoopbackServer::serve(HashMap::from_iter(answers)).await;
    let manifest = manifest(&files);
    let dir = tempfile::tempdir().unwrap();

    let only_tampered = [format!("{}/tampered", server.url)];
    let error = mirrors::download(dir.path(), &manifest, &only_tampered, &policy()).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::MirrorsExhausted { .. }), "{message}");
    assert!(message.contains("checksum mismatch") && message.contains(manifest[0].raw_sha256), "{message}");
    assert!(listing(dir.path()).is_empty(), "nothing unverified is kept: {:?}", listing(dir.path()));

    let tampered_then_good = [format!("{}/tampered", server.url), format!("{}/good", server.url)];
    mirrors::download(dir.path(), &manifest, &tampered_then_good, &policy()).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join(files[0].0)).unwrap(), files[0].1);
}

#[tokio::test]
async fn truncated_bodies_and_gzip_bombs_are_refused() {
    let files = tiny_mnist();
    let bomb = gzip(&vec![0u8; 64 << 20]);
    let mut answers = mirror_answers("truncated", &files, Answer::Truncated);
    answers.push(("bomb/train-images-idx3-ubyte.gz", Answer::Body(bomb.clone())));
    let server = LoopbackServer::serve(HashMap::from_iter(answers)).await;
    let dir = tempfile::tempdir().unwrap();

    let error = mirrors::download(dir.path(), &manifest(&files), &[format!("{}/truncated", server.url)], &policy())
        .await
        .unwrap_err();
    let failed_url = format!("{}/truncated/train-images-idx3-ubyte.gz failed", server.url);
    assert!(matches!(error, Error::MirrorsExhausted { .. }) && error.to_string().contains(&failed_url), "{error}");
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));

    // The bomb is declared with its real compressed size, so only decompression can catch it.
    let mut manifest = manifest(&files);
    manifest[0].gzip_bytes = bomb.len() as u64;
    let error =
        mirrors::download(dir.path(), &manifest[..1], &[format!("{}/bomb", server.url)], &policy()).await.unwrap_err();
    let expected = format!("expected {}", manifest[0].raw_bytes);
    assert!(error.to_string().contains(&expected), "{error}");
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
}

#[tokio::test]
async fn verified_files_on_disk_are_not_fetched_again_and_bad_ones_are_replaced() {
    let files = tiny_mnist();
    let server = LoopbackServer::serve(HashMap::from_iter(mirror_answers("good", &files, Answer::Body))).await;
    let dir = tempfile::tempdir().unwrap();
    for (name, raw) in &files {
        std::fs::write(dir.path().join(name), raw).unwrap();
    }
    std::fs::write(dir.path().join(files[1].0), b"corrupt").unwrap();

    mirrors::download(dir.path(), &manifest(&files), &[format!("{}/good", server.url)], &policy()).await.unwrap();

    assert_eq!(server.hits(&format!("good/{}.gz", files[0].0)), 0);
    assert_eq!(server.hits(&format!("good/{}.gz", files[1].0)), 1);
    assert_eq!(std::fs::read(dir.path().join(files[1].0)).unwrap(), files[1].1);
}

#[test]
fn the_published_sizes_are_those_of_60000_and_10000_images() {
    for files in [MNIST_FILES, FASHION_MNIST_FILES] {
        let sizes: Vec<u64> = files.iter().map(|file| file.raw_bytes).collect();
        // 16-byte image headers with 28×28 pixels, 8-byte label headers.
        assert_eq!(sizes, [16 + 60_000 * 784, 8 + 60_000, 16 + 10_000 * 784, 8 + 10_000]);
    }
}

/// Where Debian's `dataset-fashion-mnist` package installs the four gzipped files.
const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// A Debian `.gz` file as Zalando's mirror serves it: the same deflate stream, with the file's
/// name in the gzip header (flag FNAME), which Debian's copy lacks.
fn as_the_mirror_serves_it(debian: &[u8], name: &str) -> Vec<u8> {
    assert_eq!((debian[0], debian[1], debian[3]), (0x1f, 0x8b, 0), "a gzip file without a name");
    let mut named = debian[..10].to_vec();
    named[3] = 0x08;
    named.extend(name.as_bytes());
    named.push(0);
    named.extend(&debian[10..]);
    named
}

#[tokio::test]
async fn fashion_mnist_as_its_mirror_serves_it_downloads_verified() {
    let debian = Path::new(DEBIAN_FASHION_MNIST);
    assert!(debian.is_dir(), "this test reads {DEBIAN_FASHION_MNIST}: apt-get install dataset-fashion-mnist");
    let mut answers = Vec::new();
    for file in &FASHION_MNIST_FILES {
        let gzipped = std::fs::read(debian.join(format!("{}.gz", file.name))).unwrap();
        let served = as_the_mirror_serves_it(&gzipped, file.name);
        assert_eq!(served.len() as u64, file.gzip_bytes, "{}: the mirror's size", file.name);
        answers.push((format!("fashion/{}.gz", file.name).leak() as &str, Answer::Body(served)));
        answers.push((format!("debian/{}.gz", file.name).leak() as &str, Answer::Body(gzipped)));
    }
    let server = LoopbackServer::serve(HashMap::from_iter(answers)).await;
    let dir = tempfile::tempdir().unwrap();

    // Debian's smaller copy is not what the mirror serves: refused on its size alone.
    let labels = &FASHION_MNIST_FILES[1..2];
    let error =
        mirrors::download(dir.path(), labels, &[format!("{}/debian", server.url)], &policy()).await.unwrap_err();
    assert!(error.to_string().contains("29491 bytes, expected 29515"), "{error}");

    let known = KnownDataset::FashionMnist;
    assert_eq!(known.mirrors(), ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]);
    mirrors::download(dir.path(), known.files(), &[format!("{}/fashion/", server.url)], &policy()).await.unwrap();
    let fashion = IdxDataset::load_dir(dir.path(), Some(known.files())).unwrap();
    assert_eq!((fashion.train.count(), fashion.test.count()), (60_000, 10_000));
    assert_eq!(fashion.sha256, "14410854cf7a289477dcfc7df3f8ec24741e281cdcc425ede0d9a748ca630214");
}
