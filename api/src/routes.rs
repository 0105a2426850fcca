//! The MAX routes: `/model/metadata`, `/model/labels` and `/model/predict`.

use max_mnist_core::inference::InferenceEngine;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{OpenApi, Tags};

use crate::error::ApiError;
use crate::types::{LabelsResponse, ModelMetadataResponse, PredictForm, PredictResponse, PredictionBody};

#[derive(Tags)]
enum Tag {
    /// The digit classifier.
    Model,
}

/// The model routes, holding the inference engine and the answers that never change.
pub struct ModelApi {
    engine: InferenceEngine,
    metadata: ModelMetadataResponse,
    labels: LabelsResponse,
}

impl ModelApi {
    /// Routes answering with `engine`, whose weights are described by `metadata`.
    pub fn new(engine: InferenceEngine, metadata: ModelMetadataResponse) -> ModelApi {
        let labels = LabelsResponse::new(engine.metadata());
        ModelApi { engine, metadata, labels }
    }
}

#[OpenApi(tag = "Tag::Model")]
impl ModelApi {
    /// Describe the model
    ///
    /// The MAX model card, plus the SHA-512 of the weights being served and their accuracy
    /// on the MNIST test set.
    #[oai(path = "/model/metadata", method = "get")]
    async fn metadata(&self) -> Json<ModelMetadataResponse> {
        Json(self.metadata.clone())
    }

    /// List the classes
    ///
    /// The labels the model predicts, in output order.
    #[oai(path = "/model/labels", method = "get")]
    async fn labels(&self) -> Json<LabelsResponse> {
        Json(self.labels.clone())
    }

    /// Classify a handwritten digit
    ///
    /// Send the image in the multipart field `image` (or `file`): a photo, a scan or a
    /// drawing, dark ink on light paper or light on dark, the digit anywhere in the frame.
    /// The server finds the ink, crops it, scales it into a 20×20 box and centres it by
    /// mass in 28×28, as MNIST was made. The answer holds the predicted digit, its
    /// probability and the probabilities of all ten digits; with `include_input=true`, also
    /// the 28×28 image the network saw. An image with no ink is a 400.
    #[oai(path = "/model/predict", method = "post")]
    async fn predict(
        &self,
        form: PredictForm,
        /// Also return the 28×28 image the network saw, as a PNG data URL.
        #[oai(default)]
        include_input: Query<bool>,
    ) -> Result<Json<PredictResponse>, ApiError> {
        let image = form
            .image
            .or(form.file)
            .ok_or_else(|| ApiError::bad_request("no image: send the file in the multipart field `image`"))?;
        let classification = self.engine.classify(image.0).await?;
        Ok(Json(PredictResponse::ok(vec![PredictionBody::new(classification, include_input.0)?])))
    }
}
