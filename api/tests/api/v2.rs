//! The Open Inference Protocol (KServe v2) routes: metadata and health as the protocol words
//! them, inference on FP32 pixels and on base64 images agreeing with `/model/predict` (the
//! probabilities, the domain score and "in domain"), and a JSON error with an `error` field for
//! every request the protocol or the model refuses.

use base64::Engine;
use base64::prelude::{BASE64_STANDARD, BASE64_STANDARD_NO_PAD};
use max_mnist_api::types::ModelMetadataResponse;
use max_mnist_api::v2::{
    InferenceResponse, ModelMetadataV2, OutputData, ResponseOutput, ServerMetadata, TensorMetadata,
};
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_error, repository, sample};

/// MNIST test digits as committed: 28×28 8-bit grey PNGs, white ink on black.
const MNIST_SAMPLES: [&str; 10] = [
    "digit-0.png",
    "digit-1.png",
    "digit-2.png",
    "digit-3.png",
    "digit-4.png",
    "digit-5.png",
    "digit-6.png",
    "digit-7.png",
    "digit-8.png",
    "digit-9.png",
];

/// The 784 intensities of an MNIST-form sample, row by row, each byte divided by 255.
fn mnist_pixels(name: &str) -> Vec<f32> {
    let decoded = image::load_from_memory(&sample(name)).unwrap();
    assert_eq!(decoded.color(), image::ColorType::L8, "{name} is 8-bit grey");
    let grey = decoded.into_luma8();
    assert_eq!(grey.dimensions(), (28, 28), "{name} is MNIST's size");
    grey.as_raw().iter().map(|&value| f32::from(value) / 255.0).collect()
}

/// GETs `path` and returns its status and JSON body.
async fn get_json(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.client.get(format!("{}{path}", app.url)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_else(|error| panic!("{path}: not JSON ({error})")))
}

/// POSTs `body` as JSON to the inference route of `model`.
async fn infer_on(app: &TestApp, model: &str, body: &Value) -> reqwest::Response {
    app.client.post(format!("{}/v2/models/{model}/infer", app.url)).json(body).send().await.unwrap()
}

/// POSTs `body` to `/v2/models/mnist/infer` and returns the answer, which must be a 200.
async fn infer(app: &TestApp, body: &Value) -> InferenceResponse {
    let response = infer_on(app, "mnist", body).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

/// A request of one input tensor.
fn request(shape: Value, datatype: &str, data: Value) -> Value {
    json!({"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}]})
}

/// The FP32 `[N, 1, 28, 28]` request for the MNIST samples `names`, its data flat.
fn pixels_request(names: &[&str]) -> Value {
    let data: Vec<f32> = names.iter().flat_map(|name| mnist_pixels(name)).collect();
    request(json!([names.len(), 1, 28, 28]), "FP32", json!(data))
}

/// Asserts that the server still classifies a good request after the bad ones.
async fn assert_still_answers(app: &TestApp) {
    let answer = infer(app, &pixels_request(&["digit-7.png"])).await;
    assert_eq!(argmax(probabilities(&answer)), 7);
}

/// The output called `name` of `answer`.
fn output<'a>(answer: &'a InferenceResponse, name: &str) -> &'a ResponseOutput {
    answer.outputs.iter().find(|output| output.name == name).unwrap_or_else(|| panic!("no `{name}`: {answer:?}"))
}

/// The `probabilities` output's elements.
fn probabilities(answer: &InferenceResponse) -> &[f32] {
    output(answer, "probabilities").data.as_ref().and_then(OutputData::numbers).expect("FP32 data")
}

/// The index of the largest value.
fn argmax(values: &[f32]) -> usize {
    values.iter().enumerate().max_by(|left, right| left.1.total_cmp(right.1)).unwrap().0
}

/// Asserts that `answer` holds one probability row per sample of `names`, each row within
/// `tolerance` of what `/model/predict` says of the same file, and, where the answer has
/// them, the same domain scores (within `tolerance` × 10) and "in domain" flags.
async fn assert_agrees_with_predict(app: &TestApp, answer: &InferenceResponse, names: &[&str], tolerance: f32) {
    assert_eq!(answer.model_name, "mnist");
    let rows = output(answer, "probabilities");
    assert_eq!((rows.datatype.as_str(), rows.shape.as_slice()), ("FP32", [names.len() as i64, 10].as_slice()));
    assert_eq!(probabilities(answer).len(), names.len() * 10);
    let scores = answer.outputs.iter().find(|output| output.name == "domain_score");
    let flags = answer.outputs.iter().find(|output| output.name == "in_domain");
    for (index, (row, name)) in probabilities(answer).chunks(10).zip(names).enumerate() {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{name}: {row:?}");
        let predicted = app.prediction_of(name).await;
        assert_eq!(argmax(row), argmax(&predicted.probabilities), "{name}");
        for (digit, (left, right)) in row.iter().zip(&predicted.probabilities).enumerate() {
            assert!((left - right).abs() < tolerance, "{name}, digit {digit}: {left} against /model/predict's {right}");
        }
        if let Some(scores) = scores {
            let score = scores.data.as_ref().and_then(OutputData::numbers).expect("FP32 scores")[index];
            let expected = predicted.domain_score;
            assert!((score - expected).abs() < tolerance * 10.0, "{name}: domain score {score} against {expected}");
        }
        if let Some(flags) = flags {
            let flag = flags.data.as_ref().and_then(OutputData::flags).expect("BOOL flags")[index];
            assert_eq!(Some(flag), predicted.in_domain, "{name}: in_domain");
        }
    }
}

#[tokio::test]
async fn server_metadata_names_the_server_and_its_version() {
    let app = TestApp::spawn().await;
    let (status, body) = get_json(&app, "/v2").await;
    assert_eq!(status, 200);
    let metadata: ServerMetadata = serde_json::from_value(body).unwrap();
    assert_eq!(metadata.name, "max-mnist");
    assert_eq!(metadata.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(metadata.extensions, ["binary_tensor_data"], "{metadata:?}");
}

#[tokio::test]
async fn health_live_and_ready_say_true_once_the_model_is_loaded() {
    let app = TestApp::spawn().await;
    assert_eq!(get_json(&app, "/v2/health/live").await, (200, json!({"live": true})));
    assert_eq!(get_json(&app, "/v2/health/ready").await, (200, json!({"ready": true})));
    assert_eq!(get_json(&app, "/v2/models/mnist/ready").await, (200, json!({"name": "mnist", "ready": true})));
}

#[tokio::test]
async fn model_metadata_lists_the_served_version_both_inputs_and_the_outputs() {
    let app = TestApp::spawn().await;
    let served: ModelMetadataResponse =
        app.client.get(format!("{}/model/metadata", app.url)).send().await.unwrap().json().await.unwrap();
    let (status, body) = get_json(&app, "/v2/models/mnist").await;
    assert_eq!(status, 200);
    let metadata: ModelMetadataV2 = serde_json::from_value(body).unwrap();
    assert_eq!(metadata.name, "mnist");
    assert_eq!(metadata.versions, [served.version]);
    let tensor = |name: &str, datatype: &str, shape: &[i64]| TensorMetadata {
        name: name.into(),
        datatype: datatype.into(),
        shape: shape.to_vec(),
    };
    assert_eq!(metadata.inputs, [tensor("pixels", "FP32", &[-1, 1, 28, 28]), tensor("images", "BYTES", &[-1])]);
    assert_eq!(
        metadata.outputs,
        [
            tensor("probabilities", "FP32", &[-1, 10]),
            tensor("domain_score", "FP32", &[-1]),
            tensor("in_domain", "BOOL", &[-1])
        ]
    );
    // The clothing model has its own threshold, so its own `in_domain` ("not clothing"); a
    // model without one has none (tests/own_model.rs).
    let (_, fashion) = get_json(&app, "/v2/models/fashion-mnist").await;
    let fashion: ModelMetadataV2 = serde_json::from_value(fashion).unwrap();
    assert_eq!(fashion.outputs, metadata.outputs);
}

#[tokio::test]
async fn an_unknown_model_is_a_404_naming_it() {
    let app = TestApp::spawn().await;
    for path in ["/v2/models/other", "/v2/models/other/ready"] {
        let response = app.client.get(format!("{}{path}", app.url)).send().await.unwrap();
        expect_error(response, 404, "`other`").await;
    }
    expect_error(infer_on(&app, "other", &pixels_request(&["digit-1.png"])).await, 404, "`other`").await;
}

#[tokio::test]
async fn fp32_pixels_get_the_probabilities_predict_gives() {
    let app = TestApp::spawn().await;
    let served: ModelMetadataResponse =
        app.client.get(format!("{}/model/metadata", app.url)).send().await.unwrap().json().await.unwrap();
    let answer = infer(&app, &pixels_request(&MNIST_SAMPLES)).await;
    assert_eq!(answer.model_version, served.version);
    assert_agrees_with_predict(&app, &answer, &MNIST_SAMPLES, 1e-4).await;
}

#[tokio::test]
async fn fp32_rows_of_784_nested_get_the_same_answer_as_flat_images() {
    let app = TestApp::spawn().await;
    let names = ["digit-3.png", "digit-8.png", "digit-5.png"];
    let rows: Vec<Vec<f32>> = names.iter().map(|name| mnist_pixels(name)).collect();
    let answer = infer(&app, &request(json!([names.len(), 784]), "FP32", json!(rows))).await;
    assert_agrees_with_predict(&app, &answer, &names, 1e-4).await;
    let flat = infer(&app, &pixels_request(&names)).await;
    for (left, right) in probabilities(&answer).iter().zip(probabilities(&flat)) {
        assert!((left - right).abs() < 1e-6, "{left} against {right}");
    }
}

#[tokio::test]
async fn the_request_id_is_echoed_and_absent_without_one() {
    let app = TestApp::spawn().await;
    let mut body = pixels_request(&["digit-4.png"]);
    let without: Value = infer_on(&app, "mnist", &body).await.json().await.unwrap();
    assert!(without.get("id").is_none(), "{without}");
    assert_eq!(without["outputs"][0]["name"], "probabilities");
    body["id"] = json!("request-42");
    let with: Value = infer_on(&app, "mnist", &body).await.json().await.unwrap();
    assert_eq!(with["id"], "request-42");
}

#[tokio::test]
async fn every_output_comes_by_default_and_only_those_asked_for_in_their_order() {
    let app = TestApp::spawn().await;
    let names = ["digit-9.png", "fashion-bag.png", "digit-2.png"];
    let encoded: Vec<String> = names.iter().map(|name| BASE64_STANDARD.encode(sample(name))).collect();
    let mut body = request(json!([names.len()]), "BYTES", json!(encoded));
    let answer = infer(&app, &body).await;
    let outputs: Vec<(&str, &str, &[i64])> = answer
        .outputs
        .iter()
        .map(|output| (output.name.as_str(), output.datatype.as_str(), output.shape.as_slice()))
        .collect();
    assert_eq!(
        outputs,
        [("probabilities", "FP32", &[3, 10][..]), ("domain_score", "FP32", &[3][..]), ("in_domain", "BOOL", &[3][..])]
    );
    // A bag is no digit.
    assert_eq!(output(&answer, "in_domain").data, Some(OutputData::Flags(vec![true, false, true])));
    assert_agrees_with_predict(&app, &answer, &names, 1e-5).await;

    body["outputs"] = json!([{"name": "in_domain"}, {"name": "probabilities"}]);
    let answer = infer(&app, &body).await;
    let asked: Vec<&str> = answer.outputs.iter().map(|output| output.name.as_str()).collect();
    assert_eq!(asked, ["in_domain", "probabilities"]);
    assert_agrees_with_predict(&app, &answer, &names, 1e-5).await;

    body["outputs"] = json!([{"name": "domain_score"}, {"name": "domain_score"}]);
    expect_error(infer_on(&app, "mnist", &body).await, 400, "output `domain_score` is asked for twice").await;
    // The clothing model's `in_domain` is its own: the bag is clothing, the digits are not.
    body["outputs"] = json!([{"name": "in_domain"}]);
    let response = infer_on(&app, "fashion-mnist", &body).await;
    assert_eq!(response.status(), 200);
    let answer: InferenceResponse = response.json().await.unwrap();
    assert_eq!(output(&answer, "in_domain").data, Some(OutputData::Flags(vec![false, true, false])));
    assert_still_answers(&app).await;
}

#[tokio::test]
async fn the_protocols_optional_parameters_are_accepted() {
    // Open Inference Protocol clients may add `parameters` to the request, each input and
    // each output asked for.
    let app = TestApp::spawn().await;
    let mut body = pixels_request(&["digit-6.png"]);
    body["parameters"] = json!({"content_type": "np"});
    body["inputs"][0]["parameters"] = json!({"content_type": "np"});
    body["outputs"] = json!([{"name": "probabilities", "parameters": {"binary_data": false}}]);
    let answer = infer(&app, &body).await;
    assert_agrees_with_predict(&app, &answer, &["digit-6.png"], 1e-4).await;
}

#[tokio::test]
async fn base64_images_get_the_probabilities_predict_gives() {
    let app = TestApp::spawn().await;
    let names = ["digit-2.png", "digit-7.png", "digit-0.png", "photo-4-exif.jpg", "scan-3.jpg"];
    let unpadded = BASE64_STANDARD_NO_PAD.encode(sample(names[1]));
    assert_ne!(unpadded.len() % 4, 0, "{} needs padding, so that the test leaves it out", names[1]);
    let encoded: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(index, name)| if index == 1 { unpadded.clone() } else { BASE64_STANDARD.encode(sample(name)) })
        .collect();
    let answer = infer(&app, &request(json!([names.len()]), "BYTES", json!(encoded))).await;
    assert_agrees_with_predict(&app, &answer, &names, 1e-5).await;
}

#[tokio::test]
async fn a_tensor_of_the_wrong_shape_is_refused() {
    let app = TestApp::spawn().await;
    for shape in [json!([1, 3]), json!([1, 1, 28, 27]), json!([784]), json!([1, 3, 28, 28])] {
        let response = infer_on(&app, "mnist", &request(shape.clone(), "FP32", json!([0.0, 0.0, 0.0]))).await;
        expect_error(response, 400, "an FP32 input has shape").await;
    }
    let response = infer_on(&app, "mnist", &request(json!([1, 1]), "BYTES", json!(["AAAA"]))).await;
    expect_error(response, 400, "a BYTES input has shape [N]").await;
    assert_still_answers(&app).await;
}

#[tokio::test]
async fn a_datatype_other_than_fp32_or_bytes_is_refused() {
    let app = TestApp::spawn().await;
    let response = infer_on(&app, "mnist", &request(json!([1, 784]), "INT32", json!(vec![0; 784]))).await;
    expect_error(response, 400, "`INT32` is not accepted").await;
    assert_still_answers(&app).await;
}

#[tokio::test]
async fn data_that_does_not_fill_the_shape_is_refused() {
    let app = TestApp::spawn().await;
    let short = request(json!([1, 784]), "FP32", json!(vec![0.0; 783]));
    expect_error(infer_on(&app, "mnist", &short).await, 400, "needs 784 values, the data has 783").await;
    let mut two_images = pixels_request(&["digit-1.png", "digit-2.png"]);
    two_images["inputs"][0]["shape"] = json!([3, 1, 28, 28]);
    expect_error(infer_on(&app, "mnist", &two_images).await, 400, "needs 2352 values, the data has 1568").await;
    let one_image = request(json!([2]), "BYTES", json!([BASE64_STANDARD.encode(sample("digit-1.png"))]));
    expect_error(infer_on(&app, "mnist", &one_image).await, 400, "needs 2 values, the data has 1").await;
    let not_an_array = request(json!([1, 784]), "FP32", json!("pixels"));
    expect_error(infer_on(&app, "mnist", &not_an_array).await, 400, "expected an array").await;
    assert_still_answers(&app).await;
}

#[tokio::test]
async fn pixel_values_outside_0_to_1_are_refused() {
    let app = TestApp::spawn().await;
    for (value, shown) in [(2.0, "is 2,"), (-0.5, "is -0.5,"), (1.0001, "is 1.0001,")] {
        let mut pixels = mnist_pixels("digit-5.png");
        pixels[100] = value;
        let response = infer_on(&app, "mnist", &request(json!([1, 784]), "FP32", json!(pixels))).await;
        expect_error(response, 400, &format!("value 100 {shown} outside [0, 1]")).await;
    }
    assert_still_answers(&app).await;
}

#[tokio::test]
async fn non_numbers_in_fp32_data_are_refused() {
    // JSON has no NaN: clients that serialise one send a string or null.
    let app = TestApp::spawn().await;
    for odd in [json!("NaN"), json!(null), json!(true), json!({"value": 0.5})] {
        let mut pixels: Vec<Value> = mnist_pixels("digit-5.png").into_iter().map(|value| json!(value)).collect();
        pixels[300] = odd.clone();
        let response = infer_on(&app, "mnist", &request(json!([1, 784]), "FP32", json!(pixels))).await;
        expect_error(response, 400, "FP32 data must be numbers").await;
    }
    assert_still_answers(&app).await;
}

#[tokio::test]
async fn exactly_one_input_tensor_is_required() {
    let app = TestApp::spawn().await;
    expect_error(infer_on(&app, "mnist", &json!({"inputs": []})).await, 400, "exactly one input tensor, not 0").await;
    let single = pixels_request(&["digit-1.png"]);
    let twice = json!({"inputs": [single["inputs"][0], single["inputs"][0]]});
    expect_error(infer_on(&app, "mnist", &twice).await, 400, "exactly one input tensor, not 2").await;
    assert_still_answers(&app).await;
}

#[tokio::test]
async fn an_empty_or_negative_batch_is_refused() {
    let app = TestApp::spawn().await;
    let cases = [
        (request(json!([0, 784]), "FP32", json!([])), "at least 1, not 0"),
        (request(json!([0, 1, 28, 28]), "FP32", json!([])), "at least 1, not 0"),
        (request(json!([0]), "BYTES", json!([])), "at least 1, not 0"),
        (request(json!([-1, 784]), "FP32", json!(vec![0.0; 784])), "at least 1, not -1"),
    ];
    for (body, fragment) in cases {
        expect_error(infer_on(&app, "mnist", &body).await, 400, fragment).await;
    }
    assert_still_answers(&app).await;
}

#[tokio::test]
async fn more_images_than_the_per_request_limit_get_413() {
    let app = TestApp::spawn_with(|settings| settings.max_images_per_request = 4).await;
    let five = ["digit-0.png", "digit-1.png", "digit-2.png", "digit-3.png", "digit-4.png"];
    expect_error(infer_on(&app, "mnist", &pixels_request(&five)).await, 413, "5 images in one request").await;
    let encoded: Vec<String> = five.iter().map(|name| BASE64_STANDARD.encode(sample(name))).collect();
    let bytes = request(json!([5]), "BYTES", json!(encoded));
    expect_error(infer_on(&app, "mnist", &bytes).await, 413, "the limit is 4").await;
    // The limit itself is allowed.
    let answer = infer(&app, &pixels_request(&five[..4])).await;
    assert_eq!(output(&answer, "probabilities").shape, [4, 10]);
}

#[tokio::test]
async fn bytes_that_are_not_base64_are_refused() {
    let app = TestApp::spawn().await;
    let good = BASE64_STANDARD.encode(sample("digit-1.png"));
    for bad in [json!("not base64!"), json!("data:image/png;base64,iVBORw0KGgo="), json!(12)] {
        let response = infer_on(&app, "mnist", &request(json!([2]), "BYTES", json!([good, bad]))).await;
        let fragment = if bad.is_string() {
            "image 1: not base64"
        } else {
            "mixes strings and numbers: FP32 data must be numbers, BYTES data base64 strings"
        };
        expect_error(response, 400, fragment).await;
    }
    assert_still_answers(&app).await;
}

#[tokio::test]
async fn bytes_that_are_not_an_image_are_refused() {
    let app = TestApp::spawn().await;
    let text = BASE64_STANDARD.encode(std::fs::read(repository().join("README.md")).unwrap());
    let response = infer_on(&app, "mnist", &request(json!([1]), "BYTES", json!([text]))).await;
    expect_error(response, 400, "image 0: the file is not a supported image").await;
    let png = sample("digit-1.png");
    let truncated = BASE64_STANDARD.encode(&png[..png.len() / 2]);
    let response = infer_on(&app, "mnist", &request(json!([1]), "BYTES", json!([truncated]))).await;
    expect_error(response, 400, "image 0: the image could not be decoded").await;
    assert_still_answers(&app).await;
}

#[tokio::test]
async fn an_unknown_output_name_is_refused() {
    let app = TestApp::spawn().await;
    let mut body = pixels_request(&["digit-1.png"]);
    body["outputs"] = json!([{"name": "probabilities"}, {"name": "logits"}]);
    expect_error(infer_on(&app, "mnist", &body).await, 400, "unknown output `logits`").await;
    assert_still_answers(&app).await;
}

#[tokio::test]
async fn a_body_that_is_not_json_of_the_protocol_is_refused_with_a_json_error() {
    let app = TestApp::spawn().await;
    let url = format!("{}/v2/models/mnist/infer", app.url);
    let post = |content_type: &'static str, body: &'static str| {
        app.client.post(&url).header("content-type", content_type).body(body).send()
    };
    expect_error(post("application/json", r#"{"inputs": [{"name": "#).await.unwrap(), 400, "EOF while parsing").await;
    expect_error(post("application/json", r#"{"id": "no inputs"}"#).await.unwrap(), 400, "missing field `inputs`")
        .await;
    let response = post("text/plain", r#"{"inputs": []}"#).await.unwrap();
    expect_error(response, 415, "cannot read an inference request from a `text/plain` body").await;
    let response = post("application/octet-stream", r#"{"inputs": []}"#).await.unwrap();
    expect_error(response, 415, "followed by binary data if Inference-Header-Content-Length says so").await;
    assert_still_answers(&app).await;
}

#[tokio::test]
async fn a_request_with_no_content_type_is_read_as_json_as_triton_clients_send_it() {
    let app = TestApp::spawn().await;
    let body = pixels_request(&["digit-4.png"]).to_string();
    let response = app.client.post(format!("{}/v2/models/mnist/infer", app.url)).body(body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: InferenceResponse = response.json().await.unwrap();
    assert_eq!(argmax(probabilities(&answer)), 4);
}

/// A body of the binary tensor data extension: `header` as JSON, then `binary`.
async fn infer_binary(app: &TestApp, header: &Value, binary: &[u8]) -> reqwest::Response {
    let json = header.to_string();
    let body = [json.as_bytes(), binary].concat();
    let post = app.client.post(format!("{}/v2/models/mnist/infer", app.url));
    post.header("Inference-Header-Content-Length", json.len()).body(body).send().await.unwrap()
}

/// A request whose one input has `binary_data_size` bytes after the JSON, and whose output is
/// asked for in binary.
fn binary_request(shape: Value, datatype: &str, binary_data_size: usize) -> Value {
    json!({
        "inputs": [{"name": "input", "shape": shape, "datatype": datatype,
                    "parameters": {"binary_data_size": binary_data_size}}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": true}}],
    })
}

/// Reads an answer with binary output: its JSON header, and the data of each output with a
/// `binary_data_size` after it, in order (FP32 as 4 little-endian bytes, BOOL as one).
async fn binary_answer(response: reqwest::Response) -> InferenceResponse {
    assert_eq!(response.status(), 200);
    let header: usize = response.headers()["inference-header-content-length"].to_str().unwrap().parse().unwrap();
    let body = response.bytes().await.unwrap();
    let mut answer: InferenceResponse = serde_json::from_slice(&body[..header]).unwrap();
    let mut rest = &body[header..];
    for output in answer.outputs.iter_mut().filter(|output| output.parameters.is_some()) {
        assert!(output.data.is_none(), "no JSON data beside the binary: {output:?}");
        let size = output.parameters.as_ref().unwrap().binary_data_size as usize;
        let (bytes, after) = rest.split_at(size);
        output.data = Some(match output.datatype.as_str() {
            "FP32" => OutputData::Numbers(
                bytes.chunks(4).map(|value| f32::from_le_bytes(value.try_into().unwrap())).collect(),
            ),
            "BOOL" => OutputData::Flags(bytes.iter().map(|&byte| byte != 0).collect()),
            other => panic!("datatype {other}"),
        });
        rest = after;
    }
    assert!(rest.is_empty(), "{} bytes after the last output", rest.len());
    answer
}

/// BYTES elements as the binary extension lays them out: each after its `u32` length.
fn serialized_bytes(elements: &[Vec<u8>]) -> Vec<u8> {
    elements.iter().flat_map(|element| [&(element.len() as u32).to_le_bytes()[..], element].concat()).collect()
}

#[tokio::test]
async fn binary_fp32_pixels_get_exactly_what_json_pixels_get() {
    let app = TestApp::spawn().await;
    let names = ["digit-5.png", "digit-9.png"];
    let pixels: Vec<u8> = names.iter().flat_map(|name| mnist_pixels(name)).flat_map(f32::to_le_bytes).collect();
    let response = infer_binary(&app, &binary_request(json!([2, 1, 28, 28]), "FP32", pixels.len()), &pixels).await;
    let binary = binary_answer(response).await;
    let json = infer(&app, &pixels_request(&names)).await;
    assert_close(probabilities(&binary), probabilities(&json));
    assert_eq!((binary.model_name.as_str(), binary.model_version.as_str()), ("mnist", json.model_version.as_str()));

    // The request's binary_data_output asks the same of every output; JSON data in, binary out.
    let mut body = pixels_request(&names);
    body["parameters"] = json!({"binary_data_output": true});
    let all_binary = binary_answer(infer_binary(&app, &body, &[]).await).await;
    assert_eq!(all_binary.outputs.len(), 3);
    assert_close(probabilities(&all_binary), probabilities(&json));
    let numbers = |answer: &InferenceResponse| output(answer, "domain_score").data.clone();
    let (binary_scores, json_scores) = (numbers(&all_binary).unwrap(), numbers(&json).unwrap());
    // Log-sum-exps near 14, where one f32 step is 1e-6: the threads' summing order shows.
    let pairs = binary_scores.numbers().unwrap().iter().zip(json_scores.numbers().unwrap());
    assert!(pairs.clone().all(|(left, right)| (left - right).abs() < 1e-4), "{:?}", pairs.collect::<Vec<_>>());
    assert_eq!(output(&all_binary, "in_domain").data, Some(OutputData::Flags(vec![true, true])));

    // An output's own binary_data wins over the request's: here only `in_domain` in JSON.
    body["outputs"] = json!([{"name": "probabilities"}, {"name": "in_domain", "parameters": {"binary_data": false}}]);
    let mixed = binary_answer(infer_binary(&app, &body, &[]).await).await;
    assert!(output(&mixed, "in_domain").parameters.is_none());
    assert_eq!(output(&mixed, "in_domain").data, Some(OutputData::Flags(vec![true, true])));
    assert_close(probabilities(&mixed), probabilities(&json));
}

/// Asserts two runs of the same pixels agree, up to libtorch's threads summing in another order.
fn assert_close(left: &[f32], right: &[f32]) {
    assert_eq!(left.len(), right.len());
    assert!(left.iter().zip(right).all(|(left, right)| (left - right).abs() < 1e-6), "{left:?}\n{right:?}");
}

#[tokio::test]
async fn binary_bytes_images_get_the_probabilities_predict_gives() {
    let app = TestApp::spawn().await;
    let names = ["digit-1.png", "photo-4-exif.jpg", "scan-3.jpg"];
    let images = serialized_bytes(&names.map(sample));
    let mut header = binary_request(json!([names.len()]), "BYTES", images.len());
    header["outputs"][0]["parameters"]["binary_data"] = json!(false);
    let response = infer_binary(&app, &header, &images).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("inference-header-content-length").is_none(), "a JSON answer, as asked");
    let answer: InferenceResponse = response.json().await.unwrap();
    assert_agrees_with_predict(&app, &answer, &names, 1e-5).await;
}

#[tokio::test]
async fn binary_data_that_disagrees_with_its_header_or_shape_is_refused() {
    let app = TestApp::spawn().await;
    let pixels: Vec<u8> = mnist_pixels("digit-3.png").into_iter().flat_map(f32::to_le_bytes).collect();
    let fp32 = binary_request(json!([1, 1, 28, 28]), "FP32", pixels.len());
    let response = infer_binary(&app, &fp32, &pixels[..pixels.len() - 1]).await;
    expect_error(response, 400, "`binary_data_size` of 3136 bytes, but 3135 follow the JSON header").await;
    let wrong_shape = binary_request(json!([2, 1, 28, 28]), "FP32", pixels.len());
    let response = infer_binary(&app, &wrong_shape, &pixels).await;
    expect_error(response, 400, "3136 bytes of binary data are not the shape's 1568 FP32 values").await;
    let mut both = fp32.clone();
    both["inputs"][0]["data"] = json!(vec![0.0; 784]);
    expect_error(infer_binary(&app, &both, &pixels).await, 400, "has both `data` and a `binary_data_size`").await;
    let trailing = pixels_request(&["digit-3.png"]);
    expect_error(infer_binary(&app, &trailing, b"extra").await, 400, "5 bytes follow the JSON header, but input").await;

    let image = sample("digit-3.png");
    let mut lying = serialized_bytes(std::slice::from_ref(&image));
    lying[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    let bytes = binary_request(json!([1]), "BYTES", lying.len());
    expect_error(infer_binary(&app, &bytes, &lying).await, 400, "element 0 says it has 4294967295 bytes").await;
    let two = serialized_bytes(&[image.clone(), image]);
    let one = binary_request(json!([1]), "BYTES", two.len());
    expect_error(infer_binary(&app, &one, &two).await, 400, "more elements than the shape's 1").await;

    let post = app.client.post(format!("{}/v2/models/mnist/infer", app.url));
    let response = post.header("Inference-Header-Content-Length", "99999").body("{}").send().await.unwrap();
    expect_error(response, 400, "Inference-Header-Content-Length is 99999 bytes, longer than the whole body's 2").await;
    let mut classification = pixels_request(&["digit-3.png"]);
    classification["outputs"] = json!([{"name": "probabilities", "parameters": {"classification": 3}}]);
    expect_error(infer_on(&app, "mnist", &classification).await, 400, "classification extension is not supported")
        .await;
    let mut shared = pixels_request(&["digit-3.png"]);
    shared["inputs"][0]["parameters"] = json!({"shared_memory_region": "input0"});
    expect_error(infer_on(&app, "mnist", &shared).await, 400, "shared-memory extension is not supported").await;
    assert_still_answers(&app).await;
}
