//! A user's PyTorch model, served by configuration alone: the README's three commands export
//! the course's LeNet with PyTorch (trained briefly: one epoch on MNIST), package it with the
//! `package` bin and serve it beside the committed `mnist`, where it answers digits on the
//! MAX, Open Inference Protocol and TorchServe routes; an RGB TorchScript classifier goes
//! through the `image` preprocessing; and bad modules, cards and archives are refused by
//! `package` and at start-up, each with a line that says why.

mod common;

use common::{Server, readme_code, repository, server_command};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use max_mnist_artifacts::bucket;
use max_mnist_artifacts::card::CARD_FILE;

const PACKAGE: &str = env!("CARGO_BIN_EXE_package");

/// The TorchScript files of `tests/fixtures/export_modules.py`, made once by PyTorch in the
/// project's venv.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        succeeded(
            Command::new(repository().join(".venv/bin/python"))
                .arg(repository().join("tests/fixtures/export_modules.py"))
                .arg(dir.path())
                .output()
                .unwrap(),
        );
        std::fs::write(dir.path().join("colours.txt"), "red\ngreen\nblue\n").unwrap();
        dir
    })
    .path()
}

/// `output`'s stdout, after checking that the command succeeded.
fn succeeded(output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The `package` bin on the colour classifier, with `changes` to its options.
fn package_colour(output: &Path, changes: &[(&str, &str)]) -> Output {
    let mut options = [
        ("--torchscript", fixtures().join("colour.pt").display().to_string()),
        ("--labels", fixtures().join("colours.txt").display().to_string()),
        ("--input-shape", "3,40,56".into()),
        ("--mean", "0.5".into()),
        ("--std", "0.25".into()),
        ("--preprocess", "image".into()),
        ("--name", "colour".into()),
        ("--output", output.display().to_string()),
    ];
    for (option, value) in changes {
        options.iter_mut().find(|(name, _)| name == option).unwrap().1 = (*value).to_owned();
    }
    Command::new(PACKAGE).args(options.iter().flat_map(|(option, value)| [*option, value.as_str()])).output().unwrap()
}

/// The shell commands of the README's "Serve your own PyTorch model" section, in its first
/// `sh` block and the one after it, continuation lines joined.
fn readme_commands() -> (Vec<String>, Vec<String>) {
    let mut blocks = readme_code("## Serve your own PyTorch model", "sh").into_iter().map(|block| {
        block.replace("\\\n", " ").lines().map(|line| line.split_whitespace().collect::<Vec<_>>().join(" ")).collect()
    });
    (blocks.next().unwrap(), blocks.next().unwrap())
}

/// Runs `line` with bash in `dir`.
fn shell(dir: &Path, line: &str) -> String {
    succeeded(Command::new("bash").arg("-c").arg(line).current_dir(dir).output().unwrap())
}

/// The answer to a multipart `image` of `bytes` from `url`.
async fn predict(url: &str, bytes: Vec<u8>) -> serde_json::Value {
    let form = reqwest::multipart::Form::new().part("image", reqwest::multipart::Part::bytes(bytes));
    let response = reqwest::Client::new().post(url).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.unwrap()
}

async fn get_json(url: &str) -> serde_json::Value {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_readme_s_three_commands_export_package_and_serve_lenet_which_answers_digits() {
    let (setup, usage) = readme_commands();
    let [export, package, serve] = &setup[..] else { panic!("three commands: {setup:?}") };
    // The commands run in a scratch folder that sees the repository's files where they are.
    let scratch = tempfile::tempdir().unwrap();
    for shared in ["examples", "data", "pretrained-model", "samples", ".venv"] {
        std::os::unix::fs::symlink(repository().join(shared), scratch.path().join(shared)).unwrap();
    }
    let exported = shell(scratch.path(), export);
    assert!(exported.contains("TorchScript saved to lenet.pt"), "{exported}");
    let accuracy: f64 = exported.split_whitespace().nth(2).unwrap().trim_end_matches(';').parse().unwrap();
    assert!(accuracy > 0.97, "LeNet after one epoch: {exported}");

    let packaged = shell(scratch.path(), &package.replace("cargo run --release --bin package --", PACKAGE));
    assert!(packaged.contains("serve it with --model lenet=lenet-bucket"), "{packaged}");
    let sums = std::fs::read_to_string(scratch.path().join("lenet-bucket/sha512sums.txt")).unwrap();
    for file in ["lenet.tar.gz", "assets/lenet.pt", &format!("assets/{CARD_FILE}")] {
        assert!(sums.contains(&format!("  {file}\n")), "{sums}");
    }

    let arguments = serve.strip_prefix("cargo run --release -- ").expect("the server command");
    let relative = arguments.replace("=pretrained-model", &format!("={}/pretrained-model", repository().display()));
    let relative = relative.replace("=lenet-bucket", &format!("={}/lenet-bucket", scratch.path().display()));
    let server = Server::start(relative.split_whitespace()).await;

    for digit in 0..10 {
        let sample = std::fs::read(repository().join(format!("samples/digit-{digit}.png"))).unwrap();
        let answer = predict(&format!("{}/models/lenet/predict", server.url), sample).await;
        assert_eq!(answer["predictions"][0]["prediction"], digit, "{answer}");
    }
    // The README's own calls, on this server.
    for line in &usage {
        let output = shell(&repository().join("."), &line.replace("http://localhost:5000", &server.url));
        let answer: serde_json::Value = serde_json::from_str(&output).unwrap();
        if line.contains("/predictions/") {
            // TorchServe's answer: the top five, most probable first.
            let top: Vec<&String> = answer.as_object().unwrap().keys().collect();
            assert_eq!((top.len(), top[0].as_str()), (5, "7"), "{answer}");
        } else {
            assert_eq!(answer["predictions"][0]["label"], "7", "{answer}");
        }
    }

    let metadata = get_json(&format!("{}/models/lenet/metadata", server.url)).await;
    assert_eq!(metadata["architecture"], "torchscript");
    assert!(metadata.get("test_accuracy").is_none(), "a user's model has no training report: {metadata}");
    assert!(sums.contains(&format!("{}  assets/lenet.pt", metadata["weights_sha512"].as_str().unwrap())));
    let described = get_json(&format!("{}/models/lenet", server.url)).await;
    assert_eq!(described[0]["modelVersion"], metadata["version"]);
    assert_eq!(described[0]["workers"][0]["status"], "READY");
    let listed = get_json(&format!("{}/models", server.url)).await;
    assert_eq!(listed["models"][1]["modelName"], "lenet");
    let v2 = get_json(&format!("{}/v2/models/lenet", server.url)).await;
    assert_eq!(v2["inputs"][0]["shape"], serde_json::json!([-1, 1, 28, 28]), "{v2}");
    // A model whose card sets no domain threshold has no `in_domain` to give.
    let outputs: Vec<&str> =
        v2["outputs"].as_array().unwrap().iter().map(|output| output["name"].as_str().unwrap()).collect();
    assert_eq!(outputs, ["probabilities", "domain_score"], "{v2}");
    let asked = serde_json::json!({
        "inputs": [{"name": "pixels", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": vec![0.0; 784]}],
        "outputs": [{"name": "in_domain"}],
    });
    let response =
        reqwest::Client::new().post(format!("{}/v2/models/lenet/infer", server.url)).json(&asked).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let refusal: serde_json::Value = response.json().await.unwrap();
    let message = refusal["error"].as_str().unwrap_or_default();
    assert!(message.contains("unknown output `in_domain`: the model has `probabilities`, `domain_score`"), "{refusal}");
    let metrics = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("model=\"lenet\""), "the engine's metrics carry the model's name");
}

#[tokio::test]
async fn an_rgb_classifier_of_another_size_answers_colour_photos_through_image_preprocessing() {
    let scratch = tempfile::tempdir().unwrap();
    let bucket = scratch.path().join("colour");
    succeeded(package_colour(&bucket, &[]));
    let model = format!("colour={}", bucket.display());
    let server = Server::start(["--model", model.as_str()]).await;
    let url = format!("{}/model/predict", server.url);
    for (colour, [red, green, blue], format) in [
        ("red", [200, 40, 30], image::ImageFormat::Jpeg),
        ("green", [20, 160, 40], image::ImageFormat::Png),
        ("blue", [40, 60, 220], image::ImageFormat::WebP),
    ] {
        // A wide photo with a white border: resized and centre-cropped, the colour fills the input.
        let photo = image::RgbImage::from_fn(300, 160, |x, y| {
            let border = x < 10 || y < 10 || x >= 290 || y >= 150;
            image::Rgb(if border { [255, 255, 255] } else { [red, green, blue] })
        });
        let mut bytes = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(photo).write_to(&mut bytes, format).unwrap();
        let answer = predict(&url, bytes.into_inner()).await;
        assert_eq!(answer["predictions"][0]["label"], colour, "{answer}");
    }
    let metadata = get_json(&format!("{}/model/metadata", server.url)).await;
    assert_eq!(metadata["input_shape"], serde_json::json!([3, 40, 56]));
    assert_eq!(metadata["normalisation"]["std"], serde_json::json!([0.25, 0.25, 0.25]));
    assert_eq!(metadata["preprocessing"], "image");
}

#[test]
fn package_refuses_what_would_not_serve_and_writes_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let output = scratch.path().join("out");
    let two_labels = scratch.path().join("two.txt");
    std::fs::write(&two_labels, "red\ngreen\n").unwrap();
    let state_dict = fixtures().join("state_dict.pt").display().to_string();
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("--torchscript", &state_dict)], "not a TorchScript module"),
        (&[("--labels", two_labels.to_str().unwrap())], "it gives 3 scores per image"),
        (&[("--input-shape", "1,28,28"), ("--preprocess", "digit")], "RuntimeError: mat1 and mat2 shapes"),
        (&[("--mean", "0.5,0.5")], "2 means and 3 stds for 3 channels"),
        (&[("--name", "../etc")], "model name `../etc`"),
    ];
    for (changes, expected) in cases {
        let refused = package_colour(&output, changes);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success() && stderr.contains(expected), "{changes:?}: {stderr}");
        assert!(!output.exists(), "{changes:?} wrote {output:?}");
    }
}

/// The first line of the server's failed start with the model `name` from `bucket`.
fn start_up_error(name: &str, bucket: &Path, scratch: &Path) -> String {
    let output = server_command()
        .args(["--host", "127.0.0.1", "--port", "0", "--log-format", "json"])
        .arg("--model")
        .arg(format!("{name}={}", bucket.display()))
        .arg("--assets-dir")
        .arg(scratch.join("assets"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|line| line.starts_with("error:")).collect();
    let [error] = errors[..] else { panic!("one error line: {stderr}") };
    error.to_owned()
}

/// A bucket published with the colour module and the card `edit` makes of a good one.
fn bucket_with_card(scratch: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let good = scratch.join("good");
    succeeded(package_colour(&good, &[]));
    let unpacked = scratch.join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    max_mnist_artifacts::archive::unpack_tar_gz(&good.join("colour.tar.gz"), &unpacked, Default::default()).unwrap();
    let card_path = unpacked.join(CARD_FILE);
    let mut card: serde_json::Value = serde_json::from_slice(&std::fs::read(&card_path).unwrap()).unwrap();
    edit(&mut card);
    std::fs::write(&card_path, card.to_string()).unwrap();
    let bucket = scratch.join("edited");
    bucket::publish(&[&unpacked.join("colour.pt"), &card_path], &bucket, "colour.tar.gz").unwrap();
    bucket
}

#[test]
fn start_up_refuses_a_wrong_card_a_tampered_archive_and_outputs_that_disagree_with_the_labels() {
    let scratch = tempfile::tempdir().unwrap();
    let wrong_card = bucket_with_card(&scratch.path().join("a"), |card| card["input_shape"]["channels"] = 4.into());
    let error = start_up_error("colour", &wrong_card, scratch.path());
    assert!(error.contains("model `colour`") && error.contains("bad model card: an input of 4 channels"), "{error}");

    let two_labels = bucket_with_card(&scratch.path().join("b"), |card| card["labels"] = serde_json::json!(["a", "b"]));
    let error = start_up_error("colour", &two_labels, scratch.path());
    assert!(error.contains("it gives 3 scores per image") && error.contains("but 2 labels"), "{error}");

    let tampered = scratch.path().join("c");
    succeeded(package_colour(&tampered, &[]));
    let archive = tampered.join("colour.tar.gz");
    let mut bytes = std::fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&archive, bytes).unwrap();
    let error = start_up_error("colour", &tampered, scratch.path());
    assert!(error.contains("model `colour`: checksum mismatch for colour.tar.gz"), "{error}");
}
