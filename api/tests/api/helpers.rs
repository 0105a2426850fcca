//! What the API tests share: the application started the way `main` does, on 127.0.0.1 with a
//! free port, serving both committed models (fetched from their buckets in the repository into
//! a scratch assets directory) with settings that read no environment variable; the check that a response is the JSON error body; and HTTP/1.1 spoken by hand
//! over a raw socket, where reqwest cannot misbehave or would normalise the request.

use std::path::{Path, PathBuf};
use std::time::Duration;

use max_mnist_api::Application;
use max_mnist_api::error::ErrorBody;
use max_mnist_api::types::{PredictResponse, PredictionBody};
use max_mnist_config::settings::{ModelSpec, ServerSettings};
use reqwest::header::HeaderMap;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Longest a test waits for an answer on a raw connection before it fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// The repository root, where `samples/` and `pretrained-model/` live.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The committed models, in the order `make run` serves them: `mnist` (the default), then
/// `fashion-mnist`.
pub const COMMITTED_MODELS: [&str; 2] = ["mnist", "fashion-mnist"];

/// A committed model's bucket in the repository.
pub fn committed_bucket(name: &str) -> PathBuf {
    repository().join("pretrained-model").join(name)
}

/// `name` served from `bucket`.
pub fn model(name: &str, bucket: impl Into<String>) -> ModelSpec {
    ModelSpec { name: name.to_owned(), bucket: bucket.into() }
}

/// The bytes of a committed sample image.
pub fn sample(name: &str) -> Vec<u8> {
    std::fs::read(repository().join("samples").join(name)).unwrap()
}

/// A running server; it stops when dropped.
pub struct TestApp {
    pub url: String,
    /// The management API's `http://HOST:PORT`, when it is on.
    pub management_url: Option<String>,
    /// The folder of verified model files.
    pub assets: PathBuf,
    pub client: reqwest::Client,
    /// The API key the server requires, if any; sent when polling readiness.
    api_key: Option<String>,
    _assets: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

impl TestApp {
    /// A server with the default settings.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    /// A server with the default settings as changed by `configure`, once it is ready.
    pub async fn spawn_with(configure: impl FnOnce(&mut ServerSettings)) -> TestApp {
        let (app, running) = TestApp::start(configure).await;
        app.wait_until_ready(running).await;
        app
    }

    /// A server with the default settings as changed by `configure`, returned as soon as its
    /// socket is bound, while it may still be fetching and loading the model (make `configure`
    /// point it at a bucket that never answers to keep it there).
    pub async fn spawn_loading(configure: impl FnOnce(&mut ServerSettings)) -> TestApp {
        TestApp::start(configure).await.0
    }

    /// Builds the server and starts serving; returns it with the task running it.
    async fn start(
        configure: impl FnOnce(&mut ServerSettings),
    ) -> (TestApp, tokio::task::JoinHandle<Result<(), max_mnist_api::StartupError>>) {
        let assets = tempfile::tempdir().unwrap();
        let mut settings = ServerSettings::defaults();
        settings.host = "127.0.0.1".into();
        settings.port = 0;
        settings.models =
            COMMITTED_MODELS.iter().map(|name| model(name, committed_bucket(name).display().to_string())).collect();
        settings.assets_dir = assets.path().to_owned();
        configure(&mut settings);
        let api_key = settings.api_key.as_ref().map(|key| key.expose().to_owned());
        let application = Application::build(&settings).await.expect("the server starts");
        let url = format!("http://{}", application.address());
        let management_url = application.management_address().map(|address| format!("http://{address}"));
        let assets_dir = settings.assets_dir.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(application.run_until(async move {
            let _ = stopped.await;
        }));
        let app = TestApp {
            url,
            management_url,
            assets: assets_dir,
            client: reqwest::Client::new(),
            api_key,
            _assets: assets,
            _stop: stop,
        };
        (app, running)
    }

    /// Polls `/health/ready` (with the API key, if any) until it says ready; panics if the
    /// server stops first (the model could not be loaded) or takes over a minute.
    async fn wait_until_ready(&self, running: tokio::task::JoinHandle<Result<(), max_mnist_api::StartupError>>) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if running.is_finished() {
                panic!("the server stopped while starting: {:?}", running.await);
            }
            let ready = self.client.get(format!("{}/health/ready", self.url));
            let ready = with_key(ready, self.api_key.as_deref()).send().await;
            if ready.is_ok_and(|response| response.status() == 200) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the server was not ready within a minute");
    }

    /// POSTs `bytes` as the multipart field `field` of `/model/predict`.
    pub async fn predict_multipart(&self, field: &str, file_name: &str, bytes: Vec<u8>) -> reqwest::Response {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned());
        self.predict_form(reqwest::multipart::Form::new().part(field.to_owned(), part)).await
    }

    /// POSTs `form` to `/model/predict`.
    pub async fn predict_form(&self, form: reqwest::multipart::Form) -> reqwest::Response {
        self.client.post(format!("{}/model/predict", self.url)).multipart(form).send().await.unwrap()
    }

    /// POSTs `body` to `/model/predict` with `content_type` (no `Content-Type` when `None`).
    pub async fn predict_body(&self, content_type: Option<&str>, body: impl Into<reqwest::Body>) -> reqwest::Response {
        let mut request = self.client.post(format!("{}/model/predict", self.url)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.unwrap()
    }

    /// Classifies a committed sample and returns the predicted digit and its probability.
    pub async fn predict_sample(&self, name: &str) -> (u32, f32) {
        let prediction = self.prediction_of(name).await;
        (prediction.prediction, prediction.probability)
    }

    /// Classifies a committed sample and returns the whole of its one prediction.
    pub async fn prediction_of(&self, name: &str) -> PredictionBody {
        let response = self.predict_multipart("image", name, sample(name)).await;
        assert_eq!(response.status(), 200, "{name}");
        let body: PredictResponse = response.json().await.unwrap();
        assert_eq!(body.status, "ok", "{name}");
        assert_eq!(body.predictions.len(), 1, "{name}");
        body.predictions.into_iter().next().unwrap()
    }
}

/// `request` with the API key as a bearer token when `key` is given.
pub fn with_key(request: reqwest::RequestBuilder, key: Option<&str>) -> reqwest::RequestBuilder {
    match key {
        Some(key) => request.bearer_auth(key),
        None => request,
    }
}

// Errors.

/// What an error response carried, for the checks a test adds.
pub struct Refusal {
    pub headers: HeaderMap,
    pub body: ErrorBody,
}

/// Checks that `response` has `status`, a JSON content type and the JSON error body (see
/// [`check_error_body`]) mentioning `fragment`; failure messages name its URL.
pub async fn expect_error(response: reqwest::Response, status: u16, fragment: &str) -> Refusal {
    let url = response.url().clone();
    let headers = response.headers().clone();
    let answered = response.status().as_u16();
    let bytes = response.bytes().await.unwrap_or_else(|error| panic!("{url}: the body did not arrive: {error}"));
    let content_type = headers.get("content-type").map(|value| value.to_str().unwrap());
    let body = check_error_response(&url, answered, content_type, &bytes, status, fragment);
    Refusal { headers, body }
}

/// The checks of [`expect_error`] and [`RawResponse::expect_error`] on a response's parts;
/// `what` names the response in failure messages.
fn check_error_response(
    what: &dyn std::fmt::Display,
    answered: u16,
    content_type: Option<&str>,
    bytes: &[u8],
    status: u16,
    fragment: &str,
) -> ErrorBody {
    let text = String::from_utf8_lossy(bytes);
    assert_eq!(answered, status, "{what}: expected {status} mentioning `{fragment}`; the body: {text:?}");
    let json = content_type.is_some_and(|value| value.starts_with("application/json"));
    assert!(json, "{what}: not JSON but {content_type:?}; the body: {text:?}");
    let body: ErrorBody = serde_json::from_slice(bytes)
        .unwrap_or_else(|error| panic!("{what}: not a JSON error body ({error}): {text:?}"));
    check_error_body(&body, fragment);
    body
}

/// Checks the error body: `status` is `error`, the message is there twice (`message` for MAX
/// clients, `error` for Open Inference Protocol clients), not empty, and mentions `fragment`.
pub fn check_error_body(body: &ErrorBody, fragment: &str) {
    assert_eq!(body.status, "error", "{body:?}");
    assert_eq!(body.message, body.error);
    assert!(!body.message.is_empty(), "{body:?}");
    assert!(body.message.contains(fragment), "`{}` does not mention `{fragment}`", body.message);
}

// Raw HTTP/1.1.

/// The server's `host:port`.
pub fn address(app: &TestApp) -> String {
    app.url.trim_start_matches("http://").to_owned()
}

/// A new connection to the server.
pub async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(address(app)).await.unwrap()
}

/// The head of a `method path` HTTP/1.1 request with `headers` (each ending in CRLF), sent
/// exactly as written.
pub fn request_head(method: &str, path: &str, headers: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n")
}

/// The head of a `POST /model/predict` with `headers` (each ending in CRLF).
pub fn predict_head(headers: &str) -> String {
    request_head("POST", "/model/predict", headers)
}

/// One response read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    /// The status line, without its CRLF: `HTTP/1.1 200 OK`.
    pub status_line: String,
    pub status: u16,
    /// `name: value`, lower-cased.
    pub headers: Vec<String>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The value of the first header `name` (lower-case), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|header| header.strip_prefix(name)?.strip_prefix(':')).map(str::trim)
    }

    /// Checks the status and that the body is the JSON error body mentioning `fragment`.
    pub fn expect_error(&self, status: u16, fragment: &str) {
        let what = format!("{} with {:?}", self.status_line, self.headers);
        check_error_response(&what, self.status, self.header("content-type"), &self.body, status, fragment);
    }
}

/// Reads one HTTP/1.1 response (its body framed by `Content-Length`, or by the connection's
/// end); `None` when the connection ends, or fails, before a status line.
pub async fn read_response(reader: &mut (impl AsyncBufRead + Unpin)) -> Option<RawResponse> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let status = line.strip_prefix("HTTP/1.1 ").and_then(|rest| rest.get(..3)).and_then(|code| code.parse().ok());
    let status = status.unwrap_or_else(|| panic!("not an HTTP/1.1 status line: {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.expect("the response's headers");
        if line.trim().is_empty() {
            break;
        }
        headers.push(line.trim().to_ascii_lowercase());
    }
    let mut response = RawResponse { status_line: line.trim_end().to_owned(), status, headers, body: Vec::new() };
    assert!(response.header("transfer-encoding").is_none(), "a chunked answer: {response:?}");
    match response.header("content-length").map(|length| length.parse::<usize>().unwrap()) {
        Some(length) => {
            response.body = vec![0; length];
            reader.read_exact(&mut response.body).await.expect("the response's body");
        }
        None => {
            let _ = reader.read_to_end(&mut response.body).await;
        }
    }
    Some(response)
}

/// [`read_response`] within [`PATIENCE`], which must find one.
pub async fn answer(reader: &mut (impl AsyncBufRead + Unpin)) -> RawResponse {
    tokio::time::timeout(PATIENCE, read_response(reader))
        .await
        .expect("an answer in time")
        .expect("an answer before the connection closed")
}

/// Whether the server closes the connection (end of stream or reset) within [`PATIENCE`],
/// discarding anything else it sends.
pub async fn closes(reader: &mut (impl AsyncBufRead + Unpin)) -> bool {
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, reader.read_to_end(&mut rest)).await.is_ok()
}
