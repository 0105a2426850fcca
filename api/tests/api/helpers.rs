//! Starts the application the way `main` does, on 127.0.0.1 with a free port, with weights
//! fetched from the repository's bucket into a scratch assets directory.

use std::path::{Path, PathBuf};

use max_mnist_api::Application;
use max_mnist_api::types::PredictResponse;
use max_mnist_config::settings::ServerSettings;
use tokio::sync::oneshot;

/// The repository root, where `samples/`, `pretrained-model/` and `sha512sums.txt` live.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The bytes of a committed sample image.
pub fn sample(name: &str) -> Vec<u8> {
    std::fs::read(repository().join("samples").join(name)).unwrap()
}

/// A running server; it stops when dropped.
pub struct TestApp {
    pub url: String,
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
        settings.model_bucket = repository().join("pretrained-model").display().to_string();
        settings.checksums = repository().join("sha512sums.txt");
        settings.assets_dir = assets.path().to_owned();
        configure(&mut settings);
        let api_key = settings.api_key.as_ref().map(|key| key.expose().to_owned());
        let application = Application::build(&settings).await.expect("the server starts");
        let url = format!("http://{}", application.address());
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(application.run_until(async move {
            let _ = stopped.await;
        }));
        (TestApp { url, client: reqwest::Client::new(), api_key, _assets: assets, _stop: stop }, running)
    }

    /// Polls `/health/ready` (with the API key, if any) until it says ready; panics if the
    /// server stops first (the model could not be loaded) or takes over a minute.
    async fn wait_until_ready(&self, running: tokio::task::JoinHandle<Result<(), max_mnist_api::StartupError>>) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if running.is_finished() {
                panic!("the server stopped while starting: {:?}", running.await);
            }
            let mut ready = self.client.get(format!("{}/health/ready", self.url));
            if let Some(key) = &self.api_key {
                ready = ready.bearer_auth(key);
            }
            let ready = ready.send().await;
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
        let response = self.predict_multipart("image", name, sample(name)).await;
        assert_eq!(response.status(), 200, "{name}");
        let body: PredictResponse = response.json().await.unwrap();
        assert_eq!(body.status, "ok");
        assert_eq!(body.predictions.len(), 1);
        let prediction = &body.predictions[0];
        (prediction.prediction, prediction.probability)
    }
}
