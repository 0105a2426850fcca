//! The data sets the train bin takes: any IDX data set with a labels file, published under
//! its own name; Fashion-MNIST from Debian's gzipped files with its class names; and a known
//! data set's name on other files, which is refused.

use max_mnist_artifacts::format::{Normalisation, Preprocessing};
use sha2::{Digest, Sha256};

use crate::helpers::{
    failed, metadata, repository, scratch_with_tiny_data, succeeded, tiny_labels, train_bin, train_in,
};

/// Where Debian's `dataset-fashion-mnist` package installs the four gzipped files: the train
/// bin's default for `--dataset fashion-mnist`.
const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

#[test]
fn a_custom_idx_data_set_trains_with_its_labels_and_is_published_under_its_name() {
    let scratch = scratch_with_tiny_data();
    // Only the data set's flags: runs and bucket go to their defaults, inside the scratch directory.
    let output = train_bin(scratch.path())
        .args(["--dataset", "idx", "--data-dir", "data", "--labels", "labels.txt", "--dataset-name", "Bars"])
        .args(["--epochs", "1", "--batch-size", "32", "--threads", "1"])
        .output()
        .unwrap();
    let stdout = succeeded(&output);
    assert!(stdout.contains("Bars, cnn-bn-8-16-32: best epoch 1 of 1"), "{stdout}");
    let bucket = scratch.path().join("pretrained-model/bars");
    assert!(bucket.join("bars-classifier.tar.gz").is_file());
    assert!(bucket.join("sha512sums.txt").is_file());

    let metadata = metadata(&scratch.path().join("runs/bars/bars-classifier.safetensors"));
    assert_eq!(metadata.labels, tiny_labels());
    assert_eq!((metadata.dataset.as_str(), metadata.preprocessing), ("Bars", Preprocessing::Image));
    assert!(metadata.description.contains("10 classes"), "{}", metadata.description);
    // One bright row in 28: a mean of 1/28 and a spread of sqrt(1/28 · 27/28).
    assert_eq!(metadata.normalisation, Normalisation { mean: 0.0357, std: 0.1856 });
    assert_eq!(metadata.recipe.augmentation, "random affine: rotation ±0°, scale ±0%, shift ±7.5% of the side");
    let mut hasher = Sha256::new();
    for name in
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    {
        hasher.update(std::fs::read(scratch.path().join("data").join(name)).unwrap());
    }
    assert_eq!(metadata.training_data_sha256, hex::encode(hasher.finalize()), "the data's hash is recorded");
}

#[test]
fn a_labels_file_that_does_not_name_every_class_is_refused() {
    let scratch = scratch_with_tiny_data();
    std::fs::write(scratch.path().join("labels.txt"), "bar 0\nbar 1\nbar 2\n").unwrap();
    let stderr = failed(&train_in(scratch.path()).args(["--epochs", "1"]).output().unwrap());
    assert!(stderr.contains("invalid labels file") && stderr.contains("labels.txt"), "{stderr}");
    assert!(stderr.contains("names 3 classes (0 to 2), but the data set's labels go up to 9"), "{stderr}");
    assert!(!scratch.path().join("runs").exists(), "refused before training starts");

    let stderr = failed(&train_bin(scratch.path()).args(["--dataset", "idx", "--data-dir", "data"]).output().unwrap());
    assert!(stderr.contains("--labels") && stderr.contains("--dataset-name"), "{stderr}");
}

#[test]
fn a_known_data_set_on_other_files_is_refused_naming_the_digest() {
    let scratch = scratch_with_tiny_data();
    for (dataset, name, digest) in [
        ("mnist", "MNIST", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        ("fashion-mnist", "Fashion-MNIST", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    ] {
        let output = train_bin(scratch.path())
            .args(["--dataset", dataset, "--data-dir", "data", "--epochs", "1", "--output", "bucket"])
            .output()
            .unwrap();
        let stderr = failed(&output);
        assert!(stderr.starts_with(&format!("error: cannot read {name} from data (")), "{stderr}");
        assert!(stderr.contains("checksum mismatch for data/train-images-idx3-ubyte"), "{stderr}");
        assert!(stderr.contains(&format!("expected sha256 {digest}")), "{stderr}");
        assert!(!scratch.path().join("bucket").exists() && !scratch.path().join("runs").exists());
    }
    let output = train_bin(scratch.path()).args(["--labels", "labels.txt", "--data-dir", "data"]).output().unwrap();
    assert!(failed(&output).contains("use them with --dataset idx"));
}

#[test]
fn fashion_mnist_trains_from_debians_gzipped_files_with_its_class_names() {
    assert!(
        std::path::Path::new(DEBIAN_FASHION_MNIST).is_dir(),
        "this test reads Fashion-MNIST from {DEBIAN_FASHION_MNIST}: apt-get install dataset-fashion-mnist"
    );
    let scratch = tempfile::tempdir().unwrap();
    // The default outliers are MNIST's digits, from data/mnist under the working directory,
    // and typed letters.
    std::fs::create_dir(scratch.path().join("data")).unwrap();
    std::os::unix::fs::symlink(repository().join("data/mnist"), scratch.path().join("data/mnist")).unwrap();
    // The default data directory, gzipped files; one epoch over the full set takes seconds.
    let output = train_bin(scratch.path())
        .args(["--dataset", "fashion-mnist", "--epochs", "1", "--output", "bucket"])
        .output()
        .unwrap();
    let stdout = succeeded(&output);
    let accuracy: f64 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("test accuracy: "))
        .and_then(|rest| rest.split('%').next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(accuracy > 70.0, "one epoch learns something: {stdout}");
    assert!(scratch.path().join("bucket/fashion-mnist-classifier.tar.gz").is_file());

    let run = scratch.path().join("runs/fashion-mnist");
    let metadata = metadata(&run.join("fashion-mnist-classifier.safetensors"));
    let names =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
    assert_eq!(metadata.labels, names);
    assert_eq!((metadata.dataset.as_str(), metadata.preprocessing), ("Fashion-MNIST", Preprocessing::Image));
    assert_eq!(metadata.normalisation, Normalisation { mean: 0.2860, std: 0.3530 });
    assert_eq!(metadata.training_data_sha256, "14410854cf7a289477dcfc7df3f8ec24741e281cdcc425ede0d9a748ca630214");
    assert!(metadata.recipe.augmentation.contains("random horizontal flip"), "{:?}", metadata.recipe);
    assert!(
        metadata.recipe.outliers.starts_with("MNIST training images (60000, sha256 ")
            && metadata.recipe.outliers.contains("letters typed in 15 fonts")
            && metadata.recipe.outliers.contains("each also inverted"),
        "{:?}",
        metadata.recipe
    );
    assert!(metadata.calibration.domain_threshold.is_some(), "{:?}", metadata.calibration);
    let report = std::fs::read_to_string(run.join("classification_report.md")).unwrap();
    assert!(report.contains("| Ankle boot |") && report.contains("| **T-shirt/top** |"), "{report}");
}

#[test]
fn fashion_mnist_and_letters_can_be_the_outliers_of_any_data_set_and_the_recipe_names_them() {
    assert!(
        std::path::Path::new(DEBIAN_FASHION_MNIST).is_dir(),
        "this test reads Fashion-MNIST from {DEBIAN_FASHION_MNIST}: apt-get install dataset-fashion-mnist"
    );
    let scratch = scratch_with_tiny_data();
    let output = train_in(scratch.path())
        .args(["--outliers", "fashion-mnist,letters", "--outlier-weight", "0.25", "--epochs", "1", "--threads", "1"])
        .output()
        .unwrap();
    let stdout = succeeded(&output);
    let weights = scratch.path().join("runs/bars/bars-classifier.safetensors");
    assert!(weights.is_file(), "{stdout}");
    let outliers = metadata(&weights).recipe.outliers;
    let (fashion, letters) = outliers.split_once(" and ").unwrap_or_else(|| panic!("two sets: {outliers}"));
    // A custom data set's uploads are prepared as pictures, which keep their polarity, so
    // each outlier also comes inverted.
    assert_eq!(
        fashion,
        "Fashion-MNIST training images (60000, sha256 \
         14410854cf7a289477dcfc7df3f8ec24741e281cdcc425ede0d9a748ca630214), each also inverted"
    );
    // 25 letters in 15 fonts at 2 heights; the digest is of the typed pixels, which follow
    // the fonts' versions.
    let digest = letters
        .strip_prefix("letters typed in 15 fonts (750, sha256 ")
        .and_then(|rest| rest.strip_suffix("), each also inverted, weight 0.25, towards even probabilities"))
        .unwrap_or_else(|| panic!("{letters}"));
    assert!(digest.len() == 64 && digest.bytes().all(|byte| byte.is_ascii_hexdigit()), "{digest}");
    // A weight that cannot count is refused before anything runs.
    let stderr = failed(
        &train_in(scratch.path()).args(["--outliers", "fashion-mnist", "--outlier-weight", "0"]).output().unwrap(),
    );
    assert!(stderr.contains("--outlier-weight must be a positive number"), "{stderr}");
}
