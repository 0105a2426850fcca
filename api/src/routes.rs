//! The MAX routes: `/model/metadata`, `/model/labels` and `/model/predict`.

use max_mnist_core::inference::InferenceEngine;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{OpenApi, Tags};

use crate::error::ApiError;
use crate::types::{LabelsResponse, ModelMetadataResponse, PredictResponse, PredictionBody};
use crate::upload::PredictUpload;

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

    /// Classify handwritten digits
    ///
    /// Send a photo, a scan or a drawing: dark ink on light paper or light on dark, the digit
    /// anywhere in the frame. Either as a multipart form, one image per `image` part (repeat
    /// the part for several images, up to the server's limit; `file` is accepted too), or as
    /// the raw body with `Content-Type: image/png` (or another `image/*`) or
    /// `application/octet-stream`. The server finds the ink, crops it, scales it into a 20×20
    /// box and centres it by mass in 28×28, as MNIST was made, and classifies all images of
    /// the request together.
    ///
    /// The answer holds one prediction per image, in order: the predicted digit, its
    /// probability and the probabilities of all ten digits; with `include_input=true`, also
    /// the 28×28 image the network saw. If any image cannot be used (empty, not an image,
    /// no ink), the request fails with an error naming that part.
    #[oai(path = "/model/predict", method = "post")]
    async fn predict(
        &self,
        upload: PredictUpload,
        /// Also return the 28×28 image the network saw, as a PNG data URL.
        #[oai(default)]
        include_input: Query<bool>,
    ) -> Result<Json<PredictResponse>, ApiError> {
        let several = upload.images.len() > 1;
        let (origins, images): (Vec<String>, Vec<Vec<u8>>) =
            upload.images.into_iter().map(|image| (image.origin, image.bytes)).unzip();
        let mut predictions = Vec::with_capacity(images.len());
        for (result, origin) in self.engine.classify_all(images).await.into_iter().zip(&origins) {
            let named = |error| if several { ApiError::for_image(origin, error) } else { ApiError::from(error) };
            predictions.push(PredictionBody::new(result.map_err(named)?, include_input.0).map_err(named)?);
        }
        Ok(Json(PredictResponse::ok(predictions)))
    }
}
