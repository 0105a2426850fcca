//! Several models at once: both committed models served side by side, each answering its own
//! kind of input through the MAX routes, the per-model routes and the Open Inference
//! Protocol; the list of models; unknown names; the default model; readiness per model; the
//! model label of the metrics; and the model names in the OpenAPI document.

use max_mnist_api::types::{LabelsResponse, ModelMetadataResponse, PredictResponse};
use max_mnist_api::v2::{InferenceResponse, OutputData};
use serde_json::{Value, json};

use crate::helpers::{COMMITTED_MODELS, TestApp, committed_bucket, expect_error, model, sample};
use crate::operations::{StalledBucket, get, metrics, series_value};

/// Fashion-MNIST's classes, as the samples name them (`samples/fashion-<class>.png`) and as the
/// model labels them.
const CLOTHES: [(&str, &str); 10] = [
    ("t-shirt-top", "T-shirt/top"),
    ("trouser", "Trouser"),
    ("pullover", "Pullover"),
    ("dress", "Dress"),
    ("coat", "Coat"),
    ("sandal", "Sandal"),
    ("shirt", "Shirt"),
    ("sneaker", "Sneaker"),
    ("bag", "Bag"),
    ("ankle-boot", "Ankle boot"),
];

/// POSTs the sample `name` as a form to `path` and returns the answer, which must be a 200.
async fn predict_at(app: &TestApp, path: &str, name: &str) -> PredictResponse {
    let part = reqwest::multipart::Part::bytes(sample(name)).file_name(name.to_owned());
    let form = reqwest::multipart::Form::new().part("image", part);
    let response = app.client.post(format!("{}{path}", app.url)).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path} {name}");
    response.json().await.unwrap()
}

async fn json_at<T: serde::de::DeserializeOwned>(app: &TestApp, path: &str) -> T {
    let response = get(app, path, None).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn each_committed_model_answers_its_own_kind_of_input() {
    let app = TestApp::spawn().await;
    for digit in 0..10 {
        let answer = predict_at(&app, "/models/mnist/predict", &format!("digit-{digit}.png")).await;
        assert_eq!(answer.predictions[0].label, digit.to_string());
    }
    let mut right = 0;
    for (file, label) in CLOTHES {
        let answer = predict_at(&app, "/models/fashion-mnist/predict", &format!("fashion-{file}.png")).await;
        let prediction = &answer.predictions[0];
        assert_eq!(prediction.probabilities.len(), 10);
        right += usize::from(prediction.label == label);
    }
    // The model is right on about 93% of the test set; these are the first test image of each
    // class, of which it gets every one but possibly one right.
    assert!(right >= 9, "{right} of 10 clothes recognised");
    // An RGB JPEG, three times the size, goes through the same image preprocessing.
    let boot = predict_at(&app, "/models/fashion-mnist/predict?include_input=true", "fashion-ankle-boot-rgb.jpg").await;
    assert_eq!(boot.predictions[0].label, "Ankle boot");
    let seen = boot.predictions[0].model_input.as_deref().unwrap();
    assert!(seen.starts_with("data:image/png;base64,"), "{seen}");
}

#[tokio::test]
async fn the_max_routes_serve_the_default_model_as_before() {
    let app = TestApp::spawn().await;
    let default: ModelMetadataResponse = json_at(&app, "/model/metadata").await;
    let by_name: ModelMetadataResponse = json_at(&app, "/models/mnist/metadata").await;
    assert_eq!(default, by_name);
    let default: LabelsResponse = json_at(&app, "/model/labels").await;
    assert_eq!(default, json_at::<LabelsResponse>(&app, "/models/mnist/labels").await);
    let (default, by_name) = (
        predict_at(&app, "/model/predict", "digit-7.png").await,
        predict_at(&app, "/models/mnist/predict", "digit-7.png").await,
    );
    assert_eq!(default, by_name);
}

#[tokio::test]
async fn the_default_model_is_chosen_by_configuration() {
    let app = TestApp::spawn_with(|settings| settings.default_model = Some("fashion-mnist".into())).await;
    let labels: LabelsResponse = json_at(&app, "/model/labels").await;
    assert_eq!(labels.labels[9].name, "Ankle boot");
    let answer = predict_at(&app, "/model/predict", "fashion-trouser.png").await;
    assert_eq!(answer.predictions[0].label, "Trouser");
}

#[tokio::test]
async fn each_model_describes_itself_from_what_travels_with_its_weights() {
    let app = TestApp::spawn().await;
    let fashion: ModelMetadataResponse = json_at(&app, "/models/fashion-mnist/metadata").await;
    assert_eq!((fashion.id.as_str(), fashion.dataset.as_deref()), ("fashion-mnist", Some("Fashion-MNIST")));
    assert_eq!(fashion.preprocessing, "image");
    assert_eq!(fashion.input_shape, [1, 28, 28]);
    assert!(fashion.test_accuracy.unwrap() >= 0.93, "{fashion:?}");
    let sums = std::fs::read_to_string(committed_bucket("fashion-mnist").join("sha512sums.txt")).unwrap();
    assert!(sums.contains(&fashion.weights_sha512), "{sums}");
    let labels: LabelsResponse = json_at(&app, "/models/fashion-mnist/labels").await;
    let names: Vec<&str> = labels.labels.iter().map(|label| label.name.as_str()).collect();
    assert_eq!(names, CLOTHES.map(|(_, label)| label));
}

#[tokio::test]
async fn the_model_list_has_torchserves_shape_in_configured_order() {
    let app = TestApp::spawn().await;
    let list: Value = json_at(&app, "/models").await;
    let expected: Vec<Value> = COMMITTED_MODELS
        .iter()
        .map(|name| json!({"modelName": name, "modelUrl": committed_bucket(name).display().to_string()}))
        .collect();
    assert_eq!(list, json!({"models": expected}));
}

#[tokio::test]
async fn an_unknown_model_is_a_404_naming_the_served_ones_on_every_route() {
    let app = TestApp::spawn().await;
    for path in ["/models/cats/metadata", "/models/cats/labels", "/v2/models/cats", "/v2/models/cats/ready"] {
        expect_error(get(&app, path, None).await, 404, "no model `cats`; this server serves mnist, fashion-mnist")
            .await;
    }
    let predict = app.client.post(format!("{}/models/cats/predict", app.url)).body(sample("digit-1.png"));
    expect_error(predict.header("content-type", "image/png").send().await.unwrap(), 404, "no model `cats`").await;
    let infer = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["AAAA"]}]});
    let response = app.client.post(format!("{}/v2/models/cats/infer", app.url)).json(&infer).send().await.unwrap();
    expect_error(response, 404, "no model `cats`").await;
}

#[tokio::test]
async fn the_open_inference_protocol_serves_each_model_and_its_version() {
    let app = TestApp::spawn().await;
    let metadata: ModelMetadataResponse = json_at(&app, "/models/fashion-mnist/metadata").await;
    let v2: Value = json_at(&app, "/v2/models/fashion-mnist").await;
    assert_eq!(v2["name"], "fashion-mnist");
    assert_eq!(v2["versions"], json!([metadata.version]));
    assert_eq!(v2["inputs"][0]["shape"], json!([-1, 1, 28, 28]));
    assert_eq!(v2["outputs"][0]["shape"], json!([-1, 10]));

    // The trouser sample's pixels as FP32 give what the form gives.
    let pixels: Vec<f32> = image::load_from_memory(&sample("fashion-trouser.png"))
        .unwrap()
        .to_luma8()
        .iter()
        .map(|&value| f32::from(value) / 255.0)
        .collect();
    let body = json!({"inputs": [{"name": "pixels", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": pixels}]});
    let form = predict_at(&app, "/models/fashion-mnist/predict", "fashion-trouser.png").await;
    for path in [
        "/v2/models/fashion-mnist/infer".to_owned(),
        format!("/v2/models/fashion-mnist/versions/{}/infer", metadata.version),
    ] {
        let response = app.client.post(format!("{}{path}", app.url)).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let answer: InferenceResponse = response.json().await.unwrap();
        assert_eq!(
            (answer.model_name.as_str(), answer.model_version.as_str()),
            ("fashion-mnist", metadata.version.as_str())
        );
        assert_eq!(answer.outputs[0].shape, [1, 10]);
        let probabilities = answer.outputs[0].data.as_ref().and_then(OutputData::numbers).expect("FP32 data");
        for (v2, form) in probabilities.iter().zip(&form.predictions[0].probabilities) {
            assert!((v2 - form).abs() < 1e-4, "{path}: {v2} against {form}");
        }
    }
    let ready: Value = json_at(&app, &format!("/v2/models/fashion-mnist/versions/{}/ready", metadata.version)).await;
    assert_eq!(ready, json!({"name": "fashion-mnist", "ready": true}));
    for path in
        ["/v2/models/fashion-mnist/versions/000000000000", "/v2/models/fashion-mnist/versions/000000000000/ready"]
    {
        expect_error(get(&app, path, None).await, 404, "has no version `000000000000`").await;
    }
    let response =
        app.client.post(format!("{}/v2/models/mnist/versions/{}/infer", app.url, metadata.version)).json(&body).send();
    expect_error(response.await.unwrap(), 404, "model `mnist` has no version").await;
}

#[tokio::test]
async fn a_loaded_model_serves_while_another_still_loads_and_readiness_says_which() {
    let bucket = StalledBucket::start().await;
    let app = TestApp::spawn_loading(|settings| {
        settings.models =
            vec![model("mnist", committed_bucket("mnist").display().to_string()), model("slow", bucket.url.clone())];
        settings.download_retries = 0;
        settings.download_timeout_secs = 3600;
    })
    .await;
    // mnist loads from the repository in well under a minute; `slow` never does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while get(&app, "/v2/models/mnist/ready", None).await.status() != 200 {
        assert!(std::time::Instant::now() < deadline, "mnist never became ready");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(predict_at(&app, "/models/mnist/predict", "digit-4.png").await.predictions[0].label, "4");
    let slow: Value = get(&app, "/v2/models/slow/ready", None).await.json().await.unwrap();
    assert_eq!(slow, json!({"name": "slow", "ready": false}));
    expect_error(get(&app, "/models/slow/metadata", None).await, 503, "the model `slow` is still loading").await;
    let server: Value = get(&app, "/health/ready", None).await.json().await.unwrap();
    assert_eq!(server, json!({"status": "starting"}), "the server is ready once every model is");
}

#[tokio::test]
async fn engine_metrics_and_model_info_carry_the_models_name() {
    let app = TestApp::spawn().await;
    predict_at(&app, "/models/mnist/predict", "digit-2.png").await;
    predict_at(&app, "/models/fashion-mnist/predict", "fashion-bag.png").await;
    let text = metrics(&app).await;
    for name in COMMITTED_MODELS {
        let count = series_value(&text, "max_mnist_inference_seconds_count", &[("model", name)]);
        assert!(count.is_some_and(|count| count >= 1.0), "no inference count for {name}: {text}");
        let metadata: ModelMetadataResponse = json_at(&app, &format!("/models/{name}/metadata")).await;
        let labels = [("model", name), ("version", &metadata.version), ("sha512", &metadata.weights_sha512)];
        assert_eq!(series_value(&text, "max_mnist_model_info", &labels), Some(1.0), "{name}: {text}");
    }
}

#[tokio::test]
async fn the_openapi_document_and_swagger_ui_list_the_served_models() {
    let app = TestApp::spawn().await;
    let spec: Value = json_at(&app, "/swagger.json").await;
    let names = json!(COMMITTED_MODELS);
    for (path, method) in [
        ("/models/{model}/predict", "post"),
        ("/models/{model}/metadata", "get"),
        ("/models/{model}/labels", "get"),
        ("/v2/models/{model}/infer", "post"),
        ("/v2/models/{model}/versions/{version}/infer", "post"),
        ("/v2/models/{model}/ready", "get"),
    ] {
        let parameters = spec["paths"][path][method]["parameters"].as_array().unwrap_or_else(|| panic!("{path}"));
        let named = parameters.iter().find(|parameter| parameter["in"] == "path" && parameter["name"] != "version");
        assert_eq!(named.unwrap()["schema"]["enum"], names, "{path}");
    }
    let page = get(&app, "/", None).await.text().await.unwrap();
    assert!(page.contains("swagger-ui") && page.contains("\"fashion-mnist\""), "Swagger UI shows the names");
}
