//! TorchServe's inference API, so that TorchServe clients and their `curl` commands work with
//! only the port changed:
//!
//! - `POST` or `PUT /predictions/{model}[/{version}]`: one image as the raw body
//!   (`curl -T kitten.jpg`), or one or more in multipart parts named `data`. The answer is
//!   TorchServe's image classifier's: the top classes as `{"label": probability}`, most
//!   probable first, for one image; a list of them for several.
//! - `GET /ping`: `{"status": "Healthy"}` once every model is served.
//! - `GET /models/{model}`: TorchServe's describe answer. (`GET /models`, the list, is with the
//!   MAX routes.)
//!
//! These are read-only; models are loaded and unloaded through TorchServe's management API on
//! the management address (see `management`), when it is on.

use std::time::Duration;

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::error::ApiError;
use crate::routes::classify_upload;
use crate::state::{Origin, Readiness, ServedModel, ServerState};
use crate::upload::PredictUpload;

/// How many classes a prediction lists, as TorchServe's image classifier does.
pub const TOP_CLASSES: usize = 5;

#[derive(Tags)]
enum Tag {
    /// TorchServe's inference API.
    TorchServe,
}

/// The answer of `GET /ping`.
#[derive(Object, Debug, Clone, PartialEq, serde::Deserialize)]
pub struct PingBody {
    /// `Healthy`, or `Unhealthy` while the models load or the server drains.
    pub status: String,
}

/// The answers of `GET /ping`.
#[derive(ApiResponse)]
pub enum PingResponse {
    /// Every model is served.
    #[oai(status = 200)]
    Healthy(Json<PingBody>),
    /// Loading the models, or shutting down.
    #[oai(status = 503)]
    Unhealthy(Json<PingBody>),
}

/// One worker of a model, in TorchServe's describe shape: here, the model's inference thread.
#[derive(Object, Debug, Clone, PartialEq, serde::Deserialize)]
pub struct WorkerBody {
    /// The inference thread's name.
    pub id: String,
    /// When the model was loaded (RFC 3339).
    #[oai(rename = "startTime")]
    #[serde(rename = "startTime")]
    pub start_time: String,
    /// `READY`.
    pub status: String,
    /// Whether it runs on a GPU.
    pub gpu: bool,
}

/// `GET /models/{model}`: one model, in TorchServe's describe shape.
#[derive(Object, Debug, Clone, PartialEq, serde::Deserialize)]
pub struct DescribeBody {
    /// The model's name.
    #[oai(rename = "modelName")]
    #[serde(rename = "modelName")]
    pub model_name: String,
    /// The version served: the first 12 hex digits of its network file's SHA-512.
    #[oai(rename = "modelVersion")]
    #[serde(rename = "modelVersion")]
    pub model_version: String,
    /// Its bucket.
    #[oai(rename = "modelUrl")]
    #[serde(rename = "modelUrl")]
    pub model_url: String,
    /// What runs it: `libtorch`, with no Python.
    pub runtime: String,
    /// Always 1: one inference thread per model.
    #[oai(rename = "minWorkers")]
    #[serde(rename = "minWorkers")]
    pub min_workers: u32,
    /// Always 1.
    #[oai(rename = "maxWorkers")]
    #[serde(rename = "maxWorkers")]
    pub max_workers: u32,
    /// Most images in one forward pass.
    #[oai(rename = "batchSize")]
    #[serde(rename = "batchSize")]
    pub batch_size: u32,
    /// Longest wait for a batch to fill, in milliseconds.
    #[oai(rename = "maxBatchDelay")]
    #[serde(rename = "maxBatchDelay")]
    pub max_batch_delay: f64,
    /// Whether it was configured at start-up (`--model`), not registered since.
    #[oai(rename = "loadedAtStartup")]
    #[serde(rename = "loadedAtStartup")]
    pub loaded_at_startup: bool,
    /// The model's inference thread.
    pub workers: Vec<WorkerBody>,
}

/// How every model batches, for the describe answers.
#[derive(Clone, Copy, Debug)]
pub struct Batching {
    /// Most images in one forward pass.
    pub max_batch_size: usize,
    /// Longest wait for a batch to fill.
    pub max_batch_delay: Duration,
}

impl Batching {
    /// TorchServe's describe answer for the version `served`.
    pub fn describe(&self, served: &ServedModel) -> DescribeBody {
        DescribeBody {
            model_name: served.name.clone(),
            model_version: served.version().to_owned(),
            model_url: served.bucket.clone(),
            runtime: "libtorch".into(),
            min_workers: 1,
            max_workers: 1,
            batch_size: self.max_batch_size as u32,
            max_batch_delay: self.max_batch_delay.as_secs_f64() * 1000.0,
            loaded_at_startup: served.origin == Origin::Configured,
            workers: vec![WorkerBody {
                id: format!("inference-{}", served.name),
                start_time: served.loaded_at.clone(),
                status: "READY".into(),
                gpu: served.on_gpu,
            }],
        }
    }
}

/// TorchServe's inference routes over the models `state` serves.
pub struct TorchServeApi {
    state: ServerState,
    batching: Batching,
}

impl TorchServeApi {
    /// The routes, describing each model's batching as `batching`.
    pub fn new(state: ServerState, batching: Batching) -> TorchServeApi {
        TorchServeApi { state, batching }
    }

    async fn predict(&self, model: &ServedModel, upload: PredictUpload) -> Result<Json<serde_json::Value>, ApiError> {
        let several = upload.images.len() > 1;
        let mut answers: Vec<serde_json::Value> = classify_upload(model, upload)
            .await?
            .into_iter()
            .map(|classification| top_classes(&model.engine.card().labels, &classification.prediction.probabilities))
            .collect();
        Ok(Json(if several { serde_json::Value::Array(answers) } else { answers.remove(0) }))
    }
}

/// The [`TOP_CLASSES`] most probable classes as `{"label": probability}`, most probable first.
fn top_classes(labels: &[String], probabilities: &[f32]) -> serde_json::Value {
    let mut ranked: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
    ranked.sort_by(|(_, left), (_, right)| right.total_cmp(left));
    let top = ranked.into_iter().take(TOP_CLASSES).map(|(index, probability)| {
        let label = labels.get(index).cloned().unwrap_or_else(|| index.to_string());
        (label, serde_json::Value::from(probability))
    });
    serde_json::Value::Object(top.collect())
}

#[OpenApi(tag = "Tag::TorchServe")]
impl TorchServeApi {
    /// TorchServe: health
    ///
    /// `{"status": "Healthy"}` once every model is served; 503 `Unhealthy` while they load and
    /// after a shutdown signal.
    #[oai(path = "/ping", method = "get")]
    async fn ping(&self) -> PingResponse {
        match self.state.readiness() {
            Readiness::Ready => PingResponse::Healthy(Json(PingBody { status: "Healthy".into() })),
            Readiness::Starting | Readiness::Draining => {
                PingResponse::Unhealthy(Json(PingBody { status: "Unhealthy".into() }))
            }
        }
    }

    /// TorchServe: classify with a model
    ///
    /// One image as the raw body (`curl -T kitten.jpg` sends a PUT), or one or more as
    /// multipart parts named `data`. The answer is the top five classes as
    /// `{"label": probability}`, most probable first; for several images, a list of those, in
    /// order.
    #[oai(path = "/predictions/:model", method = "post", method = "put")]
    async fn prediction(
        &self,
        /// The model's name (see `GET /models`).
        model: Path<String>,
        upload: PredictUpload,
    ) -> Result<Json<serde_json::Value>, ApiError> {
        self.predict(&*self.state.model(Some(&model))?, upload).await
    }

    /// TorchServe: classify with a model's version
    ///
    /// As `/predictions/{model}`, when the model serves `version`; 404 otherwise.
    #[oai(path = "/predictions/:model/:version", method = "post", method = "put")]
    async fn version_prediction(
        &self,
        /// The model's name (see `GET /models`).
        model: Path<String>,
        /// The version (see `GET /models/{model}`).
        version: Path<String>,
        upload: PredictUpload,
    ) -> Result<Json<serde_json::Value>, ApiError> {
        self.predict(&*self.state.model_version(&model, &version)?, upload).await
    }

    /// TorchServe: describe a model
    ///
    /// TorchServe's describe answer: a list holding the model, its version, bucket, batching
    /// and its one worker (the inference thread).
    #[oai(path = "/models/:model", method = "get")]
    async fn describe(
        &self,
        /// The model's name (see `GET /models`).
        model: Path<String>,
    ) -> Result<Json<Vec<DescribeBody>>, ApiError> {
        Ok(Json(vec![self.batching.describe(&*self.state.model(Some(&model))?)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_five_come_most_probable_first() {
        let labels: Vec<String> = ["a", "b", "c", "d", "e", "f"].map(String::from).into();
        let answer = top_classes(&labels, &[0.05, 0.3, 0.1, 0.4, 0.05, 0.1]);
        let keys: Vec<&String> = answer.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["d", "b", "c", "f", "a"]);
        assert_eq!(answer["d"].as_f64().unwrap() as f32, 0.4);
    }
}
