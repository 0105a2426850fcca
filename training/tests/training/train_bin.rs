//! The train bin as a user runs it: what it publishes the server serves, a seed and thread
//! count give the same weights again, also when the run is stopped and resumed, TensorBoard reads back what it logged, and bad data is
//! named in one message.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::helpers::{
    TINY_WEIGHTS, failed, metadata, repository, scratch_with_tiny_data, server_binary, succeeded, tiny_labels,
    train_in, train_tiny, weights_hash,
};

/// How long the server may take to verify, load and warm up a tiny model.
const SERVER_START: Duration = Duration::from_secs(60);

#[test]
fn the_train_bin_publishes_weights_the_server_then_serves() {
    let scratch = scratch_with_tiny_data();
    let bucket = scratch.path().join("bucket");
    succeeded(
        &train_in(scratch.path()).args(["--epochs", "1", "--batch-size", "32", "--exp-name", "tiny"]).output().unwrap(),
    );
    let trained = scratch.path().join("runs/tiny").join(TINY_WEIGHTS);
    assert!(trained.is_file());
    assert!(bucket.join("bars-classifier.tar.gz").is_file());
    let sums = std::fs::read_to_string(bucket.join("sha512sums.txt")).unwrap();
    assert!(sums.contains("  bars-classifier.tar.gz\n"), "{sums}");
    assert!(sums.contains(&format!("  assets/{TINY_WEIGHTS}\n")), "{sums}");

    let assets = scratch.path().join("assets");
    let mut child = Command::new(server_binary())
        .env_clear()
        .args(["--host", "127.0.0.1", "--port", "0", "--log-format", "json", "--download-retries", "0"])
        .arg("--model")
        .arg(format!("tiny={}", bucket.display()))
        .arg("--assets-dir")
        .arg(&assets)
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The log goes to stdout or stderr; either is read until the ready line, within a deadline.
    let (sender, lines) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let sender = sender.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
    }
    drop(sender);
    let mut log = Vec::new();
    let started = loop {
        match lines.recv_timeout(SERVER_START) {
            Ok(line) if line.contains("loaded and warmed up: ready") => break true,
            Ok(line) => log.push(line),
            Err(_) => break false,
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(started, "the server starts on the freshly trained weights:\n{}", log.join("\n"));
    assert_eq!(std::fs::read(assets.join("tiny").join(TINY_WEIGHTS)).unwrap(), std::fs::read(&trained).unwrap());
}

#[test]
fn the_same_seed_and_threads_give_the_same_weights_and_another_seed_does_not() {
    let scratch = scratch_with_tiny_data();
    let first = train_tiny(scratch.path(), "first", "5");
    let again = train_tiny(scratch.path(), "again", "5");
    let other = train_tiny(scratch.path(), "other", "6");
    assert_eq!(weights_hash(&first), weights_hash(&again));
    assert_ne!(weights_hash(&first), weights_hash(&other));
    let metadata = metadata(&scratch.path().join("runs/again").join(TINY_WEIGHTS));
    assert_eq!(metadata.weights_sha256, weights_hash(&first));
}

#[test]
fn a_run_stopped_and_resumed_ends_with_the_weights_of_one_that_never_stopped() {
    let scratch = scratch_with_tiny_data();
    let run = |extra: &[&str]| {
        let mut command = train_in(scratch.path());
        command.args(["--epochs", "3", "--batch-size", "32", "--threads", "1", "--seed", "9"]);
        // With a weight average and label smoothing, so the checkpoint must carry the average too.
        command.args(["--weight-average", "0.9", "--label-smoothing", "0.1"]).args(extra);
        command.output().unwrap()
    };
    let whole = succeeded(&run(&["--exp-name", "whole"]));
    let checkpoint = scratch.path().join("runs/parts/checkpoint.safetensors");

    let first = succeeded(&run(&["--exp-name", "parts", "--stop-after-epochs", "1"]));
    assert!(first.contains("stopped after epoch 1 of 3"), "{first}");
    assert!(!first.contains("weights sha256"), "a stopped run publishes nothing: {first}");
    assert!(checkpoint.is_file());
    let parts = scratch.path().join("runs/parts");
    let resume = ["--resume", parts.to_str().unwrap()];
    let other_settings = failed(&run(&[&resume[..], &["--lr", "0.01"]].concat()));
    assert!(other_settings.contains("lr was 0.003, now 0.01"), "{other_settings}");
    let second = succeeded(&run(&[&resume[..], &["--stop-after-epochs", "2"]].concat()));
    assert!(second.contains("stopped after epoch 2 of 3"), "{second}");
    let last = succeeded(&run(&resume));
    assert_eq!(weights_hash(&last), weights_hash(&whole));
    let event_files = std::fs::read_dir(&parts)
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().file_name().to_string_lossy().starts_with("events.out.tfevents."))
        .count();
    assert_eq!(event_files, 3, "one event file for each part of the run");

    let nothing_to_resume = failed(&run(&["--resume", scratch.path().join("runs/none").to_str().unwrap()]));
    assert!(nothing_to_resume.contains("checkpoint.safetensors does not exist"), "{nothing_to_resume}");
    std::fs::write(&checkpoint, b"not a checkpoint").unwrap();
    let broken = failed(&run(&resume));
    assert!(broken.contains("cannot resume") && broken.contains("checkpoint.safetensors"), "{broken}");
}

#[test]
fn tensorboard_reads_back_what_the_run_logged_and_the_reports_agree() {
    let scratch = scratch_with_tiny_data();
    train_tiny(scratch.path(), "logged", "3");
    let run = scratch.path().join("runs/logged");
    let metadata = metadata(&run.join(TINY_WEIGHTS));

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
    for tag in
        ["train/augmented_samples", "test/confusion_matrix", "test/misclassified", "calibration/reliability_diagram"]
    {
        assert!(logged["images"][tag][0]["width"].as_u64().unwrap() > 0, "{tag}: {logged}");
    }
    // The recipe text lists every setting the checkpoint records, the outliers among them.
    let recipe = logged["texts"]["recipe"][0][1].as_str().unwrap();
    for row in ["| optimizer | adamw", "| outliers | none |", "| training data sha256 | ", "| training images | "] {
        assert!(recipe.contains(row), "{row} in {recipe}");
    }
    assert_eq!(logged["hparams"]["outliers"], "none");
    assert!(logged["texts"]["test/report"][0][1].as_str().unwrap().contains("| bar 9 |"), "the data set's labels");
    assert_eq!(logged["hparams"]["batch_size"], 32.0);
    assert_eq!(logged["hparams"]["optimizer"], "adamw");
    assert_eq!(logged["hparams"]["dataset"], "Bars");
    assert!(logged["metrics"].as_array().unwrap().contains(&"test/accuracy".into()));
    assert_eq!(logged["session_status"], "STATUS_SUCCESS");
    let projector = &logged["projector"]["embeddings"][0];
    assert_eq!(
        (projector["rows"].as_u64(), projector["cols"].as_u64(), projector["labels"].as_u64()),
        (Some(64), Some(128), Some(64)),
        "{logged}"
    );
    // The projector names each point by its class's label; the tiny test set cycles through them.
    let points = std::fs::read_to_string(run.join("projector/hidden_layer-metadata.tsv")).unwrap();
    let expected: Vec<String> = (0..64).map(|index| tiny_labels()[index % 10].clone()).collect();
    assert_eq!(points.lines().collect::<Vec<_>>(), expected);

    // The Graphs tab: the network's operations in order, each fed by the one before, with shapes.
    let graph = logged["graph"].as_array().unwrap_or_else(|| panic!("no graph: {logged}"));
    let node =
        |name: &str| graph.iter().find(|node| node["name"] == name).unwrap_or_else(|| panic!("{name}: {graph:?}"));
    assert_eq!(
        (node("input")["op"].as_str(), &node("input")["shapes"]),
        (Some("Placeholder"), &serde_json::json!([[1, 1, 28, 28]]))
    );
    assert_eq!(node("block1/conv")["op"], "Conv2D");
    assert_eq!(node("block1/conv")["inputs"], serde_json::json!(["input"]));
    assert_eq!(node("block1/conv")["shapes"][0].as_array().unwrap()[2..], [28, 28]);
    assert_eq!(node("block3/pool")["shapes"][0].as_array().unwrap()[2..], [3, 3]);
    assert_eq!(node("output/linear")["inputs"], serde_json::json!(["dropout"]));
    assert_eq!(node("output/linear")["shapes"], serde_json::json!([[1, 10]]), "one score per label");
    assert_eq!(graph.last().unwrap()["name"], "output/linear");

    // The report files.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("classification_report.json")).unwrap()).unwrap();
    assert_eq!(report["accuracy"].as_f64().unwrap(), metadata.test_accuracy);
    assert_eq!(report["classes"].as_array().unwrap().len(), 10);
    let confusion: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("confusion_matrix.json")).unwrap()).unwrap();
    assert_eq!(confusion["labels"][3], "bar 3");
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
    // Calibration: what was fitted is in the metadata, and the run's report says how it fares.
    let calibration: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("calibration.json")).unwrap()).unwrap();
    assert_eq!(calibration["calibration"]["temperature"].as_f64().unwrap() as f32, metadata.calibration.temperature);
    assert!(metadata.calibration.domain_threshold.is_some() && metadata.calibration.temperature > 0.0);
    let sets: Vec<&str> =
        calibration["sets"].as_array().unwrap().iter().map(|set| set["name"].as_str().unwrap()).collect();
    // Bars are no digits: the temperature is fitted on the validation split, without digit variants.
    assert_eq!(sets, ["test"]);
    assert!(!metadata.calibration.fitted_on.contains("variants"), "{:?}", metadata.calibration);
    assert_eq!(calibration["sets"][0]["bins_after"].as_array().unwrap().len(), 15);
    let ece = logged["scalars"]["calibration/ece_after/test"].as_array().unwrap();
    assert_eq!(ece[0][1].as_f64().unwrap(), calibration["sets"][0]["ece_after"].as_f64().unwrap() as f32 as f64);
    for picture in
        ["confusion_matrix.png", "misclassified.png", "projector/hidden_layer-sprite.png", "reliability_diagram.png"]
    {
        let bytes = std::fs::read(run.join(picture)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{picture} is a PNG");
    }
}

#[test]
fn bad_training_data_is_named_in_one_clear_message() {
    let scratch = scratch_with_tiny_data();
    let images = scratch.path().join("data/train-images-idx3-ubyte");
    let truncated = std::fs::read(&images).unwrap();
    std::fs::write(&images, &truncated[..truncated.len() - 100]).unwrap();
    // One epoch in scratch: even if the data were accepted, nothing committed changes.
    let stderr = failed(&train_in(scratch.path()).args(["--epochs", "1"]).output().unwrap());
    assert!(stderr.contains("invalid IDX file") && stderr.contains("train-images-idx3-ubyte"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().filter(|line| line.starts_with("error:")).count(), 1, "{stderr}");
}
