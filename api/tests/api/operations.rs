//! What operators rely on: the health probes (also while the model is still loading), the
//! Prometheus metrics, request ids, the optional API key and CORS with it.
//!
//! The metrics recorder is global to the process and shared by every server the tests start,
//! so metric assertions read a value before and after, or only check that a series exists.

use std::collections::HashMap;

use base64::Engine;
use max_mnist_config::settings::ServerSettings;
use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::helpers::{RawResponse, TestApp, answer, connect, expect_error, model, request_head, sample, with_key};

/// The API key of the tests that set one.
const KEY: &str = "s3cret";

/// `GET path` on `app`, with the API key when `key` is given.
pub(crate) async fn get(app: &TestApp, path: &str, key: Option<&str>) -> reqwest::Response {
    with_key(app.client.get(format!("{}{path}", app.url)), key).send().await.unwrap()
}

/// `POST /model/predict` of a sample as a multipart form, with the API key when `key` is given.
async fn predict(app: &TestApp, key: Option<&str>) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(sample("digit-7.png")).file_name("digit-7.png");
    let request = app
        .client
        .post(format!("{}/model/predict", app.url))
        .multipart(reqwest::multipart::Form::new().part("image", part));
    with_key(request, key).send().await.unwrap()
}

/// `POST /v2/models/mnist/infer` of a sample as a BYTES tensor, with the API key when `key` is given.
async fn infer(app: &TestApp, key: Option<&str>) -> reqwest::Response {
    let image = base64::engine::general_purpose::STANDARD.encode(sample("digit-7.png"));
    let body = json!({"inputs": [{"name": "images", "shape": [1], "datatype": "BYTES", "data": [image]}]});
    with_key(app.client.post(format!("{}/v2/models/mnist/infer", app.url)).json(&body), key).send().await.unwrap()
}

/// Checks that `response` is the 401 asking for a bearer token.
async fn expect_unauthorized(response: reqwest::Response, what: &str) {
    let headers = expect_error(response, 401, "the API key").await.headers;
    assert_eq!(headers.get("www-authenticate").and_then(|value| value.to_str().ok()), Some("Bearer"), "{what}");
}

/// Sends `GET path` over a plain TCP connection, exactly as written (reqwest would normalise
/// the path), and returns the answer.
async fn raw_get(app: &TestApp, path: &str) -> RawResponse {
    let mut connection = BufReader::new(connect(app).await);
    let head = request_head("GET", path, "Connection: close\r\n");
    connection.get_mut().write_all(head.as_bytes()).await.unwrap();
    answer(&mut connection).await
}

// Health.

/// A model bucket that accepts connections and never answers, so that a server fetching its
/// weights from it stays loading; it stops when dropped.
pub(crate) struct StalledBucket {
    pub(crate) url: String,
    accepting: tokio::task::JoinHandle<()>,
}

impl StalledBucket {
    pub(crate) async fn start() -> StalledBucket {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepting = tokio::spawn(async move {
            let mut connections = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                connections.push(connection);
            }
        });
        StalledBucket { url, accepting }
    }
}

impl Drop for StalledBucket {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// A server whose weights' download never completes, and the bucket keeping it so.
pub(crate) async fn loading_app(configure: impl FnOnce(&mut ServerSettings)) -> (TestApp, StalledBucket) {
    let bucket = StalledBucket::start().await;
    let app = TestApp::spawn_loading(|settings| {
        settings.models = vec![model("mnist", bucket.url.clone())];
        settings.download_retries = 0;
        settings.download_timeout_secs = 3600;
        configure(settings);
    })
    .await;
    (app, bucket)
}

#[tokio::test]
async fn liveness_and_readiness_answer_200_once_the_model_is_loaded() {
    let app = TestApp::spawn().await;
    for (path, body) in [("/health/live", json!({"status": "live"})), ("/health/ready", json!({"status": "ready"}))] {
        let response = get(&app, path, None).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.json::<Value>().await.unwrap(), body, "{path}");
    }
}

#[tokio::test]
async fn while_the_model_loads_liveness_and_metrics_answer_200() {
    let (app, _bucket) = loading_app(|_| {}).await;
    let live = get(&app, "/health/live", None).await;
    assert_eq!(live.status(), 200);
    assert_eq!(live.json::<Value>().await.unwrap(), json!({"status": "live"}));
    assert_eq!(get(&app, "/v2/health/live", None).await.status(), 200);
    assert_eq!(get(&app, "/metrics", None).await.status(), 200);
}

#[tokio::test]
async fn while_the_model_loads_readiness_says_starting_with_503() {
    let (app, _bucket) = loading_app(|_| {}).await;
    for (path, body) in [
        ("/health/ready", json!({"status": "starting"})),
        ("/v2/health/ready", json!({"ready": false})),
        ("/v2/models/mnist/ready", json!({"name": "mnist", "ready": false})),
    ] {
        let response = get(&app, path, None).await;
        assert_eq!(response.status(), 503, "{path}");
        assert_eq!(response.json::<Value>().await.unwrap(), body, "{path}");
    }
}

#[tokio::test]
async fn while_the_model_loads_model_routes_get_503_with_retry_after() {
    let (app, _bucket) = loading_app(|_| {}).await;
    for (what, response) in [
        ("/model/predict", predict(&app, None).await),
        ("/model/metadata", get(&app, "/model/metadata", None).await),
        ("/model/labels", get(&app, "/model/labels", None).await),
        ("/v2/models/mnist", get(&app, "/v2/models/mnist", None).await),
        ("/v2/models/mnist/infer", infer(&app, None).await),
    ] {
        let headers = expect_error(response, 503, "the model `mnist` is still loading").await.headers;
        let retry_after = headers.get("retry-after").and_then(|value| value.to_str().ok());
        assert!(retry_after.and_then(|seconds| seconds.parse::<u32>().ok()).is_some(), "{what}: {retry_after:?}");
    }
}

// Metrics.

/// One sample line of Prometheus' text format: its name, labels and value.
pub(crate) fn parse_sample(line: &str) -> Option<(&str, HashMap<&str, &str>, f64)> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let Some((name, labels)) = series.split_once('{') else { return Some((series, HashMap::new(), value)) };
    let mut parsed = HashMap::new();
    let mut rest = labels.strip_suffix('}')?;
    while let Some((key, after)) = rest.split_once("=\"") {
        // Label values here (routes, methods, statuses, hex digests) hold no quotes.
        let (value, after) = after.split_once('"')?;
        parsed.insert(key.trim_start_matches(','), value);
        rest = after;
    }
    Some((name, parsed, value))
}

/// The value of the series `name` with exactly `labels` in `text`, when it is there.
pub(crate) fn series_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter_map(parse_sample).find_map(|(found, found_labels, value)| {
        let same_labels = found_labels.len() == labels.len()
            && labels.iter().all(|(key, wanted)| found_labels.get(key) == Some(wanted));
        (found == name && same_labels).then_some(value)
    })
}

/// The rendering of `/metrics`.
pub(crate) async fn metrics(app: &TestApp) -> String {
    let response = get(app, "/metrics", None).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The count of requests answered with `route`, `method` and `status` (0 before the first).
fn requests(text: &str, route: &str, method: &str, status: &str) -> f64 {
    let labels = [("route", route), ("method", method), ("status", status)];
    series_value(text, "max_mnist_http_requests_total", &labels).unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_in_flight_gauge() {
    let app = TestApp::spawn().await;
    let response = get(&app, "/metrics", None).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.unwrap();
    assert!(text.contains("# TYPE max_mnist_http_requests_in_flight gauge"), "{text}");
    // This very request is in flight while the page is rendered.
    let in_flight = series_value(&text, "max_mnist_http_requests_in_flight", &[]);
    assert!(in_flight.is_some_and(|requests| requests >= 1.0), "{in_flight:?}");
    assert!(
        text.lines().filter(|line| !line.starts_with('#') && !line.is_empty()).all(|line| parse_sample(line).is_some())
    );
}

#[tokio::test]
async fn requests_are_counted_by_route_method_and_status() {
    let app = TestApp::spawn().await;
    let before = metrics(&app).await;
    for _ in 0..2 {
        assert_eq!(predict(&app, None).await.status(), 200);
    }
    let text = app.predict_multipart("image", "notes.txt", b"just text".to_vec()).await;
    assert_eq!(text.status(), 400);
    let after = metrics(&app).await;
    for (status, sent) in [("200", 2.0), ("400", 1.0)] {
        let (before, after) =
            (requests(&before, "/model/predict", "POST", status), requests(&after, "/model/predict", "POST", status));
        assert!(after - before >= sent, "status {status}: {before} then {after}, {sent} sent");
    }
}

#[tokio::test]
async fn answers_from_limits_and_the_key_are_counted_under_the_documented_route() {
    let app = keyed_app(|settings| settings.max_body_bytes = 1024).await;
    let before = metrics(&app).await;
    assert_eq!(predict(&app, None).await.status(), 401);
    let too_large = with_key(app.client.post(format!("{}/model/predict", app.url)), Some(KEY)).body(vec![0; 4096]);
    assert_eq!(too_large.send().await.unwrap().status(), 413);
    assert_eq!(get(&app, "/v2/models/mnist", None).await.status(), 401);
    let after = metrics(&app).await;
    for (route, method, status) in
        [("/model/predict", "POST", "401"), ("/model/predict", "POST", "413"), ("/v2/models/{model}", "GET", "401")]
    {
        let (before, after) = (requests(&before, route, method, status), requests(&after, route, method, status));
        assert!(after - before >= 1.0, "{route} {status}: {before} then {after}");
    }
}

#[tokio::test]
async fn request_queue_decode_and_inference_times_and_batch_sizes_are_histograms() {
    let app = TestApp::spawn().await;
    assert_eq!(predict(&app, None).await.status(), 200);
    let text = metrics(&app).await;
    for histogram in [
        "max_mnist_http_request_duration_seconds",
        "max_mnist_queue_seconds",
        "max_mnist_decode_seconds",
        "max_mnist_inference_seconds",
        "max_mnist_batch_size",
    ] {
        assert!(text.contains(&format!("# TYPE {histogram} histogram")), "{histogram}: {text}");
        for suffix in ["_bucket", "_count"] {
            let series = format!("{histogram}{suffix}");
            let found = text.lines().filter_map(parse_sample).any(|(name, _, _)| name == series);
            assert!(found, "no {series} in {text}");
        }
    }
}

#[tokio::test]
async fn model_info_names_the_version_and_sha512_that_metadata_reports() {
    let app = TestApp::spawn().await;
    let metadata: Value = get(&app, "/model/metadata", None).await.json().await.unwrap();
    let (version, sha512) = (metadata["version"].as_str().unwrap(), metadata["weights_sha512"].as_str().unwrap());
    assert_eq!(sha512.len(), 128, "{sha512}");
    let text = metrics(&app).await;
    let labels = [("model", "mnist"), ("version", version), ("sha512", sha512)];
    let info = series_value(&text, "max_mnist_model_info", &labels);
    assert_eq!(info, Some(1.0), "no max_mnist_model_info{{version=\"{version}\",sha512=\"{sha512}\"}} 1 in {text}");
}

#[tokio::test]
async fn unknown_paths_are_counted_as_unmatched_without_their_path() {
    let app = TestApp::spawn().await;
    let random = format!("r{}", uuid::Uuid::new_v4().simple());
    let before = requests(&metrics(&app).await, "unmatched", "GET", "404");
    assert_eq!(get(&app, &format!("/no/such/route/{random}"), None).await.status(), 404);
    assert_eq!(get(&app, &format!("/model/{random}"), None).await.status(), 404);
    let text = metrics(&app).await;
    let after = requests(&text, "unmatched", "GET", "404");
    assert!(after - before >= 1.0, "{before} then {after}");
    assert!(!text.contains(&random), "the random path {random} became a series: {text}");
}

// Request ids.

/// The request id of `response`, checked to be a UUID.
fn uuid_request_id(response: &reqwest::Response) -> uuid::Uuid {
    let id = response.headers().get("x-request-id").expect("an x-request-id header").to_str().unwrap();
    uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("`{id}` is not a UUID"))
}

#[tokio::test]
async fn every_response_carries_a_uuid_request_id() {
    let app = TestApp::spawn().await;
    let ok = predict(&app, None).await;
    assert_eq!(ok.status(), 200);
    uuid_request_id(&ok);
    let not_found = get(&app, "/no/such/path", None).await;
    assert_eq!(not_found.status(), 404);
    uuid_request_id(&not_found);
    let bad = app.predict_multipart("image", "notes.txt", b"just text".to_vec()).await;
    assert_eq!(bad.status(), 400);
    uuid_request_id(&bad);
}

#[tokio::test]
async fn each_request_gets_its_own_id() {
    let app = TestApp::spawn().await;
    let first = uuid_request_id(&get(&app, "/health/live", None).await);
    let second = uuid_request_id(&get(&app, "/health/live", None).await);
    assert_ne!(first, second);
}

#[tokio::test]
async fn a_sane_client_request_id_is_echoed() {
    let app = TestApp::spawn().await;
    let id = "abc-123_XYZ.7:1";
    let response = app.client.get(format!("{}/health/live", app.url)).header("x-request-id", id).send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], id);
}

#[tokio::test]
async fn an_unsafe_client_request_id_is_replaced_by_a_uuid() {
    let app = TestApp::spawn().await;
    for id in ["a".repeat(200), "abc def".to_owned(), "abc\"}{injected=1".to_owned(), String::new()] {
        let response =
            app.client.get(format!("{}/health/live", app.url)).header("x-request-id", &id).send().await.unwrap();
        assert_ne!(response.headers()["x-request-id"], id.as_str());
        uuid_request_id(&response);
    }
}

// The API key.

/// A server requiring the key, with `configure` applied too.
async fn keyed_app(configure: impl FnOnce(&mut ServerSettings)) -> TestApp {
    TestApp::spawn_with(|settings| {
        settings.api_key = Some(KEY.parse().unwrap());
        configure(settings);
    })
    .await
}

#[tokio::test]
async fn without_an_api_key_configured_model_routes_need_no_header() {
    let app = TestApp::spawn().await;
    assert_eq!(predict(&app, None).await.status(), 200);
    assert_eq!(get(&app, "/model/metadata", None).await.status(), 200);
    assert_eq!(infer(&app, None).await.status(), 200);
}

#[tokio::test]
async fn with_a_key_model_routes_without_it_get_401_asking_for_a_bearer_token() {
    let app = keyed_app(|_| {}).await;
    expect_unauthorized(predict(&app, None).await, "/model/predict").await;
    for path in ["/model/metadata", "/model/labels", "/v2", "/v2/models/mnist"] {
        expect_unauthorized(get(&app, path, None).await, path).await;
    }
    expect_unauthorized(infer(&app, None).await, "/v2/models/mnist/infer").await;
}

#[tokio::test]
async fn with_a_key_a_wrong_key_gets_401() {
    let app = keyed_app(|_| {}).await;
    for wrong in ["s3cre", "s3cret2", "S3CRET", "x"] {
        expect_unauthorized(predict(&app, Some(wrong)).await, wrong).await;
        expect_unauthorized(get(&app, "/model/metadata", Some(wrong)).await, wrong).await;
    }
    let basic = app.client.get(format!("{}/model/metadata", app.url)).basic_auth("user", Some(KEY)).send().await;
    expect_unauthorized(basic.unwrap(), "Basic auth with the key as password").await;
}

#[tokio::test]
async fn with_the_right_key_model_routes_answer() {
    let app = keyed_app(|_| {}).await;
    let response = predict(&app, Some(KEY)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["predictions"][0]["prediction"], 7);
    for path in ["/model/metadata", "/model/labels", "/v2", "/v2/models/mnist", "/v2/models/mnist/ready"] {
        assert_eq!(get(&app, path, Some(KEY)).await.status(), 200, "{path}");
    }
    assert_eq!(infer(&app, Some(KEY)).await.status(), 200);
}

/// RFC 9110 §11.1: the authentication scheme is a case-insensitive token.
#[tokio::test]
async fn with_a_key_the_bearer_scheme_is_case_insensitive() {
    let app = keyed_app(|_| {}).await;
    for scheme in ["Bearer", "bearer", "BEARER", "BeArEr"] {
        let response = app
            .client
            .get(format!("{}/model/metadata", app.url))
            .header("authorization", format!("{scheme} {KEY}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
    }
}

#[tokio::test]
async fn with_a_key_docs_page_health_and_metrics_stay_open_by_default() {
    let app = keyed_app(|_| {}).await;
    for path in [
        "/",
        "/swagger.json",
        "/app",
        "/app/",
        "/app/app.js",
        "/health/live",
        "/health/ready",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/mnist/ready",
        "/metrics",
    ] {
        assert_eq!(get(&app, path, None).await.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn auth_health_closes_the_health_probes_only() {
    let app = keyed_app(|settings| settings.auth_health = true).await;
    for path in ["/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready", "/v2/models/mnist/ready"] {
        expect_unauthorized(get(&app, path, None).await, path).await;
        assert_eq!(get(&app, path, Some(KEY)).await.status(), 200, "{path}");
    }
    assert_eq!(get(&app, "/metrics", None).await.status(), 200);
}

#[tokio::test]
async fn auth_metrics_closes_metrics_only() {
    let app = keyed_app(|settings| settings.auth_metrics = true).await;
    expect_unauthorized(get(&app, "/metrics", None).await, "/metrics").await;
    assert_eq!(get(&app, "/metrics", Some(KEY)).await.status(), 200);
    assert_eq!(get(&app, "/health/ready", None).await.status(), 200);
}

#[tokio::test]
async fn with_a_key_unknown_paths_get_401_without_it_and_404_with_it() {
    let app = keyed_app(|_| {}).await;
    for (path, fragment) in
        [("/no/such/path", "no such route"), ("/health", "no such route"), ("/v2/models/other", "no model `other`")]
    {
        expect_unauthorized(get(&app, path, None).await, path).await;
        expect_error(get(&app, path, Some(KEY)).await, 404, fragment).await;
    }
}

#[tokio::test]
async fn with_a_key_path_tricks_never_reach_a_model_route() {
    let app = keyed_app(|_| {}).await;
    for path in [
        "/model//predict",
        "/model//metadata",
        "//model/metadata",
        "/model/./metadata",
        "/app/../model/metadata",
        "/health/../model/metadata",
        "/health/live/../../model/metadata",
        "/swagger.json/../model/metadata",
        "/app/%2e%2e/model/metadata",
        "/%6Dodel/metadata",
        "/MODEL/metadata",
        "/model/metadata/",
        "/model/metadata;/health/live",
    ] {
        let response = raw_get(&app, path).await;
        let text =
            format!("{} {:?} {}", response.status_line, response.headers, String::from_utf8_lossy(&response.body));
        assert_ne!(response.status, 200, "{path} answered without the key: {text}");
        assert!(!text.contains("weights_sha512"), "{path} leaked the metadata: {text}");
        assert_eq!(response.status, 401, "{path} is not an open path, so it needs the key: {text}");
    }
}

// CORS.

#[tokio::test]
async fn with_a_key_a_cors_preflight_needs_no_key() {
    let app = keyed_app(|settings| settings.cors_enable = true).await;
    let origin = "https://digits.example";
    let response = app
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/model/predict", app.url))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(headers.get("access-control-allow-origin").map(|value| value.to_str().unwrap()), Some(origin));
    let allowed = headers.get("access-control-allow-headers").map(|value| value.to_str().unwrap().to_ascii_lowercase());
    assert!(allowed.as_deref().is_some_and(|allowed| allowed.contains("authorization")), "{allowed:?}");
}

#[tokio::test]
async fn with_a_key_cross_origin_answers_carry_the_allow_origin_header() {
    let app = keyed_app(|settings| settings.cors_enable = true).await;
    let origin = "https://digits.example";
    let metadata = |key: Option<&str>| {
        with_key(app.client.get(format!("{}/model/metadata", app.url)).header("origin", origin), key).send()
    };
    let refused = metadata(None).await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers().get("access-control-allow-origin").map(|value| value.to_str().unwrap()), Some(origin));
    let answered = metadata(Some(KEY)).await.unwrap();
    assert_eq!(answered.status(), 200);
    assert_eq!(
        answered.headers().get("access-control-allow-origin").map(|value| value.to_str().unwrap()),
        Some(origin)
    );
}
