//! The MAX routes: `/model/metadata`, `/model/labels` and `/model/predict` on the default
//! model, exactly as MAX clients know them; the same three per model under
//! `/models/{model}/…`; and `GET /models`, the list of models in TorchServe's shape.

use max_mnist_core::inference::Classification;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{OpenApi, Tags};

use crate::error::ApiError;
use crate::state::{ServedModel, ServerState};
use crate::types::{
    LabelsResponse, ModelListEntry, ModelListResponse, ModelMetadataResponse, PredictResponse, PredictionBody,
};
use crate::upload::PredictUpload;

#[derive(Tags)]
enum Tag {
    /// The default model, as MAX clients call it.
    Model,
    /// Every model, by name.
    Models,
}

/// The model routes; each model's answer 503 until it is loaded, and 404 for a name that is
/// not served.
pub struct ModelApi {
    state: ServerState,
}

impl ModelApi {
    /// Routes answering with the models that `state` serves.
    pub fn new(state: ServerState) -> ModelApi {
        ModelApi { state }
    }

    fn metadata_of(&self, name: Option<&str>) -> Result<Json<ModelMetadataResponse>, ApiError> {
        Ok(Json(self.state.model(name)?.metadata.clone()))
    }

    fn labels_of(&self, name: Option<&str>) -> Result<Json<LabelsResponse>, ApiError> {
        Ok(Json(self.state.model(name)?.labels.clone()))
    }

    /// Classifies every image of `upload` with the model called `name` (the default when
    /// `None`), naming the part that failed when there are several.
    async fn predict_with(
        &self,
        name: Option<&str>,
        upload: PredictUpload,
        include_input: bool,
    ) -> Result<Json<PredictResponse>, ApiError> {
        let model = self.state.model(name)?;
        let predictions = classify_upload(&model, upload)
            .await?
            .into_iter()
            .map(|classification| PredictionBody::new(classification, include_input).map_err(ApiError::from))
            .collect::<Result<_, _>>()?;
        Ok(Json(PredictResponse::ok(predictions)))
    }
}

/// Classifies every image of `upload` with `model`, in order; an image that cannot be used
/// fails the request, its error naming the part when there are several.
pub(crate) async fn classify_upload(
    model: &ServedModel,
    upload: PredictUpload,
) -> Result<Vec<Classification>, ApiError> {
    let several = upload.images.len() > 1;
    let (origins, images): (Vec<String>, Vec<Vec<u8>>) =
        upload.images.into_iter().map(|image| (image.origin, image.bytes)).unzip();
    let results = model.engine.classify_all(images).await;
    results
        .into_iter()
        .zip(&origins)
        .map(|(result, origin)| {
            result.map_err(|error| if several { ApiError::for_image(origin, error) } else { ApiError::from(error) })
        })
        .collect()
}

#[OpenApi]
impl ModelApi {
    /// Describe the default model
    ///
    /// The MAX model card, plus the SHA-512 of the weights being served and their accuracy
    /// on their data set's test images.
    #[oai(path = "/model/metadata", method = "get", tag = "Tag::Model")]
    async fn metadata(&self) -> Result<Json<ModelMetadataResponse>, ApiError> {
        self.metadata_of(None)
    }

    /// List the default model's classes
    ///
    /// The labels the model predicts, in output order.
    #[oai(path = "/model/labels", method = "get", tag = "Tag::Model")]
    async fn labels(&self) -> Result<Json<LabelsResponse>, ApiError> {
        self.labels_of(None)
    }

    /// Classify images with the default model
    ///
    /// Send a photo, a scan or a drawing. Either as a multipart form, one image per `image`
    /// part (repeat the part for several images, up to the server's limit; `file` and `data` are accepted
    /// too), or as the raw body with `Content-Type: image/png` (or another `image/*`) or
    /// `application/octet-stream`. A digit model finds the ink (dark on light paper or light
    /// on dark, anywhere in the frame), crops it, scales it into a 20×20 box and centres it by
    /// mass in 28×28, as MNIST was made; an image model resizes and centre-crops the picture.
    /// All images of the request are classified together.
    ///
    /// The answer holds one prediction per image, in order: the predicted class, its
    /// probability and the probabilities of all classes; with `include_input=true`, also the
    /// image the network saw. If any image cannot be used (empty, not an image, no ink), the
    /// request fails with an error naming that part.
    #[oai(path = "/model/predict", method = "post", tag = "Tag::Model")]
    async fn predict(
        &self,
        upload: PredictUpload,
        /// Also return the image the network saw, as a PNG data URL.
        #[oai(default)]
        include_input: Query<bool>,
    ) -> Result<Json<PredictResponse>, ApiError> {
        self.predict_with(None, upload, include_input.0).await
    }

    /// List the models
    ///
    /// The models this server serves, in TorchServe's list shape, in the order they were
    /// configured.
    #[oai(path = "/models", method = "get", tag = "Tag::Models")]
    async fn list(&self) -> Json<ModelListResponse> {
        let models = self
            .state
            .entries()
            .into_iter()
            .map(|entry| ModelListEntry { model_name: entry.name, model_url: entry.bucket })
            .collect();
        Json(ModelListResponse { models })
    }

    /// Describe a model
    ///
    /// As `/model/metadata`, for the model called `model`.
    #[oai(path = "/models/:model/metadata", method = "get", tag = "Tag::Models")]
    async fn model_metadata(
        &self,
        /// The model's name (see `GET /models`).
        model: Path<String>,
    ) -> Result<Json<ModelMetadataResponse>, ApiError> {
        self.metadata_of(Some(&model))
    }

    /// List a model's classes
    ///
    /// As `/model/labels`, for the model called `model`.
    #[oai(path = "/models/:model/labels", method = "get", tag = "Tag::Models")]
    async fn model_labels(
        &self,
        /// The model's name (see `GET /models`).
        model: Path<String>,
    ) -> Result<Json<LabelsResponse>, ApiError> {
        self.labels_of(Some(&model))
    }

    /// Classify images with a model
    ///
    /// As `/model/predict`, with the model called `model`.
    #[oai(path = "/models/:model/predict", method = "post", tag = "Tag::Models")]
    async fn model_predict(
        &self,
        /// The model's name (see `GET /models`).
        model: Path<String>,
        upload: PredictUpload,
        /// Also return the image the network saw, as a PNG data URL.
        #[oai(default)]
        include_input: Query<bool>,
    ) -> Result<Json<PredictResponse>, ApiError> {
        self.predict_with(Some(&model), upload, include_input.0).await
    }
}
