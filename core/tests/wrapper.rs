//! The three steps of the model wrapper, and the inference engine that runs them for the
//! server, on the committed, verified weights and samples.

use std::path::{Path, PathBuf};
use std::time::Duration;

use max_mnist_artifacts::archive::UnpackLimits;
use max_mnist_artifacts::bucket::{ModelSource, ensure_verified_assets};
use max_mnist_artifacts::card::ModelFiles;
use max_mnist_artifacts::download::DownloadPolicy;
use max_mnist_artifacts::format::{InputShape, Preprocessing};
use max_mnist_core::inference::{EngineSettings, InferenceEngine};
use max_mnist_core::wrapper::ModelWrapper;
use max_mnist_core::{Device, Error};
use tch::Tensor;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(repository().join("samples").join(name)).unwrap()
}

/// The committed model `name`, fetched from its bucket in the repository and verified like at
/// start-up.
fn committed(name: &str, assets: &Path) -> ModelWrapper {
    let source = ModelSource {
        bucket: repository().join("pretrained-model").join(name).display().to_string(),
        assets_dir: assets.to_owned(),
        download: DownloadPolicy::default(),
        unpack: UnpackLimits::default(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let verified = runtime.block_on(ensure_verified_assets(&source)).unwrap();
    ModelWrapper::load(&ModelFiles::Trained { weights: verified[0].path.clone() }, Device::Cpu, 1 << 24).unwrap()
}

/// The committed MNIST model.
fn committed_model(assets: &Path) -> ModelWrapper {
    committed("mnist", assets)
}

#[test]
fn pre_process_predict_post_process_classify_every_sample() {
    let assets = tempfile::tempdir().unwrap();
    let model = committed_model(assets.path());
    let inputs: Vec<Tensor> =
        (0..10).map(|digit| model.pre_process(&sample(&format!("digit-{digit}.png"))).unwrap().tensor).collect();
    assert_eq!(inputs[0].size(), [1, 28, 28]);

    let logits = model.predict(&Tensor::stack(&inputs, 0)).unwrap();
    assert_eq!(logits.size(), [10, 10]);
    assert!(!logits.requires_grad(), "inference records no gradients");

    let predictions = model.post_process(&logits).unwrap();
    for (digit, prediction) in predictions.iter().enumerate() {
        assert_eq!(prediction.class_index, digit);
        assert_eq!(prediction.label, digit.to_string());
        assert!((prediction.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        assert_eq!(prediction.probability, prediction.probabilities[digit]);
    }
}

#[test]
fn eval_mode_gives_the_same_answer_alone_or_in_a_batch() {
    let assets = tempfile::tempdir().unwrap();
    let model = committed_model(assets.path());
    let three = model.pre_process(&sample("digit-3.png")).unwrap().tensor;
    let nine = model.pre_process(&sample("digit-9.png")).unwrap().tensor;
    let alone = model.predict(&three.unsqueeze(0)).unwrap();
    let batched = model.predict(&Tensor::stack(&[three, nine], 0)).unwrap();
    assert!(alone.get(0).allclose(&batched.get(0), 1e-4, 1e-5, false));
}

#[test]
fn post_process_is_a_softmax_at_the_models_temperature_an_argmax_and_a_domain_check() {
    let assets = tempfile::tempdir().unwrap();
    let model = committed_model(assets.path());
    let calibration = model.card().calibration.clone();
    let temperature = calibration.temperature;
    assert!(temperature != 1.0, "the committed model is calibrated: {calibration:?}");
    let mut logits = vec![0f32; 10];
    logits[4] = 3f32.ln();
    let predictions = model.post_process(&Tensor::from_slice(&logits).view([1, 10])).unwrap();
    let prediction = &predictions[0];
    assert_eq!(prediction.class_index, 4);
    // softmax(logits / T): e^(ln 3 / T) for class 4 against 9 × e^0.
    let winner = 3f32.powf(1.0 / temperature);
    assert!((prediction.probability - winner / (winner + 9.0)).abs() < 1e-6, "{prediction:?}");
    assert!((prediction.probabilities[0] - 1.0 / (winner + 9.0)).abs() < 1e-6, "{prediction:?}");
    // The domain score is the log-sum-exp of the logits themselves: ln(3 + 9).
    assert!((prediction.domain_score - 12f32.ln()).abs() < 1e-5, "{prediction:?}");
    let threshold = calibration.domain_threshold.unwrap();
    assert_eq!(prediction.in_domain, Some(12f32.ln() >= threshold));
    // Ten times those logits: the same class, more confident, and further from the line.
    let confident = model.post_process(&(Tensor::from_slice(&logits).view([1, 10]) * 10.0)).unwrap();
    assert!(confident[0].probability > prediction.probability);
    assert!(confident[0].domain_score > prediction.domain_score);
}

#[test]
fn the_weights_carry_the_constants_serving_needs() {
    let assets = tempfile::tempdir().unwrap();
    let metadata = committed_model(assets.path()).training().unwrap().clone();
    assert_eq!(metadata.input_shape, InputShape::grayscale(28));
    assert_eq!(metadata.preprocessing, Preprocessing::Digit);
    assert_eq!(metadata.labels.len(), 10);
    assert!(metadata.normalisation.std > 0.0);
    assert!(metadata.test_accuracy >= 0.99, "{}", metadata.test_accuracy);
    assert_eq!(metadata.training_data_sha256.len(), 64);
}

#[test]
fn bad_bytes_are_typed_errors() {
    let assets = tempfile::tempdir().unwrap();
    let model = committed_model(assets.path());
    assert!(matches!(model.pre_process(b""), Err(Error::EmptyImage)));
    assert!(matches!(model.pre_process(b"GIF89a"), Err(Error::UndecodableImage(_))));
}

/// An engine on the committed model, waiting up to `max_batch_delay` for batches to fill.
fn engine(assets: &Path, max_batch_delay: Duration, queue_capacity: usize) -> InferenceEngine {
    let settings = EngineSettings { max_batch_size: 32, max_batch_delay, queue_capacity, preprocess_threads: 2 };
    let assets = assets.to_owned();
    InferenceEngine::start("mnist", settings, move || Ok(committed_model(&assets))).unwrap()
}

/// Runs `future` to completion on a fresh runtime (the model is loaded outside it).
fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
}

#[test]
fn the_engine_batches_a_request_s_images_and_answers_each_in_order() {
    let assets = tempfile::tempdir().unwrap();
    let engine = engine(assets.path(), Duration::from_millis(200), 1024);
    let digits = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7];
    let images = digits.iter().map(|digit| sample(&format!("digit-{digit}.png"))).collect();
    let results = block_on(engine.classify_all(images));
    let predicted: Vec<usize> = results.into_iter().map(|result| result.unwrap().prediction.class_index).collect();
    assert_eq!(predicted, digits);
    let counts = engine.batch_counts();
    assert_eq!(counts.images, digits.len() as u64);
    // Preprocessed on two threads while the inference thread waited: far fewer forward
    // passes than images (one per image would mean no batching).
    assert!(counts.batches * 4 <= counts.images, "{counts:?}");
}

#[test]
fn the_engine_admits_a_request_s_images_together_or_not_at_all() {
    let assets = tempfile::tempdir().unwrap();
    let engine = engine(assets.path(), Duration::ZERO, 4);
    let images = |count: usize| (0..count).map(|digit| sample(&format!("digit-{digit}.png"))).collect();
    let refused = block_on(engine.classify_all(images(5)));
    assert!(refused.iter().all(|result| matches!(result, Err(Error::Overloaded))), "{refused:?}");
    assert_eq!(engine.batch_counts().images, 0, "nothing of a refused request runs");
    // Failures give their places back: a bad image, then a full queue's worth of good ones.
    assert!(matches!(block_on(engine.classify(b"not an image".to_vec())), Err(Error::UnsupportedImageFormat)));
    let admitted = block_on(engine.classify_all(images(4)));
    assert!(admitted.iter().all(Result::is_ok), "{admitted:?}");
}
