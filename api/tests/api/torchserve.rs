//! TorchServe's inference API, called as TorchServe's users call it: `curl -T` (a PUT of the
//! raw file), multipart parts named `data`, `/ping` and the describe route.

use std::process::Command;

use crate::helpers::{TestApp, expect_error, repository, sample};
use crate::operations::loading_app;

/// `curl -s -T FILE URL`, as TorchServe's documentation sends an image; the body and status.
/// curl runs off the test's runtime thread, which also serves the app.
async fn curl_upload(file: &str, url: &str) -> (serde_json::Value, u16) {
    let mut curl = Command::new("curl");
    curl.args(["-s", "--max-time", "60", "-w", "\n%{http_code}", "-T"])
        .arg(repository().join("samples").join(file))
        .arg(url);
    let output = tokio::task::spawn_blocking(move || curl.output()).await.unwrap().expect("curl is installed");
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}")), status.parse().unwrap())
}

/// The labels of TorchServe's answer, most probable first, and the probabilities.
fn ranked(answer: &serde_json::Value) -> (Vec<String>, Vec<f64>) {
    let map = answer.as_object().unwrap_or_else(|| panic!("a label → probability map: {answer}"));
    (map.keys().cloned().collect(), map.values().map(|value| value.as_f64().unwrap()).collect())
}

#[tokio::test]
async fn curl_t_gets_torchserve_s_top_five_for_each_model() {
    let app = TestApp::spawn().await;
    let (answer, status) = curl_upload("digit-7.png", &format!("{}/predictions/mnist", app.url)).await;
    assert_eq!(status, 200, "{answer}");
    let (labels, probabilities) = ranked(&answer);
    assert_eq!((labels.len(), labels[0].as_str()), (5, "7"), "{answer}");
    assert!(probabilities.windows(2).all(|pair| pair[0] >= pair[1]), "most probable first: {answer}");
    assert!(probabilities[0] > 0.9 && probabilities.iter().sum::<f64>() <= 1.0 + 1e-6, "{answer}");

    let (answer, status) = curl_upload("fashion-trouser.png", &format!("{}/predictions/fashion-mnist", app.url)).await;
    assert_eq!((status, ranked(&answer).0[0].as_str()), (200, "Trouser"), "{answer}");
}

#[tokio::test]
async fn data_parts_get_one_answer_each_and_a_version_must_be_the_one_served() {
    let app = TestApp::spawn().await;
    let form = ["digit-3.png", "digit-8.png"].iter().fold(reqwest::multipart::Form::new(), |form, name| {
        form.part("data", reqwest::multipart::Part::bytes(sample(name)).file_name(*name))
    });
    let response = app.client.post(format!("{}/predictions/mnist", app.url)).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let answers: Vec<serde_json::Value> = response.json().await.unwrap();
    let best: Vec<String> = answers.iter().map(|answer| ranked(answer).0[0].clone()).collect();
    assert_eq!(best, ["3", "8"]);

    let described: serde_json::Value =
        app.client.get(format!("{}/models/mnist", app.url)).send().await.unwrap().json().await.unwrap();
    let version = described[0]["modelVersion"].as_str().unwrap().to_owned();
    let (answer, status) = curl_upload("digit-2.png", &format!("{}/predictions/mnist/{version}", app.url)).await;
    assert_eq!((status, ranked(&answer).0[0].as_str()), (200, "2"), "{answer}");
    let wrong = app.client.put(format!("{}/predictions/mnist/0", app.url)).body(sample("digit-2.png")).send();
    expect_error(wrong.await.unwrap(), 404, &format!("it serves `{version}`")).await;
}

#[tokio::test]
async fn ping_and_describe_answer_in_torchserve_s_shapes() {
    let app = TestApp::spawn().await;
    let ping = app.client.get(format!("{}/ping", app.url)).send().await.unwrap();
    assert_eq!(ping.status(), 200);
    assert_eq!(ping.json::<serde_json::Value>().await.unwrap(), serde_json::json!({"status": "Healthy"}));

    let described: serde_json::Value =
        app.client.get(format!("{}/models/fashion-mnist", app.url)).send().await.unwrap().json().await.unwrap();
    let model = &described[0];
    assert_eq!((model["modelName"].as_str(), model["runtime"].as_str()), (Some("fashion-mnist"), Some("libtorch")));
    assert_eq!(model["modelVersion"].as_str().unwrap().len(), 12);
    assert!(model["modelUrl"].as_str().unwrap().ends_with("pretrained-model/fashion-mnist"), "{model}");
    assert_eq!(model["workers"][0]["status"], "READY");
    assert!(model["batchSize"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn bad_input_and_unknown_models_get_the_usual_json_errors() {
    let app = TestApp::spawn().await;
    let empty = app.client.put(format!("{}/predictions/mnist", app.url)).body(Vec::new()).send().await.unwrap();
    expect_error(empty, 400, "the image is empty").await;
    let text = app.client.put(format!("{}/predictions/mnist", app.url)).body("not an image").send().await.unwrap();
    expect_error(text, 400, "not a supported image").await;
    let unknown = app.client.put(format!("{}/predictions/resnet", app.url)).body(sample("digit-1.png")).send();
    expect_error(unknown.await.unwrap(), 404, "this server serves mnist, fashion-mnist").await;
    let unknown = app.client.get(format!("{}/models/resnet", app.url)).send().await.unwrap();
    expect_error(unknown, 404, "no model `resnet`").await;
}

#[tokio::test]
async fn ping_is_unhealthy_while_the_models_load() {
    let (app, _bucket) = loading_app(|_| {}).await;
    let ping = app.client.get(format!("{}/ping", app.url)).send().await.unwrap();
    assert_eq!(ping.status(), 503);
    assert_eq!(ping.json::<serde_json::Value>().await.unwrap(), serde_json::json!({"status": "Unhealthy"}));
}
