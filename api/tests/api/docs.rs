//! What the service says about itself: metadata, labels, Swagger UI, the OpenAPI spec, CORS.

use max_mnist_api::types::{LabelsResponse, ModelMetadataResponse};
use max_mnist_config::metadata::{API_TITLE, API_VERSION};
use sha2::{Digest, Sha512};

use crate::helpers::{TestApp, committed_bucket};

#[tokio::test]
async fn metadata_describes_the_verified_weights() {
    let app = TestApp::spawn().await;
    let metadata: ModelMetadataResponse =
        app.client.get(format!("{}/model/metadata", app.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(metadata.id, "mnist");
    assert_eq!((metadata.dataset.as_deref(), metadata.name.as_str()), (Some("MNIST"), "MNIST classifier"));
    assert_eq!(metadata.preprocessing, "digit");
    assert_eq!(metadata.input_shape, [1, 28, 28]);
    assert_eq!(metadata.model_type, "Image Classification");
    assert_eq!(metadata.license, "Apache-2.0");
    // The committed weights: the default recipe's best epoch, at least 99.4% on MNIST's test set.
    assert!(metadata.test_accuracy.unwrap() >= 0.994, "{metadata:?}");
    let recipe = metadata.recipe.as_ref().unwrap();
    let best_epoch = metadata.best_epoch.unwrap();
    assert!(best_epoch >= 1 && best_epoch <= recipe.epochs, "{metadata:?}");
    assert_eq!(recipe.validation_split, 0.1);
    assert!(recipe.augmentation.starts_with("random affine"), "{metadata:?}");
    assert_eq!(metadata.weights_sha256.as_ref().unwrap().len(), 64);
    assert_eq!(
        (metadata.normalisation.mean.as_slice(), metadata.normalisation.std.as_slice()),
        (&[0.1307][..], &[0.3081][..])
    );
    let sums = std::fs::read_to_string(committed_bucket("mnist").join("sha512sums.txt")).unwrap();
    assert!(sums.contains(&format!("{}  assets/mnist-classifier.safetensors", metadata.weights_sha512)), "{sums}");
    assert!(metadata.weights_sha512.starts_with(&metadata.version));
    assert_eq!(metadata.input_size, 28);
}

#[tokio::test]
async fn metadata_hash_matches_the_bytes_on_disk() {
    let app = TestApp::spawn().await;
    let metadata: ModelMetadataResponse =
        app.client.get(format!("{}/model/metadata", app.url)).send().await.unwrap().json().await.unwrap();
    let archive = std::fs::read(committed_bucket("mnist").join("mnist-classifier.tar.gz")).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive.as_slice()));
    let mut entry = tar.entries().unwrap().next().unwrap().unwrap();
    let mut weights = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut weights).unwrap();
    assert_eq!(hex::encode(Sha512::digest(&weights)), metadata.weights_sha512);
}

#[tokio::test]
async fn labels_are_the_ten_digits() {
    let app = TestApp::spawn().await;
    let labels: LabelsResponse =
        app.client.get(format!("{}/model/labels", app.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(labels.count, 10);
    let names: Vec<&str> = labels.labels.iter().map(|label| label.name.as_str()).collect();
    assert_eq!(names, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    assert_eq!(labels.labels[3].id, "3");
}

#[tokio::test]
async fn swagger_ui_and_spec_document_every_route_and_error() {
    let app = TestApp::spawn().await;
    let page = app.client.get(&app.url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui"));

    let spec: serde_json::Value =
        app.client.get(format!("{}/swagger.json", app.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(spec["info"]["title"], API_TITLE);
    assert_eq!(spec["info"]["version"], API_VERSION);
    for path in ["/model/metadata", "/model/labels", "/model/predict"] {
        assert!(spec["paths"][path].is_object(), "{path} is documented");
    }
    let predict = &spec["paths"]["/model/predict"]["post"];
    for status in ["200", "400", "413", "500", "503"] {
        assert!(predict["responses"][status].is_object(), "predict documents {status}");
    }
    assert!(predict["requestBody"]["content"]["multipart/form-data"].is_object());
    assert!(predict["responses"]["200"]["content"]["application/json; charset=utf-8"]["schema"].is_object());
}

#[tokio::test]
async fn cors_headers_only_when_enabled() {
    let origin = "https://notebook.example";
    let plain = TestApp::spawn().await;
    let response =
        plain.client.get(format!("{}/model/labels", plain.url)).header("origin", origin).send().await.unwrap();
    assert!(response.headers().get("access-control-allow-origin").is_none());

    let cors = TestApp::spawn_with(|settings| settings.cors_enable = true).await;
    let response = cors.client.get(format!("{}/model/labels", cors.url)).header("origin", origin).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("access-control-allow-origin").is_some());
}

#[tokio::test]
async fn spec_documents_the_open_inference_protocol_routes_and_request() {
    let app = TestApp::spawn().await;
    let spec: serde_json::Value =
        app.client.get(format!("{}/swagger.json", app.url)).send().await.unwrap().json().await.unwrap();
    for path in [
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{model}",
        "/v2/models/{model}/ready",
        "/v2/models/{model}/infer",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} is documented");
    }
    let infer = &spec["paths"]["/v2/models/{model}/infer"]["post"];
    for status in ["200", "400", "404", "413", "503"] {
        assert!(infer["responses"][status].is_object(), "infer documents {status}");
    }
    let reference = infer["requestBody"]["content"]["application/json; charset=utf-8"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("the infer body has a schema: {}", infer["requestBody"]));
    let name = reference.rsplit('/').next().unwrap();
    let request = &spec["components"]["schemas"][name];
    for field in ["id", "inputs", "outputs"] {
        assert!(request["properties"][field].is_object(), "{name} has `{field}`: {request}");
    }
    assert_eq!(request["required"], serde_json::json!(["inputs"]), "{request}");
    let input = &spec["components"]["schemas"]["RequestInput"];
    for field in ["name", "shape", "datatype", "data"] {
        assert!(input["properties"][field].is_object(), "RequestInput has `{field}`: {input}");
    }
}
