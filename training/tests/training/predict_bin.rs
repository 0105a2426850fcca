//! The predict bin as a user runs it: folders of images, some labelled by their folder or
//! their name, some broken, classified offline through the serving wrapper, in JSON Lines or
//! CSV, with the training report for the labelled ones and a failing exit code for the rest.

use std::path::Path;
use std::process::Command;

use crate::helpers::{failed, repository, succeeded};

const PREDICT: &str = env!("CARGO_BIN_EXE_predict");

/// The predict bin in `scratch`, on the committed bucket `model`.
fn predict(scratch: &Path, model: &str) -> Command {
    let mut command = Command::new(PREDICT);
    command.current_dir(scratch).arg("--model").arg(repository().join("pretrained-model").join(model));
    command
}

/// Copies the sample `name` to `to` under `scratch`.
fn copy_sample(scratch: &Path, name: &str, to: &str) {
    let path = scratch.join(to);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::copy(repository().join("samples").join(name), path).unwrap();
}

#[test]
fn labelled_folders_get_predictions_a_report_and_broken_files_are_named_with_a_failing_exit() {
    let scratch = tempfile::tempdir().unwrap();
    for digit in 0..10 {
        copy_sample(scratch.path(), &format!("digit-{digit}.png"), &format!("set/{digit}/mnist.png"));
    }
    copy_sample(scratch.path(), "photo-4-exif.jpg", "set/phone_4.jpg");
    copy_sample(scratch.path(), "scan-3.jpg", "set/scan.jpg");
    let png = std::fs::read(repository().join("samples/digit-8.png")).unwrap();
    std::fs::write(scratch.path().join("set/truncated_8.png"), &png[..png.len() / 3]).unwrap();
    std::fs::write(scratch.path().join("set/README.md"), "not an image, and not looked at").unwrap();

    let output =
        predict(scratch.path(), "mnist").args(["set", "missing.png", "--report-dir", "report"]).output().unwrap();
    let stderr = failed(&output);
    let rows: Vec<serde_json::Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(rows.len(), 14, "10 digits, 2 photos, the truncated file and the missing one: {rows:#?}");
    for row in &rows {
        let file = row["file"].as_str().unwrap();
        if file.contains("truncated") || file.contains("missing") {
            assert!(row["error"].is_string() && row.get("prediction").is_none(), "{row}");
            assert!(stderr.contains(file), "{file} is named: {stderr}");
        } else {
            let probabilities: Vec<f64> =
                row["probabilities"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect();
            assert_eq!(probabilities.len(), 10, "{row}");
            assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{row}");
            if file != "set/scan.jpg" {
                assert_eq!(row["prediction"], row["label"], "{row}");
            }
        }
    }
    assert!(stderr.contains("12 images classified, 2 could not be"), "{stderr}");
    assert!(stderr.contains("accuracy 100.00% on 11 examples"), "the 11 labelled files read: {stderr}");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(scratch.path().join("report/classification_report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["classes"][4]["support"], 2, "{report}");
    let heat_map = image::open(scratch.path().join("report/confusion_matrix.png")).unwrap();
    assert!(heat_map.width() > 100, "a confusion matrix picture");
}

#[test]
fn csv_output_has_a_column_per_class_of_the_model_chosen() {
    let scratch = tempfile::tempdir().unwrap();
    for (sample, label) in
        [("fashion-trouser.png", "Trouser"), ("fashion-bag.png", "Bag"), ("fashion-sandal.png", "Sandal")]
    {
        copy_sample(scratch.path(), sample, &format!("clothes/{label}/{sample}"));
    }
    let output = predict(scratch.path(), "fashion-mnist").args(["clothes", "--format", "csv"]).output().unwrap();
    let stdout = succeeded(&output);
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..7], ["file", "prediction", "probability", "in_domain", "domain_score", "label", "error"]);
    assert_eq!(
        header[7..],
        [
            "p_T-shirt/top",
            "p_Trouser",
            "p_Pullover",
            "p_Dress",
            "p_Coat",
            "p_Sandal",
            "p_Shirt",
            "p_Sneaker",
            "p_Bag",
            "p_Ankle boot"
        ]
    );
    let rows: Vec<Vec<&str>> = lines.map(|line| line.split(',').collect()).collect();
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert_eq!(row.len(), header.len(), "{row:?}");
        assert_eq!(row[1], row[5], "the prediction is the folder's label: {row:?}");
        assert!(row[4].parse::<f32>().unwrap().is_finite(), "a domain score: {row:?}");
    }
    assert!(scratch.path().join("runs/predict/confusion_matrix.png").is_file(), "the default report folder");
}

#[test]
fn a_bucket_that_does_not_verify_is_refused_before_any_image_is_read() {
    let scratch = tempfile::tempdir().unwrap();
    let bucket = scratch.path().join("bucket");
    std::fs::create_dir(&bucket).unwrap();
    let output = Command::new(PREDICT)
        .current_dir(scratch.path())
        .arg("--model")
        .arg(&bucket)
        .arg(repository().join("samples/digit-1.png"))
        .output()
        .unwrap();
    let stderr = failed(&output);
    assert!(stderr.contains("sha512sums.txt"), "{stderr}");
    assert!(output.stdout.is_empty(), "no image was classified");
}
